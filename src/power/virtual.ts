import type { RelayConfig } from '../farm/schema.ts';
import { throwIfAborted } from '../util/abort.ts';
import type { Clock } from '../util/clock.ts';
import { RelayError } from './errors.ts';
import { DEFAULT_OFF_MS, type PowerSwitch, type RelayRole, type SwitchState } from './types.ts';

/** The part of a VirtualBoard (src/sim/board.ts) the relays and the board state machine use. */
export interface VirtualBoardLike {
  readonly id: string;
  readonly portPath: string;
  readonly clock: Clock;
  readonly mode: 'off' | 'bootloader' | 'application' | 'silent';
  readonly usb: object | undefined;
  readonly chip: { readonly volatile: Readonly<{ powered: boolean; boot0: boolean }> };
  setPower(on: boolean): void;
  setBoot0(high: boolean): void;
  reset(): void;
  on(event: 'attach' | 'detach', listener: (board: VirtualBoardLike) => void): unknown;
  off(event: 'attach' | 'detach', listener: (board: VirtualBoardLike) => void): unknown;
}

/**
 * `protocol: virtual`: the relay lines of a virtual board, wired straight to the simulator. Power switches the
 * board's supply (its DFU device vanishes and comes back by BOOT0), BOOT0 sets the pin, and the reset line
 * pulses NRST when it is let go. The state is read back from the virtual chip, which every process shares.
 */
export class VirtualBoardSwitch implements PowerSwitch {
  readonly label: string;
  readonly role: RelayRole;
  readonly board: VirtualBoardLike;
  readonly canReadBack = true;
  readonly offMs: number;
  readonly clock: Clock;
  #resetHeld = false;

  constructor(
    label: string,
    role: RelayRole,
    board: VirtualBoardLike,
    config: Pick<RelayConfig, 'offMs'>,
    clock: Clock,
  ) {
    this.label = label;
    this.role = role;
    this.board = board;
    this.offMs = config.offMs ?? DEFAULT_OFF_MS;
    this.clock = clock;
  }

  #read(): boolean {
    if (this.role === 'power') return this.board.chip.volatile.powered;
    if (this.role === 'boot0') return this.board.chip.volatile.boot0;
    return this.#resetHeld;
  }

  async set(on: boolean, signal?: AbortSignal): Promise<void> {
    throwIfAborted(signal);
    if (this.role === 'power') this.board.setPower(on);
    else if (this.role === 'boot0') this.board.setBoot0(on);
    else {
      if (this.#resetHeld && !on) this.board.reset();
      this.#resetHeld = on;
    }
    const reported = this.#read();
    if (reported !== on) {
      throw new RelayError(
        'E_RELAY_STATE_MISMATCH',
        `${this.label}: switched ${on ? 'on' : 'off'} but the virtual board reports ${reported ? 'on' : 'off'}`,
        {
          details: { board: this.board.id, role: this.role },
        },
      );
    }
  }

  on(signal?: AbortSignal): Promise<void> {
    return this.set(true, signal);
  }

  off(signal?: AbortSignal): Promise<void> {
    return this.set(false, signal);
  }

  async state(signal?: AbortSignal): Promise<SwitchState> {
    throwIfAborted(signal);
    return { on: this.#read(), source: 'relay' };
  }

  async cycle(offMs = this.offMs, signal?: AbortSignal): Promise<void> {
    await this.off(signal);
    await this.clock.sleep(offMs, signal);
    await this.on(signal);
  }
}
