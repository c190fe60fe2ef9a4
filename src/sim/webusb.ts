import type { SetupPacket, UsbDeviceLike } from '../usb/types.ts';
import type { Clock } from '../util/clock.ts';
import { CONFIGURATION_VALUE, type DeviceModel } from './descriptors.ts';
import type { ControlResult } from './types.ts';

/**
 * The W3C WebUSB `USBDevice` subset (UsbDeviceLike) on top of a virtual board's endpoint 0, the way node-usb 3
 * presents a real device: descriptors come from the enumeration the OS already did (no control transfer),
 * interface names are the string descriptors named by iInterface, transfers go over the wire.
 *
 * Results follow the W3C API: `{status: 'ok' | 'stall'}`. A device that has gone (leave, reset, power off,
 * disconnect fault) rejects with DOMException 'NetworkError'; a device that stopped answering rejects after
 * the transfer timeout (node-usb 3's third argument, default 1000 ms) with DOMException 'TimeoutError'.
 */

/** What the façade needs from its board, bound to one attachment. */
export interface DeviceLink {
  readonly clock: Clock;
  readonly portPath: string;
  control(setup: SetupPacket, dataOut?: Uint8Array): Promise<ControlResult>;
  /** Still the board's current attachment. */
  readonly attached: boolean;
  /** USB bus reset (USB 2.0 section 7.1.7.5): the device's stack starts again, the device stays attached. */
  busReset(): void;
}

const DEFAULT_TRANSFER_TIMEOUT_MS = 1000;
const REQUEST_TYPES = { standard: 0, class: 1, vendor: 2 } as const;
const RECIPIENTS = { device: 0, interface: 1, endpoint: 2, other: 3 } as const;
const SET_CONFIGURATION = 0x09;
const SET_INTERFACE = 0x0b;

function networkError(what: string): DOMException {
  return new DOMException(`${what}: the device has been disconnected`, 'NetworkError');
}

function toSetup(p: USBControlTransferParameters, dirIn: boolean, length: number): SetupPacket {
  return {
    bmRequestType: (dirIn ? 0x80 : 0) | (REQUEST_TYPES[p.requestType] << 5) | RECIPIENTS[p.recipient],
    bRequest: p.request & 0xff,
    wValue: p.value & 0xffff,
    wIndex: p.index & 0xffff,
    wLength: length & 0xffff,
  };
}

function bytesOf(data: BufferSource | undefined): Uint8Array {
  if (data === undefined) return new Uint8Array(0);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return new Uint8Array(data);
}

interface MutableInterface {
  interfaceNumber: number;
  alternate: USBAlternateInterface;
  alternates: USBAlternateInterface[];
  claimed: boolean;
}

export class VirtualUsbDevice implements UsbDeviceLike {
  readonly portPath: string;
  readonly vendorId: number;
  readonly productId: number;
  readonly deviceVersionMajor: number;
  readonly deviceVersionMinor: number;
  readonly deviceVersionSubminor: number;
  readonly manufacturerName: string;
  readonly productName: string;
  readonly serialNumber: string;
  readonly configurations: USBConfiguration[];
  readonly #link: DeviceLink;
  readonly #iface: MutableInterface;
  #configured = true;
  #opened = false;

