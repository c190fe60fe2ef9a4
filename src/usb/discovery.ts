import { accessSync, constants } from 'node:fs';
import { sysCode } from '../errors.ts';
import { throwIfAborted } from '../util/abort.ts';
import { type Clock, realClock } from '../util/clock.ts';
import { classifyUsbFailure } from './control.ts';
import { errorText, hex4, noSubsystemError, permissionHint, UsbError, UsbSelectorError } from './errors.ts';
import type { UsbDeviceLike } from './types.ts';

/** An attached device as a backend reports it. Real and virtual devices look the same from here on. */
export interface UsbDeviceEntry {
  device: UsbDeviceLike;
  vendorId: number;
  productId: number;
  /** bcdDevice as a number (0x0200). */
  bcdDevice: number;
  serial: string | undefined;
  manufacturer: string | undefined;
  product: string | undefined;
  /** Kernel port path ("1-4.2") for real devices, "virtual:<id>" for virtual boards. */
  portPath: string;
  /** Which backend found it: "usb" (node-usb) or "virtual". */
  backend: string;
  /** USB device address on its bus (real devices). */
  address?: number;
  busNumber?: number;
}

/** A source of devices: node-usb for real hardware, a set of VirtualBoards for the virtual farm. */
export interface UsbBackend {
  readonly name: string;
  list(signal?: AbortSignal): Promise<UsbDeviceEntry[]>;
}

export interface UsbSelector {
  vendorId?: number;
  productId?: number;
  serial?: string;
  portPath?: string;
  /** As the user wrote it. */
  text: string;
}

/** The ST ROM bootloader's USB identity (ST AN2606, "DFU" sections: VID 0x0483, PID 0xDF11). */
export const ST_DFU_VID = 0x0483;
export const ST_DFU_PID = 0xdf11;

/**
 * Parses `VID:PID`, `VID:PID:SERIAL`, `VID:PID@PORTPATH` or `@PORTPATH` (IDs in hex, "0x" optional).
 */
export function parseUsbSelector(text: string): UsbSelector {
  const t = text.trim();
  if (!t) throw new UsbSelectorError(text, 'it is empty');
  let rest = t;
  let portPath: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    portPath = rest.slice(at + 1).trim();
    rest = rest.slice(0, at);
    if (!portPath) throw new UsbSelectorError(text, 'nothing after "@"');
  }
  const sel: UsbSelector = { text: t, ...(portPath ? { portPath } : {}) };
  if (!rest) {
    if (!portPath) throw new UsbSelectorError(text, 'no VID:PID');
    return sel;
  }
  const parts = rest.split(':');
  if (parts.length < 2) throw new UsbSelectorError(text, 'expected VID:PID');
  const id = (s: string, what: string) => {
    const v = s.trim().replace(/^0x/i, '');
    if (!/^[0-9a-f]{1,4}$/i.test(v))
      throw new UsbSelectorError(text, `${what} "${s}" is not a 16-bit hex number`);
    return Number.parseInt(v, 16);
  };
  sel.vendorId = id(parts[0]!, 'VID');
  sel.productId = id(parts[1]!, 'PID');
  if (parts.length > 2) {
    const serial = parts.slice(2).join(':');
    if (!serial) throw new UsbSelectorError(text, 'empty serial after the second ":"');
    if (portPath) throw new UsbSelectorError(text, 'give a serial or a port path, not both');
    sel.serial = serial;
  }
  return sel;
}

export function matches(entry: UsbDeviceEntry, sel: UsbSelector): boolean {
  if (sel.vendorId !== undefined && entry.vendorId !== sel.vendorId) return false;
  if (sel.productId !== undefined && entry.productId !== sel.productId) return false;
  if (sel.serial !== undefined && entry.serial !== sel.serial) return false;
  if (sel.portPath !== undefined && entry.portPath !== sel.portPath) return false;
  return true;
}

export function describeEntry(e: UsbDeviceEntry): string {
  const name = e.product ? ` "${e.product}"` : '';
  const serial = e.serial ? ` serial ${e.serial}` : '';
  return `${hex4(e.vendorId)}:${hex4(e.productId)}${name}${serial} at ${e.portPath}`;
}

