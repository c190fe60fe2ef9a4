import { type LayoutSector, layoutSectors, type MemoryLayout, parseLayout } from '../parts/layout.ts';
import { type ControlSetup, type TransferRecord, UsbAdapter } from '../usb/control.ts';
import { hex4, UsbError } from '../usb/errors.ts';
import type { UsbDeviceLike } from '../usb/types.ts';
import { abortReason, DeadlineError, throwIfAborted } from '../util/abort.ts';
import { type Clock, realClock } from '../util/clock.ts';
import { hex32 } from '../util/hex.ts';
import { codeForStatus, DfuError, statusDetails } from './errors.ts';
import {
  DFU_INTERFACE_CLASS,
  DFU_INTERFACE_SUBCLASS,
  DFU_REQUEST,
  DFU_STATE,
  DFU_STATUS_TEXT,
  type DfuFunctionalDescriptor,
  type DfuStatusReport,
  describeStatus,
  parseConfigurationDescriptor,
  parseFunctionalDescriptor,
  parseStatus,
  parseStringDescriptor,
  stateName,
  statusName,
} from './protocol.ts';
import { type DfuQuirks, quirksFor } from './quirks.ts';
import type { DfuTrace, TraceEntry } from './trace.ts';

/** A cell nobody ever notifies: `Atomics.wait` on it is a precise, CPU-free sleep (see DfuDevice.sleep). */
const SLEEP_CELL = new Int32Array(new SharedArrayBuffer(4));
/** Longest the event loop is ever blocked by one slice of that sleep, ms. */
const SLICE_MS = 0.25;

export interface DfuAlternate {
  alt: number;
  /** The alternate setting's name: for DfuSe, the memory layout string. */
  name: string;
  layout: MemoryLayout | undefined;
  sectors: LayoutSector[];
}

export interface DfuDeviceOptions {
  clock?: Clock;
  /** Alternate setting to select: a number, or a name prefix ("Internal Flash"). Default: 0. */
  alt?: number | string;
  /** Per control transfer timeout, ms. */
  transferTimeoutMs?: number;
  trace?: DfuTrace;
  /** Names the device in messages ("0483:df11 at 1-4.2"). */
  label?: string;
  signal?: AbortSignal;
}

/** Counters for benchmarks and "no more polls than needed" checks. */
export interface DfuStats {
  transfers: number;
  getStatus: number;
  dnload: number;
  upload: number;
  /** GETSTATUS polls that found the device still busy after waiting its bwPollTimeout (0 on a device that keeps time). */
  repolls: number;
  /** Sum of the bwPollTimeouts the device asked for, ms: the busy time its timing model imposed. */
  requestedWaitMs: number;
  /** Time the host actually slept honouring them, ms on its clock. */
  sleptMs: number;
  /** Time spent inside control transfers (the device and the bus), ms on the clock. */
  transferMs: number;
}

interface Scope {
  what: string;
  signal: AbortSignal | undefined;
  deadlineAt: number;
  ms: number;
}

const GET_DESCRIPTOR = 6;
const DESC_DEVICE = 1;
const DESC_CONFIGURATION = 2;
const DESC_STRING = 3;
const LANGID_EN_US = 0x0409;

/**
 * A DFU 1.1 interface on a USB device: the class requests, the state machine, bounded polling that honours
 * bwPollTimeout on a Clock, and recovery from dfuERROR. DfuSe commands build on it (dfuse.ts).
 */
export class DfuDevice {
  readonly usb: UsbAdapter;
  readonly clock: Clock;
  readonly interfaceNumber: number;
  readonly functional: DfuFunctionalDescriptor;
  readonly alternates: DfuAlternate[];
  readonly quirks: DfuQuirks;
  readonly trace: DfuTrace | undefined;
  readonly stats: DfuStats = {
    transfers: 0,
    getStatus: 0,
    dnload: 0,
    upload: 0,
    repolls: 0,
    requestedWaitMs: 0,
    sleptMs: 0,
    transferMs: 0,
  };
  alt: number;
  /** The last status the device reported. */
  last: DfuStatusReport | undefined;
  #scope: Scope | undefined;
  #lastRecord: TransferRecord | undefined;

