import { EventEmitter } from 'node:events';
import type { FaultsConfig } from '../farm/schema.ts';
import { getPart, type Part } from '../parts/catalogue.ts';
import type { SetupPacket, UsbDeviceLike } from '../usb/types.ts';
import { abortReason, DeadlineError, throwIfAborted } from '../util/abort.ts';
import { type Clock, realClock } from '../util/clock.ts';
import { VirtualChip } from './chip.ts';
import {
  buildDeviceModel,
  CONFIGURATION_VALUE,
  DESC_CONFIGURATION,
  DESC_DEVICE,
  DESC_DFU_FUNCTIONAL,
  DESC_STRING,
  type DeviceModel,
  stringDescriptor,
} from './descriptors.ts';
import { DfuseRom, type RomEffect, type RomErrorInfo } from './dfuse-rom.ts';
import { FaultInjector } from './faults.ts';
import { virtualPortPath } from './paths.ts';
import { quirksFor, type RomQuirks } from './quirks.ts';
import { RomMemoryMap } from './rom-memory.ts';
import { TimingModel } from './timing.ts';
import type { BoardMode, ControlResult } from './types.ts';
import { VirtualUsbDevice } from './webusb.ts';

export type { BoardMode, ControlResult } from './types.ts';

/**
 * A virtual STM32 board: the chip's memory (VirtualChip, shared with other processes through its state file),
 * power, BOOT0 and NRST, and the ROM bootloader's USB device while it is enumerated. The DfuSe state machine
 * is in dfuse-rom.ts, bootloader version quirks in quirks.ts, timing in timing.ts, faults in faults.ts.
 */

export interface VirtualBoardOptions {
  id: string;
  /** Catalogue id, e.g. 'stm32h743'. */
  part: string;
  /** 'Y' | 'V' ... */
  chipRevision: string;
  /** 0xD2, 0xD3, 0x90, 0x91, 0x92 (H74x); others use the part's default behaviour. */
  bootloader: number;
  /** From chipStateFile(). */
  stateFile: string;
  faults?: FaultsConfig;
  /** Default realClock; tests pass a VirtualClock. */
  clock?: Clock;
  /** >1 makes the timing model faster (reported bwPollTimeout shrinks too). */
  timeScale?: number;
  /**
   * ROM-exact timing: the GETSTATUS that starts an erase or write returns only when the flash is done, as on
   * the real ROM (ST's stack runs the operation before the status stage; the CubeProgrammer trace shows the
   * first GETSTATUS of a bank 1 erase answering after 0.9 s). Default false: it answers at once and a
   * GETSTATUS before the busy time elapsed answers dfuDNBUSY again (the model the DfuSe host is built on).
   */
  blockingGetStatus?: boolean;
}

/** A snapshot of the ROM's DFU interface, for tests, traces and the USB/IP server's logs. */
export interface RomSnapshot {
  state: number;
  status: number;
  pointer: number;
  alternate: number;
  lastError: RomErrorInfo | undefined;
}

type BoardEvent = 'attach' | 'detach';

interface Attachment {
  generation: number;
  usb: VirtualUsbDevice & { portPath: string };
  configuration: number;
}

// USB 2.0 table 9-4: standard request codes.
const GET_STATUS = 0;
const CLEAR_FEATURE = 1;
const SET_FEATURE = 3;
const SET_ADDRESS = 5;
const GET_DESCRIPTOR = 6;
const GET_CONFIGURATION = 8;
const SET_CONFIGURATION = 9;
const GET_INTERFACE = 10;
const SET_INTERFACE = 11;

const DISCONNECTED: ControlResult = { status: 'disconnected' };
const STALL: ControlResult = { status: 'stall' };
const OK_NO_DATA: ControlResult = { status: 'ok', bytesWritten: 0 };

export class VirtualBoard {
  readonly id: string;
  readonly portPath: string;
  readonly chip: VirtualChip;
  readonly clock: Clock;
  readonly part: Part;
  readonly quirks: RomQuirks;
  readonly timing: TimingModel;
  readonly faults: FaultInjector;
  readonly model: DeviceModel;
  readonly #rom: DfuseRom;
  readonly #events = new EventEmitter();
  readonly #lifetime = new AbortController();
  #mode: BoardMode = 'off';
  #attached: Attachment | undefined;
  /** Bumped by every power, reset and attach change: a scheduled action of an older generation is dropped. */
  #generation = 0;
  #dfuMarked = false;
  #closed = false;
  readonly #blockingGetStatus: boolean;
  /** Set by #classRequest: how long this transfer's status stage is held (blockingGetStatus). */
  #holdMs = 0;

