import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { PortPool } from '../power/pool.ts';
import { type PtyRelay, servePtyRelay } from '../power/sim/pty.ts';
import { VirtualRelayBoard } from '../power/sim/relay-board.ts';
import { describePty } from '../power/sim/testing.ts';
import { createBoardSwitches } from '../power/switch.ts';
import { createVirtualBoard, type VirtualBoard } from '../sim/board.ts';
import { ENUMERATION_MS } from '../sim/timing.ts';
import { VirtualClock } from '../util/clock.ts';
import { rejection } from '../util/testing.ts';
import {
  BoardBrokenError,
  type BoardEvent,
  BoardStateMachine,
  boardControl,
  bootQuirk,
  type StrategyOptions,
  usbPresence,
  virtualPresence,
} from './board-state.ts';
import type { BoardConfig, FaultsConfig, RelayConfig } from './schema.ts';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** The BoardBrokenError a transition rejects with (fails the test if it resolves). */
const broken = (p: Promise<unknown>) => rejection(p, BoardBrokenError);

interface Rig {
  vb: VirtualBoard;
  sm: BoardStateMachine;
  events: BoardEvent[];
  config: BoardConfig;
}

function boardConfig(
  id: string,
  bootloader: number,
  relays?: { power: RelayConfig; boot0: RelayConfig },
  faults?: FaultsConfig,
): BoardConfig {
  return {
    id,
    part: 'stm32h743',
    tags: [],
    power: relays?.power ?? { protocol: 'virtual', channel: 1 },
    boot0: relays?.boot0 ?? { protocol: 'virtual', channel: 2 },
    virtual: { chipRevision: bootloader === 0xd2 ? 'Y' : 'V', bootloader, ...(faults ? { faults } : {}) },
  };
}

function rig(
  id: string,
  clock: VirtualClock,
  bootloader: number,
  opts: {
    faults?: FaultsConfig;
    relays?: { power: RelayConfig; boot0: RelayConfig };
    pool?: PortPool;
    strategy?: StrategyOptions;
    noReset?: boolean;
  } = {},
): Rig {
  const config = boardConfig(id, bootloader, opts.relays, opts.faults);
  const vb = createVirtualBoard({
    id,
    part: 'stm32h743',
    chipRevision: config.virtual!.chipRevision,
    bootloader,
    stateFile: path.join(mkdtempSync(path.join(tmpdir(), 'bsm-')), `${id}.bin`),
    clock,
    ...(opts.faults ? { faults: opts.faults } : {}),
  });
  cleanups.push(() => vb.close());
  const switches = createBoardSwitches(config, {
    virtualBoard: () => vb,
    clock,
    // Relays on ptys answer in ~50 ms; 5 s keeps a loaded CI machine from missing a reply.
    ...(opts.pool ? { pool: opts.pool, answerMs: 5000 } : {}),
  });
  const control = boardControl(config, {
    switches,
    presence: virtualPresence([vb], clock),
    ...(opts.noReset ? {} : { virtual: vb }),
    clock,
  });
  if (opts.noReset) delete control.reset;
  const events: BoardEvent[] = [];
  const sm = new BoardStateMachine(control, {
    clock,
    retries: 2,
    enumerationMs: 5000,
    onEvent: (e) => events.push(e),
    ...opts.strategy,
  });
  return { vb, sm, events, config };
}

