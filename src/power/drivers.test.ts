import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, expect, it } from 'vitest';
import type { RelayConfig } from '../farm/schema.ts';
import { rejection } from '../util/testing.ts';
import type { RelayDriver } from './driver.ts';
import { lcusFrame } from './drivers/lcus.ts';
import { hexBytes } from './errors.ts';
import { PortPool } from './pool.ts';
import { type PtyRelay, servePtyRelay } from './sim/pty.ts';
import {
  type RelayBoardFaults,
  VirtualRelayBoard,
  type VirtualRelayBoardOptions,
} from './sim/relay-board.ts';
import { describePty } from './sim/testing.ts';
import { createRelayDriver, RelaySwitch } from './switch.ts';

/*
 * Every driver against a simulated relay board behind a real pseudo-terminal (socat), through serialport's
 * real bindings: the bytes compared here are the bytes that crossed the tty.
 */

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Setup {
  relay: PtyRelay;
  board: VirtualRelayBoard;
  pool: PortPool;
  driver: RelayDriver;
  sw: RelaySwitch;
  /** The same relay with a short reply deadline, for the faults that must end in one. */
  quick: RelaySwitch;
  config: RelayConfig & { port: string };
  /** Bytes the relay board received, as hex. */
  rx(): string;
  /** Bytes the relay board received, as text. */
  rxText(): string;
  /** Waits until the relay board received `n` bytes (a write without a reply may still be on its way). */
  received(n: number): Promise<void>;
}

// An exchange that expects a reply gets a deadline no loaded CI machine misses; a silent board is tried
// with `quick` (300 ms).
const ANSWER_MS = 5000;
const QUICK_MS = 300;

async function setup(board: VirtualRelayBoardOptions, relay: Omit<RelayConfig, 'port'>): Promise<Setup> {
  const b = new VirtualRelayBoard(board);
  const pty = await servePtyRelay(b);
  cleanups.push(() => pty.close());
  const pool = new PortPool({ lockDir: mkdtempSync(path.join(tmpdir(), 'relay-locks-')), idleCloseMs: 50 });
  cleanups.push(() => pool.closeAll());
  const config = { ...relay, port: pty.path };
  const driver = createRelayDriver(config, { pool, answerMs: ANSWER_MS });
  return {
    relay: pty,
    board: b,
    pool,
    driver,
    config,
    sw: new RelaySwitch(`test ${relay.protocol}`, 'power', driver, config),
    quick: new RelaySwitch(
      `test ${relay.protocol}`,
      'power',
      createRelayDriver(config, { pool, answerMs: QUICK_MS }),
      config,
    ),
    rx: () => hexBytes(Uint8Array.from(b.rx)),
    rxText: () => Buffer.from(b.rx).toString('latin1'),
    async received(n) {
      const until = performance.now() + 2000;
      while (b.rx.length < n && performance.now() < until) await new Promise((r) => setTimeout(r, 5));
    },
  };
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    return (e as { code?: string }).code ?? String(e);
  }
  return 'no error';
}

describePty('LCUS-1/2/4/8 driver (A0 ch op sum, status FF)', () => {
  it('sends the vendor frames byte for byte and reads the ASCII status back', async () => {
    const s = await setup(
      { protocol: 'lcus-ascii', channels: 2 },
      { protocol: 'lcus', channel: 1, channels: 2 },
    );
    await s.sw.on();
    // Channel 1 on is A0 01 01 A2 in the LC Technology notes; FF is the status query that reads it back.
    expect(s.rx()).toBe('A0 01 01 A2 FF');
    expect(s.board.states[1]).toBe(true);
    await s.sw.off();
    expect(s.rx()).toBe('A0 01 01 A2 FF A0 01 00 A1 FF');
    expect(await s.sw.state()).toEqual({ on: false, source: 'relay' });
    expect(s.board.tx.length).toBeGreaterThan(0);
    expect(Buffer.from(s.board.tx).toString('latin1')).toContain('CH1: OFF\r\nCH2: OFF\r\n');
  });

  it('reads the one-byte-per-channel firmware too, and a channel on a 4-relay board', async () => {
    const s = await setup(
      { protocol: 'lcus-bytes', channels: 4 },
      { protocol: 'lcus', channel: 3, channels: 4 },
    );
    await s.sw.on();
    expect(s.rx()).toBe('A0 03 01 A4 FF');
    expect(await s.driver.readAll!()).toEqual([undefined, false, false, true, false]);
  });

  it('works without knowing the relay count: the status reply ends with a silence', async () => {
    const s = await setup({ protocol: 'lcus-ascii', channels: 8 }, { protocol: 'lcus', channel: 8 });
    await s.sw.on();
    expect(s.rx()).toBe('A0 08 01 A9 FF');
    expect((await s.driver.readAll!()).filter((x) => x === true)).toHaveLength(1);
  });

  it('reads twice when the first ASCII status still shows the state before the switch', async () => {
    const s = await setup(
      { protocol: 'lcus-ascii', channels: 2, faults: { staleFirstStatus: true } },
      { protocol: 'lcus', channel: 2, channels: 2 },
    );
    await s.sw.on();
    expect(s.rx()).toBe('A0 02 01 A3 FF FF');
  });

  it('sends nothing else with readBack: false, and the inverse frame for an inverted line', async () => {
    const s = await setup(
      { protocol: 'lcus-bytes', channels: 1 },
      { protocol: 'lcus', channel: 1, readBack: false },
    );
    expect(s.sw.canReadBack).toBe(false);
    await s.sw.on();
    await s.received(4);
    expect(s.rx()).toBe('A0 01 01 A2');
    const inv = new RelaySwitch('inv', 'boot0', s.driver, { channel: 1, inverted: true, readBack: false });
    await inv.on();
    await s.received(8);
    expect(s.rx()).toBe('A0 01 01 A2 A0 01 00 A1');
    expect(hexBytes(lcusFrame(4, true))).toBe('A0 04 01 A5');
  });
});

