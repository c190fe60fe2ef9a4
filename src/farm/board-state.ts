import { type ErrorKind, HilError, isHilError } from '../errors.ts';
import type { PowerSwitch } from '../power/types.ts';
import type { VirtualBoardLike } from '../power/virtual.ts';
import { abortReason, CancelledError, throwIfAborted } from '../util/abort.ts';
import { type Clock, realClock } from '../util/clock.ts';
import type { BoardConfig } from './schema.ts';

/**
 * The board state machine (a labgrid-style strategy): moves one board between off, its ROM bootloader and its
 * application with the relays, bounded in time, retried, measured. A board whose transition keeps failing is
 * latched broken with the reason, and every later request on it fails at once; other boards are not affected.
 * Relay and enumeration failures are infrastructure/device errors, never a failed test of the chip.
 */

export type BoardState = 'off' | 'bootloader' | 'application' | 'unknown';
export type TargetState = Exclude<BoardState, 'unknown'>;

/** Who the DFU device is: the USB port path (every H74x ROM reports serial 200364500000), or a serial. */
export interface DfuIdentity {
  portPath?: string;
  serial?: string;
}

/** "Is this board's DFU device there?", with bounded waits. Both waits return false at the deadline. */
export interface DfuPresence {
  present(id: DfuIdentity, signal?: AbortSignal): Promise<boolean>;
  appears(id: DfuIdentity, opts: { deadlineMs: number; signal?: AbortSignal }): Promise<boolean>;
  gone(id: DfuIdentity, opts: { deadlineMs: number; signal?: AbortSignal }): Promise<boolean>;
}

// ---------------------------------------------------------------------------------------------------------------
// Presence adapters

function sameDevice(id: DfuIdentity, portPath: string | undefined, serial: string | undefined): boolean {
  if (id.portPath !== undefined) return portPath === id.portPath;
  return id.serial !== undefined && serial === id.serial;
}

/**
 * Waits for `check` on `clock`, woken early by `subscribe`'s callback. Bounded: every round sleeps at most
 * `pollMs` on the clock and the loop ends at the deadline.
 */
async function waitFor(
  check: () => boolean | Promise<boolean>,
  opts: {
    deadlineMs: number;
    signal?: AbortSignal;
    clock: Clock;
    pollMs: number;
    subscribe?: (wake: () => void) => () => void;
  },
): Promise<boolean> {
  const start = opts.clock.now();
  for (;;) {
    throwIfAborted(opts.signal);
    if (await check()) return true;
    const left = opts.deadlineMs - (opts.clock.now() - start);
    if (left <= 0) return false;
    const ctl = new AbortController();
    const onParent = () => ctl.abort(abortReason(opts.signal));
    opts.signal?.addEventListener('abort', onParent, { once: true });
    const unsubscribe = opts.subscribe?.(() => ctl.abort('woken'));
    try {
      await opts.clock.sleep(Math.min(opts.pollMs, left), ctl.signal);
    } catch (e) {
      if (ctl.signal.reason !== 'woken') throw e;
    } finally {
      unsubscribe?.();
      opts.signal?.removeEventListener('abort', onParent);
    }
  }
}

/** Presence of virtual boards' DFU devices, from their `usb` property and attach/detach events. */
export function virtualPresence(boards: Iterable<VirtualBoardLike>, clock?: Clock, pollMs = 5): DfuPresence {
  const list = [...boards];
  const find = (id: DfuIdentity) =>
    list.find(
      (b) => sameDevice(id, b.portPath, undefined) || (id.portPath === undefined && id.serial === b.id),
    );
  const subscribe = (id: DfuIdentity) => (wake: () => void) => {
    const b = find(id);
    if (!b) return () => {};
    b.on('attach', wake);
    b.on('detach', wake);
    return () => {
      b.off('attach', wake);
      b.off('detach', wake);
    };
  };
  const clockOf = (id: DfuIdentity) => clock ?? find(id)?.clock ?? realClock;
  return {
    async present(id) {
      return find(id)?.usb !== undefined;
    },
    appears(id, o) {
      return waitFor(() => find(id)?.usb !== undefined, {
        ...o,
        clock: clockOf(id),
        pollMs,
        subscribe: subscribe(id),
      });
    },
    gone(id, o) {
      return waitFor(() => find(id)?.usb === undefined, {
        ...o,
        clock: clockOf(id),
        pollMs,
        subscribe: subscribe(id),
      });
    },
  };
}