  constructor(opts: VirtualBoardOptions) {
    this.id = opts.id;
    this.portPath = virtualPortPath(opts.id);
    this.clock = opts.clock ?? realClock;
    this.#blockingGetStatus = opts.blockingGetStatus === true;
    this.part = getPart(opts.part);
    this.faults = new FaultInjector(opts.faults);
    this.chip = VirtualChip.open(
      opts.stateFile,
      { part: this.part.id, chipRevision: opts.chipRevision, bootloader: opts.bootloader },
      { weakBits: this.faults.weakBits() },
    );
    this.quirks = quirksFor(this.part, opts.bootloader);
    this.timing = new TimingModel(this.part, this.quirks, opts.timeScale ?? 1);
    this.model = buildDeviceModel(this.part.bootloader);
    this.#rom = new DfuseRom({
      part: this.part,
      chip: this.chip,
      quirks: this.quirks,
      memory: new RomMemoryMap(this.part, this.quirks),
      timing: this.timing,
      faults: this.faults,
      clock: this.clock,
    });
    this.#events.setMaxListeners(0);
    // The chip state says whether the board is already running (another process powered it): it is then
    // found as it is, already enumerated if it is in the bootloader.
    const v = this.chip.volatile;
    this.#dfuMarked = v.dfuUsedSincePowerOn;
    if (v.powered) this.#boot('initial');
  }

  /** 'off' | 'bootloader' | 'application' | 'silent' (powered, but nothing answers on USB). */
  get mode(): BoardMode {
    return this.#mode;
  }

  /** The ROM bootloader's USB device while it is enumerated. A new object after each re-enumeration. */
  get usb(): VirtualUsbDevice | undefined {
    return this.#attached?.usb;
  }

  get rom(): RomSnapshot {
    const r = this.#rom;
    return {
      state: r.state,
      status: r.status,
      pointer: r.pointer,
      alternate: r.alternate,
      lastError: r.lastError,
    };
  }

  on(event: BoardEvent, listener: (board: VirtualBoard) => void): this {
    this.#events.on(event, listener);
    return this;
  }

  off(event: BoardEvent, listener: (board: VirtualBoard) => void): this {
    this.#events.off(event, listener);
    return this;
  }

  /** Off -> on boots by BOOT0; enumeration follows after ENUMERATION_MS (timing.ts) on the clock. */
  setPower(on: boolean): void {
    this.#assertOpen();
    if (on) {
      if (this.#mode !== 'off') return;
      this.chip.powerCycle(this.chip.volatile.boot0);
      this.faults.onPowerOn();
      this.#dfuMarked = false;
      this.#boot('power-on');
    } else {
      if (this.#mode === 'off') return;
      this.#detach();
      this.#generation++;
      this.#mode = 'off';
      this.chip.updateVolatile({ powered: false });
    }
  }

  /** BOOT0 is sampled at the next power-on or reset. */
  setBoot0(high: boolean): void {
    this.#assertOpen();
    this.chip.updateVolatile({ boot0: high });
  }

  /** NRST pulse. */
  reset(): void {
    this.#assertOpen();
    if (this.#mode === 'off') return;
    this.chip.updateVolatile({ resetsSincePowerOn: this.chip.volatile.resetsSincePowerOn + 1 });
    this.#boot('reset');
  }

  /** Resolves with the USB device once enumerated; rejects with DeadlineError after `timeoutMs` on the clock. */
  async waitForUsb(timeoutMs: number, signal?: AbortSignal): Promise<UsbDeviceLike & { portPath: string }> {
    const deadline = this.clock.now() + timeoutMs;
    for (;;) {
      throwIfAborted(signal);
      const usb = this.usb;
      if (usb) return usb;
      const left = deadline - this.clock.now();
      if (left <= 0)
        throw new DeadlineError(`waiting for virtual board ${this.id} to enumerate`, timeoutMs, {
          board: this.id,
        });
      await this.clock.sleep(Math.min(left, 10), signal);
    }
  }

  /** Raw control transfer on endpoint 0 (standard + DFU class requests), for the USB/IP server. */
  async control(setup: SetupPacket, dataOut?: Uint8Array, signal?: AbortSignal): Promise<ControlResult> {
    if (signal?.aborted) throw abortReason(signal);
    const att = this.#attached;
    if (!att) return DISCONNECTED;
    return this.#controlOn(att.generation, setup, dataOut);
  }

  close(): void {
    if (this.#closed) return;
    this.#detach();
    this.#generation++;
    this.#closed = true;
    this.#lifetime.abort();
    this.chip.close();
    this.#events.removeAllListeners();
  }

  // ---- internals ----

  #assertOpen(): void {
    if (this.#closed) throw new Error(`virtual board ${this.id} is closed`);
  }

  #emit(event: BoardEvent): void {
    this.#events.emit(event, this);
  }

  /** Runs `fn` after `ms` on the clock unless the board changed state (generation) or closed in between. */
  #after(ms: number, fn: () => void): void {
    const generation = this.#generation;
    this.clock.sleep(ms, this.#lifetime.signal).then(
      () => {
        if (!this.#closed && this.#generation === generation) fn();
      },
      () => {},
    );
  }

  #boot(cause: 'initial' | 'power-on' | 'reset'): void {
    this.#detach();
    this.#generation++;
    const v = this.chip.volatile;
    if (!v.boot0) {
      this.#mode = 'application';
      return;
    }
    // AN2606 (0x90): after power off/on an additional reset is needed before the bootloader answers.
    if (this.quirks.extraResetAfterPowerOn && v.resetsSincePowerOn === 0) {
      this.#mode = 'silent';
      return;
    }
    this.#mode = 'bootloader';
    if (this.faults.neverEnumerates) return;
    if (cause === 'initial') this.#attach();
    else this.#after(this.timing.enumerationMs(this.faults.enumerationDelayMs), () => this.#attach());
  }

  #attach(): void {
    this.#generation++;
    const generation = this.#generation;
    this.#rom.reset();
    this.faults.onAttach();
    const board = this;
    const link = {
      clock: this.clock,
      portPath: this.portPath,
      control: (setup: SetupPacket, dataOut?: Uint8Array) => this.#controlOn(generation, setup, dataOut),
      get attached(): boolean {
        return board.#attached?.generation === generation;
      },
      busReset: () => {
        if (this.#attached?.generation === generation) this.#rom.reset();
      },
    };
    const usb = new VirtualUsbDevice(link, this.model);
    // The host OS configures a DFU device at enumeration (Linux picks configuration 1).
    this.#attached = { generation, usb, configuration: CONFIGURATION_VALUE };
    this.#emit('attach');
  }

  #detach(): void {
    if (!this.#attached) return;
    this.#attached = undefined;
    this.#emit('detach');
  }

  /** The device drops off the bus and enumerates again after the enumeration time (no chip reset). */
  #reattach(): void {
    this.#detach();
    this.#generation++;
    this.#after(this.timing.enumerationMs(this.faults.enumerationDelayMs), () => this.#attach());
  }

  async #controlOn(
    generation: number,
    setup: SetupPacket,
    dataOut: Uint8Array | undefined,
  ): Promise<ControlResult> {
    const att = this.#attached;
    if (!att || att.generation !== generation || this.#closed) return DISCONNECTED;
    const type = (setup.bmRequestType >> 5) & 3;
    if (type === 1) {
      this.#holdMs = 0;
      const result = this.#classRequest(att, setup, dataOut);
      const hold = this.#holdMs;
      if (hold > 0) await this.clock.sleep(hold, this.#lifetime.signal).catch(() => {});
      return result;
    }
    if (this.faults.hung) return { status: 'timeout' };
    if (type === 0) return truncate(this.#standardRequest(att, setup), setup.wLength);
    return STALL;
  }

  #classRequest(att: Attachment, setup: SetupPacket, dataOut: Uint8Array | undefined): ControlResult {
    // DFU requests go to interface 0 (USB DFU 1.1 section 3), only once the device is configured.
    if ((setup.bmRequestType & 0x1f) !== 1 || (setup.wIndex & 0xff) !== 0 || att.configuration === 0)
      return STALL;
    switch (this.faults.onClassRequest()) {
      case 'timeout':
        return { status: 'timeout' };
      case 'stall':
        return STALL;
      case 'disconnect':
        this.#reattach();
        return DISCONNECTED;
      default:
        break;
    }
    if (!this.#dfuMarked) {
      // Seed 003: the SWD side sees that the ROM's DFU code ran since power-on.
      this.#dfuMarked = true;
      this.chip.updateVolatile({ dfuUsedSincePowerOn: true });
    }
    const reply = this.#rom.handle(setup, dataOut);
    if (reply.effect) this.#apply(reply.effect);
    if (this.#blockingGetStatus && !reply.effect) this.#holdMs = reply.startedBusyMs ?? 0;
    return truncate(reply.result, setup.wLength);
  }

  #apply(effect: RomEffect): void {
    switch (effect.kind) {
      case 'leave':
        this.#leave(effect.address);
        return;
      case 'reattach':
        this.#reattach();
        return;
      case 'reset':
        // The ROM finishes its work, then resets the chip (a system reset: BOOT0 is sampled again).
        this.#detach();
        this.#generation++;
        this.#after(effect.delayMs, () => {
          if (this.#mode !== 'off') this.reset();
        });
        return;
    }
  }

  /**
   * Leave (AN3156 section 6.2): the ROM is not manifestation tolerant, detaches, and jumps to the vector table
   * at `address`: initial stack pointer at +0, reset handler at +4.
   */
  #leave(address: number): void {
    this.#detach();
    this.#generation++;
    const vector = this.#readWord(address);
    if (this.quirks.leaveNeedsStackBelowRamEnd) {
      // AN2606 (0x90) jump issue: the jump works only when the stack pointer is below the end of its RAM
      // minus 16 bytes; linkers put it at the very end, so in practice the application needs a reset.
      const ram = this.part.memories.find(
        (m) => m.kind === 'ram' && vector > m.start && vector <= m.start + m.size,
      );
      if (!ram || vector > ram.start + ram.size - 16) {
        this.#mode = 'silent';
        return;
      }
    }
    this.#mode = 'application';
  }

  #readWord(address: number): number {
    try {
      const bytes = this.chip.isFlash(address, 4)
        ? this.chip.readFlash(address, 4)
        : this.chip.readRam(address, 4);
      return new DataView(bytes.buffer, bytes.byteOffset, 4).getUint32(0, true);
    } catch {
      return 0xffff_ffff;
    }
  }

  #standardRequest(att: Attachment, setup: SetupPacket): ControlResult {
    const { bmRequestType: rt, bRequest, wValue, wIndex } = setup;
    switch (bRequest) {
      case GET_DESCRIPTOR:
        return this.#getDescriptor(rt, wValue);
      case GET_STATUS:
        // USB 2.0 section 9.4.5: device -> self-powered (bit 0) and remote wakeup (bit 1); interface and
        // endpoint 0 -> zero. Other endpoints do not exist.
        if (rt === 0x80) return ok(Uint8Array.of((this.model.configAttributes & 0x40) !== 0 ? 1 : 0, 0));
        if (rt === 0x81 && wIndex === 0 && att.configuration !== 0) return ok(Uint8Array.of(0, 0));
        if (rt === 0x82 && (wIndex & 0x7f) === 0) return ok(Uint8Array.of(0, 0));
        return STALL;
      case CLEAR_FEATURE:
      case SET_FEATURE:
        // DEVICE_REMOTE_WAKEUP (1) on the device, ENDPOINT_HALT (0) on endpoint 0.
        if ((rt === 0x00 && wValue === 1) || (rt === 0x02 && wValue === 0 && (wIndex & 0x7f) === 0))
          return OK_NO_DATA;
        return STALL;
      case SET_ADDRESS:
        return rt === 0x00 ? OK_NO_DATA : STALL;
      case GET_CONFIGURATION:
        return rt === 0x80 ? ok(Uint8Array.of(att.configuration)) : STALL;
      case SET_CONFIGURATION:
        if (rt !== 0x00 || (wValue !== 0 && wValue !== CONFIGURATION_VALUE)) return STALL;
        // ST's USB core re-initialises the class only when the configuration changes.
        if (wValue !== att.configuration) this.#rom.reset();
        att.configuration = wValue;
        return OK_NO_DATA;
      case GET_INTERFACE:
        return rt === 0x81 && wIndex === 0 && att.configuration !== 0
          ? ok(Uint8Array.of(this.#rom.alternate))
          : STALL;
      case SET_INTERFACE:
        if (rt !== 0x01 || wIndex !== 0 || att.configuration === 0) return STALL;
        return this.#rom.selectAlternate(wValue) ? OK_NO_DATA : STALL;
      default:
        return STALL;
    }
  }

  #getDescriptor(rt: number, wValue: number): ControlResult {
    const type = wValue >> 8;
    const index = wValue & 0xff;
    if (rt === 0x80) {
      if (type === DESC_DEVICE) return ok(this.model.device);
      if (type === DESC_CONFIGURATION && index === 0) return ok(this.model.configuration);
      if (type === DESC_STRING) {
        const s = stringDescriptor(this.model, index);
        return s ? ok(s) : STALL;
      }
      // Device qualifier, other-speed configuration, BOS...: a full-speed USB 2.0 device without them stalls
      // (USB 2.0 section 9.6.2).
      return STALL;
    }
    // ST's DFU class serves the functional descriptor to an interface-recipient GET_DESCRIPTOR.
    if (rt === 0x81 && type === DESC_DFU_FUNCTIONAL) return ok(this.model.functional);
    return STALL;
  }
}

function ok(data: Uint8Array): ControlResult {
  return { status: 'ok', data: new Uint8Array(data) };
}

/** An IN transfer never returns more than wLength (USB 2.0 section 9.3.5). */
function truncate(r: ControlResult, wLength: number): ControlResult {
  if (r.status === 'ok' && r.data && r.data.length > wLength) return { ...r, data: r.data.slice(0, wLength) };
  return r;
}

export function createVirtualBoard(opts: VirtualBoardOptions): VirtualBoard {
  return new VirtualBoard(opts);
}