describePty('Numato Lab driver (ASCII + CR, echo, > prompt)', () => {
  it('switches and reads relays 0-9 and 10-31 written as letters', async () => {
    const s = await setup({ protocol: 'numato', channels: 32 }, { protocol: 'numato', channel: 0 });
    await s.sw.on();
    expect(s.rxText()).toBe('relay on 0\rrelay read 0\r');
    const twelve = new RelaySwitch('c12', 'power', s.driver, { channel: 12 });
    await twelve.on();
    const thirtyOne = new RelaySwitch('c31', 'power', s.driver, { channel: 31 });
    await thirtyOne.on();
    expect(s.rxText()).toBe('relay on 0\rrelay read 0\rrelay on C\rrelay read C\rrelay on V\rrelay read V\r');
    expect(Buffer.from(s.board.tx).toString('latin1')).toContain('relay read C\n\ron\n\r>');
    const all = await s.driver.readAll!();
    expect(all).toHaveLength(32);
    expect(all.flatMap((v, i) => (v ? [i] : []))).toEqual([0, 12, 31]);
    await twelve.off();
    expect(await twelve.state()).toEqual({ on: false, source: 'relay' });
  });
});

describePty('KMTronic driver (FF ch 01/00, status FF 09 00 or FF ch 03)', () => {
  it('uses FF 09 00 (one byte per relay) on a four or eight relay board', async () => {
    const s = await setup(
      { protocol: 'kmtronic', channels: 8 },
      { protocol: 'kmtronic', channel: 3, channels: 8 },
    );
    await s.sw.on();
    expect(s.rx()).toBe('FF 03 01 FF 09 00');
    await s.sw.off();
    expect(s.rx()).toBe('FF 03 01 FF 09 00 FF 03 00 FF 09 00');
    expect(await s.driver.readAll!()).toEqual([
      undefined,
      false,
      false,
      false,
      false,
      false,
      false,
      false,
      false,
    ]);
  });

  it('uses FF ch 03 on a one or two relay board', async () => {
    const s = await setup(
      { protocol: 'kmtronic', channels: 2 },
      { protocol: 'kmtronic', channel: 2, channels: 2 },
    );
    await s.sw.on();
    expect(s.rx()).toBe('FF 02 01 FF 02 03');
    expect(hexBytes(Uint8Array.from(s.board.tx))).toBe('FF 02 01');
  });
});

