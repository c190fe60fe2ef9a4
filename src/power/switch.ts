import type { BoardConfig, RelayConfig } from '../farm/schema.ts';
import { throwIfAborted } from '../util/abort.ts';
import { type Clock, realClock } from '../util/clock.ts';
import type { RelayDriver, SerialDriverOptions } from './driver.ts';
import { GenericDriver } from './drivers/generic.ts';
import { KmtronicDriver } from './drivers/kmtronic.ts';
import { LcusDriver } from './drivers/lcus.ts';
import { NumatoDriver } from './drivers/numato.ts';
import { RelayError } from './errors.ts';
import type { PortPool } from './pool.ts';
import { DEFAULT_OFF_MS, type PowerSwitch, type RelayRole, type SwitchState } from './types.ts';
import { relayIssues } from './validate.ts';
import { type VirtualBoardLike, VirtualBoardSwitch } from './virtual.ts';

export { DEFAULT_OFF_MS, type PowerSwitch, type RelayRole, type SwitchState } from './types.ts';

/** A relay channel driven through a RelayDriver, with inversion and read-back. */
export class RelaySwitch implements PowerSwitch {
  readonly label: string;
  readonly role: RelayRole;
  readonly driver: RelayDriver;
  readonly channel: number;
  readonly inverted: boolean;
  readonly readBack: boolean;
  readonly offMs: number;
  readonly clock: Clock;
  #last: boolean | undefined;

  constructor(
    label: string,
    role: RelayRole,
    driver: RelayDriver,
    config: Pick<RelayConfig, 'channel' | 'inverted' | 'readBack' | 'offMs'>,
    clock: Clock = realClock,
  ) {
    this.label = label;
    this.role = role;
    this.driver = driver;
    this.channel = config.channel;
    this.inverted = config.inverted ?? false;
    this.readBack = (config.readBack ?? true) && driver.canRead;
    this.offMs = config.offMs ?? DEFAULT_OFF_MS;
    this.clock = clock;
  }

  get canReadBack(): boolean {
    return this.readBack;
  }

  async set(on: boolean, signal?: AbortSignal): Promise<void> {
    const closed = on !== this.inverted;
    await this.driver.set(this.channel, closed, signal);
    this.#last = on;
    if (!this.readBack) return;
    let reported = await this.driver.read(this.channel, signal);
    // LCUS ASCII firmware can answer the status query with the state from before the switch (reference notes:
    // "read twice, the first can be stale"); one more read costs a few ms on every other board.
    if (reported !== closed) reported = await this.driver.read(this.channel, signal);
    if (reported !== closed) {
      this.#last = undefined;
      throw new RelayError(
        'E_RELAY_STATE_MISMATCH',
        `${this.label}: switched ${closed ? 'on' : 'off'} but the relay board reports ${reported ? 'on' : 'off'}`,
        {
          details: { port: this.driver.port ?? null, channel: this.channel, wanted: closed, reported },
          hint: 'a stuck relay, a wrong channel, or a relay board that reports another channel',
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
    if (this.driver.canRead) {
      const closed = await this.driver.read(this.channel, signal);
      return { on: closed !== this.inverted, source: 'relay' };
    }
    return this.#last === undefined
      ? { on: undefined, source: 'unknown' }
      : { on: this.#last, source: 'last-command' };
  }

  async cycle(offMs = this.offMs, signal?: AbortSignal): Promise<void> {
    await this.off(signal);
    await this.clock.sleep(offMs, signal);
    throwIfAborted(signal);
    await this.on(signal);
  }
}

export interface SwitchContext extends SerialDriverOptions {
  pool?: PortPool;
  /** Clock for off-times (a VirtualClock in tests). */
  clock?: Clock;
  /** The running VirtualBoard of a board id, for `protocol: virtual`. */
  virtualBoard?: (boardId: string) => VirtualBoardLike | undefined;
}

/** A driver for the relay board `relay` describes (not for `virtual`, which is per board). */
export function createRelayDriver(relay: RelayConfig, ctx: SwitchContext = {}): RelayDriver {
  const issue = relayIssues({ boards: [{ id: '?', power: relay }] })[0];
  if (issue)
    throw new RelayError('E_RELAY_CONFIG', `relay: ${issue.message}`, { kind: 'input', details: { relay } });
  const opts: SerialDriverOptions = {
    ...(ctx.pool ? { pool: ctx.pool } : {}),
    ...(ctx.clock ? { clock: ctx.clock } : {}),
    ...(ctx.answerMs ? { answerMs: ctx.answerMs } : {}),
    ...(ctx.operationMs ? { operationMs: ctx.operationMs } : {}),
  };
  const withPort = relay as RelayConfig & { port: string };
  switch (relay.protocol) {
    case 'lcus':
      return new LcusDriver(withPort, opts);
    case 'numato':
      return new NumatoDriver(withPort, opts);
    case 'kmtronic':
      return new KmtronicDriver(withPort, opts);
    case 'generic':
      return new GenericDriver(withPort, opts);
    case 'virtual':
      throw new RelayError(
        'E_RELAY_CONFIG',
        'a virtual relay belongs to one virtual board: use createSwitch',
        { kind: 'input' },
      );
  }
}

export function describeRelay(relay: RelayConfig): string {
  return relay.protocol === 'virtual'
    ? 'virtual relay'
    : `${relay.protocol} ${relay.port} channel ${relay.channel}`;
}

/** The switch for one line (`power`, `boot0`, `reset`) of `board`, or undefined when boards.yaml has none. */
export function createSwitch(
  board: BoardConfig,
  role: RelayRole,
  ctx: SwitchContext = {},
): PowerSwitch | undefined {
  const relay = board[role];
  if (!relay) return undefined;
  const label = `${board.id} ${role} (${describeRelay(relay)})`;
  if (relay.protocol === 'virtual') {
    const vb = ctx.virtualBoard?.(board.id);
    if (!vb) {
      throw new RelayError(
        'E_RELAY_VIRTUAL',
        `${label}: no virtual board "${board.id}" is running in this process`,
        {
          kind: 'infra',
          details: { board: board.id },
          hint: board.virtual ? undefined : 'protocol: virtual only drives a board with a virtual: section',
        },
      );
    }
    return new VirtualBoardSwitch(label, role, vb, relay, ctx.clock ?? vb.clock ?? realClock);
  }
  return new RelaySwitch(label, role, createRelayDriver(relay, ctx), relay, ctx.clock ?? realClock);
}

export interface BoardSwitches {
  power?: PowerSwitch;
  boot0?: PowerSwitch;
  reset?: PowerSwitch;
}

export function createBoardSwitches(board: BoardConfig, ctx: SwitchContext = {}): BoardSwitches {
  const out: BoardSwitches = {};
  for (const role of ['power', 'boot0', 'reset'] as const) {
    const s = createSwitch(board, role, ctx);
    if (s) out[role] = s;
  }
  return out;
}