describe('board state machine on virtual boards', () => {
  it('enters the bootloader (BOOT0 high, power cycle, DFU device appears) and leaves it for the application', async () => {
    const clock = new VirtualClock();
    const { vb, sm, events } = rig('h743-y', clock, 0xd2);
    expect(sm.state).toBe('unknown');

    const r = await sm.to('bootloader');
    expect(sm.state).toBe('bootloader');
    expect(vb.mode).toBe('bootloader');
    expect(vb.usb).toBeDefined();
    expect(vb.chip.volatile.boot0).toBe(true);
    expect(r.attempts).toBe(1);
    expect(r.extraReset).toBeUndefined();
    const enumeration = r.measurements.find((m) => m.name === 'enumeration_ms')!;
    // Power-on to enumeration is the simulator's ROM start plus USB attach time, measured on the clock.
    expect(enumeration.value).toBeGreaterThanOrEqual(ENUMERATION_MS);
    expect(enumeration.value).toBeLessThan(ENUMERATION_MS + 50);
    expect(r.steps.map((s) => s.step)).toEqual([
      'boot0-high',
      'power-off',
      'gone',
      'off-time',
      'power-on',
      'enumeration',
    ]);
    expect(r.steps.find((s) => s.step === 'off-time')!.ms).toBe(1000);
    expect(
      events
        .filter((e) => e.type === 'measurement')
        .map((e) => (e.type === 'measurement' ? e.measurement.name : '')),
    ).toEqual(['enumeration_ms', 'to_bootloader_ms']);

    const a = await sm.to('application');
    expect(sm.state).toBe('application');
    expect(vb.mode).toBe('application');
    expect(vb.usb).toBeUndefined();
    expect(vb.chip.volatile.boot0).toBe(false);
    expect(a.steps.map((s) => s.step)).toEqual([
      'boot0-low',
      'power-off',
      'gone',
      'off-time',
      'power-on',
      'settle',
    ]);

    const off = await sm.to('off');
    expect(off.to).toBe('off');
    expect(vb.mode).toBe('off');
    expect(vb.chip.volatile.powered).toBe(false);
  });

  it('gives bootloader 0x90 its extra reset after power-on (AN2606) and records that it was needed', async () => {
    const clock = new VirtualClock();
    expect(bootQuirk('stm32h743', 0x90)?.extraResetAfterPowerOn).toBe(true);
    expect(bootQuirk('stm32h743', 0x92)).toBeUndefined();
    const { vb, sm } = rig('h743-v90', clock, 0x90);
    const r = await sm.to('bootloader');
    expect(vb.mode).toBe('bootloader');
    expect(r.attempts).toBe(1);
    expect(r.extraReset).toEqual({ needed: true, expected: true, method: 'reset' });
    expect(r.measurements.find((m) => m.name === 'extra_reset_needed')?.value).toBe(1);
    expect(r.steps.map((s) => s.step)).toContain('extra-reset');
    // The probe before the reset is short: the quirk is known, so the board does not wait the full deadline.
    const firstEnumeration = r.steps.find((s) => s.step === 'enumeration')!;
    expect(firstEnumeration.ok).toBe(true);
    expect(firstEnumeration.ms).toBeLessThan(600);
  });

  it('brings a 0x90 board whose DFU leave did not start the application (AN2606 jump issue) into its application', async () => {
    const clock = new VirtualClock();
    const { vb, sm } = rig('h743-v90-leave', clock, 0x90);
    await sm.to('bootloader');
    // Leave (AN3156): a zero-length DNLOAD in dfuIDLE, executed on GETSTATUS. The erased flash's stack pointer
    // (0xFFFFFFFF) is above RAM end - 16, so bootloader 0x90 jumps nowhere: nothing answers.
    expect(
      await vb.control({ bmRequestType: 0x21, bRequest: 0x01, wValue: 0, wIndex: 0, wLength: 0 }),
    ).toMatchObject({ status: 'ok' });
    await vb.control({ bmRequestType: 0xa1, bRequest: 0x03, wValue: 0, wIndex: 0, wLength: 6 });
    expect(vb.mode).toBe('silent');
    expect(vb.usb).toBeUndefined();
    const r = await sm.to('application');
    expect(vb.mode).toBe('application');
    expect(r.steps.map((x) => x.step)).toEqual(['boot0-low', 'power-off', 'off-time', 'power-on', 'settle']);
  });

  it('latches a 0x90 board broken when nothing can reset it: power cycles alone never wake that ROM', async () => {
    const clock = new VirtualClock();
    const { vb, sm } = rig('h743-v90-nrst', clock, 0x90, { noReset: true });
    const e = await sm.to('bootloader').catch((x: unknown) => x);
    expect(e).toBeInstanceOf(BoardBrokenError);
    expect((e as BoardBrokenError).reason).toMatchObject({
      code: 'E_BOARD_NO_ENUMERATION',
      kind: 'device',
      category: 'enumeration',
      attempts: 3,
    });
    expect(vb.mode).toBe('silent');
  });

  it('latches a board that never enumerates broken, fails later requests fast, and lets other boards go on', async () => {
    const clock = new VirtualClock();
    const dead = rig('dead', clock, 0xd2, { faults: { seed: 1, neverEnumerates: true } });
    const good = rig('good', clock, 0xd2);

    const [deadResult, goodResult] = await Promise.allSettled([
      dead.sm.to('bootloader'),
      good.sm.to('bootloader'),
    ]);
    expect(goodResult.status).toBe('fulfilled');
    expect(good.vb.mode).toBe('bootloader');
    expect(deadResult.status).toBe('rejected');
    const err = (deadResult as PromiseRejectedResult).reason as BoardBrokenError;
    expect(err).toBeInstanceOf(BoardBrokenError);
    expect(err.code).toBe('E_BOARD_BROKEN');
    expect(err.kind).not.toBe('check');
    expect(err.reason).toMatchObject({
      code: 'E_BOARD_NO_ENUMERATION',
      category: 'enumeration',
      transition: 'bootloader',
      attempts: 3,
    });
    expect(dead.events.filter((e) => e.type === 'attempt-failed')).toHaveLength(3);
    expect(dead.events.at(-1)).toMatchObject({ type: 'broken', board: 'dead' });
    expect(dead.sm.broken?.code).toBe('E_BOARD_NO_ENUMERATION');

    // Later requests fail at once with the same reason and do not touch the relays.
    const cycles = dead.vb.chip.volatile.powerCycles;
    const t = clock.now();
    const again = await dead.sm.to('application').catch((x: unknown) => x);
    expect(again).toBeInstanceOf(BoardBrokenError);
    expect((again as BoardBrokenError).reason.code).toBe('E_BOARD_NO_ENUMERATION');
    expect(dead.vb.chip.volatile.powerCycles).toBe(cycles);
    expect(clock.now()).toBe(t);

    // The good board keeps working.
    await good.sm.to('application');
    expect(good.vb.mode).toBe('application');

    // An operator clears the latch: the board is tried again (and fails again, it is still dead).
    dead.sm.clearBroken();
    expect(dead.sm.state).toBe('unknown');
    await expect(dead.sm.to('bootloader')).rejects.toBeInstanceOf(BoardBrokenError);
    expect(dead.vb.chip.volatile.powerCycles).toBeGreaterThan(cycles);
  });

  it('retries a slow enumeration within the configured deadline, and fails one beyond it', async () => {
    const clock = new VirtualClock();
    const slow = rig('slow', clock, 0xd2, { faults: { seed: 1, enumerationDelayMs: 3000 } });
    const r = await slow.sm.to('bootloader');
    expect(r.measurements.find((m) => m.name === 'enumeration_ms')!.value).toBeGreaterThanOrEqual(
      3000 + ENUMERATION_MS,
    );

    const tooSlow = rig('too-slow', clock, 0xd2, {
      faults: { seed: 1, enumerationDelayMs: 8000 },
      strategy: { retries: 1 },
    });
    const e = await broken(tooSlow.sm.to('bootloader'));
    expect((e as BoardBrokenError).reason).toMatchObject({ code: 'E_BOARD_NO_ENUMERATION', attempts: 2 });
  });

  it('does not latch a board when the run is cancelled', async () => {
    const clock = new VirtualClock();
    const { sm } = rig('cancel', clock, 0xd2);
    const ctl = new AbortController();
    ctl.abort(new Error('stop'));
    await expect(sm.to('bootloader', ctl.signal)).rejects.toThrow('stop');
    expect(sm.broken).toBeUndefined();
  });
});