/** Serial numbers reported by more than one attached device (every STM32H74x ROM reports 200364500000). */
export function duplicateSerials(entries: readonly UsbDeviceEntry[]): Map<string, UsbDeviceEntry[]> {
  const by = new Map<string, UsbDeviceEntry[]>();
  for (const e of entries) {
    if (!e.serial) continue;
    const list = by.get(e.serial) ?? [];
    list.push(e);
    by.set(e.serial, list);
  }
  for (const [k, v] of by) if (v.length < 2) by.delete(k);
  return by;
}

export function duplicateSerialWarning(serial: string, entries: readonly UsbDeviceEntry[]): string {
  return (
    `${entries.length} attached devices report the same serial ${serial} (${entries.map((e) => e.portPath).join(', ')}); ` +
    'STM32H74x ROM bootloaders all report 200364500000, so select a board by its port path (VID:PID@PATH or usb.path in boards.yaml)'
  );
}

export interface ListOptions {
  signal?: AbortSignal;
  /** Warnings (shared serials, backends that failed while others answered). */
  warn?: (line: string) => void;
}

/**
 * Lists every backend's devices. A backend that fails makes the whole list fail only when it is the
 * only one; with several (real + virtual), its failure becomes a warning.
 */
export async function listDevices(
  backends: readonly UsbBackend[],
  opts: ListOptions = {},
): Promise<UsbDeviceEntry[]> {
  const out: UsbDeviceEntry[] = [];
  for (const b of backends) {
    try {
      out.push(...(await b.list(opts.signal)));
    } catch (e) {
      if (backends.length === 1) throw e;
      opts.warn?.(`${b.name}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  return out;
}

export interface FindOptions extends ListOptions {}

/**
 * The one device `sel` names. None: E_USB_NOT_FOUND listing what is attached. Several: E_USB_AMBIGUOUS.
 * Warns when attached devices share a serial number.
 */
export async function findDevice(
  backends: readonly UsbBackend[],
  sel: UsbSelector,
  opts: FindOptions = {},
): Promise<UsbDeviceEntry> {
  const all = await listDevices(backends, opts);
  return pick(all, sel, opts);
}

function pick(all: UsbDeviceEntry[], sel: UsbSelector, opts: ListOptions): UsbDeviceEntry {
  const found = all.filter((e) => matches(e, sel));
  for (const [serial, list] of duplicateSerials(all)) {
    if (found.some((f) => f.serial === serial)) opts.warn?.(duplicateSerialWarning(serial, list));
  }
  if (found.length === 1) return found[0]!;
  if (found.length === 0) {
    throw new UsbError(
      'E_USB_NOT_FOUND',
      `no USB device matches ${sel.text}`,
      { selector: sel.text, found: all.map(describeEntry) },
      all.length
        ? `attached: ${all.map(describeEntry).join('; ')}`
        : 'nothing is attached: is the board powered with BOOT0 high, and the cable a data cable?',
    );
  }
  throw new UsbError(
    'E_USB_AMBIGUOUS',
    `${found.length} USB devices match ${sel.text}: ${found.map(describeEntry).join('; ')}`,
    { selector: sel.text, found: found.map(describeEntry) },
    'name one by its port path: VID:PID@PATH (port paths are listed by `stm32-hil dfu list`)',
  );
}

export interface WaitOptions extends ListOptions {
  /** How long to wait, ms on `clock`. */
  timeoutMs: number;
  clock?: Clock;
  /** Time between looks, ms. */
  pollMs?: number;
}

/** Waits until the device `sel` names is attached (re-enumeration after a reset, power cycle or leave). */
export async function waitForDevice(
  backends: readonly UsbBackend[],
  sel: UsbSelector,
  opts: WaitOptions,
): Promise<UsbDeviceEntry> {
  const clock = opts.clock ?? realClock;
  const pollMs = opts.pollMs ?? 50;
  const deadline = clock.now() + opts.timeoutMs;
  let last: UsbDeviceEntry[] = [];
  // Bounded: each round sleeps pollMs on the clock and the loop ends at the deadline.
  for (;;) {
    throwIfAborted(opts.signal);
    last = await listDevices(backends, { ...opts, warn: undefined });
    if (last.some((e) => matches(e, sel))) return pick(last, sel, opts);
    if (clock.now() >= deadline) break;
    await clock.sleep(Math.min(pollMs, Math.max(1, deadline - clock.now())), opts.signal);
  }
  throw new UsbError(
    'E_USB_WAIT_TIMEOUT',
    `${sel.text} did not appear within ${opts.timeoutMs} ms`,
    { selector: sel.text, timeoutMs: opts.timeoutMs, found: last.map(describeEntry) },
    last.length ? `attached: ${last.map(describeEntry).join('; ')}` : 'nothing is attached',
  );
}

/** Waits until no device matching `sel` is attached (after leave, reset or power off). */
export async function waitForGone(
  backends: readonly UsbBackend[],
  sel: UsbSelector,
  opts: WaitOptions,
): Promise<void> {
  const clock = opts.clock ?? realClock;
  const pollMs = opts.pollMs ?? 50;
  const deadline = clock.now() + opts.timeoutMs;
  for (;;) {
    throwIfAborted(opts.signal);
    const all = await listDevices(backends, { ...opts, warn: undefined });
    if (!all.some((e) => matches(e, sel))) return;
    if (clock.now() >= deadline) break;
    await clock.sleep(Math.min(pollMs, Math.max(1, deadline - clock.now())), opts.signal);
  }
  throw new UsbError('E_USB_WAIT_TIMEOUT', `${sel.text} was still attached after ${opts.timeoutMs} ms`, {
    selector: sel.text,
    timeoutMs: opts.timeoutMs,
  });
}

/** Selector for exactly this entry (by port path). */
export function selectorFor(e: UsbDeviceEntry): UsbSelector {
  return {
    vendorId: e.vendorId,
    productId: e.productId,
    portPath: e.portPath,
    text: `${hex4(e.vendorId)}:${hex4(e.productId)}@${e.portPath}`,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Backends

/** What node-usb 3's device adds to WebUSB (node_modules/usb/index.d.ts). */
interface NodeUsbDevice extends USBDevice {
  /**
   * nusb's bus id: on Linux the zero-padded bus number ("001"), not a port path, whatever usb/index.d.ts says
   * (nusb src/platform/linux_usbfs/enumeration.rs: `bus_id: format!("{busnum:03}")`).
   */
  bus: string;
  address: number;
  /** Port chain from the root hub, from sysfs devpath ("4.2" -> [4, 2]) (same nusb file, `port_chain`). */
  ports: number[];
}

/** The kernel's name for a device's port: "<bus>-<port>.<port>...", as in /sys/bus/usb/devices/1-4.2. */
export function portPathOf(bus: string, ports: readonly number[]): string {
  const b = /^\d+$/.test(bus) ? String(Number(bus)) : bus;
  return ports.length ? `${b}-${ports.join('.')}` : `${b}-0`;
}

function safeGet<T>(get: () => T): T | undefined {
  try {
    return get();
  } catch {
    // node-usb 3 opens the device to read a string descriptor sysfs lacks; that may be refused.
    return undefined;
  }
}

/**
 * The usbfs node of a device this process may not open (Linux: /dev/bus/usb/BBB/DDD), or undefined when it may,
 * or when there is no such node to check. node-usb 3.1 was seen to abort the whole process (V8 "Check failed",
 * or a segmentation fault) now and then when its open is refused, in the QEMU lane's unprivileged run, so the
 * harness refuses first, with the udev hint, and never enters that path.
 */
function usbfsDenied(n: NodeUsbDevice): string | undefined {
  if (!/^\d+$/.test(String(n.bus)) || typeof n.address !== 'number') return undefined;
  const node = `/dev/bus/usb/${String(Number(n.bus)).padStart(3, '0')}/${String(n.address).padStart(3, '0')}`;
  try {
    accessSync(node, constants.R_OK | constants.W_OK);
    return undefined;
  } catch (e) {
    return sysCode(e) === 'EACCES' || sysCode(e) === 'EPERM' ? node : undefined;
  }
}

/** `d` with an `open` that fails with E_USB_PERMISSION (naming the device node) instead of calling node-usb. */
function refusingOpen(d: USBDevice, node: string): USBDevice {
  return new Proxy(d, {
    get(target, prop) {
      if (prop === 'open') {
        return async () => {
          throw new UsbError(
            'E_USB_PERMISSION',
            `open on ${hex4(target.vendorId)}:${hex4(target.productId)}: permission denied on ${node}`,
            { node },
            permissionHint(target.vendorId, target.productId),
          );
        };
      }
      const v: unknown = Reflect.get(target, prop, target);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
}

/** Real devices through node-usb 3 (WebUSB API with every device allowed). */
export class NodeUsbBackend implements UsbBackend {
  readonly name = 'usb';
  #webusb: { getDevices(): Promise<USBDevice[]> } | undefined;

  async #api(): Promise<{ getDevices(): Promise<USBDevice[]> }> {
    if (!this.#webusb) {
      // Loaded on first use so that virtual-only runs never load the native module.
      const mod = (await import('usb')) as {
        WebUSB: new (o: { allowAllDevices: boolean }) => { getDevices(): Promise<USBDevice[]> };
      };
      this.#webusb = new mod.WebUSB({ allowAllDevices: true });
    }
    return this.#webusb;
  }

  async list(signal?: AbortSignal): Promise<UsbDeviceEntry[]> {
    throwIfAborted(signal);
    let devices: USBDevice[];
    try {
      devices = await (await this.#api()).getDevices();
    } catch (e) {
      const kind = classifyUsbFailure(e);
      if (kind === 'no-subsystem') throw noSubsystemError(e);
      if (kind === 'permission') {
        throw new UsbError(
          'E_USB_PERMISSION',
          `cannot list USB devices: ${errorText(e)}`,
          {},
          permissionHint(),
          e,
        );
      }
      throw new UsbError('E_USB_OPEN', `cannot list USB devices: ${errorText(e)}`, {}, undefined, e);
    }
    return devices.map((d) => {
      const n = d as NodeUsbDevice;
      const denied = usbfsDenied(n);
      return {
        device: denied ? refusingOpen(d, denied) : d,
        vendorId: d.vendorId,
        productId: d.productId,
        bcdDevice: (d.deviceVersionMajor << 8) | (d.deviceVersionMinor << 4) | d.deviceVersionSubminor,
        // Without access to the device node the getters would make node-usb open it (see usbfsDenied).
        serial: denied ? undefined : (safeGet(() => d.serialNumber) ?? undefined),
        manufacturer: denied ? undefined : (safeGet(() => d.manufacturerName) ?? undefined),
        product: denied ? undefined : (safeGet(() => d.productName) ?? undefined),
        portPath: portPathOf(String(n.bus ?? '?'), n.ports ?? []),
        backend: this.name,
        ...(typeof n.address === 'number' ? { address: n.address } : {}),
        ...(/^\d+$/.test(String(n.bus)) ? { busNumber: Number(n.bus) } : {}),
      };
    });
  }
}

/** The part of a VirtualBoard (src/sim/board.ts) discovery needs. */
export interface VirtualUsbSource {
  readonly id: string;
  readonly portPath: string;
  readonly usb: (UsbDeviceLike & { portPath: string }) | undefined;
}

/** Devices of virtual boards: those whose simulated ROM bootloader is enumerated right now. */
export class VirtualUsbBackend implements UsbBackend {
  readonly name = 'virtual';
  readonly boards: VirtualUsbSource[];
  constructor(boards: Iterable<VirtualUsbSource>) {
    this.boards = [...boards];
  }
  async list(signal?: AbortSignal): Promise<UsbDeviceEntry[]> {
    throwIfAborted(signal);
    const out: UsbDeviceEntry[] = [];
    for (const b of this.boards) {
      const d = b.usb;
      if (!d) continue;
      out.push({
        device: d,
        vendorId: d.vendorId,
        productId: d.productId,
        bcdDevice: (d.deviceVersionMajor << 8) | (d.deviceVersionMinor << 4) | d.deviceVersionSubminor,
        serial: d.serialNumber ?? undefined,
        manufacturer: d.manufacturerName ?? undefined,
        product: d.productName ?? undefined,
        portPath: d.portPath ?? b.portPath,
        backend: this.name,
      });
    }
    return out;
  }
}
