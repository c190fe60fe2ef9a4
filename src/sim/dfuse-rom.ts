import type { FlashSector, Part } from '../parts/catalogue.ts';
import type { SetupPacket } from '../usb/types.ts';
import type { Clock } from '../util/clock.ts';
import { hex32 } from '../util/hex.ts';
import { ChipError, RDP_LEVEL0, type VirtualChip } from './chip.ts';
import type { FaultInjector } from './faults.ts';
import { decodeOptionWrite, encodeOptionBytes } from './option-bytes.ts';
import type { RomQuirks } from './quirks.ts';
import type { RomMemoryMap, RomRegion } from './rom-memory.ts';
import type { BusyTime, TimingModel } from './timing.ts';
import type { ControlResult } from './types.ts';

/**
 * The DfuSe state machine of an ST ROM bootloader: USB DFU 1.1 (sections 6 and A.2) with ST's extension
 * (AN3156), behaving like ST's USB device middleware the ROM is built on where the documents are silent.
 *
 * Execution model (AN3156 section 4, AN2662 figures 57-58): a DNLOAD only stores its block (dfuDNLOAD-SYNC);
 * the next GETSTATUS starts the command or write and answers dfuDNBUSY with bwPollTimeout; a GETSTATUS after
 * the busy time reports the outcome: dfuDNLOAD-IDLE/OK or dfuERROR with the status code. The real ROM runs the
 * operation inside the GETSTATUS (the status stage is NAKed until it ends, which is why the first GETSTATUS
 * of a bank 1 erase comes back after 0.9 s in the CubeProgrammer trace); the simulator answers at once and
 * enforces the busy time on the clock instead. The sequence of states a host sees is the same.
 */

// The protocol's numbers (USB DFU 1.1 tables 3.2 and 6.1.2, AN3156 commands) are the host's and the device's
// alike: one definition, in src/dfu/protocol.ts.
import { DFU_REQUEST, DFU_STATE, DFU_STATUS, DFUSE_COMMAND, stateName } from '../dfu/protocol.ts';

export { DFU_REQUEST, DFU_STATE, DFU_STATUS, DFUSE_COMMAND };

/** What the board must do after the reply has been sent. */
export type RomEffect =
  /** The ROM jumps to the application whose vector table is at `address` (leave). */
  | { kind: 'leave'; address: number }
  /** The device resets (option bytes written, read unprotect) after `delayMs`, then re-enumerates. */
  | { kind: 'reset'; delayMs: number; reason: string }
  /** DETACH with bitWillDetach: the device drops off the bus and re-attaches (ST middleware). */
  | { kind: 'reattach' };

export interface RomReply {
  result: ControlResult;
  effect?: RomEffect;
  /** How long the operation this GETSTATUS started keeps the ROM busy (ms, scaled); 0 when it hangs. */
  startedBusyMs?: number;
}

/** The last error the ROM entered dfuERROR with, for tests and traces. */
export interface RomErrorInfo {
  status: number;
  message: string;
  address?: number;
}

interface Outcome {
  status: number;
  busy: BusyTime;
  /** The device never leaves dfuDNBUSY (0x90 bank 2 erase; 0x91 command on a still-erasing bank). */
  hang?: boolean;
  effect?: RomEffect;
  message?: string;
  address?: number;
}

interface PendingBlock {
  block: number;
  data: Uint8Array;
}

export interface DfuseRomDeps {
  part: Part;
  chip: VirtualChip;
  quirks: RomQuirks;
  memory: RomMemoryMap;
  timing: TimingModel;
  faults: FaultInjector;
  clock: Clock;
}

export class DfuseRom {
  readonly #d: DfuseRomDeps;
  readonly #transferSize: number;
  #state: number = DFU_STATE.dfuIDLE;
  #status: number = DFU_STATUS.OK;
  #pointer: number;
  #alt = 0;
  #pending: PendingBlock | undefined;
  #outcome: Outcome | undefined;
  #busyUntil = 0;
  #lastWriteSector: number | undefined;
  /** 0x91: bank 2 keeps erasing until then (clock ms), although the ROM reported done. */
  #bank2BusyUntil = Number.NEGATIVE_INFINITY;
  #lastError: RomErrorInfo | undefined;

  constructor(deps: DfuseRomDeps) {
    this.#d = deps;
    this.#transferSize = deps.part.bootloader.transferSize;
    this.#pointer = deps.memory.flashStart;
  }

