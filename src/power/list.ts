import { existsSync } from 'node:fs';
import { readdir, readFile, readlink, realpath } from 'node:fs/promises';
import path from 'node:path';
import { throwIfAborted } from '../util/abort.ts';
import { SerialError } from './errors.ts';

export interface SerialPortInfo {
  /** Device node, e.g. /dev/ttyUSB0. */
  path: string;
  /** Stable names under /dev/serial/by-id pointing at this port. */
  byId: string[];
  /** Kernel driver (ch341-uart, cdc_acm, ftdi_sio, serial8250, ...). */
  driver?: string;
  manufacturer?: string;
  product?: string;
  serialNumber?: string;
  /** Four lower-case hex digits. */
  vendorId?: string;
  productId?: string;
  /** USB port path (`1-4.2`): the same name boards.yaml uses for a board's DFU device. */
  usbPath?: string;
  /** What the VID:PID usually is on a farm (a hint, not a promise). */
  hint?: string;
  source: 'sysfs' | 'serialport';
}

/** USB serial chips people find on relay boards. CH340 1a86:7523: LCUS boards (reference README, "Relay boards"). */
const KNOWN_ADAPTERS: Record<string, string> = {
  '1a86:7523': 'CH340 (LCUS relay boards use it)',
  '0403:6001': 'FTDI FT232R',
};

export interface ListOptions {
  signal?: AbortSignal;
  /** Roots for tests: a fake sysfs and /dev. */
  sysClassTty?: string;
  devDir?: string;
  /** Forces the SerialPort.list() path (only when udevadm is on PATH, see below). */
  preferSerialport?: boolean;
}

async function readAttr(dir: string, name: string): Promise<string | undefined> {
  try {
    const v = (await readFile(path.join(dir, name), 'utf8')).trim();
    return v || undefined;
  } catch {
    return undefined;
  }
}

/** Walks up from a tty's device directory to the USB device (the directory that has idVendor). */
async function usbDeviceDir(deviceDir: string): Promise<string | undefined> {
  let dir = deviceDir;
  for (let i = 0; i < 6 && dir !== path.dirname(dir); i++) {
    if (existsSync(path.join(dir, 'idVendor'))) return dir;
    dir = path.dirname(dir);
  }
  return undefined;
}

/**
 * The kernel driver behind a tty. Since Linux 6.5 a UART's tty hangs off the serial-base bus ("port", "ctrl"
 * drivers); the driver that matters (serial8250, serial) is further up.
 */
async function driverOf(deviceDir: string): Promise<string | undefined> {
  let dir = deviceDir;
  for (let i = 0; i < 4; i++) {
    const link = path.join(dir, 'driver');
    if (existsSync(link)) {
      const driver = await realpath(link);
      if (path.basename(path.dirname(path.dirname(driver))) !== 'serial-base') return path.basename(driver);
    }
    dir = path.dirname(dir);
  }
  return undefined;
}

async function byIdLinks(devDir: string): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  const dir = path.join(devDir, 'serial', 'by-id');
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return out;
  }
  for (const name of names) {
    try {
      const target = path.resolve(dir, await readlink(path.join(dir, name)));
      out.set(target, [...(out.get(target) ?? []), path.join(dir, name)]);
    } catch {
      // A dangling link: the device went away while we listed.
    }
  }
  return out;
}

/**
 * Lists serial ports from sysfs (Linux). Hand-written because `SerialPort.list()` spawns `udevadm`, which
 * minimal containers and CI machines lack: there it rejects with "spawn udevadm ENOENT" (ending any process
 * that does not catch it) and lists nothing. sysfs also gives the driver and the USB port path.
 */
export async function listFromSysfs(opts: ListOptions = {}): Promise<SerialPortInfo[]> {
  const root = opts.sysClassTty ?? '/sys/class/tty';
  const devDir = opts.devDir ?? '/dev';
  const byId = await byIdLinks(devDir);
  const ports: SerialPortInfo[] = [];
  for (const name of (await readdir(root)).sort()) {
    throwIfAborted(opts.signal);
    const ttyDir = path.join(root, name);
    const deviceLink = path.join(ttyDir, 'device');
    if (!existsSync(deviceLink)) continue; // virtual terminals, ptys, console
    const deviceDir = await realpath(deviceLink);
    const driver = await driverOf(deviceDir);
    // 8250 UARTs exist as placeholders whether or not there is hardware; type 0 is PORT_UNKNOWN (linux serial_core.h).
    if (/^ttyS\d+$/.test(name) && (await readAttr(ttyDir, 'type')) === '0') continue;
    const devPath = path.join(devDir, name);
    const info: SerialPortInfo = { path: devPath, byId: byId.get(devPath) ?? [], source: 'sysfs' };
    if (driver) info.driver = driver;
    const usb = await usbDeviceDir(deviceDir);
    if (usb) {
      const vid = await readAttr(usb, 'idVendor');
      const pid = await readAttr(usb, 'idProduct');
      const set = (
        key: 'manufacturer' | 'product' | 'serialNumber' | 'vendorId' | 'productId',
        v: string | undefined,
      ) => {
        if (v) info[key] = v;
      };
      set('vendorId', vid);
      set('productId', pid);
      set('manufacturer', await readAttr(usb, 'manufacturer'));
      set('product', await readAttr(usb, 'product'));
      set('serialNumber', await readAttr(usb, 'serial'));
      info.usbPath = path.basename(usb);
      const hint = KNOWN_ADAPTERS[`${vid}:${pid}`];
      if (hint) info.hint = hint;
    }
    ports.push(info);
  }
  return ports;
}

/** Whether an executable named `name` is on PATH. */
export function onPath(name: string, envPath = process.env.PATH ?? ''): boolean {
  return envPath.split(path.delimiter).some((dir) => dir && existsSync(path.join(dir, name)));
}

/**
 * Serial ports of this host, never crashing: sysfs on Linux; `SerialPort.list()` (guarded) elsewhere, and on
 * Linux only when asked for and `udevadm` exists.
 */
export async function listSerialPorts(opts: ListOptions = {}): Promise<SerialPortInfo[]> {
  throwIfAborted(opts.signal);
  const linux = process.platform === 'linux';
  const sysfs = opts.sysClassTty ?? '/sys/class/tty';
  const udevadm = onPath('udevadm');
  if (linux && existsSync(sysfs) && !(opts.preferSerialport && udevadm)) return listFromSysfs(opts);
  if (linux && !udevadm) {
    throw new SerialError(
      'E_SERIAL_LIST',
      `cannot list serial ports: no ${sysfs} and no udevadm on this host`,
      {
        hint: 'give the port path in boards.yaml directly',
      },
    );
  }
  try {
    const { SerialPort } = await import('serialport');
    const ports = await SerialPort.list();
    return ports.map((p) => {
      const info: SerialPortInfo = { path: p.path, byId: [], source: 'serialport' };
      if (p.manufacturer) info.manufacturer = p.manufacturer;
      if (p.serialNumber) info.serialNumber = p.serialNumber;
      if (p.vendorId) info.vendorId = p.vendorId.toLowerCase();
      if (p.productId) info.productId = p.productId.toLowerCase();
      const hint = KNOWN_ADAPTERS[`${info.vendorId}:${info.productId}`];
      if (hint) info.hint = hint;
      return info;
    });
  } catch (e) {
    throw new SerialError('E_SERIAL_LIST', `cannot list serial ports: ${(e as Error).message}`, { cause: e });
  }
}