  private constructor(
    usb: UsbAdapter,
    init: {
      interfaceNumber: number;
      functional: DfuFunctionalDescriptor;
      alternates: DfuAlternate[];
      alt: number;
      trace?: DfuTrace;
    },
  ) {
    this.usb = usb;
    this.clock = usb.clock;
    this.interfaceNumber = init.interfaceNumber;
    this.functional = init.functional;
    this.alternates = init.alternates;
    this.alt = init.alt;
    this.trace = init.trace;
    this.quirks = quirksFor({
      vendorId: usb.device.vendorId,
      productId: usb.device.productId,
      layout: init.alternates[0]?.name,
      transferSize: init.functional.transferSize,
    });
  }

  get label(): string {
    return this.usb.label;
  }

  get transferSize(): number {
    return this.functional.transferSize;
  }

  get alternate(): DfuAlternate {
    return this.alternates.find((a) => a.alt === this.alt) ?? this.alternates[0]!;
  }

  get bcdDevice(): number {
    const d = this.usb.device;
    return (d.deviceVersionMajor << 8) | (d.deviceVersionMinor << 4) | d.deviceVersionSubminor;
  }

  /**
   * Opens `device`, claims its DFU interface, reads the configuration descriptor (GET_DESCRIPTOR) for the DFU
   * functional descriptor and selects the alternate setting.
   */
  static async open(device: UsbDeviceLike, opts: DfuDeviceOptions = {}): Promise<DfuDevice> {
    const clock = opts.clock ?? realClock;
    const usb = new UsbAdapter(device, {
      clock,
      timeoutMs: opts.transferTimeoutMs ?? 5000,
      label: opts.label ?? `${hex4(device.vendorId)}:${hex4(device.productId)}`,
    });
    const signal = opts.signal;
    await usb.open(signal);
    if (!device.configuration)
      await usb.selectConfiguration(device.configurations[0]?.configurationValue ?? 1, signal);
    const config = device.configuration;
    const iface = config?.interfaces.find((i) =>
      i.alternates.some(
        (a) => a.interfaceClass === DFU_INTERFACE_CLASS && a.interfaceSubclass === DFU_INTERFACE_SUBCLASS,
      ),
    );
    if (!config || !iface) {
      throw new DfuError('E_DFU_DESCRIPTOR', `${usb.label} has no DFU interface (class 0xFE subclass 0x01)`, {
        details: { device: usb.label },
        hint: 'is the board in its ROM bootloader? (BOOT0 high at power-on or reset)',
      });
    }
    await usb.claimInterface(iface.interfaceNumber, signal);

    // Trace the descriptor reads too: Wireshark learns the interface class from them and then decodes DFU.
    const pending: TransferRecord[] = [];
    usb.onTransfer = (r) => pending.push(r);
    // The device descriptor is not needed (the OS read it), but a trace without it names no VID:PID.
    await usb.controlIn(
      {
        requestType: 'standard',
        recipient: 'device',
        request: GET_DESCRIPTOR,
        value: DESC_DEVICE << 8,
        index: 0,
      },
      18,
      {
        signal,
      },
    );
    const raw = await readConfigurationDescriptor(usb, signal);
    const parsed = raw ? parseConfigurationDescriptor(raw) : undefined;
    let functional = parsed?.functional;
    if (!functional) {
      // Some devices stall a full configuration read; ask for the functional descriptor directly (DFU 1.1 6.2).
      const r = await usb.controlIn(
        {
          requestType: 'standard',
          recipient: 'interface',
          request: GET_DESCRIPTOR,
          value: 0x2100,
          index: iface.interfaceNumber,
        },
        9,
        { signal },
      );
      if (r.status === 'ok') functional = parseFunctionalDescriptor(r.data);
    }
    if (!functional) {
      throw new DfuError(
        'E_DFU_DESCRIPTOR',
        `${usb.label}: no DFU functional descriptor in its configuration`,
        {
          details: { device: usb.label },
        },
      );
    }
    if (functional.transferSize < 1) {
      throw new DfuError(
        'E_DFU_DESCRIPTOR',
        `${usb.label}: DFU functional descriptor gives wTransferSize 0`,
        {
          details: { device: usb.label },
        },
      );
    }

    const alternates: DfuAlternate[] = [];
    for (const a of iface.alternates) {
      if (a.interfaceClass !== DFU_INTERFACE_CLASS || a.interfaceSubclass !== DFU_INTERFACE_SUBCLASS)
        continue;
      let name = a.interfaceName ?? undefined;
      if (!name) {
        const idx = parsed?.dfuInterfaces.find((d) => d.alternateSetting === a.alternateSetting)?.iInterface;
        if (idx) name = await readString(usb, idx, signal);
      }
      let layout: MemoryLayout | undefined;
      try {
        layout = name ? parseLayout(name) : undefined;
      } catch {
        layout = undefined;
      }
      alternates.push({
        alt: a.alternateSetting,
        name: name ?? '',
        layout,
        sectors: layout ? layoutSectors(layout) : [],
      });
    }
    let alt = 0;
    if (typeof opts.alt === 'number') alt = opts.alt;
    else if (typeof opts.alt === 'string') {
      const want = opts.alt.toLowerCase();
      const found = alternates.find((a) => (a.layout?.name ?? a.name).toLowerCase().startsWith(want));
      if (!found) {
        throw new DfuError('E_DFU_DESCRIPTOR', `${usb.label} has no alternate setting named "${opts.alt}"`, {
          kind: 'usage',
          details: { alternates: alternates.map((a) => a.name) },
        });
      }
      alt = found.alt;
    }
    if (!alternates.some((a) => a.alt === alt)) {
      throw new DfuError('E_DFU_DESCRIPTOR', `${usb.label} has no alternate setting ${alt}`, {
        kind: 'usage',
        details: { alternates: alternates.map((a) => `${a.alt}: ${a.name}`) },
      });
    }
    await usb.selectAlternateInterface(iface.interfaceNumber, alt, signal);
    const dev = new DfuDevice(usb, {
      interfaceNumber: iface.interfaceNumber,
      functional,
      alternates,
      alt,
      ...(opts.trace ? { trace: opts.trace } : {}),
    });
    usb.onTransfer = (r) => {
      dev.#lastRecord = r;
    };
    for (const r of pending) opts.trace?.add(r);
    return dev;
  }

