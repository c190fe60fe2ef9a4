import { randomUUID } from 'node:crypto';
import {
  closeSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  utimesSync,
  writeSync,
} from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import path from 'node:path';
import { sysCode } from '../errors.ts';
import { throwIfAborted } from '../util/abort.ts';
import { type Clock, realClock } from '../util/clock.ts';
import { processAlive } from '../util/process.ts';
import { SerialError } from './errors.ts';

/**
 * A lock file per serial port, so two processes of the harness (two runs, a run and a `power` command) never
 * open one relay board at once. It is created with O_EXCL and names its holder; the holder touches it while it
 * holds it, so a lock left by a killed process expires after `staleMs` (at once when its pid is gone on this
 * host). A second line of defence is the flock(2) that serialport takes on the device itself (`lock: true`).
 */

export interface PortLockInfo {
  port: string;
  pid: number;
  host: string;
  token: string;
  owner: string;
  acquiredAt: number;
}

export interface PortLock {
  readonly info: PortLockInfo;
  readonly file: string;
  release(): void;
}

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

function readLock(file: string): { info: PortLockInfo; mtimeMs: number } | undefined {
  try {
    const mtimeMs = statSync(file).mtimeMs;
    return { info: JSON.parse(readFileSync(file, 'utf8')) as PortLockInfo, mtimeMs };
  } catch {
    return undefined;
  }
}

/** Why the lock in `file` is stale, or undefined while its holder is alive. */
export function staleReason(
  held: { info: PortLockInfo; mtimeMs: number } | undefined,
  staleMs: number,
  now = Date.now(),
): string | undefined {
  if (!held) return 'unreadable';
  if (held.info.host === hostname() && !processAlive(held.info.pid))
    return `holder pid ${held.info.pid} is gone`;
  if (now - held.mtimeMs > staleMs) return `not touched for ${Math.round(now - held.mtimeMs)} ms`;
  return undefined;
}

export async function acquirePortLock(port: string, opts: PortLockOptions = {}): Promise<PortLock> {
  const dir = opts.dir ?? defaultLockDir();
  const staleMs = opts.staleMs ?? 15_000;
  const waitMs = opts.waitMs ?? 10_000;
  const pollMs = opts.pollMs ?? 25;
  const clock = opts.clock ?? realClock;
  const file = lockFileFor(dir, port);
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
    try {
      const fd = openSync(file, 'wx');
      try {
        writeSync(fd, JSON.stringify(info));
      } finally {
        closeSync(fd);
      }
      return startHeartbeat(file, info, staleMs);
    } catch (e) {
      if (sysCode(e) !== 'EEXIST') {
        throw new SerialError('E_SERIAL_IO', `cannot create the lock file ${file}: ${(e as Error).message}`, {
          details: { port, file },
          cause: e,
        });
      }
    }
    const held = readLock(file);
    holder = held?.info;
    const stale = held ? staleReason(held, staleMs) : undefined;
    if (stale) {
      // Move it aside atomically (one taker wins the rename), then check we moved the lock we judged stale.
      const aside = `${file}.stale-${info.token}`;
      try {
        renameSync(file, aside);
        const moved = readLock(aside);
        if (moved && moved.info.token !== held!.info.token) {
          // Someone took the port between our read and the rename: give the lock back.
          try {
            renameSync(aside, file);
          } catch {
            // Gone again; the next round sorts it out.
          }
        } else rmSync(aside, { force: true });
      } catch {
        // Another process cleaned it up first.
      }
      continue;
    }
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

function startHeartbeat(file: string, info: PortLockInfo, staleMs: number): PortLock {
  let released = false;
  const timer = setInterval(
    () => {
      try {
        const now = new Date();
        utimesSync(file, now, now);
      } catch {
        // Removed under us (stale takeover after a long stall): nothing to renew.
      }
    },
    Math.max(100, Math.floor(staleMs / 3)),
  );
  timer.unref();
  return {
    info,
    file,
    release() {
      if (released) return;
      released = true;
      clearInterval(timer);
      const current = readLock(file);
      if (current && current.info.token === info.token) rmSync(file, { force: true });
    },
  };
}
