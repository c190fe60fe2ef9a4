import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, expect, it } from 'vitest';
import { hexBytes } from '../power/errors.ts';
import { type PtyRelay, servePtyRelay } from '../power/sim/pty.ts';
import { type RelayBoardFaults, VirtualRelayBoard } from '../power/sim/relay-board.ts';
import { describePty } from '../power/sim/testing.ts';
import { main } from './main.ts';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function sink(): Writable & { text: string } {
  const w = new Writable({
    write(chunk, _enc, cb) {
      w.text += chunk.toString();
      cb();
    },
  }) as Writable & { text: string };
  w.text = '';
  return w;
}

async function cli(
  config: string,
  ...args: string[]
): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdout = sink();
  const stderr = sink();
  const code = await main(['--config', config, ...args], { stdout, stderr });
  return { code, stdout: stdout.text, stderr: stderr.text };
}

/** A farm file; relays get `relayMs` to answer (5 s: a loaded machine answers in time; a mute relay test shortens it). */
function farm(boards: string, relayMs = 5000): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'power-cli-'));
  const file = path.join(dir, 'boards.yaml');
  writeFileSync(
    file,
    `farm: { stateDir: state, timeScale: 50 }\ndeadlines: { enumerationMs: 5000, relayMs: ${relayMs} }\nretries: { transition: 1 }\nboards:\n${boards}`,
  );
  return file;
}

const VIRTUAL = `  - id: v90
    part: stm32h743
    power: { protocol: virtual, channel: 1, offMs: 200 }
    boot0: { protocol: virtual, channel: 2 }
    virtual: { chipRevision: V, bootloader: 0x90 }
`;

async function relay(faults: RelayBoardFaults = {}): Promise<PtyRelay> {
  const r = await servePtyRelay(new VirtualRelayBoard({ protocol: 'lcus-ascii', channels: 2, faults }));
  cleanups.push(() => r.close());
  return r;
}

const realBoard = (port: string, channel = 1) => `  - id: r
    part: stm32h743
    usb: { path: "1-4.2" }
    power: { port: ${port}, protocol: lcus, channel: ${channel}, channels: 2, offMs: 50 }
    boot0: { port: ${port}, protocol: lcus, channel: 2, channels: 2 }
`;

describePty('stm32-hil power / boot / serial', () => {
  it('boots a virtual 0x90 board into its bootloader and out again, the state living on in the chip file', async () => {
    const config = farm(VIRTUAL);
    const boot = await cli(config, 'boot', 'bootloader', '--board', 'v90');
    expect(boot.stderr).toBe('');
    expect(boot.code).toBe(0);
    expect(boot.stdout).toMatch(
      /^v90: bootloader in \d+ ms, power-on to DFU enumeration \d+ ms, needed an extra reset \(expected: AN2606\)\n$/,
    );

    const st = await cli(config, '--json', 'power', 'status', '--board', 'v90');
    expect(JSON.parse(st.stdout)).toMatchObject({
      board: 'v90',
      virtual: true,
      mode: 'bootloader',
      power: { on: true },
      boot0: { on: true },
    });

    const app = await cli(config, '--json', 'boot', 'application', '--board', 'v90');
    expect(app.code).toBe(0);
    expect(JSON.parse(app.stdout)).toMatchObject({ board: 'v90', to: 'application', attempts: 1 });

    expect((await cli(config, 'power', 'off', '--board', 'v90')).stdout).toBe('v90: power off (read back)\n');
    const off = await cli(config, 'power', 'status');
    expect(off.stdout).toBe(
      'v90 [virtual: off]\n  power off  (virtual relay)\n  boot0 off  (virtual relay)\n',
    );
  });

  it('switches a real relay board on a serial port: on, status, cycle with an off time', async () => {
    const r = await relay();
    const config = farm(realBoard(r.path));
    expect(await cli(config, 'power', 'on', '--board', 'r')).toEqual({
      code: 0,
      stdout: 'r: power on (read back)\n',
      stderr: '',
    });
    expect(hexBytes(Uint8Array.from(r.board.rx))).toBe('A0 01 01 A2 FF');
    const st = await cli(config, '--json', 'power', 'status', '--board', 'r');
    expect(JSON.parse(st.stdout)).toEqual({
      board: 'r',
      virtual: false,
      power: { on: true, source: 'relay', relay: `lcus ${r.path} channel 1` },
      boot0: { on: false, source: 'relay', relay: `lcus ${r.path} channel 2` },
    });
    const rxBefore = r.board.rx.length;
    const cyc = await cli(config, '--json', 'power', 'cycle', '--board', 'r', '--off-time', '120');
    expect(JSON.parse(cyc.stdout)).toMatchObject({ board: 'r', offTimeMs: 120 });
    expect(JSON.parse(cyc.stdout).ms).toBeGreaterThanOrEqual(120);
    expect(hexBytes(Uint8Array.from(r.board.rx.slice(rxBefore)))).toBe('A0 01 00 A1 FF A0 01 01 A2 FF');
  });

  it('exits 3 with the relay error for a relay that does not answer or a port that does not exist', async () => {
    const r = await relay({ mute: true });
    const mute = await cli(farm(realBoard(r.path), 300), 'power', 'on', '--board', 'r');
    expect(mute.code).toBe(3);
    expect(mute.stderr).toMatch(
      /^stm32-hil: error E_RELAY_NO_ANSWER: lcus relay .* status \(FF\): no answer within 300 ms\n/,
    );
    const missing = await cli(farm(realBoard('/dev/ttyUSB-stm32-hil-none')), 'power', 'off', '--board', 'r');
    expect(missing.code).toBe(3);
    expect(missing.stderr).toMatch(
      /^stm32-hil: error E_SERIAL_NOT_FOUND: serial port \/dev\/ttyUSB-stm32-hil-none does not exist\n {2}hint: /,
    );
  });

  it('exits 2 naming file, line and column for a channel out of range, and for a bad --off-time', async () => {
    const config = farm(realBoard('/dev/ttyUSB0', 9));
    const bad = await cli(config, 'power', 'on', '--board', 'r');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toBe(
      `stm32-hil: error E_CONFIG_RELAY: ${config}:8:59: boards[0].power.channel: channel 9 is out of range for lcus (1 to 8)\n`,
    );
    const usage = await cli(farm(VIRTUAL), 'power', 'cycle', '--board', 'v90', '--off-time', '1s');
    expect(usage.code).toBe(2);
  });

  it('lists serial ports without crashing (no udevadm needed)', async () => {
    const r = await cli(farm(VIRTUAL), '--json', 'serial', 'list');
    expect(r.code).toBe(0);
    expect(Array.isArray(JSON.parse(r.stdout))).toBe(true);
  });
});
