import { type LayoutSector, sectorAt } from '../parts/layout.ts';
import { UsbError } from '../usb/errors.ts';
import { hex32 } from '../util/hex.ts';
import type { DfuDevice } from './device.ts';
import { DfuError, statusDetails } from './errors.ts';
import { DFU_STATE, DFU_STATUS, DFUSE_COMMAND, type DfuStatusReport, describeStatus } from './protocol.ts';

/** Progress of a long operation (typed events the CLI turns into a bar or lines). */
export interface DfuProgress {
  phase: 'erase' | 'program' | 'verify' | 'read';
  /** Bytes done and total in this phase (erase counts the bytes of the sectors erased). */
  done: number;
  total: number;
  /** Address being worked on. */
  address: number;
}

export type ProgressListener = (e: DfuProgress) => void;

function le32(n: number): number[] {
  return [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff];
}

const MAX_BLOCK = 0xffff;

/**
 * ST's DfuSe extension on top of DFU 1.1 (ST AN3156 sections 6-7): special commands sent with DNLOAD wValue 0,
 * data blocks at `pointer + (wBlockNum - 2) * wTransferSize`, uploads the same way, and leave.
 */
export class Dfuse {
  readonly dev: DfuDevice;
  /** Where the device's address pointer is, as far as the host knows. */
  #pointer: number | undefined;

  constructor(dev: DfuDevice) {
    this.dev = dev;
  }

  get transferSize(): number {
    return this.dev.transferSize;
  }

  /** Sector of the current alternate's layout holding `address`. */
  sectorAt(address: number): LayoutSector | undefined {
    return sectorAt(this.dev.alternate.sectors, address);
  }

  /**
   * Sends one special command (DNLOAD block 0), lets the device execute it and waits for dfuDNLOAD-IDLE.
   * A refusal shows as a stall or as dfuERROR on the GETSTATUS that follows (errTARGET for a bad address).
   */
  async command(
    bytes: number[],
    what: string,
    address: number | undefined,
    maxBusyMs: number,
    hint?: string,
  ): Promise<DfuStatusReport> {
    const r = await this.dev.dnload(0, Uint8Array.from(bytes), what);
    if (r === 'stall') throw await this.dev.stallError(what, address, hint);
    const s = await this.dev.complete(what, address, maxBusyMs, hint);
    if (s.state !== DFU_STATE.dfuDNLOAD_IDLE && s.state !== DFU_STATE.dfuIDLE) {
      throw new DfuError(
        'E_DFU_STATE',
        `${what}: the device ended in ${describeStatus(s)} instead of dfuDNLOAD-IDLE`,
        {
          details: statusDetails(s, address),
        },
      );
    }
    return s;
  }

  /** Set Address Pointer (0x21 + 4 address bytes LSB first, AN3156 section 6.1.2). */
  async setAddress(address: number): Promise<void> {
    await this.command(
      [DFUSE_COMMAND.SET_ADDRESS_POINTER, ...le32(address)],
      `set address ${hex32(address)}`,
      address,
      2000,
    );
    this.#pointer = address;
  }

  /** Page/sector erase (0x41 + address of any byte in the page, AN3156 section 6.1.3). */
  async erasePage(address: number): Promise<void> {
    const q = this.dev.quirks;
    const sector = this.sectorAt(address);
    const what = `erase sector ${sector?.index ?? '?'}`;
    const hint = q.eraseHang && address >= q.eraseHang.from ? q.eraseHang.hint : undefined;
    await this.command([DFUSE_COMMAND.ERASE, ...le32(address)], what, address, q.sectorEraseMaxMs, hint);
  }

  /** Mass erase (0x41 alone, AN3156 section 6.1.3). The caller checks permission. */
  async massErase(): Promise<void> {
    const q = this.dev.quirks;
    await this.command([DFUSE_COMMAND.ERASE], 'mass erase', undefined, q.massEraseMaxMs, q.massEraseBroken);
  }

  /**
   * Read Unprotect (0x92, AN3156 section 6.1.4): the device mass-erases, drops read protection and resets, so
   * it disconnects; that is the expected ending. The caller checks permission.
   */
  async readUnprotect(): Promise<void> {
    try {
      const r = await this.dev.dnload(0, Uint8Array.of(DFUSE_COMMAND.READ_UNPROTECT), 'read unprotect');
      if (r === 'stall') throw await this.dev.stallError('read unprotect', undefined);
      await this.dev.complete('read unprotect', undefined, this.dev.quirks.massEraseMaxMs);
    } catch (e) {
      if (e instanceof UsbError && (e.code === 'E_USB_DISCONNECTED' || e.code === 'E_USB_TIMEOUT')) return;
      throw e;
    }
  }

  /** Get Commands (UPLOAD block 0 in dfuIDLE, AN3156 section 6.2.1): the command bytes the device supports. */
  async getCommands(): Promise<number[]> {
    await this.dev.ensureIdle();
    const r = await this.dev.upload(0, 32, 'get commands');
    if (r === 'stall') throw await this.dev.stallError('get commands', undefined);
    await this.dev.abort('back to dfuIDLE');
    return [...r];
  }

