import { abortReason, throwIfAborted } from '../util/abort.ts';
import { type Clock, realClock } from '../util/clock.ts';
import { errorText, hex4, noSubsystemError, permissionHint, UsbError } from './errors.ts';
import type { SetupPacket, UsbDeviceLike } from './types.ts';

/**
 * The one place that knows how USB libraries fail. DfuSe devices STALL as a normal signal (a request that is
 * not allowed in the current state), so a stall is a result here, never an exception:
 * - node-usb 3 (nusb underneath) rejects with `Error("controlTransferIn error: endpoint stalled")`, a vanished
 *   device with "... device disconnected", a timeout with "... transfer was cancelled" (nusb maps ETIMEDOUT to
 *   Cancelled), an unclaimed handle with "... invalid state"; it needs a data buffer even for zero-length OUT
 *   transfers (it reads `data.buffer`), and takes the timeout as a third argument (default 1000 ms).
 * - node-usb 2 (libusb) resolved `{status:'stall'}` and rejected with LIBUSB_ERROR_* names.
 * - W3C WebUSB (browsers, and the virtual bootloader in src/sim) resolve `{status:'stall'}` and reject with a
 *   DOMException named NetworkError (device gone) or TimeoutError.
 */
export type UsbFailure = 'stall' | 'disconnected' | 'timeout' | 'permission' | 'no-subsystem' | 'other';

export function classifyUsbFailure(e: unknown): UsbFailure {
  const name =
    typeof e === 'object' && e !== null && 'name' in e ? String((e as { name: unknown }).name) : '';
  const text = errorText(e);
  if (name === 'NetworkError' || name === 'NotFoundError') return 'disconnected';
  if (name === 'TimeoutError') return 'timeout';
  if (name === 'SecurityError') return 'permission';
  if (/\/sys\/bus\/usb\/devices\/? not found/i.test(text)) return 'no-subsystem';
  if (/endpoint stalled|\bstall(ed)?\b|LIBUSB_ERROR_PIPE|EPIPE/i.test(text)) return 'stall';
  if (
    /device disconnected|no such device|LIBUSB_ERROR_NO_DEVICE|ENODEV|errno 19\b|device (was )?(gone|removed)/i.test(
      text,
    )
  ) {
    return 'disconnected';
  }
  if (/transfer was cancelled|timed? ?out|LIBUSB_ERROR_TIMEOUT|ETIMEDOUT/i.test(text)) return 'timeout';
  if (
    /permission denied|access denied|LIBUSB_ERROR_ACCESS|EACCES|errno 13\b|operation not permitted/i.test(
      text,
    )
  ) {
    return 'permission';
  }
  return 'other';
}

/** W3C control transfer parameters (what USBDevice.controlTransferIn/Out take). */
export type ControlSetup = USBControlTransferParameters;

export type ControlInResult = { status: 'ok'; data: Uint8Array } | { status: 'stall' };
export type ControlOutResult = { status: 'ok'; bytesWritten: number } | { status: 'stall' };

export type TransferOutcome = 'ok' | 'stall' | 'timeout' | 'disconnected' | 'error';

/** One control transfer as it happened, for the transaction trace. Times are on the adapter's clock (ms). */
export interface TransferRecord {
  seq: number;
  start: number;
  end: number;
  setup: SetupPacket;
  /** Bytes sent in the data stage (OUT). */
  dataOut?: Uint8Array;
  /** Bytes received in the data stage (IN). */
  dataIn?: Uint8Array;
  outcome: TransferOutcome;
  error?: string;
}

const REQUEST_TYPES: Record<USBRequestType, number> = { standard: 0, class: 1, vendor: 2 };
const RECIPIENTS: Record<USBRecipient, number> = { device: 0, interface: 1, endpoint: 2, other: 3 };

/** The raw setup packet (USB 2.0 section 9.3, table 9-2) of a W3C control transfer. */
export function rawSetup(setup: ControlSetup, direction: 'in' | 'out', length: number): SetupPacket {
  return {
    bmRequestType:
      (direction === 'in' ? 0x80 : 0) | (REQUEST_TYPES[setup.requestType] << 5) | RECIPIENTS[setup.recipient],
    bRequest: setup.request,
    wValue: setup.value,
    wIndex: setup.index,
    wLength: length,
  };
}

export interface TransferOptions {
  signal?: AbortSignal;
  /** Per-transfer timeout handed to the library (node-usb 3's third argument). */
  timeoutMs?: number;
}

