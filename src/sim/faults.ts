import type { FaultsConfig } from '../farm/schema.ts';

/**
 * Seeded fault injection for one virtual board (boards.yaml `virtual.faults`). Everything random is drawn
 * from a PRNG seeded with `faults.seed`, so a run with the same seed and the same host behaviour fails the
 * same way.
 */

/** mulberry32: a tiny, well-known 32-bit PRNG; hand-written because the test needs a stable sequence per seed. */
export class SeededRandom {
  #state: number;
  constructor(seed: number) {
    this.#state = seed >>> 0;
  }
  /** Uniform in [0, 1). */
  next(): number {
    this.#state = (this.#state + 0x6d2b79f5) >>> 0;
    let t = this.#state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
}

export type TransferFault = 'none' | 'stall' | 'timeout' | 'disconnect';

/**
 * Transfer numbers count DFU class requests (DNLOAD, UPLOAD, GETSTATUS, ...) since the device attached,
 * starting at 1. Standard requests are not counted: over USB/IP the kernel's enumeration issues a number of
 * GET_DESCRIPTORs that the in-process WebUSB façade does not, and transfer N must mean the same on both paths.
 */
export class FaultInjector {
  readonly config: FaultsConfig | undefined;
  readonly #random: SeededRandom;
  #transfers = 0;
  #hung = false;
  #disconnectFired = false;

  constructor(config: FaultsConfig | undefined) {
    this.config = config;
    this.#random = new SeededRandom(config?.seed ?? 1);
  }

  /** Weak bits for VirtualChip.open (address -> mask of bits that do not hold). */
  weakBits(): Map<number, number> {
    return new Map((this.config?.weakBits ?? []).map((w) => [w.address, w.mask]));
  }

  get enumerationDelayMs(): number {
    return this.config?.enumerationDelayMs ?? 0;
  }

  get neverEnumerates(): boolean {
    return this.config?.neverEnumerates === true;
  }

  /** The device stopped answering (stopAnsweringAtTransfer reached); cleared by the next attachment. */
  get hung(): boolean {
    return this.#hung;
  }

  get transfers(): number {
    return this.#transfers;
  }

  /** A new attachment: counting starts again; a hung device stays hung only until it is reset. */
  onAttach(): void {
    this.#transfers = 0;
    this.#hung = false;
  }

  /** Power-on: the one-shot disconnect may fire again. */
  onPowerOn(): void {
    this.#disconnectFired = false;
  }

  /** Called for each DFU class request; decides what happens to it. */
  onClassRequest(): TransferFault {
    const n = ++this.#transfers;
    const c = this.config;
    if (this.#hung || (c?.stopAnsweringAtTransfer !== undefined && n >= c.stopAnsweringAtTransfer)) {
      this.#hung = true;
      return 'timeout';
    }
    // One-shot per power-on: the disconnect models a cable glitch, after which the device comes back.
    if (c?.disconnectAtTransfer === n && !this.#disconnectFired) {
      this.#disconnectFired = true;
      return 'disconnect';
    }
    if (c?.stallAtTransfer === n) return 'stall';
    return 'none';
  }

  /** Whether programming the next sector of a download fails (errWRITE); one draw per sector entered. */
  sectorWriteFails(): boolean {
    const p = this.config?.sectorWriteFailure ?? 0;
    if (p <= 0) return false;
    return this.#random.next() < p;
  }
}
