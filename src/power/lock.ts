import { randomUUID } from 'node:crypto';
import { mkdirSync, utimesSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import path from 'node:path';
import { throwIfAborted } from '../util/abort.ts';
import { type Clock, realClock } from '../util/clock.ts';
import { type HeldLockFile, type LockFileInfo, type LockFilePolicy, tryLockFile } from '../util/lockfile.ts';
import { SerialError } from './errors.ts';

/**
 * A lock file per serial port, so two processes of the harness (two runs, a run and a `power` command) never
 * open one relay board at once. It is created with O_EXCL and names its holder; the holder touches it while it
 * holds it, so a lock left by a killed process expires after `staleMs` (at once when its pid is gone on this
 * host). A second line of defence is the flock(2) that serialport takes on the device itself (`lock: true`).
 */

export interface PortLockInfo extends LockFileInfo {
  port: string;
}

export type PortLock = HeldLockFile<PortLockInfo>;

export interface PortLockOptions {
  /** Directory of the lock files; every process on a host must use the same one. */
  dir?: string;
  owner?: string;
  /** A lock not touched for this long is stale (default 15 s; the holder touches it every staleMs / 3). */
  staleMs?: number;
  /** How long to wait for a busy port (default 10 s). */
  waitMs?: number;
  pollMs?: number;
  signal?: AbortSignal;
  clock?: Clock;
}

/** STM32_HIL_LOCK_DIR, else <tmp>/stm32-hil-locks. */
export function defaultLockDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.STM32_HIL_LOCK_DIR ?? path.join(tmpdir(), 'stm32-hil-locks');
}

export function lockFileFor(dir: string, port: string): string {
  return path.join(dir, `${port.replace(/^\/+/, '').replace(/[^A-Za-z0-9._-]/g, '_')}.lock`);
}

/** The relay lock's policy: lapsed when not touched for `staleMs`; the holder touches it every staleMs / 3. */
function portPolicy(port: string, file: string, staleMs: number): LockFilePolicy<PortLockInfo> {
  return {
    lapsed: ({ mtimeMs }) => {
      const idle = Date.now() - mtimeMs;
      return idle > staleMs ? `not touched for ${Math.round(idle)} ms` : undefined;
    },
    renew: (f) => {
      const now = new Date();
      utimesSync(f, now, now);
    },
    renewEveryMs: Math.max(100, Math.floor(staleMs / 3)),
    ioError: (e) =>
      new SerialError('E_SERIAL_IO', `cannot create the lock file ${file}: ${(e as Error).message}`, {
        details: { port, file },
        cause: e,
      }),
  };
}

export async function acquirePortLock(port: string, opts: PortLockOptions = {}): Promise<PortLock> {
  const dir = opts.dir ?? defaultLockDir();
  const staleMs = opts.staleMs ?? 15_000;
  const waitMs = opts.waitMs ?? 10_000;
  const pollMs = opts.pollMs ?? 25;
  const clock = opts.clock ?? realClock;
  const file = lockFileFor(dir, port);
  const policy = portPolicy(port, file, staleMs);
  mkdirSync(dir, { recursive: true });
  const start = clock.now();
  let holder: PortLockInfo | undefined;
  for (let attempt = 0; ; attempt++) {
    throwIfAborted(opts.signal);
    const info: PortLockInfo = {
      port,
      pid: process.pid,
      host: hostname(),
      token: randomUUID(),
      owner: opts.owner ?? `pid ${process.pid}`,
      acquiredAt: Date.now(),
    };
    const r = tryLockFile(file, info, policy);
    if ('lock' in r) return r.lock;
    holder = r.holder;
    if (clock.now() - start >= waitMs) break;
    await clock.sleep(Math.min(pollMs * 2 ** Math.min(attempt, 3), 200), opts.signal);
  }
  throw new SerialError(
    'E_SERIAL_BUSY',
    `serial port ${port} is in use by ${holder ? `${holder.owner} (pid ${holder.pid} on ${holder.host})` : 'another process'}; waited ${waitMs} ms`,
    {
      details: { port, file, holder: holder ?? null },
      hint: `if that process is gone, the lock ${file} expires by itself`,
    },
  );
}
