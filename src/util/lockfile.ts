import { closeSync, openSync, readFileSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { sysCode } from '../errors.ts';
import { processAlive } from './process.ts';

/**
 * Exclusive lock files shared by processes and users of one host (and hosts sharing a state directory): the board
 * lease of a run and the lock of a relay board's serial port. A lock file is created with O_EXCL and names its
 * holder; the holder renews it while it holds it, so one left by a killed process lapses (at once when its pid
 * is gone on this host). Written by hand: proper-lockfile and friends lock by directory and mtime only, and
 * cannot tell who holds a lock, which the farm's errors must say.
 */
export interface LockFileInfo {
  pid: number;
  host: string;
  owner: string;
  acquiredAt: number;
  /** Unique per acquisition: a takeover or a release acts only on the lock it judged. */
  token: string;
}

export interface HeldLockFile<I extends LockFileInfo> {
  readonly info: I;
  readonly file: string;
  release(): void;
}

export interface LockFilePolicy<I extends LockFileInfo> {
  /** Why a lock whose holder may still be alive has lapsed (not renewed in time), or undefined. */
  lapsed(held: { info: I; mtimeMs: number }): string | undefined;
  /** Keeps a held lock from lapsing; called every `renewEveryMs`. */
  renew(file: string, info: I): void;
  renewEveryMs: number;
  /** The caller's error for a lock file that cannot be created (not EEXIST). */
  ioError(e: unknown): Error;
}

/** A lock file that cannot be parsed this long after its last write was left half-written by a crash. */
const UNREADABLE_STALE_MS = 5000;

/** The lock in `file`: undefined when there is none; `info` undefined while it cannot be parsed. */
export function readLockFile<I extends LockFileInfo>(
  file: string,
): { info: I | undefined; mtimeMs: number } | undefined {
  let mtimeMs: number;
  try {
    mtimeMs = statSync(file).mtimeMs;
  } catch {
    return undefined;
  }
  try {
    return { info: JSON.parse(readFileSync(file, 'utf8')) as I, mtimeMs };
  } catch {
    return { info: undefined, mtimeMs };
  }
}

function staleReason<I extends LockFileInfo>(
  held: { info: I | undefined; mtimeMs: number },
  policy: LockFilePolicy<I>,
): string | undefined {
  const { info, mtimeMs } = held;
  if (!info) return Date.now() - mtimeMs > UNREADABLE_STALE_MS ? 'unreadable' : undefined;
  if (info.host === hostname() && !processAlive(info.pid)) return `holder pid ${info.pid} is gone`;
  return policy.lapsed({ info, mtimeMs });
}

/**
 * One attempt at the lock in `file` for `info`: the lock, or who holds it. A stale lock is moved aside
 * atomically (one taker wins the rename) and the attempt repeated, at most three times.
 */
export function tryLockFile<I extends LockFileInfo>(
  file: string,
  info: I,
  policy: LockFilePolicy<I>,
): { lock: HeldLockFile<I> } | { holder: I | undefined } {
  let holder: I | undefined;
  for (let takeover = 0; takeover < 3; takeover++) {
    try {
      const fd = openSync(file, 'wx');
      try {
        writeSync(fd, JSON.stringify(info));
      } finally {
        closeSync(fd);
      }
      return { lock: hold(file, info, policy) };
    } catch (e) {
      if (sysCode(e) !== 'EEXIST') throw policy.ioError(e);
    }
    const held = readLockFile<I>(file);
    if (!held) continue; // released meanwhile
    holder = held.info;
    if (!staleReason(held, policy)) return { holder };
    const aside = `${file}.stale-${info.token}`;
    try {
      renameSync(file, aside);
      const moved = readLockFile<I>(aside);
      if (moved && moved.info?.token !== held.info?.token) {
        // Someone took the lock between our read and the rename: give it back.
        try {
          renameSync(aside, file);
        } catch {
          // Gone again; the next round sorts it out.
        }
      } else rmSync(aside, { force: true });
    } catch {
      // Another process cleaned it up first.
    }
  }
  return { holder };
}

function hold<I extends LockFileInfo>(file: string, info: I, policy: LockFilePolicy<I>): HeldLockFile<I> {
  let released = false;
  const timer = setInterval(() => {
    try {
      policy.renew(file, info);
    } catch {
      // Removed under us (a takeover after a long stall), or a passing error the next renewal retries.
    }
  }, policy.renewEveryMs);
  timer.unref();
  return {
    info,
    file,
    release() {
      if (released) return;
      released = true;
      clearInterval(timer);
      if (readLockFile<I>(file)?.info?.token === info.token) rmSync(file, { force: true });
    },
  };
}