  constructor(link: DeviceLink, model: DeviceModel) {
    this.#link = link;
    this.portPath = link.portPath;
    const info = model.info;
    this.vendorId = info.vid;
    this.productId = info.pid;
    // bcdDevice 0x0200 -> 2.0.0 (W3C WebUSB: major = high byte, minor = high nibble, subminor = low nibble).
    this.deviceVersionMajor = (info.bcdDevice >> 8) & 0xff;
    this.deviceVersionMinor = (info.bcdDevice >> 4) & 0x0f;
    this.deviceVersionSubminor = info.bcdDevice & 0x0f;
    this.manufacturerName = info.manufacturer;
    this.productName = info.product;
    this.serialNumber = info.serial;
    // Parsed from the configuration descriptor bytes, as node-usb does, so the two cannot disagree.
    const alternates: USBAlternateInterface[] = [];
    const cfg = model.configuration;
    for (let i = cfg[0]!; i < cfg.length; i += cfg[i]!) {
      if (cfg[i + 1] !== 0x04) continue;
      alternates.push({
        alternateSetting: cfg[i + 3]!,
        interfaceClass: cfg[i + 5]!,
        interfaceSubclass: cfg[i + 6]!,
        interfaceProtocol: cfg[i + 7]!,
        interfaceName: model.strings.get(cfg[i + 8]!) ?? null,
        endpoints: [],
      });
    }
    this.#iface = { interfaceNumber: 0, alternate: alternates[0]!, alternates, claimed: false };
    this.configurations = [
      {
        configurationValue: CONFIGURATION_VALUE,
        configurationName: null,
        interfaces: [this.#iface as USBInterface],
      },
    ];
  }

  get opened(): boolean {
    return this.#opened && this.#link.attached;
  }

  /** The OS configured the device at enumeration (Linux picks configuration 1). */
  get configuration(): USBConfiguration | null {
    return this.#configured ? (this.configurations[0] ?? null) : null;
  }

  #gone(what: string): void {
    if (!this.#link.attached) throw networkError(what);
  }

  async open(): Promise<void> {
    this.#gone('open');
    this.#opened = true;
  }

  async close(): Promise<void> {
    this.#opened = false;
    this.#iface.claimed = false;
  }

  #mustBeOpen(what: string): void {
    this.#gone(what);
    if (!this.#opened)
      throw new DOMException(`${what}: the device must be opened first`, 'InvalidStateError');
  }

  async selectConfiguration(configurationValue: number): Promise<void> {
    this.#mustBeOpen('selectConfiguration');
    if (configurationValue !== CONFIGURATION_VALUE) {
      throw new DOMException(`configuration ${configurationValue} does not exist`, 'NotFoundError');
    }
    const r = await this.#link.control({
      bmRequestType: 0x00,
      bRequest: SET_CONFIGURATION,
      wValue: configurationValue,
      wIndex: 0,
      wLength: 0,
    });
    this.#check(r, 'selectConfiguration');
    this.#configured = true;
  }

  async claimInterface(interfaceNumber: number): Promise<void> {
    this.#mustBeOpen('claimInterface');
    if (interfaceNumber !== 0)
      throw new DOMException(`interface ${interfaceNumber} does not exist`, 'NotFoundError');
    this.#iface.claimed = true;
  }

  async releaseInterface(interfaceNumber: number): Promise<void> {
    this.#mustBeOpen('releaseInterface');
    if (interfaceNumber !== 0)
      throw new DOMException(`interface ${interfaceNumber} does not exist`, 'NotFoundError');
    this.#iface.claimed = false;
  }

  async selectAlternateInterface(interfaceNumber: number, alternateSetting: number): Promise<void> {
    this.#mustBeOpen('selectAlternateInterface');
    if (interfaceNumber !== 0)
      throw new DOMException(`interface ${interfaceNumber} does not exist`, 'NotFoundError');
    if (!this.#iface.claimed)
      throw new DOMException('the interface must be claimed first', 'InvalidStateError');
    const alt = this.#iface.alternates.find((a) => a.alternateSetting === alternateSetting);
    if (!alt) throw new DOMException(`alternate setting ${alternateSetting} does not exist`, 'NotFoundError');
    const r = await this.#link.control({
      bmRequestType: 0x01,
      bRequest: SET_INTERFACE,
      wValue: alternateSetting,
      wIndex: interfaceNumber,
      wLength: 0,
    });
    this.#check(r, 'selectAlternateInterface');
    if (r.status === 'stall') throw new DOMException('SET_INTERFACE stalled', 'NetworkError');
    this.#iface.alternate = alt;
  }

  /** A USB port reset: the ROM's DFU interface starts again in dfuIDLE on the same attachment. */
  async reset(): Promise<void> {
    this.#mustBeOpen('reset');
    this.#link.busReset();
    this.#iface.alternate = this.#iface.alternates[0]!;
  }

  #check(r: ControlResult, what: string): void {
    if (r.status === 'disconnected') throw networkError(what);
    if (r.status === 'timeout') throw new DOMException(`${what}: transfer timed out`, 'TimeoutError');
  }

  async #transfer(
    what: string,
    setup: SetupPacket,
    data: Uint8Array | undefined,
    timeoutMs: number,
  ): Promise<ControlResult> {
    this.#mustBeOpen(what);
    const r = await this.#link.control(setup, data);
    if (r.status === 'timeout') {
      // The device does not answer: the host library gives up after the transfer's timeout.
      await this.#link.clock.sleep(timeoutMs);
      throw new DOMException(`${what}: transfer timed out after ${timeoutMs} ms`, 'TimeoutError');
    }
    if (r.status === 'disconnected') throw networkError(what);
    return r;
  }

  async controlTransferIn(
    setup: USBControlTransferParameters,
    length: number,
    timeoutMs: number = DEFAULT_TRANSFER_TIMEOUT_MS,
  ): Promise<USBInTransferResult> {
    const r = await this.#transfer('controlTransferIn', toSetup(setup, true, length), undefined, timeoutMs);
    if (r.status === 'stall') return { status: 'stall' };
    const data = (r.status === 'ok' && r.data) || new Uint8Array(0);
    const copy = data.slice(0, length);
    return { status: 'ok', data: new DataView(copy.buffer, copy.byteOffset, copy.byteLength) };
  }

  async controlTransferOut(
    setup: USBControlTransferParameters,
    data?: BufferSource,
    timeoutMs: number = DEFAULT_TRANSFER_TIMEOUT_MS,
  ): Promise<USBOutTransferResult> {
    const bytes = bytesOf(data);
    const r = await this.#transfer(
      'controlTransferOut',
      toSetup(setup, false, bytes.length),
      bytes,
      timeoutMs,
    );
    if (r.status === 'stall') return { status: 'stall', bytesWritten: 0 };
    return { status: 'ok', bytesWritten: (r.status === 'ok' && r.bytesWritten) || bytes.length };
  }
}