  async selectAlternate(alt: number): Promise<void> {
    if (alt === this.alt) return;
    await this.usb.selectAlternateInterface(this.interfaceNumber, alt, this.#scope?.signal);
    this.alt = alt;
  }

  async close(): Promise<void> {
    await this.usb.releaseInterface(this.interfaceNumber);
    await this.usb.close();
  }

  // ---------------------------------------------------------------------------------------------------------
  // Operation scope: every public operation runs under a deadline (on the clock) and an AbortSignal.

  /** Runs `fn` as operation `what`, bounded by `ms` on the device's clock and by `signal`. */
  async run<T>(what: string, ms: number, signal: AbortSignal | undefined, fn: () => Promise<T>): Promise<T> {
    const outer = this.#scope;
    const deadlineAt = Math.min(this.clock.now() + ms, outer?.deadlineAt ?? Number.POSITIVE_INFINITY);
    // A real-time backstop so that a transfer the library never completes cannot hang us (real clocks only:
    // on a virtual clock nothing waits in real time, and the per-step checks below are exact).
    let timer: ReturnType<typeof setTimeout> | undefined;
    let ctl: AbortController | undefined;
    let sig = signal ?? outer?.signal;
    if (!this.clock.virtual && Number.isFinite(ms)) {
      ctl = new AbortController();
      const parent = sig;
      timer = setTimeout(() => ctl!.abort(new DeadlineError(what, ms)), ms + 1000);
      if (parent) {
        if (parent.aborted) ctl.abort(abortReason(parent));
        else parent.addEventListener('abort', () => ctl!.abort(abortReason(parent)), { once: true });
      }
      sig = ctl.signal;
    }
    this.#scope = { what, signal: sig, deadlineAt, ms };
    try {
      return await fn();
    } finally {
      if (timer) clearTimeout(timer);
      this.#scope = outer;
    }
  }

  #check(): void {
    const s = this.#scope;
    if (!s) return;
    throwIfAborted(s.signal);
    if (this.clock.now() > s.deadlineAt) throw new DeadlineError(s.what, s.ms);
  }