  /**
   * Writes `data` at `address` in blocks of wTransferSize (block n at address + (n - 2) * wTransferSize,
   * AN3156 section 6.1.1), each executed on GETSTATUS and awaited for bwPollTimeout. The flash must be erased.
   */
  async write(
    address: number,
    data: Uint8Array,
    onBlock?: (address: number, bytes: number) => void,
  ): Promise<void> {
    const size = this.transferSize;
    const maxBusy = this.dev.quirks.programBlockMaxMs;
    let base = address;
    let block = 2;
    await this.setAddress(base);
    for (let off = 0; off < data.length; off += size) {
      if (block > MAX_BLOCK) {
        base = address + off;
        block = 2;
        await this.setAddress(base);
      }
      const at = address + off;
      const chunk = data.subarray(off, Math.min(off + size, data.length));
      const what = `write block ${block} (${chunk.length} bytes)`;
      const r = await this.dev.dnload(block, chunk, `${what} @ ${hex32(at)}`);
      if (r === 'stall') throw await this.#writeError(await this.dev.stallError(what, at), at);
      let s: DfuStatusReport;
      try {
        s = await this.dev.complete(what, at, maxBusy);
      } catch (e) {
        throw await this.#writeError(e, at);
      }
      if (s.state !== DFU_STATE.dfuDNLOAD_IDLE) {
        throw new DfuError(
          'E_DFU_STATE',
          `${what} at ${hex32(at)}: the device ended in ${describeStatus(s)}`,
          {
            details: statusDetails(s, at),
          },
        );
      }
      block++;
      onBlock?.(at, chunk.length);
    }
  }

  /** Adds STM32CubeProgrammer's wording ("failed to download Sector[N]") to a write failure. */
  async #writeError(e: unknown, at: number): Promise<unknown> {
    if (!(e instanceof DfuError) || e.code === 'E_DFU_BUSY_TIMEOUT') return e;
    const sector = this.sectorAt(at);
    if (sector === undefined) return e;
    return new DfuError(e.code, `failed to download Sector[${sector.index}]: ${e.message}`, {
      kind: e.kind,
      details: { ...e.details, sector: sector.index, sectorStart: sector.start },
      ...(e.hint ? { hint: e.hint } : {}),
      cause: e,
    });
  }

  /**
   * Reads `length` bytes at `address` (Set Address Pointer, ABORT to dfuIDLE, then UPLOAD blocks from 2).
   * At RDP level 1 the device refuses with errVENDOR: E_DFU_READ_PROTECTED.
   */
  async read(
    address: number,
    length: number,
    onBlock?: (address: number, bytes: number) => void,
  ): Promise<Uint8Array> {
    const out = new Uint8Array(length);
    const size = this.transferSize;
    let done = 0;
    while (done < length) {
      const base = address + done;
      await this.setAddress(base);
      await this.dev.abort('to dfuIDLE before UPLOAD');
      for (let block = 2; block <= MAX_BLOCK && done < length; block++) {
        const want = Math.min(size, length - done);
        const at = address + done;
        const r = await this.dev.upload(block, want, `read block ${block} @ ${hex32(at)}`);
        if (r === 'stall') {
          const err = await this.dev.stallError(`read of ${want} bytes`, at);
          if (err.details.status === 'errVENDOR') {
            throw new DfuError(
              'E_DFU_READ_PROTECTED',
              `read at ${hex32(at)} refused: read protection (RDP level 1) is active`,
              {
                details: err.details,
                hint: 'the flash cannot be read over DFU at RDP level 1; `stm32-hil unprotect --force` (Read Unprotect) erases it and drops protection',
                cause: err,
              },
            );
          }
          throw err;
        }
        if (r.length === 0) {
          throw new DfuError('E_DFU_SHORT_READ', `read at ${hex32(at)}: the device returned no data`, {
            details: { address: at, wanted: want },
          });
        }
        out.set(r.subarray(0, want), done);
        done += Math.min(r.length, want);
        onBlock?.(at, Math.min(r.length, want));
      }
    }
    await this.dev.abort('back to dfuIDLE');
    this.#pointer = undefined;
    return out;
  }

  /**
   * Leave DFU mode: Set Address Pointer to the application, then a zero-length DNLOAD and GETSTATUS (dfuMANIFEST,
   * AN3156 section 6.3). The ROM then jumps to the application and vanishes from the bus — success, not an error
   * (dfu-util reports a false failure there).
   */
  async leave(address?: number): Promise<'left' | 'manifesting'> {
    const target = address ?? this.dev.alternate.layout?.regions[0]?.base ?? 0x0800_0000;
    const gone = (e: unknown) =>
      e instanceof UsbError && (e.code === 'E_USB_DISCONNECTED' || e.code === 'E_USB_TIMEOUT');
    try {
      await this.setAddress(target);
      // Block 2 with no data, as dfu-util does for DfuSe leave.
      const r = await this.dev.dnload(2, new Uint8Array(0), 'leave');
      if (r === 'stall') throw await this.dev.stallError('leave', target);
      const s = await this.dev.getStatus('leave: manifest');
      if (s.state === DFU_STATE.dfuERROR && s.status !== DFU_STATUS.OK) {
        await this.dev.recover();
        throw this.dev.statusError('leave', target, s);
      }
      return 'manifesting';
    } catch (e) {
      if (gone(e)) return 'left';
      throw e;
    }
  }

  get pointer(): number | undefined {
    return this.#pointer;
  }
}
