import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  mkdtempSync,
  realpathSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { rejection } from '../util/testing.ts';
import { acquirePortLock, lockFileFor } from './lock.ts';
import { PortPool } from './pool.ts';
import { nodeSerialBinding, type SerialBinding } from './serial.ts';
import { type PtyRelay, servePtyRelay } from './sim/pty.ts';
import { VirtualRelayBoard } from './sim/relay-board.ts';
import { describePty } from './sim/testing.ts';
import { createRelayDriver, RelaySwitch } from './switch.ts';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const NODE = process.execPath;
const SRC = new URL('.', import.meta.url).pathname;

function tmp(prefix: string): string {
  return mkdtempSync(path.join(tmpdir(), prefix));
}

async function lcusRelay(channels = 4): Promise<PtyRelay> {
  const r = await servePtyRelay(new VirtualRelayBoard({ protocol: 'lcus-ascii', channels }));
  cleanups.push(() => r.close());
  return r;
}

function pool(opts: ConstructorParameters<typeof PortPool>[0] = {}): PortPool {
  const p = new PortPool({ lockDir: tmp('locks-'), idleCloseMs: 50, ...opts });
  cleanups.push(() => p.closeAll());
  return p;
}

function lcusSwitch(port: string, channel: number, p: PortPool, answerMs = 5000): RelaySwitch {
  const cfg = { port, protocol: 'lcus' as const, channel, channels: 4 };
  return new RelaySwitch(`ch${channel}`, 'power', createRelayDriver(cfg, { pool: p, answerMs }), cfg);
}

/** A child process running `body` (ESM TypeScript) with this directory's modules at hand. */
function child(body: string, opts: { uid?: number; gid?: number } = {}): ChildProcess {
  const dir = tmp('child-');
  chmodSync(dir, 0o755);
  const file = path.join(dir, 'child.ts');
  writeFileSync(file, body.replaceAll('@src/', SRC));
  chmodSync(file, 0o644);
  return spawn(NODE, [file], { stdio: ['pipe', 'pipe', 'pipe'], ...opts });
}

function output(c: ChildProcess): Promise<{ stdout: string; stderr: string; code: number | null }> {
  let stdout = '';
  let stderr = '';
  c.stdout!.on('data', (d: Buffer) => {
    stdout += d;
  });
  c.stderr!.on('data', (d: Buffer) => {
    stderr += d;
  });
  return new Promise((resolve) => c.on('close', (code) => resolve({ stdout, stderr, code })));
}

describePty('opening serial ports', () => {
  it('names a port that does not exist (E_SERIAL_NOT_FOUND, an infrastructure error)', async () => {
    const e = await rejection(lcusSwitch('/dev/ttyUSB-stm32-hil-missing', 1, pool()).on());
    expect(e.code).toBe('E_SERIAL_NOT_FOUND');
    expect(e.kind).toBe('infra');
    expect(e.message).toBe('serial port /dev/ttyUSB-stm32-hil-missing does not exist');
    expect(e.hint).toMatch(/serial list/);
  });

  it('says which group grants access to a port without permission, and the usermod line', async () => {
    const relay = await lcusRelay();
    const dev = realpathSync(relay.path);
    if (process.getuid?.() === 0) {
      // root opens anything, so an unprivileged process (nobody) tries a port set up like /dev/ttyUSB0
      // (root:dialout, 0660).
      const dialout = Number(spawnSync('getent', ['group', 'dialout']).stdout.toString().split(':')[2] ?? 20);
      chmodSync(path.dirname(relay.path), 0o755); // like /dev: anyone may look, the device decides
      chownSync(dev, 0, dialout);
      chmodSync(dev, 0o660);
      const c = child(
        `import { nodeSerialBinding } from '@src/serial.ts';
         try { await nodeSerialBinding.open({ path: ${JSON.stringify(relay.path)}, baudRate: 9600 }); console.log('opened'); }
         catch (e) { console.log(JSON.stringify({ code: e.code, kind: e.kind, message: e.message, hint: e.hint, details: e.details })); }`,
        { uid: 65534, gid: 65534 },
      );
      const out = await output(c);
      const e = JSON.parse(out.stdout) as {
        code: string;
        kind: string;
        message: string;
        hint: string;
        details: { grantingGroup: string };
      };
      expect(e.code).toBe('E_SERIAL_PERMISSION');
      expect(e.message).toBe(
        `serial port ${relay.path}: permission denied (owned by group dialout, mode 660)`,
      );
      expect(e.hint).toBe(
        'members of group dialout may open it: sudo usermod -aG dialout $USER, then log out and in again',
      );
      expect(e.details.grantingGroup).toBe('dialout');
    } else {
      chmodSync(dev, 0o000);
      const e = await rejection(nodeSerialBinding.open({ path: relay.path, baudRate: 9600 }));
      expect(e.code).toBe('E_SERIAL_PERMISSION');
      expect(e.hint).toMatch(/usermod -aG \S+ \$USER/);
    }
  });
});