describePty('board state machine through relay boards on pseudo-terminals', () => {
  async function relayBoard(channels = 4): Promise<PtyRelay> {
    const r = await servePtyRelay(new VirtualRelayBoard({ protocol: 'lcus-ascii', channels }));
    cleanups.push(() => r.close());
    return r;
  }

  function pool(): PortPool {
    const p = new PortPool({ lockDir: mkdtempSync(path.join(tmpdir(), 'locks-')), idleCloseMs: 50 });
    cleanups.push(() => p.closeAll());
    return p;
  }

  const lcus = (port: string, channel: number): RelayConfig => ({
    port,
    protocol: 'lcus',
    channel,
    channels: 4,
  });

  it('moves two boards sharing one LCUS relay board at once, the relay really switching the virtual boards', async () => {
    const clock = new VirtualClock();
    const relay = await relayBoard(4);
    const p = pool();
    const a = rig('a', clock, 0xd2, {
      relays: { power: lcus(relay.path, 1), boot0: lcus(relay.path, 2) },
      pool: p,
    });
    const b = rig('b', clock, 0x90, {
      relays: { power: lcus(relay.path, 3), boot0: lcus(relay.path, 4) },
      pool: p,
    });
    relay.board.wire(1, a.vb, 'power');
    relay.board.wire(2, a.vb, 'boot0');
    relay.board.wire(3, b.vb, 'power');
    relay.board.wire(4, b.vb, 'boot0');

    const [ra, rb] = await Promise.all([a.sm.to('bootloader'), b.sm.to('bootloader')]);
    expect(a.vb.mode).toBe('bootloader');
    expect(b.vb.mode).toBe('bootloader');
    expect(rb.extraReset?.needed).toBe(true);
    expect(ra.attempts + rb.attempts).toBe(2);
    // Frames from the two boards never interleaved on the shared port: every frame decoded, none rejected.
    expect(relay.board.commands).not.toContain('bad frame');
    expect(relay.board.states.slice(1)).toEqual([true, true, true, true]);
    await Promise.all([a.sm.to('application'), b.sm.to('application')]);
    expect([a.vb.mode, b.vb.mode]).toEqual(['application', 'application']);
  });

  it('latches a board broken as an infrastructure failure when its relay port vanishes mid-run; the other board goes on', async () => {
    const clock = new VirtualClock();
    const relayA = await relayBoard(2);
    const relayB = await relayBoard(2);
    const p = pool();
    const a = rig('a', clock, 0xd2, {
      relays: { power: lcus(relayA.path, 1), boot0: lcus(relayA.path, 2) },
      pool: p,
    });
    const b = rig('b', clock, 0xd2, {
      relays: { power: lcus(relayB.path, 1), boot0: lcus(relayB.path, 2) },
      pool: p,
    });
    relayA.board.wire(1, a.vb, 'power');
    relayA.board.wire(2, a.vb, 'boot0');
    relayB.board.wire(1, b.vb, 'power');
    relayB.board.wire(2, b.vb, 'boot0');

    await a.sm.to('bootloader');
    await relayA.vanish();
    const e = await broken(a.sm.to('application'));
    expect(e).toBeInstanceOf(BoardBrokenError);
    expect(e.reason.category).toBe('relay');
    expect(e.reason.kind).toBe('infra');
    expect(['E_SERIAL_NOT_FOUND', 'E_SERIAL_GONE']).toContain(e.reason.code);
    expect(e.reason.attempts).toBe(3);

    await b.sm.to('bootloader');
    await b.sm.to('application');
    expect(b.vb.mode).toBe('application');
  });

  it('reports a relay that switches nothing: the DFU device stays after power off', async () => {
    const clock = new VirtualClock();
    const relay = await relayBoard(2);
    const p = pool();
    const a = rig('a', clock, 0xd2, {
      relays: { power: lcus(relay.path, 1), boot0: lcus(relay.path, 2) },
      pool: p,
      strategy: { retries: 0 },
    });
    relay.board.wire(2, a.vb, 'boot0');
    // Channel 1 is not wired to the board: the relay clicks, the board stays powered (and starts in the bootloader).
    expect(a.vb.mode).toBe('bootloader');
    const e = await broken(a.sm.to('application'));
    expect(e.reason).toMatchObject({ code: 'E_BOARD_POWER_NO_EFFECT', category: 'power', kind: 'infra' });
  });
});