describePty('generic driver (commands from boards.yaml)', () => {
  it('sends text commands with the channel and matches the status reply', async () => {
    const generic = {
      on: 'ON {ch}\r\n',
      off: 'OFF {ch}\r\n',
      status: 'STATE? {ch}\r\n',
      statusPattern: 'STATE {ch} (ON|OFF)',
      encoding: 'text' as const,
    };
    const s = await setup(
      { protocol: 'generic', channels: 8, generic },
      { protocol: 'generic', channel: 5, generic },
    );
    await s.sw.on();
    expect(s.rxText()).toBe('ON 5\r\nSTATE? 5\r\n');
    await s.sw.off();
    expect(await s.sw.state()).toEqual({ on: false, source: 'relay' });
  });

  it('sends hex commands with {ch} and {sum}', async () => {
    const generic = {
      on: 'A0 {ch} 01 {sum}',
      off: 'A0 {ch} 00 {sum}',
      status: 'A0 {ch} 02 {sum}',
      statusPattern: 'A0 {ch} (0[01])',
      encoding: 'hex' as const,
    };
    const reply = (ch: number, on: boolean) => String.fromCharCode(0xa0, ch, on ? 1 : 0);
    const s = await setup(
      { protocol: 'generic', channels: 4, generic, genericReply: reply },
      { protocol: 'generic', channel: 1, generic },
    );
    await s.sw.on();
    expect(s.rx()).toBe('A0 01 01 A2 A0 01 02 A3');
  });

  it('switches blind when no status command is configured', async () => {
    const generic = { on: 'X{ch}\n', off: 'Y{ch}\n', encoding: 'text' as const };
    const s = await setup(
      { protocol: 'generic', channels: 4, generic },
      { protocol: 'generic', channel: 2, generic },
    );
    expect(s.sw.canReadBack).toBe(false);
    await s.sw.on();
    expect(await s.sw.state()).toEqual({ on: true, source: 'last-command' });
    await s.received(3);
    expect(s.rxText()).toBe('X2\n');
  });
});

describePty('relay boards that misbehave', () => {
  const textGeneric = {
    on: 'ON {ch}\r\n',
    off: 'OFF {ch}\r\n',
    status: 'STATE? {ch}\r\n',
    statusPattern: 'STATE {ch} (ON|OFF)',
    encoding: 'text' as const,
  };
  const cases: [string, VirtualRelayBoardOptions, Omit<RelayConfig, 'port'>][] = [
    ['LCUS ASCII', { protocol: 'lcus-ascii', channels: 2 }, { protocol: 'lcus', channel: 1, channels: 2 }],
    ['LCUS bytes', { protocol: 'lcus-bytes', channels: 2 }, { protocol: 'lcus', channel: 1, channels: 2 }],
    ['Numato', { protocol: 'numato', channels: 8 }, { protocol: 'numato', channel: 1 }],
    ['KMTronic 8', { protocol: 'kmtronic', channels: 8 }, { protocol: 'kmtronic', channel: 1, channels: 8 }],
    ['KMTronic 2', { protocol: 'kmtronic', channels: 2 }, { protocol: 'kmtronic', channel: 1, channels: 2 }],
    [
      'generic',
      { protocol: 'generic', channels: 4, generic: textGeneric },
      { protocol: 'generic', channel: 1, generic: textGeneric },
    ],
  ];
  const faults: [string, RelayBoardFaults, string][] = [
    ['does not answer', { mute: true }, 'E_RELAY_NO_ANSWER'],
    ['is dead', { dead: true }, 'E_RELAY_NO_ANSWER'],
    ['answers garbage', { garbage: true }, 'E_RELAY_GARBAGE'],
    ['has a stuck relay', { stuck: [1] }, 'E_RELAY_STATE_MISMATCH'],
    ['reports the wrong state', { lie: true }, 'E_RELAY_STATE_MISMATCH'],
  ];
  for (const [name, board, relay] of cases) {
    it(`${name}: a board that does not answer, answers garbage or reports the wrong state fails the switch`, async () => {
      const s = await setup(board, relay);
      await s.sw.on();
      for (const [what, f, code] of faults) {
        s.board.faults = f;
        const started = performance.now();
        // A silent board can only be told by its deadline: the short one, and it must end there.
        const silent = code === 'E_RELAY_NO_ANSWER';
        expect(`${what}: ${await codeOf((silent ? s.quick : s.sw).off())}`).toBe(`${what}: ${code}`);
        if (silent) expect(performance.now() - started).toBeLessThan(ANSWER_MS - 1000);
        s.board.faults = {};
        await s.sw.on();
      }
    });
  }

  it('names the port, the exchange and the bytes in the errors', async () => {
    const s = await setup(
      { protocol: 'lcus-ascii', channels: 2, faults: { garbage: true } },
      { protocol: 'lcus', channel: 1, channels: 2 },
    );
    const e = await rejection(s.sw.on());
    expect(e.message).toContain(s.config.port);
    expect(e.message).toMatch(/status \(FF\): unexpected reply 5A C3/);
    expect(e.kind).toBe('device');
    s.board.faults = { lie: true };
    const m = await rejection(s.sw.on());
    expect(m.message).toMatch(/switched on but the relay board reports off/);
  });
});