  get signal(): AbortSignal | undefined {
    return this.#scope?.signal;
  }

  /**
   * Waits `ms` on the device's clock within the current operation's deadline — at least `ms`, as DFU 1.1 asks of
   * bwPollTimeout. On a real clock, Node's timers run on the event loop's cached millisecond time and fire up to
   * a millisecond early or a few late, which over 1536 one-millisecond block waits costs seconds or violates the
   * poll timeout. So the bulk of a wait is a timer and its last couple of milliseconds are slices of a blocking
   * `Atomics.wait` (exact to a fraction of a millisecond and, unlike a yielding loop, burning no CPU: a farm runs
   * dozens of boards on two cores), each slice at most SLICE_MS and followed by a yield, so the other boards
   * served by the same event loop are never held up for longer than that.
   */
  async sleep(ms: number): Promise<void> {
    if (ms <= 0) return;
    this.#check();
    const signal = this.#scope?.signal;
    const t0 = this.clock.now();
    if (this.clock.virtual) {
      await this.clock.sleep(ms, signal);
    } else {
      const target = t0 + ms;
      // Timer lateness grows with load; the blocking tail (2 ms + 2 %) absorbs it for the long erase waits too.
      const tail = 2 + ms * 0.02;
      if (ms > tail) await this.clock.sleep(ms - tail, signal);
      // Bounded by the real clock reaching `target`.
      for (let left = target - this.clock.now(); left > 0; left = target - this.clock.now()) {
        throwIfAborted(signal);
        Atomics.wait(SLEEP_CELL, 0, 0, Math.min(left, SLICE_MS));
        if (this.clock.now() < target) await new Promise<void>((resolve) => setImmediate(resolve));
      }
      throwIfAborted(signal);
    }
    this.stats.sleptMs += this.clock.now() - t0;
  }

  // ---------------------------------------------------------------------------------------------------------
  // Class requests (DFU 1.1 section 3, table 3.2): OUT requests are 0x21, IN requests 0xA1, wIndex = interface.

