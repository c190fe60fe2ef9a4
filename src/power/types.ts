/** What a board's relay line is for. */
export type RelayRole = 'power' | 'boot0' | 'reset';

export interface SwitchState {
  /** Logical state (after `inverted`): power on, BOOT0 high, NRST held low. Undefined when nobody knows. */
  on: boolean | undefined;
  /** Where it comes from: the relay board's own report, the last command this process sent, or nowhere. */
  source: 'relay' | 'last-command' | 'unknown';
}

/** A switched line of one board: its supply, its BOOT0 pin or its reset. */
export interface PowerSwitch {
  /** `h743-a power (lcus /dev/ttyUSB0 channel 1)`. */
  readonly label: string;
  readonly role: RelayRole;
  /** The relay board reports its state, so switching is checked by reading it back. */
  readonly canReadBack: boolean;
  /** Default off-time of a power cycle, ms (boards.yaml offMs, else 1000). */
  readonly offMs: number;
  set(on: boolean, signal?: AbortSignal): Promise<void>;
  on(signal?: AbortSignal): Promise<void>;
  off(signal?: AbortSignal): Promise<void>;
  state(signal?: AbortSignal): Promise<SwitchState>;
  /** Off, wait `offMs` (default: the relay's offMs or 1000 ms), on. */
  cycle(offMs?: number, signal?: AbortSignal): Promise<void>;
}

export const DEFAULT_OFF_MS = 1000;