describe('DFU presence on real USB', () => {
  it('finds the ST ROM bootloader (0483:DF11) by port path, ignoring other devices, within the deadline', async () => {
    const clock = new VirtualClock();
    let attachAt = Infinity;
    const lister = {
      async list() {
        const devices = [{ vendorId: 0x0483, productId: 0x374b, serial: 'STLINK', portPath: '1-4.2' }];
        if (clock.now() >= attachAt)
          devices.push({ vendorId: 0x0483, productId: 0xdf11, serial: '200364500000', portPath: '1-4.2' });
        devices.push({ vendorId: 0x0483, productId: 0xdf11, serial: '200364500000', portPath: '1-4.3' });
        return devices;
      },
    };
    const p = usbPresence([lister], clock, 50);
    expect(await p.present({ portPath: '1-4.2' })).toBe(false);
    expect(await p.present({ portPath: '1-4.3' })).toBe(true);
    expect(await p.appears({ portPath: '1-4.2' }, { deadlineMs: 1000 })).toBe(false);
    expect(clock.now()).toBeGreaterThanOrEqual(1000);
    attachAt = clock.now() + 300;
    const t = clock.now();
    expect(await p.appears({ portPath: '1-4.2' }, { deadlineMs: 1000 })).toBe(true);
    expect(clock.now() - t).toBeGreaterThanOrEqual(300);
    expect(clock.now() - t).toBeLessThan(400);
    expect(await p.gone({ portPath: '1-4.3' }, { deadlineMs: 200 })).toBe(false);
    expect(await p.present({ serial: '200364500000' })).toBe(true);
  });
});