  #setup(request: number, value: number): ControlSetup {
    return { requestType: 'class', recipient: 'interface', request, value, index: this.interfaceNumber };
  }

  #traced(note: string | undefined, dfu: TraceEntry['dfu']): void {
    this.stats.transfers++;
    const r = this.#lastRecord;
    this.#lastRecord = undefined;
    if (r) this.stats.transferMs += r.end - r.start;
    if (r && this.trace) this.trace.add(r, { ...(note ? { note } : {}), ...(dfu ? { dfu } : {}) });
  }

  async #out(
    request: number,
    value: number,
    data: Uint8Array | undefined,
    note: string | undefined,
    after: number,
  ) {
    this.#check();
    try {
      const r = await this.usb.controlOut(this.#setup(request, value), data, { signal: this.#scope?.signal });
      this.#traced(
        note,
        r.status === 'stall'
          ? { state: 'dfuERROR', status: 'errSTALLEDPKT', inferred: true }
          : { state: stateName(after), inferred: true },
      );
      return r.status;
    } catch (e) {
      this.#traced(note, undefined);
      throw e;
    }
  }

  /** DFU_DNLOAD: block `block` (DfuSe: 0 = command, >= 2 = data). 'stall' when the device refuses it. */
  dnload(block: number, data: Uint8Array, note?: string): Promise<'ok' | 'stall'> {
    this.stats.dnload++;
    return this.#out(DFU_REQUEST.DNLOAD, block, data, note, DFU_STATE.dfuDNLOAD_SYNC);
  }

  /** DFU_UPLOAD of up to `length` bytes; 'stall' when the device refuses it. */
  async upload(block: number, length: number, note?: string): Promise<Uint8Array | 'stall'> {
    this.#check();
    this.stats.upload++;
    try {
      const r = await this.usb.controlIn(this.#setup(DFU_REQUEST.UPLOAD, block), length, {
        signal: this.#scope?.signal,
      });
      this.#traced(
        note,
        r.status === 'stall'
          ? { state: 'dfuERROR', status: 'errSTALLEDPKT', inferred: true }
          : { state: stateName(DFU_STATE.dfuUPLOAD_IDLE), inferred: true },
      );
      return r.status === 'ok' ? r.data : 'stall';
    } catch (e) {
      this.#traced(note, undefined);
      throw e;
    }
  }

  /**
   * DFU_GETSTATUS. A stall or a short answer is E_DFU_STALL (the device cannot report its state).
   * `timeoutMs` overrides the transfer timeout: a real ST ROM executes the command inside this request and
   * NAKs its status stage until done (0.9 s for an H743 sector erase in the CubeProgrammer trace).
   */
  async getStatus(note?: string, timeoutMs?: number): Promise<DfuStatusReport> {
    this.#check();
    this.stats.getStatus++;
    let s: DfuStatusReport | undefined;
    try {
      const r = await this.usb.controlIn(this.#setup(DFU_REQUEST.GETSTATUS, 0), 6, {
        signal: this.#scope?.signal,
        ...(timeoutMs ? { timeoutMs } : {}),
      });
      s = r.status === 'ok' ? parseStatus(r.data) : undefined;
    } finally {
      this.#traced(
        note,
        s
          ? {
              state: stateName(s.state),
              status: statusName(s.status),
              pollTimeoutMs: s.pollTimeoutMs,
              inferred: false,
            }
          : undefined,
      );
    }
    if (!s) {
      throw new DfuError(
        'E_DFU_STALL',
        `${this.label}: DFU_GETSTATUS was refused (${this.#scope?.what ?? 'idle'})`,
        {
          details: { device: this.label },
          hint: 'the device is not answering DFU requests; power-cycle the board',
        },
      );
    }
    this.last = s;
    return s;
  }

  /** DFU_GETSTATE: the state alone (DFU 1.1 section 6.1.5). */
  async getState(note?: string): Promise<number> {
    this.#check();
    let state: number | undefined;
    try {
      const r = await this.usb.controlIn(this.#setup(DFU_REQUEST.GETSTATE, 0), 1, {
        signal: this.#scope?.signal,
      });
      state = r.status === 'ok' && r.data.length >= 1 ? r.data[0] : undefined;
    } finally {
      this.#traced(note, state === undefined ? undefined : { state: stateName(state), inferred: false });
    }
    if (state === undefined) {
      throw new DfuError('E_DFU_STALL', `${this.label}: DFU_GETSTATE was refused`, {
        details: { device: this.label },
      });
    }
    return state;
  }

  clrStatus(note?: string): Promise<'ok' | 'stall'> {
    return this.#out(DFU_REQUEST.CLRSTATUS, 0, undefined, note, DFU_STATE.dfuIDLE);
  }

  abort(note?: string): Promise<'ok' | 'stall'> {
    return this.#out(DFU_REQUEST.ABORT, 0, undefined, note, DFU_STATE.dfuIDLE);
  }

  /** DFU_DETACH with wValue = wDetachTimeOut (meaningless to ST's ROM bootloader, AN3156; here for completeness). */
  detach(): Promise<'ok' | 'stall'> {
    return this.#out(
      DFU_REQUEST.DETACH,
      Math.min(this.functional.detachTimeoutMs, 0xffff),
      undefined,
      'detach',
      DFU_STATE.appDETACH,
    );
  }

  // ---------------------------------------------------------------------------------------------------------
  // State machine helpers

  /**
   * Brings the device to dfuIDLE at the start of an operation: CLRSTATUS from dfuERROR, ABORT from a stale
   * dfuDNLOAD-IDLE or dfuUPLOAD-IDLE (as STM32CubeProgrammer does), waiting out a stale busy state. Bounded.
   */
  async ensureIdle(): Promise<void> {
    let s = await this.getStatus('start: where is the device?');
    for (let round = 0; round < 6; round++) {
      switch (s.state) {
        case DFU_STATE.dfuIDLE:
          return;
        case DFU_STATE.dfuERROR:
          await this.clrStatus(`clear ${statusName(s.status)}`);
          break;
        case DFU_STATE.dfuDNLOAD_IDLE:
        case DFU_STATE.dfuUPLOAD_IDLE:
          await this.abort(`abort stale ${stateName(s.state)}`);
          break;
        case DFU_STATE.dfuDNLOAD_SYNC:
        case DFU_STATE.dfuDNBUSY:
          // Something is still running from an earlier session: wait as long as it asks.
          await this.sleep(Math.max(1, s.pollTimeoutMs));
          break;
        case DFU_STATE.appIDLE:
        case DFU_STATE.appDETACH:
          throw new DfuError(
            'E_DFU_STATE',
            `${this.label} is in application mode (${stateName(s.state)}), not in its DFU bootloader`,
            {
              details: { device: this.label, ...statusDetails(s) },
              hint: 'start the ROM bootloader: BOOT0 high, then reset or power-cycle the board',
            },
          );
        default:
          throw new DfuError('E_DFU_STATE', `${this.label} is in ${describeStatus(s)}; it needs a reset`, {
            details: { device: this.label, ...statusDetails(s) },
            hint: 'reset or power-cycle the board',
          });
      }
      s = await this.getStatus();
    }
    throw new DfuError(
      'E_DFU_STATE',
      `${this.label} does not return to dfuIDLE (stays in ${describeStatus(s)})`,
      {
        details: { device: this.label, ...statusDetails(s) },
        hint: 'power-cycle the board',
      },
    );
  }

  /**
   * After a DNLOAD: GETSTATUS (which makes the device execute it), then wait bwPollTimeout and ask again
   * while it is busy — never sooner, and never past `maxBusyMs` (the part's worst case for the operation).
   * Returns the final status; dfuERROR is thrown as E_DFU_<status> after recovery.
   */
  async complete(
    what: string,
    address: number | undefined,
    maxBusyMs: number,
    hint?: string,
  ): Promise<DfuStatusReport> {
    const t0 = this.clock.now();
    let s = await this.getStatus(what, Math.max(this.usb.timeoutMs, maxBusyMs));
    // Each round sleeps at least 1 ms once a zero poll timeout did not finish the job, so time moves on any clock;
    // the round cap is a second bound for clocks that do not advance.
    const maxRounds = Math.ceil(maxBusyMs) + 16;
    for (let round = 0; s.state === DFU_STATE.dfuDNBUSY || s.state === DFU_STATE.dfuDNLOAD_SYNC; round++) {
      const busyFor = this.clock.now() - t0;
      if (busyFor >= maxBusyMs || round >= maxRounds) {
        return this.#busyTimeout(what, address, maxBusyMs, s, hint);
      }
      const wait = Math.min(Math.max(s.pollTimeoutMs, round > 0 ? 1 : 0), Math.max(1, maxBusyMs - busyFor));
      this.stats.requestedWaitMs += s.pollTimeoutMs;
      await this.sleep(wait);
      s = await this.getStatus();
      if (s.state === DFU_STATE.dfuDNBUSY) this.stats.repolls++;
    }
    if (s.state === DFU_STATE.dfuERROR) {
      await this.recover();
      throw this.statusError(what, address, s, hint);
    }
    return s;
  }

  /** Out of dfuERROR (or a stuck state) back to dfuIDLE with CLRSTATUS, twice if the device needs it. Bounded. */
  async recover(): Promise<boolean> {
    for (let i = 0; i < 3; i++) {
      const r = await this.clrStatus('recover');
      if (r === 'stall') {
        // A stalled CLRSTATUS leaves the device in dfuERROR; the next round clears that.
      }
      const s = await this.getStatus();
      if (s.state === DFU_STATE.dfuIDLE) return true;
      if (s.state === DFU_STATE.dfuDNLOAD_IDLE || s.state === DFU_STATE.dfuUPLOAD_IDLE) {
        await this.abort('recover');
        if ((await this.getStatus()).state === DFU_STATE.dfuIDLE) return true;
      }
    }
    return false;
  }

  async #busyTimeout(
    what: string,
    address: number | undefined,
    maxBusyMs: number,
    s: DfuStatusReport,
    hint?: string,
  ): Promise<never> {
    const at = address === undefined ? '' : ` at ${hex32(address)}`;
    const busy = describeStatus(s);
    let recovered = false;
    try {
      recovered = await this.recover();
    } catch (e) {
      if (!(e instanceof UsbError || e instanceof DfuError)) throw e;
    }
    throw new DfuError(
      'E_DFU_BUSY_TIMEOUT',
      `${what}${at}: the device stayed busy (${busy}) for more than ${Math.round(maxBusyMs)} ms; ` +
        (recovered ? 'recovered it with CLRSTATUS' : 'it did not recover'),
      {
        details: { device: this.label, ...statusDetails(s, address), maxBusyMs, recovered },
        hint: hint ?? (recovered ? 'retry the operation' : 'power-cycle the board'),
      },
    );
  }

  /** The DfuError for a device-reported error status. */
  statusError(what: string, address: number | undefined, s: DfuStatusReport, hint?: string): DfuError {
    const at = address === undefined ? '' : ` at ${hex32(address)}`;
    return new DfuError(
      codeForStatus(s.status),
      `${what}${at} failed: ${statusName(s.status)} (${DFU_STATUS_TEXT[s.status] ?? 'unknown status'})`,
      { details: { device: this.label, ...statusDetails(s, address) }, ...(hint ? { hint } : {}) },
    );
  }

  /**
   * After a stalled request: ask the device why (GETSTATUS), recover, and return the error to throw.
   */
  async stallError(what: string, address: number | undefined, hint?: string): Promise<DfuError> {
    const s = await this.getStatus(`why did ${what} stall?`);
    if (s.state === DFU_STATE.dfuERROR) {
      await this.recover();
      return this.statusError(what, address, s, hint);
    }
    return new DfuError(
      'E_DFU_STALL',
      `${what}${address === undefined ? '' : ` at ${hex32(address)}`}: the device stalled the request in ${describeStatus(s)}`,
      {
        details: { device: this.label, ...statusDetails(s, address) },
        ...(hint ? { hint } : {}),
      },
    );
  }
}

async function readConfigurationDescriptor(
  usb: UsbAdapter,
  signal?: AbortSignal,
): Promise<Uint8Array | undefined> {
  const setup: ControlSetup = {
    requestType: 'standard',
    recipient: 'device',
    request: GET_DESCRIPTOR,
    value: DESC_CONFIGURATION << 8,
    index: 0,
  };
  const head = await usb.controlIn(setup, 9, { signal });
  if (head.status !== 'ok' || head.data.length < 4) return undefined;
  const total = head.data[2]! | (head.data[3]! << 8);
  if (total <= head.data.length) return head.data;
  const full = await usb.controlIn(setup, total, { signal });
  return full.status === 'ok' ? full.data : undefined;
}

async function readString(usb: UsbAdapter, index: number, signal?: AbortSignal): Promise<string | undefined> {
  const r = await usb.controlIn(
    {
      requestType: 'standard',
      recipient: 'device',
      request: GET_DESCRIPTOR,
      value: (DESC_STRING << 8) | index,
      index: LANGID_EN_US,
    },
    255,
    { signal },
  );
  return r.status === 'ok' ? parseStringDescriptor(r.data) : undefined;
}