export interface UsbAdapterOptions {
  clock?: Clock;
  /** Default per-transfer timeout, ms. */
  timeoutMs?: number;
  /** Called after every control transfer (the transaction trace). */
  onTransfer?: (record: TransferRecord) => void;
  /** Used in messages: "0483:df11 at 1-4.2". */
  label?: string;
}

function toBytes(v: DataView | undefined): Uint8Array {
  return v ? new Uint8Array(v.buffer, v.byteOffset, v.byteLength).slice() : new Uint8Array(0);
}

const abortPromises = new WeakMap<AbortSignal, Promise<never>>();

/** One promise per signal that rejects when it aborts (made once: no listener churn per transfer). */
function aborted(signal: AbortSignal): Promise<never> {
  let p = abortPromises.get(signal);
  if (!p) {
    p = new Promise<never>((_, reject) => {
      if (signal.aborted) reject(abortReason(signal));
      else signal.addEventListener('abort', () => reject(abortReason(signal)), { once: true });
    });
    // Nobody may be racing it when the signal fires.
    p.catch(() => {});
    abortPromises.set(signal, p);
  }
  return p;
}

/** Races `p` against `signal`: an abort rejects at once with the signal's reason. */
function raceSignal<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return p;
  if (signal.aborted) {
    p.catch(() => {});
    return Promise.reject(abortReason(signal));
  }
  return Promise.race([p, aborted(signal)]);
}

/**
 * Normalises a `UsbDeviceLike` (node-usb 3, node-usb 2's WebUSB shim, a browser's USBDevice, the virtual
 * bootloader) into one behaviour: control transfers resolve `ok` or `stall`, everything else is a `UsbError`
 * (E_USB_DISCONNECTED, E_USB_TIMEOUT, E_USB_TRANSFER, E_USB_PERMISSION, E_USB_OPEN).
 */
export class UsbAdapter {
  readonly device: UsbDeviceLike;
  readonly clock: Clock;
  readonly label: string;
  timeoutMs: number;
  onTransfer: ((record: TransferRecord) => void) | undefined;
  #seq = 0;

  constructor(device: UsbDeviceLike, opts: UsbAdapterOptions = {}) {
    this.device = device;
    this.clock = opts.clock ?? realClock;
    this.timeoutMs = opts.timeoutMs ?? 5000;
    this.onTransfer = opts.onTransfer;
    this.label = opts.label ?? `${hex4(device.vendorId)}:${hex4(device.productId)}`;
  }

  /** Turns anything a USB library threw into a UsbError (or passes HilErrors and aborts through). */
  error(e: unknown, op: string, details: Record<string, unknown> = {}): Error {
    if (e instanceof UsbError) return e;
    const kind = classifyUsbFailure(e);
    const what = `${op} on ${this.label}`;
    const d = { device: this.label, op, ...details, library: errorText(e) };
    switch (kind) {
      case 'disconnected':
        return new UsbError('E_USB_DISCONNECTED', `${what}: the device disconnected`, d, undefined, e);
      case 'timeout':
        return new UsbError('E_USB_TIMEOUT', `${what}: no answer from the device`, d, undefined, e);
      case 'permission':
        return new UsbError(
          'E_USB_PERMISSION',
          `${what}: permission denied`,
          d,
          permissionHint(this.device.vendorId, this.device.productId),
          e,
        );
      case 'no-subsystem':
        return noSubsystemError(e);
      case 'stall':
        return new UsbError('E_USB_TRANSFER', `${what}: the device stalled the request`, d, undefined, e);
      default:
        return new UsbError(
          op.startsWith('control') ? 'E_USB_TRANSFER' : 'E_USB_OPEN',
          `${what} failed: ${errorText(e)}`,
          d,
          undefined,
          e,
        );
    }
  }