describePty('sharing relay boards', () => {
  it('opens one port once per process and serialises the boards that share it, also through a symlink', async () => {
    const relay = await lcusRelay(4);
    let opens = 0;
    const counting: SerialBinding = {
      open: (o, s) => {
        opens++;
        return nodeSerialBinding.open(o, s);
      },
      list: (s) => nodeSerialBinding.list(s),
    };
    const p = pool({ binding: counting, idleCloseMs: 10_000 });
    const alias = path.join(tmp('alias-'), 'by-id-usb-1a86_7523');
    symlinkSync(relay.path, alias);
    const switches = [
      lcusSwitch(relay.path, 1, p),
      lcusSwitch(relay.path, 2, p),
      lcusSwitch(alias, 3, p),
      lcusSwitch(alias, 4, p),
    ];
    await Promise.all(switches.map((s) => s.on()));
    await Promise.all(switches.map((s) => s.off()));
    expect(opens).toBe(1);
    // Every frame arrived whole: 8 switch frames and 8 status queries, none interleaved.
    expect(relay.board.commands.filter((c) => c === 'status')).toHaveLength(8);
    expect(relay.board.commands.filter((c) => /^(on|off) \d$/.test(c))).toHaveLength(8);
    expect(relay.board.commands).not.toContain('bad frame');
    expect(relay.board.rx).toHaveLength(8 * 5);
  });

  it('never opens a port twice: a second opener is refused by the device lock even without our lock file', async () => {
    const relay = await lcusRelay();
    const a = pool({ idleCloseMs: 10_000 });
    const b = pool({ idleCloseMs: 10_000 });
    await lcusSwitch(relay.path, 1, a).on();
    expect(a.isOpen(relay.path)).toBe(true);
    const e = await rejection(lcusSwitch(relay.path, 2, b).on());
    expect(e.code).toBe('E_SERIAL_BUSY');
    expect(e.message).toMatch(/in use by another program/);
  });

  it('waits for another process that holds the port, then takes the lock of a killed one', async () => {
    const relay = await lcusRelay();
    const lockDir = tmp('shared-locks-');
    const holder = child(
      `import { PortPool } from '@src/pool.ts';
       const p = new PortPool({ lockDir: ${JSON.stringify(lockDir)}, owner: 'holder-process' });
       await p.use({ path: ${JSON.stringify(relay.path)}, baudRate: 9600 }, async () => {
         console.log('holding');
         await new Promise(() => {});
       });`,
    );
    cleanups.push(() => holder.kill('SIGKILL'));
    await new Promise<void>((resolve, reject) => {
      holder.stdout!.on('data', (d: Buffer) => d.toString().includes('holding') && resolve());
      holder.on('exit', (code) => reject(new Error(`holder exited ${code}`)));
    });
    const p = pool({ lockDir, lockWaitMs: 300 });
    const started = performance.now();
    const e = await rejection(lcusSwitch(relay.path, 1, p).on());
    expect(e.code).toBe('E_SERIAL_BUSY');
    expect(e.message).toMatch(
      new RegExp(`in use by holder-process \\(pid ${holder.pid} on ${hostname()}\\); waited 300 ms`),
    );
    expect(performance.now() - started).toBeLessThan(4000); // the 300 ms wait, not the default one

    // Killed without releasing: its lock file stays, names a dead pid, and is taken over at once.
    holder.kill('SIGKILL');
    await new Promise((r) => holder.once('exit', r));
    const file = lockFileFor(lockDir, realpathSync(relay.path));
    expect(statSync(file).isFile()).toBe(true);
    await lcusSwitch(relay.path, 1, p).on();
    expect(relay.board.states[1]).toBe(true);
  });
});

describe('port lock files', () => {
  it('expires a lock nobody touched for staleMs (a holder on another host), not a live one', async () => {
    const dir = tmp('lock-');
    const file = lockFileFor(dir, '/dev/ttyUSB7');
    const foreign = {
      port: '/dev/ttyUSB7',
      pid: 1,
      host: 'other-host',
      token: 't',
      owner: 'remote run',
      acquiredAt: 0,
    };
    writeFileSync(file, JSON.stringify(foreign));
    const e = await rejection(acquirePortLock('/dev/ttyUSB7', { dir, staleMs: 5000, waitMs: 100 }));
    expect(e.code).toBe('E_SERIAL_BUSY');
    expect(e.message).toMatch(/in use by remote run \(pid 1 on other-host\)/);
    const old = new Date(Date.now() - 6000);
    utimesSync(file, old, old);
    const lock = await acquirePortLock('/dev/ttyUSB7', { dir, staleMs: 5000, waitMs: 100, owner: 'me' });
    expect(lock.info.owner).toBe('me');
    lock.release();
    expect(() => statSync(file)).toThrow();
  });

  it('keeps a held lock fresh, and gives it to the next waiter on release', async () => {
    const dir = tmp('lock-');
    // staleMs well above a loaded machine's event-loop stalls; the heartbeat runs every staleMs / 3.
    const first = await acquirePortLock('/dev/ttyACM0', { dir, staleMs: 1200, owner: 'first' });
    const waiting = acquirePortLock('/dev/ttyACM0', { dir, staleMs: 1200, waitMs: 8000, owner: 'second' });
    // Longer than staleMs: the holder's heartbeat keeps the lock from looking stale.
    await new Promise((r) => setTimeout(r, 2000));
    let settled = false;
    void waiting.then(() => {
      settled = true;
    });
    await new Promise((r) => setTimeout(r, 20));
    expect(settled).toBe(false);
    first.release();
    const second = await waiting;
    expect(second.info.owner).toBe('second');
    second.release();
  });
});

describePty('a relay board that goes away', () => {
  it('fails an exchange in progress at once when the port vanishes, then reports the port missing', async () => {
    const relay = await lcusRelay();
    const p = pool({ idleCloseMs: 10_000 });
    const sw = lcusSwitch(relay.path, 1, p, 5000);
    await sw.on();
    relay.board.faults = { mute: true };
    const pending = rejection(sw.off());
    await new Promise((r) => setTimeout(r, 100));
    const started = performance.now();
    await relay.vanish();
    const e = await pending;
    expect(e.code).toBe('E_SERIAL_GONE');
    expect(e.kind).toBe('infra');
    expect(performance.now() - started).toBeLessThan(1000);
    expect((await rejection(sw.on())).code).toBe('E_SERIAL_NOT_FOUND');
  });
});
