import type { RelayConfig } from '../farm/schema.ts';
import { type Clock, realClock } from '../util/clock.ts';
import { type PortPool, type SerialSession, sharedPortPool, withRelayDeadline } from './pool.ts';
import type { SerialOpenOptions } from './serial.ts';

/** One relay board (all its channels) behind one protocol. */
export interface RelayDriver {
  readonly protocol: string;
  /** Serial port, or undefined for the in-process virtual relay. */
  readonly port: string | undefined;
  /** Whether the board can report a channel's state. */
  readonly canRead: boolean;
  /** Closes (`true`) or opens (`false`) the relay of `channel`. */
  set(channel: number, closed: boolean, signal?: AbortSignal): Promise<void>;
  /** The relay's state as the board reports it. */
  read(channel: number, signal?: AbortSignal): Promise<boolean>;
  /** Every channel's state, where the protocol has one query for all (index = channel number). */
  readAll?(signal?: AbortSignal): Promise<(boolean | undefined)[]>;
}

export interface SerialDriverOptions {
  pool?: PortPool;
  clock?: Clock;
  /** Deadline for one reply (boards.yaml deadlines.relayMs; default 1000 ms). */
  answerMs?: number;
  /** Deadline for a whole operation including waiting for the port; default answerMs * 4 + lock wait. */
  operationMs?: number;
}

/**
 * Pacing and reply timing per relay board, one table. The vendor notes give no timing, so these are our own
 * conservative choices: a gap between frames so a slow MCU never sees two frames as one, and the silence that
 * ends a status reply of unknown length.
 */
export const RELAY_TIMING: Record<
  'lcus' | 'numato' | 'kmtronic' | 'generic',
  { gapMs: number; replyIdleMs: number }
> = {
  /** LCUS-1/2/4/8: CH340 USB serial in front of a small MCU that reads frames byte by byte. */
  lcus: { gapMs: 20, replyIdleMs: 60 },
  /** Numato Lab modules: USB CDC firmware, every reply ends with the `>` prompt, so no idle timing is needed. */
  numato: { gapMs: 0, replyIdleMs: 60 },
  /** KMTronic USB relays: FT232R in front of a small MCU. */
  kmtronic: { gapMs: 20, replyIdleMs: 60 },
  generic: { gapMs: 10, replyIdleMs: 80 },
};

/** Shared plumbing of the drivers that talk over a serial port. */
export abstract class SerialRelayDriver implements RelayDriver {
  abstract readonly protocol: 'lcus' | 'numato' | 'kmtronic' | 'generic';
  abstract readonly canRead: boolean;
  readonly port: string;
  readonly config: RelayConfig;
  readonly pool: PortPool;
  readonly clock: Clock;
  readonly answerMs: number;
  readonly operationMs: number | undefined;

  constructor(config: RelayConfig & { port: string }, opts: SerialDriverOptions = {}) {
    this.port = config.port;
    this.config = config;
    this.pool = opts.pool ?? sharedPortPool();
    this.clock = opts.clock ?? realClock;
    this.answerMs = opts.answerMs ?? 1000;
    this.operationMs = opts.operationMs;
  }

  abstract defaultBaudRate(): number;
  abstract set(channel: number, closed: boolean, signal?: AbortSignal): Promise<void>;
  abstract read(channel: number, signal?: AbortSignal): Promise<boolean>;

  get openOptions(): SerialOpenOptions {
    return {
      path: this.port,
      baudRate: this.config.baudRate ?? this.defaultBaudRate(),
      dataBits: 8,
      parity: 'none',
      stopBits: 1,
    };
  }

  /** Exclusive use of the port for one exchange, bounded in time, paced by the protocol's gap. */
  protected exchange<T>(
    what: string,
    signal: AbortSignal | undefined,
    fn: (s: SerialSession, signal: AbortSignal) => Promise<T>,
  ): Promise<T> {
    const total = this.operationMs ?? this.answerMs * 4 + 12_000;
    return withRelayDeadline(`${this.protocol} relay ${this.port}: ${what}`, total, signal, (sig) =>
      this.pool.use(
        this.openOptions,
        async (session) => {
          try {
            await session.discardInput();
            return await fn(session, sig);
          } finally {
            const gap = RELAY_TIMING[this.protocol].gapMs;
            // Physical pacing of the serial line: real time whatever the harness clock is.
            if (gap > 0 && session.link.isOpen) await realClock.sleep(gap);
          }
        },
        { signal: sig },
      ),
    );
  }

  protected label(channel?: number): string {
    return `${this.protocol} relay ${this.port}${channel === undefined ? '' : ` channel ${channel}`}`;
  }
}