  async #call<T>(op: string, fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    throwIfAborted(signal);
    try {
      return await raceSignal(fn(), signal);
    } catch (e) {
      if (signal?.aborted && e === signal.reason) throw e;
      throw this.error(e, op);
    }
  }

  async open(signal?: AbortSignal): Promise<void> {
    if (this.device.opened) return;
    await this.#call('open', () => this.device.open(), signal);
  }

  async close(): Promise<void> {
    try {
      if (this.device.opened) await this.device.close();
    } catch {
      // Closing a device that vanished (after leave or reset) is not an error worth reporting.
    }
  }

  async selectConfiguration(value: number, signal?: AbortSignal): Promise<void> {
    if (this.device.configuration?.configurationValue === value) return;
    await this.#call('selectConfiguration', () => this.device.selectConfiguration(value), signal);
  }

  async claimInterface(n: number, signal?: AbortSignal): Promise<void> {
    await this.#call('claimInterface', () => this.device.claimInterface(n), signal);
  }

  async releaseInterface(n: number): Promise<void> {
    try {
      await this.device.releaseInterface(n);
    } catch {
      // Same as close(): the device may be gone.
    }
  }

  async selectAlternateInterface(n: number, alt: number, signal?: AbortSignal): Promise<void> {
    await this.#call('selectAlternateInterface', () => this.device.selectAlternateInterface(n, alt), signal);
  }

  async controlIn(setup: ControlSetup, length: number, opts: TransferOptions = {}): Promise<ControlInResult> {
    const timeout = opts.timeoutMs ?? this.timeoutMs;
    const raw = rawSetup(setup, 'in', length);
    const start = this.clock.now();
    throwIfAborted(opts.signal);
    // node-usb 3 takes the timeout as a third argument; the W3C signature ignores it.
    const call = (
      this.device.controlTransferIn as (s: ControlSetup, l: number, t: number) => Promise<USBInTransferResult>
    ).bind(this.device);
    try {
      const r = await raceSignal(call(setup, length, timeout), opts.signal);
      if (r.status === 'stall') {
        this.#record(raw, start, 'stall');
        return { status: 'stall' };
      }
      if (r.status !== 'ok') throw new Error(`transfer status ${r.status}`);
      const data = toBytes(r.data);
      this.#record(raw, start, 'ok', undefined, data);
      return { status: 'ok', data };
    } catch (e) {
      return this.#failed(e, raw, start, 'controlTransferIn', opts.signal, undefined) as never;
    }
  }

  async controlOut(
    setup: ControlSetup,
    data: Uint8Array = new Uint8Array(0),
    opts: TransferOptions = {},
  ): Promise<ControlOutResult> {
    const timeout = opts.timeoutMs ?? this.timeoutMs;
    const raw = rawSetup(setup, 'out', data.length);
    const start = this.clock.now();
    throwIfAborted(opts.signal);
    const call = (
      this.device.controlTransferOut as (
        s: ControlSetup,
        d: BufferSource,
        t: number,
      ) => Promise<USBOutTransferResult>
    ).bind(this.device);
    try {
      // Always a buffer, even when empty: node-usb 3 dereferences `data.buffer` unconditionally.
      const r = await raceSignal(call(setup, data as Uint8Array<ArrayBuffer>, timeout), opts.signal);
      if (r.status === 'stall') {
        this.#record(raw, start, 'stall', data);
        return { status: 'stall' };
      }
      if (r.status !== 'ok') throw new Error(`transfer status ${r.status}`);
      this.#record(raw, start, 'ok', data);
      return { status: 'ok', bytesWritten: r.bytesWritten };
    } catch (e) {
      return this.#failed(e, raw, start, 'controlTransferOut', opts.signal, data) as never;
    }
  }

  #failed(
    e: unknown,
    raw: SetupPacket,
    start: number,
    op: string,
    signal: AbortSignal | undefined,
    dataOut: Uint8Array | undefined,
  ): { status: 'stall' } {
    if (signal?.aborted && e === signal.reason) {
      this.#record(raw, start, 'error', dataOut, undefined, 'aborted');
      throw e;
    }
    const kind = classifyUsbFailure(e);
    if (kind === 'stall') {
      this.#record(raw, start, 'stall', dataOut);
      return { status: 'stall' };
    }
    const outcome: TransferOutcome =
      kind === 'disconnected' ? 'disconnected' : kind === 'timeout' ? 'timeout' : 'error';
    this.#record(raw, start, outcome, dataOut, undefined, errorText(e));
    throw this.error(e, op, { setup: raw });
  }

  #record(
    setup: SetupPacket,
    start: number,
    outcome: TransferOutcome,
    dataOut?: Uint8Array,
    dataIn?: Uint8Array,
    error?: string,
  ): void {
    if (!this.onTransfer) return;
    const r: TransferRecord = { seq: ++this.#seq, start, end: this.clock.now(), setup, outcome };
    // The caller's buffer, not a copy: the host never reuses a buffer it has sent.
    if (dataOut?.length) r.dataOut = dataOut;
    if (dataIn) r.dataIn = dataIn;
    if (error) r.error = error;
    this.onTransfer(r);
  }
}