  get state(): number {
    return this.#state;
  }
  get status(): number {
    return this.#status;
  }
  get pointer(): number {
    return this.#pointer;
  }
  get alternate(): number {
    return this.#alt;
  }
  get lastError(): RomErrorInfo | undefined {
    return this.#lastError;
  }

  /**
   * USB reset / (re-)enumeration: ST's DFU class Init puts the interface in dfuIDLE with status OK, and the
   * address pointer defaults to the start of flash (AN3156: "without a pointer the device assumes 0x08000000").
   * The flash controller's state (0x91: a bank still erasing) is not the USB stack's and survives.
   */
  reset(): void {
    this.#state = DFU_STATE.dfuIDLE;
    this.#status = DFU_STATUS.OK;
    this.#pointer = this.#d.memory.flashStart;
    this.#alt = 0;
    this.#pending = undefined;
    this.#outcome = undefined;
    this.#lastWriteSector = undefined;
  }

  selectAlternate(alt: number): boolean {
    if (alt < 0 || alt >= this.#d.memory.alternateCount) return false;
    this.#alt = alt;
    return true;
  }

  /** A DFU class request (bmRequestType 0x21 / 0xA1 to interface 0). */
  handle(setup: SetupPacket, dataOut: Uint8Array | undefined): RomReply {
    const dirIn = (setup.bmRequestType & 0x80) !== 0;
    switch (setup.bRequest) {
      case DFU_REQUEST.DNLOAD:
        return dirIn ? STALL : this.#dnload(setup, dataOut ?? new Uint8Array(0));
      case DFU_REQUEST.UPLOAD:
        return dirIn ? this.#upload(setup) : STALL;
      case DFU_REQUEST.GETSTATUS:
        return dirIn ? this.#getStatus(setup.wLength) : STALL;
      case DFU_REQUEST.CLRSTATUS:
        return dirIn ? STALL : this.#clrStatus();
      case DFU_REQUEST.GETSTATE:
        return dirIn ? ok(Uint8Array.of(this.#state).subarray(0, setup.wLength)) : STALL;
      case DFU_REQUEST.ABORT:
        return dirIn ? STALL : this.#abort();
      case DFU_REQUEST.DETACH:
        return dirIn ? STALL : this.#detach();
      default:
        // ST's DFU class answers an unknown class request with a protocol stall and no state change.
        return STALL;
    }
  }

  /** DFU 1.1 section 6.1: a request the state does not allow stalls and the device enters dfuERROR. */
  #stallRequest(message: string): RomReply {
    this.#enterError(DFU_STATUS.errSTALLEDPKT, message);
    return STALL;
  }

  #enterError(status: number, message: string, address?: number): void {
    this.#state = DFU_STATE.dfuERROR;
    this.#status = status;
    this.#pending = undefined;
    this.#outcome = undefined;
    this.#lastError = address === undefined ? { status, message } : { status, message, address };
  }

  #dnload(setup: SetupPacket, data: Uint8Array): RomReply {
    const idle = this.#state === DFU_STATE.dfuIDLE || this.#state === DFU_STATE.dfuDNLOAD_IDLE;
    if (!idle) return this.#stallRequest(`DNLOAD in ${stateName(this.#state)}`);
    if (setup.wLength === 0) {
      // Leave (AN3156 section 6.2): a zero-length DNLOAD starts manifestation.
      this.#state = DFU_STATE.dfuMANIFEST_SYNC;
      return { result: { status: 'ok', bytesWritten: 0 } };
    }
    if (setup.wLength > this.#transferSize) {
      return this.#stallRequest(
        `DNLOAD of ${setup.wLength} bytes exceeds wTransferSize ${this.#transferSize}`,
      );
    }
    const block = data.subarray(0, setup.wLength);
    if (setup.wValue === 0 && !validCommand(block)) {
      return this.#stallRequest(
        `unknown DfuSe command ${[...block.subarray(0, 5)].map((b) => b.toString(16)).join(' ')}`,
      );
    }
    this.#pending = { block: setup.wValue, data: new Uint8Array(block) };
    this.#state = DFU_STATE.dfuDNLOAD_SYNC;
    return { result: { status: 'ok', bytesWritten: block.length } };
  }

  #getStatus(wLength: number): RomReply {
    const now = this.#d.clock.now();
    let poll = 0;
    let effect: RomEffect | undefined;
    let started = 0;
    switch (this.#state) {
      case DFU_STATE.dfuDNLOAD_SYNC: {
        const pending = this.#pending;
        this.#pending = undefined;
        if (!pending) {
          this.#state = DFU_STATE.dfuDNLOAD_IDLE;
          break;
        }
        const outcome = this.#execute(pending, now);
        this.#outcome = outcome;
        this.#state = DFU_STATE.dfuDNBUSY;
        this.#busyUntil = now + outcome.busy.busyMs;
        poll = outcome.busy.pollTimeoutMs;
        started = outcome.hang ? 0 : outcome.busy.busyMs;
        if (outcome.effect?.kind === 'reset') {
          // The ROM resets while busy (option bytes, read unprotect): this answer is the last one.
          effect = outcome.effect;
        }
        break;
      }
      case DFU_STATE.dfuDNBUSY: {
        const outcome = this.#outcome;
        if (!outcome || outcome.hang) {
          poll = this.#d.timing.hangPollTimeoutMs();
          break;
        }
        if (now < this.#busyUntil) {
          poll = Math.ceil(this.#busyUntil - now);
          break;
        }
        this.#outcome = undefined;
        if (outcome.status === DFU_STATUS.OK) {
          this.#state = DFU_STATE.dfuDNLOAD_IDLE;
          this.#status = DFU_STATUS.OK;
        } else {
          this.#enterError(outcome.status, outcome.message ?? 'operation failed', outcome.address);
        }
        break;
      }
      case DFU_STATE.dfuMANIFEST_SYNC:
        // ST middleware: manifestation reports dfuMANIFEST with a 1 ms poll timeout, then leaves.
        this.#state = DFU_STATE.dfuMANIFEST;
        poll = Math.ceil(this.#d.timing.scaled(1));
        effect = { kind: 'leave', address: this.#pointer };
        break;
      default:
        break;
    }
    const bytes = Uint8Array.of(
      this.#status,
      poll & 0xff,
      (poll >> 8) & 0xff,
      (poll >> 16) & 0xff,
      this.#state,
      0,
    );
    const reply = ok(bytes.subarray(0, wLength));
    if (effect) reply.effect = effect;
    if (started > 0) reply.startedBusyMs = started;
    return reply;
  }

  #clrStatus(): RomReply {
    if (this.#state === DFU_STATE.dfuERROR) {
      this.#state = DFU_STATE.dfuIDLE;
      this.#status = DFU_STATUS.OK;
    } else {
      // ST middleware (and the CubeProgrammer rev V trace): CLRSTATUS outside dfuERROR -> dfuERROR/errUNKNOWN.
      this.#enterError(DFU_STATUS.errUNKNOWN, `CLRSTATUS in ${stateName(this.#state)}`);
    }
    return { result: { status: 'ok', bytesWritten: 0 } };
  }

  #abort(): RomReply {
    // ST middleware: ABORT returns to dfuIDLE from the idle/sync states and is ignored elsewhere (it does not
    // get a device out of dfuDNBUSY: only the CLRSTATUS dance does, as the rev V trace shows).
    const s = this.#state;
    if (
      s === DFU_STATE.dfuIDLE ||
      s === DFU_STATE.dfuDNLOAD_SYNC ||
      s === DFU_STATE.dfuDNLOAD_IDLE ||
      s === DFU_STATE.dfuMANIFEST_SYNC ||
      s === DFU_STATE.dfuUPLOAD_IDLE
    ) {
      this.#state = DFU_STATE.dfuIDLE;
      this.#status = DFU_STATUS.OK;
      this.#pending = undefined;
      this.#lastWriteSector = undefined;
    }
    return { result: { status: 'ok', bytesWritten: 0 } };
  }

  #detach(): RomReply {
    // AN3156: DETACH is not meaningful for the bootloader. ST middleware with bitWillDetach (bmAttributes
    // 0x0B) drops off the bus and attaches again: the same ROM re-enumerates in dfuIDLE.
    this.#state = DFU_STATE.dfuIDLE;
    this.#status = DFU_STATUS.OK;
    return { result: { status: 'ok', bytesWritten: 0 }, effect: { kind: 'reattach' } };
  }

  #upload(setup: SetupPacket): RomReply {
    if (this.#state !== DFU_STATE.dfuIDLE && this.#state !== DFU_STATE.dfuUPLOAD_IDLE) {
      return this.#stallRequest(`UPLOAD in ${stateName(this.#state)}`);
    }
    if (setup.wLength === 0) {
      this.#state = DFU_STATE.dfuIDLE;
      return ok(new Uint8Array(0));
    }
    if (setup.wLength > this.#transferSize) {
      return this.#stallRequest(
        `UPLOAD of ${setup.wLength} bytes exceeds wTransferSize ${this.#transferSize}`,
      );
    }
    if (setup.wValue === 0) {
      // AN3156 section 6.1: Get Commands. ST middleware leaves dfuIDLE when wLength > 3, else dfuUPLOAD-IDLE.
      const cmds = Uint8Array.of(
        DFUSE_COMMAND.GET_COMMANDS,
        DFUSE_COMMAND.SET_ADDRESS_POINTER,
        DFUSE_COMMAND.ERASE,
        DFUSE_COMMAND.READ_UNPROTECT,
      );
      this.#state = setup.wLength > 3 ? DFU_STATE.dfuIDLE : DFU_STATE.dfuUPLOAD_IDLE;
      return ok(cmds.subarray(0, setup.wLength));
    }
    if (setup.wValue === 1) return this.#stallRequest('UPLOAD block 1 is reserved');
    const address = this.#blockAddress(setup.wValue);
    const region = this.#d.memory.find(this.#alt, address, setup.wLength);
    if (!region?.readable) {
      this.#enterError(
        DFU_STATUS.errTARGET,
        `read at ${hex32(address)}: ${this.#d.memory.refusal(address)}`,
        address,
      );
      return STALL;
    }
    if (this.#protectedMemory(region)) {
      this.#enterError(
        DFU_STATUS.errVENDOR,
        `read at ${hex32(address)}: read protection (RDP level 1) is active`,
        address,
      );
      return STALL;
    }
    this.#state = DFU_STATE.dfuUPLOAD_IDLE;
    return ok(this.#read(region, address, setup.wLength));
  }

  #blockAddress(block: number): number {
    return (this.#pointer + (block - 2) * this.#transferSize) >>> 0;
  }

  /** RDP level 1 shuts the host out of flash and RAM (AN2662 figure 57 "ROP active?", AN3156). */
  #protectedMemory(region: RomRegion): boolean {
    return (region.kind === 'flash' || region.kind === 'ram') && this.#d.chip.rdpLevel !== 0;
  }

  #read(region: RomRegion, address: number, length: number): Uint8Array {
    const chip = this.#d.chip;
    switch (region.kind) {
      case 'flash':
        return chip.readFlash(address, length);
      case 'ram':
        return chip.readRam(address, length);
      case 'option-bytes': {
        const image = encodeOptionBytes(this.#d.part, chip.options);
        const out = new Uint8Array(length);
        out.set(image.subarray(address - region.start, address - region.start + length));
        return out;
      }
      case 'system': {
        // The simulator has no ROM image: system memory reads as zero except the bootloader version byte
        // (AN2606: e.g. 0x1FF1E7FE on the H74x), which hosts read to identify the bootloader.
        const out = new Uint8Array(length);
        const v = this.#d.part.bootloader.versionAddress;
        if (v !== undefined && v >= address && v < address + length)
          out[v - address] = chip.bootloaderVersion;
        return out;
      }
      default:
        return new Uint8Array(length).fill(0xff);
    }
  }

  // ---- execution (on the GETSTATUS after a DNLOAD) ----

  #fail(status: number, message: string, busy: BusyTime, address?: number): Outcome {
    return address === undefined ? { status, busy, message } : { status, busy, message, address };
  }

  #execute(p: PendingBlock, now: number): Outcome {
    const t = this.#d.timing;
    if (p.block === 0) {
      const cmd = p.data[0]!;
      const address =
        p.data.length >= 5 ? new DataView(p.data.buffer, p.data.byteOffset).getUint32(1, true) : undefined;
      if (cmd === DFUSE_COMMAND.SET_ADDRESS_POINTER && address !== undefined) {
        // AN2662 figure 58: allowed in flash, RAM, system memory and option bytes, also under RDP.
        if (!this.#d.memory.pointerAllowed(address)) {
          return this.#fail(
            DFU_STATUS.errTARGET,
            `set address ${hex32(address)}: ${this.#d.memory.refusal(address)}`,
            t.immediate(),
            address,
          );
        }
        this.#pointer = address;
        return { status: DFU_STATUS.OK, busy: t.immediate() };
      }
      if (cmd === DFUSE_COMMAND.ERASE && address !== undefined) return this.#eraseSector(address, now);
      if (cmd === DFUSE_COMMAND.ERASE) return this.#massErase(now);
      if (cmd === DFUSE_COMMAND.READ_UNPROTECT) return this.#readUnprotect();
      return { status: DFU_STATUS.OK, busy: t.immediate() };
    }
    // ST middleware: block 1 of a download is accepted and ignored.
    if (p.block === 1) return { status: DFU_STATUS.OK, busy: t.immediate() };
    return this.#write(this.#blockAddress(p.block), p.data, now);
  }

  #bank2(sector: FlashSector | undefined): boolean {
    return sector !== undefined && sector.bank === 2;
  }

  /** 0x91: a flash command reaching bank 2 while it still erases hangs the ROM (AN2606). */
  #bank2StillErasing(now: number, sectors: (FlashSector | undefined)[]): boolean {
    return (
      this.#d.quirks.bank2EraseEarlyDone && now < this.#bank2BusyUntil && sectors.some((s) => this.#bank2(s))
    );
  }

  #hang(message: string, busy: BusyTime): Outcome {
    return { status: DFU_STATUS.OK, busy, hang: true, message };
  }

  #eraseSector(address: number, now: number): Outcome {
    const { chip, memory, quirks, timing: t } = this.#d;
    const region = memory.find(this.#alt, address, 1);
    const eraseReported = t.immediate(quirks.erasePollTimeoutMs ?? 0);
    if (!region?.erasable || region.kind !== 'flash') {
      return this.#fail(
        DFU_STATUS.errTARGET,
        `erase at ${hex32(address)}: not an erasable sector of this alternate setting`,
        eraseReported,
        address,
      );
    }
    if (chip.rdpLevel !== 0) {
      return this.#fail(
        DFU_STATUS.errVENDOR,
        `erase at ${hex32(address)}: read protection (RDP level 1) is active`,
        eraseReported,
        address,
      );
    }
    const sector = chip.sectorAt(address)!;
    const busy = t.sectorErase(sector);
    this.#lastWriteSector = undefined;
    if (this.#bank2StillErasing(now, [sector])) {
      return this.#hang(`erase of sector ${sector.globalIndex} while bank 2 is still erasing (0x91)`, busy);
    }
    chip.eraseSector(sector);
    if (quirks.bank2EraseHang && this.#bank2(sector)) {
      // 0x90: the erase reaches the flash controller (AN2606 describes 0x91's fix of the same path as a
      // completion check, "reports done while the flash is still erasing", so the erase itself is issued),
      // hence the sector is erased; what never comes is the ROM noticing it finished. The CubeProgrammer
      // trace likewise prints "erasing sector 0008 ... done" after the CLRSTATUS dance. The first GETSTATUS
      // answered after 16 ms in that trace, not after the erase time: the ROM did not wait.
      return this.#hang(
        `erase of bank 2 sector ${sector.globalIndex} never completes (bootloader 0x90)`,
        busy,
      );
    }
    if (quirks.bank2EraseEarlyDone && this.#bank2(sector)) {
      this.#bank2BusyUntil = now + t.scaled(t.sectorEraseMs(sector));
      return { status: DFU_STATUS.OK, busy: { busyMs: 0, pollTimeoutMs: busy.pollTimeoutMs } };
    }
    return { status: DFU_STATUS.OK, busy };
  }

  #massErase(now: number): Outcome {
    const { chip, quirks, timing: t } = this.#d;
    const busy = t.massErase();
    if (chip.rdpLevel !== 0) {
      return this.#fail(
        DFU_STATUS.errVENDOR,
        'mass erase: read protection (RDP level 1) is active',
        t.immediate(busy.pollTimeoutMs),
      );
    }
    this.#lastWriteSector = undefined;
    if (this.#bank2StillErasing(now, chip.sectors)) {
      return this.#hang('mass erase while bank 2 is still erasing (0x91)', busy);
    }
    if (!quirks.massEraseNoop) chip.massErase();
    return { status: DFU_STATUS.OK, busy };
  }

  #readUnprotect(): Outcome {
    const { chip, timing: t } = this.#d;
    const wasProtected = chip.rdpLevel !== 0;
    // RM0433 section 4.5.3: leaving level 1 mass-erases the flash (VirtualChip does it); AN3156: then the
    // device resets. RAM is lost with the reset.
    chip.setOptions({ rdp: RDP_LEVEL0 });
    const busy = wasProtected ? t.massErase() : t.immediate();
    return {
      status: DFU_STATUS.OK,
      busy,
      effect: { kind: 'reset', delayMs: busy.busyMs, reason: 'read unprotect' },
    };
  }

  #write(address: number, data: Uint8Array, now: number): Outcome {
    const { chip, memory, faults, timing: t, part } = this.#d;
    const region = memory.find(this.#alt, address, data.length);
    if (!region?.writable) {
      return this.#fail(
        DFU_STATUS.errTARGET,
        `write at ${hex32(address)}: ${this.#d.memory.refusal(address)}`,
        t.immediate(),
        address,
      );
    }
    if (this.#protectedMemory(region)) {
      return this.#fail(
        DFU_STATUS.errVENDOR,
        `write at ${hex32(address)}: read protection (RDP level 1) is active`,
        t.immediate(),
        address,
      );
    }
    switch (region.kind) {
      case 'flash': {
        const busy = t.program(data.length);
        const first = chip.sectorAt(address)!;
        const last = chip.sectorAt(address + data.length - 1)!;
        const touched = chip.sectors.filter(
          (s) => s.globalIndex >= first.globalIndex && s.globalIndex <= last.globalIndex,
        );
        if (this.#bank2StillErasing(now, touched)) {
          return this.#hang(`write at ${hex32(address)} while bank 2 is still erasing (0x91)`, busy);
        }
        for (const s of touched) {
          if (s.globalIndex === this.#lastWriteSector) continue;
          if (faults.sectorWriteFails()) {
            this.#lastWriteSector = undefined;
            return this.#fail(
              DFU_STATUS.errWRITE,
              `write at ${hex32(address)}: injected failure programming sector ${s.globalIndex}`,
              busy,
              address,
            );
          }
          this.#lastWriteSector = s.globalIndex;
        }
        const r = chip.programFlash(address, data);
        if (!r.ok) {
          // The H7 flash controller refuses to program a flash word twice (RM0433 section 4.3.9).
          return this.#fail(DFU_STATUS.errPROG, `write at ${hex32(r.address)}: ${r.reason}`, busy, r.address);
        }
        return { status: DFU_STATUS.OK, busy };
      }
      case 'ram':
        chip.writeRam(address, data);
        return { status: DFU_STATUS.OK, busy: t.immediate() };
      case 'option-bytes': {
        // AN3156 section 6.3 / AN2662 figure 57: writing the option bytes erases them all first, and the device
        // resets at the end of the write to load them.
        const change = decodeOptionWrite(part, chip.options, address - region.start, data);
        try {
          chip.setOptions(change);
        } catch (e) {
          if (e instanceof ChipError)
            return this.#fail(DFU_STATUS.errVENDOR, e.message, t.immediate(), address);
          throw e;
        }
        const busy = t.program(data.length);
        return {
          status: DFU_STATUS.OK,
          busy,
          effect: { kind: 'reset', delayMs: busy.busyMs, reason: 'option bytes written' },
        };
      }
      default:
        return this.#fail(
          DFU_STATUS.errTARGET,
          `write at ${hex32(address)}: ${region.kind} is not modelled by the simulator`,
          t.immediate(),
          address,
        );
    }
  }
}

const STALL: RomReply = { result: { status: 'stall' } };

function ok(data: Uint8Array): RomReply {
  return { result: { status: 'ok', data: new Uint8Array(data) } };
}

function validCommand(block: Uint8Array): boolean {
  const cmd = block[0];
  if (block.length === 1)
    return (
      cmd === DFUSE_COMMAND.GET_COMMANDS ||
      cmd === DFUSE_COMMAND.ERASE ||
      cmd === DFUSE_COMMAND.READ_UNPROTECT
    );
  if (block.length === 5) return cmd === DFUSE_COMMAND.SET_ADDRESS_POINTER || cmd === DFUSE_COMMAND.ERASE;
  return false;
}