/** What a USB backend lists (src/usb/discovery.ts UsbBackend has this shape). */
export interface UsbLister {
  list(
    signal?: AbortSignal,
  ): Promise<{ vendorId: number; productId: number; serial: string | undefined; portPath: string }[]>;
}

/** The ST ROM bootloader's USB identity (ST AN2606, USB DFU: VID 0x0483, PID 0xDF11). */
const ST_DFU = { vendorId: 0x0483, productId: 0xdf11 } as const;

/** Presence of DFU devices on real USB, polled through the USB layer's device list. */
export function usbPresence(
  backends: readonly UsbLister[],
  clock: Clock = realClock,
  pollMs = 50,
): DfuPresence {
  const present = async (id: DfuIdentity, signal?: AbortSignal) => {
    for (const b of backends) {
      for (const d of await b.list(signal)) {
        if (
          d.vendorId === ST_DFU.vendorId &&
          d.productId === ST_DFU.productId &&
          sameDevice(id, d.portPath, d.serial)
        )
          return true;
      }
    }
    return false;
  };
  return {
    present,
    appears: (id, o) => waitFor(() => present(id, o.signal), { ...o, clock, pollMs }),
    gone: async (id, o) => waitFor(async () => !(await present(id, o.signal)), { ...o, clock, pollMs }),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Quirks

interface BootQuirk {
  /** Catalogue part ids (prefix match). */
  parts: RegExp;
  bootloader: number;
  extraResetAfterPowerOn: boolean;
  source: string;
}

/** ROM bootloaders that need help to start. One table, one row per chip family and bootloader version. */
export const BOOT_QUIRKS: readonly BootQuirk[] = [
  {
    // STM32H74x/75x bootloader V9.0 (0x90), ST AN2606 table "STM32H74xxx/75xxx bootloader versions":
    // "an additional reset is needed after power off/on" before the bootloader answers.
    parts: /^stm32h7[45]/,
    bootloader: 0x90,
    extraResetAfterPowerOn: true,
    source: 'ST AN2606, STM32H74xxx/75xxx bootloader V9.0: additional reset needed after power off/on',
  },
];

export function bootQuirk(part: string, bootloader: number | undefined): BootQuirk | undefined {
  return BOOT_QUIRKS.find((q) => q.parts.test(part) && q.bootloader === bootloader);
}

// ---------------------------------------------------------------------------------------------------------------
// Errors, events, results

/**
 * relay: a relay board or its port; enumeration: the DFU device never came; power: the board did not lose
 * power; boot: it did not leave its bootloader; config: boards.yaml; internal: a bug (not retried).
 */
export type FailureCategory = 'relay' | 'enumeration' | 'power' | 'boot' | 'config' | 'internal' | 'other';

export interface BrokenReason {
  code: string;
  kind: ErrorKind;
  category: FailureCategory;
  message: string;
  /** The transition that failed. */
  transition: TargetState;
  attempts: number;
  /** ms on the strategy's clock. */
  at: number;
}

export class BoardStateError extends HilError {
  constructor(
    code: string,
    message: string,
    kind: ErrorKind,
    details: Record<string, unknown>,
    hint?: string,
    cause?: unknown,
  ) {
    super(code, message, {
      kind,
      details,
      ...(hint ? { hint } : {}),
      ...(cause === undefined ? {} : { cause }),
    });
  }
}

/** A request on a board that is latched broken: fails at once with the original reason. */
export class BoardBrokenError extends HilError {
  readonly reason: BrokenReason;
  constructor(board: string, reason: BrokenReason, cause?: unknown) {
    super('E_BOARD_BROKEN', `board ${board} is latched broken: ${reason.message}`, {
      kind: reason.kind,
      ...(cause === undefined ? {} : { cause }),
      details: { board, reason },
      hint: 'the board was skipped; fix the cause, then clear it (a new run starts every board fresh)',
    });
    this.reason = reason;
  }
}

export type StepName =
  | 'boot0-high'
  | 'boot0-low'
  | 'power-off'
  | 'gone'
  | 'off-time'
  | 'power-on'
  | 'enumeration'
  | 'extra-reset'
  | 'settle';

export interface StepRecord {
  step: StepName;
  attempt: number;
  ms: number;
  ok: boolean;
  error?: string;
}

export interface Measurement {
  board: string;
  /** `enumeration_ms` (power-on or reset to DFU enumeration), `to_bootloader_ms`, ... */
  name: string;
  value: number;
  unit: 'ms' | 'count';
}

export interface ExtraReset {
  /** The DFU device did not appear after power-on and a reset (or a second cycle) brought it. */
  needed: boolean;
  /** The quirk table expected it (AN2606, 0x90). */
  expected: boolean;
  method: 'reset' | 'power-cycle';
}

export interface TransitionResult {
  board: string;
  from: BoardState;
  to: TargetState;
  attempts: number;
  ms: number;
  steps: StepRecord[];
  measurements: Measurement[];
  /** Set when the extra reset was tried (needed or not). */
  extraReset?: ExtraReset;
}

export type BoardEvent =
  | ({ type: 'step'; board: string; transition: TargetState } & StepRecord)
  | {
      type: 'attempt-failed';
      board: string;
      transition: TargetState;
      attempt: number;
      code: string;
      message: string;
    }
  | { type: 'measurement'; measurement: Measurement }
  | { type: 'transition'; result: TransitionResult }
  | { type: 'broken'; board: string; reason: BrokenReason };

// ---------------------------------------------------------------------------------------------------------------
// The state machine

export interface BoardControl {
  id: string;
  /** Identity of this board's DFU device. */
  dfu: DfuIdentity;
  power: PowerSwitch;
  boot0?: PowerSwitch;
  /** An NRST pulse (reset relay, ST-LINK, or the virtual board); without it the extra reset is a power cycle. */
  reset?: (signal?: AbortSignal) => Promise<void>;
  /** The ROM needs a reset after power-on before it answers (BOOT_QUIRKS). */
  extraResetAfterPowerOn?: boolean;
  presence: DfuPresence;
}

export interface StrategyOptions {
  clock?: Clock;
  /** Retries after a failed attempt (boards.yaml retries.transition; default 2). */
  retries?: number;
  /** Power-on (or reset) to DFU enumeration (deadlines.enumerationMs; default 5000). */
  enumerationMs?: number;
  /** With the quirk, how long to look for the device before the extra reset (default 500 ms). */
  probeMs?: number;
  /** Power off to "the DFU device is gone" (default 2000). */
  goneMs?: number;
  /** Application: how long the DFU device must stay away after power-on (default 500). */
  settleMs?: number;
  /** Power-off time in a cycle (default: the relay's offMs, or 1000). */
  offMs?: number;
  /** NRST pulse width through a reset relay (default 50 ms). */
  resetPulseMs?: number;
  onEvent?: (event: BoardEvent) => void;
}

class AttemptError extends BoardStateError {
  readonly category: FailureCategory;
  constructor(
    category: FailureCategory,
    code: string,
    message: string,
    kind: ErrorKind,
    details: Record<string, unknown>,
    hint?: string,
  ) {
    super(code, message, kind, details, hint);
    this.category = category;
  }
}

function categoryOf(e: unknown): FailureCategory {
  if (e instanceof AttemptError) return e.category;
  if (!isHilError(e)) return 'internal';
  if (e.kind === 'input' || e.kind === 'usage') return 'config';
  if (/^E_(RELAY|SERIAL)_/.test(e.code) || e.code === 'E_DEADLINE') return 'relay';
  if (/^E_USB_/.test(e.code)) return 'enumeration';
  return 'other';
}

export class BoardStateMachine {
  readonly control: BoardControl;
  readonly clock: Clock;
  readonly opts: Required<Omit<StrategyOptions, 'clock' | 'onEvent' | 'offMs'>> &
    Pick<StrategyOptions, 'onEvent' | 'offMs'>;
  #state: BoardState = 'unknown';
  #broken: BrokenReason | undefined;
  #busy: Promise<unknown> = Promise.resolve();

  constructor(control: BoardControl, opts: StrategyOptions = {}) {
    this.control = control;
    this.clock = opts.clock ?? realClock;
    this.opts = {
      retries: opts.retries ?? 2,
      enumerationMs: opts.enumerationMs ?? 5000,
      probeMs: opts.probeMs ?? 500,
      goneMs: opts.goneMs ?? 2000,
      settleMs: opts.settleMs ?? 500,
      resetPulseMs: opts.resetPulseMs ?? 50,
      ...(opts.offMs !== undefined ? { offMs: opts.offMs } : {}),
      ...(opts.onEvent ? { onEvent: opts.onEvent } : {}),
    };
  }

  get id(): string {
    return this.control.id;
  }

  get state(): BoardState {
    return this.#state;
  }

  get broken(): BrokenReason | undefined {
    return this.#broken;
  }

  /** Clears the latch (an operator fixed the cause). The state becomes unknown. */
  clearBroken(): void {
    this.#broken = undefined;
    this.#state = 'unknown';
  }

  /** Moves the board to `target`. One transition at a time per board; requests queue. */
  to(target: TargetState, signal?: AbortSignal): Promise<TransitionResult> {
    const run = this.#busy.then(() => this.#transition(target, signal));
    this.#busy = run.catch(() => undefined);
    return run;
  }

  #emit(e: BoardEvent): void {
    try {
      this.opts.onEvent?.(e);
    } catch {
      // A listener's failure must not break the board.
    }
  }

  async #transition(target: TargetState, signal?: AbortSignal): Promise<TransitionResult> {
    if (this.#broken) throw new BoardBrokenError(this.id, this.#broken);
    throwIfAborted(signal);
    const from = this.#state;
    const started = this.clock.now();
    const result: TransitionResult = {
      board: this.id,
      from,
      to: target,
      attempts: 0,
      ms: 0,
      steps: [],
      measurements: [],
    };
    const attempts = 1 + Math.max(0, this.opts.retries);
    let last: unknown;
    for (let attempt = 1; attempt <= attempts; attempt++) {
      result.attempts = attempt;
      try {
        await this.#attempt(target, attempt, result, signal);
        this.#state = target;
        result.ms = this.clock.now() - started;
        this.#measure(result, `to_${target}_ms`, result.ms, 'ms');
        this.#emit({ type: 'transition', result });
        return result;
      } catch (e) {
        if (signal?.aborted || e instanceof CancelledError) {
          this.#state = 'unknown';
          throw e;
        }
        last = e;
        this.#state = 'unknown';
        const code = isHilError(e) ? e.code : 'E_INTERNAL';
        this.#emit({
          type: 'attempt-failed',
          board: this.id,
          transition: target,
          attempt,
          code,
          message: (e as Error).message,
        });
        const category = categoryOf(e);
        // A configuration mistake or a bug does not get better by trying again.
        if (category === 'config' || category === 'internal') break;
      }
    }
    const e = last;
    const reason: BrokenReason = {
      code: isHilError(e) ? e.code : 'E_INTERNAL',
      kind: isHilError(e) ? (e.kind === 'check' ? 'device' : e.kind) : 'infra',
      category: categoryOf(e),
      message: (e as Error).message,
      transition: target,
      attempts: result.attempts,
      at: this.clock.now(),
    };
    this.#broken = reason;
    this.#emit({ type: 'broken', board: this.id, reason });
    throw new BoardBrokenError(this.id, reason, e);
  }

  #measure(result: TransitionResult, name: string, value: number, unit: Measurement['unit']): void {
    const m: Measurement = { board: this.id, name, value, unit };
    result.measurements.push(m);
    this.#emit({ type: 'measurement', measurement: m });
  }

  async #step<T>(
    result: TransitionResult,
    attempt: number,
    step: StepName,
    fn: () => Promise<T>,
  ): Promise<T> {
    const t = this.clock.now();
    try {
      const v = await fn();
      this.#record(result, { step, attempt, ms: this.clock.now() - t, ok: true });
      return v;
    } catch (e) {
      this.#record(result, {
        step,
        attempt,
        ms: this.clock.now() - t,
        ok: false,
        error: isHilError(e) ? e.code : String(e),
      });
      throw e;
    }
  }

  #record(result: TransitionResult, r: StepRecord): void {
    result.steps.push(r);
    this.#emit({ type: 'step', board: this.id, transition: result.to, ...r });
  }

  async #powerOff(result: TransitionResult, attempt: number, signal?: AbortSignal): Promise<void> {
    const c = this.control;
    const wasPresent = await c.presence.present(c.dfu, signal);
    await this.#step(result, attempt, 'power-off', () => c.power.off(signal));
    if (!wasPresent) return;
    const gone = await this.#step(result, attempt, 'gone', () =>
      c.presence.gone(c.dfu, { deadlineMs: this.opts.goneMs, signal }),
    );
    if (!gone) {
      throw new AttemptError(
        'power',
        'E_BOARD_POWER_NO_EFFECT',
        `${c.id}: the DFU device was still there ${this.opts.goneMs} ms after power off`,
        'infra',
        { board: c.id, relay: c.power.label },
        'the power relay does not switch this board (wrong channel, or the board is powered through USB)',
      );
    }
  }

  async #powerOn(result: TransitionResult, attempt: number, signal?: AbortSignal): Promise<number> {
    const c = this.control;
    const offMs = this.opts.offMs ?? c.power.offMs;
    await this.#step(result, attempt, 'off-time', () => this.clock.sleep(offMs, signal));
    // Taken before switching: a virtual board schedules its enumeration on the clock as the relay closes.
    const t0 = this.clock.now();
    await this.#step(result, attempt, 'power-on', () => c.power.on(signal));
    return t0;
  }

  async #extraReset(signal?: AbortSignal): Promise<'reset' | 'power-cycle'> {
    const c = this.control;
    if (c.reset) {
      await c.reset(signal);
      return 'reset';
    }
    await c.power.off(signal);
    await this.clock.sleep(this.opts.offMs ?? c.power.offMs, signal);
    await c.power.on(signal);
    return 'power-cycle';
  }

  async #attempt(
    target: TargetState,
    attempt: number,
    result: TransitionResult,
    signal?: AbortSignal,
  ): Promise<void> {
    const c = this.control;
    if (target === 'off') {
      await this.#powerOff(result, attempt, signal);
      return;
    }
    if (target === 'bootloader') {
      if (!c.boot0) {
        throw new AttemptError(
          'config',
          'E_BOARD_NO_BOOT0',
          `${c.id}: no boot0 relay in boards.yaml, so the bootloader cannot be entered`,
          'input',
          {
            board: c.id,
          },
        );
      }
      await this.#step(result, attempt, 'boot0-high', () => c.boot0!.on(signal));
      await this.#powerOff(result, attempt, signal);
      let t0 = await this.#powerOn(result, attempt, signal);
      const quirk = Boolean(c.extraResetAfterPowerOn);
      const firstWait = quirk
        ? Math.min(this.opts.probeMs, this.opts.enumerationMs)
        : this.opts.enumerationMs;
      // Deadlines count from power-on (on a VirtualClock the board's enumeration time passes as the relay closes).
      const left = (ms: number, from: number) => Math.max(0, ms - (this.clock.now() - from));
      let appeared = await this.#step(result, attempt, 'enumeration', () =>
        c.presence.appears(c.dfu, { deadlineMs: left(firstWait, t0), signal }),
      );
      if (!appeared) {
        // AN2606 (STM32H74x bootloader 0x90): after power off/on the ROM needs one more reset before it answers.
        // Tried on every board, expected or not, and recorded: a bootloader that starts needing it is news.
        t0 = this.clock.now();
        const method = await this.#step(result, attempt, 'extra-reset', () => this.#extraReset(signal));
        appeared = await this.#step(result, attempt, 'enumeration', () =>
          c.presence.appears(c.dfu, { deadlineMs: left(this.opts.enumerationMs, t0), signal }),
        );
        result.extraReset = { needed: appeared, expected: quirk, method };
        if (appeared) this.#measure(result, 'extra_reset_needed', 1, 'count');
      } else if (quirk) {
        result.extraReset = { needed: false, expected: true, method: c.reset ? 'reset' : 'power-cycle' };
        this.#measure(result, 'extra_reset_needed', 0, 'count');
      }
      if (!appeared) {
        throw new AttemptError(
          'enumeration',
          'E_BOARD_NO_ENUMERATION',
          `${c.id}: the DFU device did not appear within ${this.opts.enumerationMs} ms of power-on${result.extraReset ? ' (nor after an extra reset)' : ''}`,
          'device',
          { board: c.id, dfu: c.dfu, enumerationMs: this.opts.enumerationMs },
          'check BOOT0 wiring, the USB cable (data, not charge-only) and usb.path in boards.yaml',
        );
      }
      this.#measure(result, 'enumeration_ms', this.clock.now() - t0, 'ms');
      return;
    }
    // application
    if (c.boot0) await this.#step(result, attempt, 'boot0-low', () => c.boot0!.off(signal));
    await this.#powerOff(result, attempt, signal);
    await this.#powerOn(result, attempt, signal);
    const appeared = await this.#step(result, attempt, 'settle', () =>
      c.presence.appears(c.dfu, { deadlineMs: this.opts.settleMs, signal }),
    );
    if (appeared) {
      throw new AttemptError(
        'boot',
        'E_BOARD_STAYS_IN_BOOTLOADER',
        `${c.id}: the DFU device came back with BOOT0 low`,
        'device',
        { board: c.id, dfu: c.dfu },
        'the BOOT0 relay does not switch, or the flash is empty and the chip boots its ROM (empty-flash check)',
      );
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Wiring from boards.yaml

export interface ControlDeps {
  /** The board's switches (src/power/switch.ts createBoardSwitches). */
  switches: { power?: PowerSwitch; boot0?: PowerSwitch; reset?: PowerSwitch };
  presence: DfuPresence;
  /** The virtual board, for a simulated board (its NRST and its DFU identity). */
  virtual?: VirtualBoardLike;
  /** An NRST pulse from elsewhere (the ST-LINK), used when there is no reset relay. */
  reset?: (signal?: AbortSignal) => Promise<void>;
  clock?: Clock;
  resetPulseMs?: number;
}

/** The control of one board from its boards.yaml entry. */
export function boardControl(board: BoardConfig, deps: ControlDeps): BoardControl {
  if (!deps.switches.power) {
    throw new BoardStateError(
      'E_BOARD_NO_POWER',
      `board ${board.id} has no power relay in boards.yaml`,
      'input',
      { board: board.id },
    );
  }
  const clock = deps.clock ?? realClock;
  let reset = deps.reset;
  const resetSwitch = deps.switches.reset;
  if (resetSwitch) {
    reset = async (signal) => {
      await resetSwitch.on(signal);
      await clock.sleep(deps.resetPulseMs ?? 50, signal);
      await resetSwitch.off(signal);
    };
  } else if (!reset && deps.virtual) {
    const vb = deps.virtual;
    reset = async () => vb.reset();
  }
  const bootloader = board.expect?.bootloader ?? board.virtual?.bootloader;
  const dfu: DfuIdentity = deps.virtual
    ? { portPath: deps.virtual.portPath }
    : board.usb?.path
      ? { portPath: board.usb.path }
      : { ...(board.usb?.serial ? { serial: board.usb.serial } : {}) };
  return {
    id: board.id,
    dfu,
    power: deps.switches.power,
    ...(deps.switches.boot0 ? { boot0: deps.switches.boot0 } : {}),
    ...(reset ? { reset } : {}),
    extraResetAfterPowerOn: bootQuirk(board.part, bootloader)?.extraResetAfterPowerOn ?? false,
    presence: deps.presence,
  };
}
