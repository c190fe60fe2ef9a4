import {
  closeSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import { HilError, sysCode } from '../errors.ts';
import { processAlive } from '../util/process.ts';

/**
 * A board lease: no two runs (two processes, two users on a shared host) drive one board at once. The lease
 * is a file created with O_EXCL in the farm's state directory, holding who took it and until when; the holder
 * renews it while it runs, so a lease left by a killed run expires after `ttlMs` (or at once when its process
 * is gone on this host).
 */

export class LeaseError extends HilError {
  constructor(code: string, message: string, details: Record<string, unknown>) {
    super(code, message, { kind: 'infra', details });
  }
}

export interface LeaseInfo {
  board: string;
  pid: number;
  host: string;
  owner: string;
  acquiredAt: number;
  expiresAt: number;
}

export interface Lease {
  readonly info: LeaseInfo;
  release(): void;
}

function readLease(file: string): LeaseInfo | undefined {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as LeaseInfo;
  } catch {
    return undefined;
  }
}

export function leaseFile(stateDir: string, board: string): string {
  return path.join(stateDir, 'leases', `${board}.lease`);
}

/** Whether the lease in `file` is still held by someone (not expired, holder alive if on this host). */
export function leaseHeld(info: LeaseInfo | undefined, now = Date.now()): boolean {
  if (!info) return false;
  if (info.expiresAt <= now) return false;
  if (info.host === hostname() && !processAlive(info.pid)) return false;
  return true;
}

export function acquireLease(
  stateDir: string,
  board: string,
  opts: { owner: string; ttlMs?: number; now?: () => number } = { owner: 'stm32-hil' },
): Lease {
  const ttl = opts.ttlMs ?? 60_000;
  const now = opts.now ?? Date.now;
  const file = leaseFile(stateDir, board);
  mkdirSync(path.dirname(file), { recursive: true });
  for (let attempt = 0; attempt < 3; attempt++) {
    const info: LeaseInfo = {
      board,
      pid: process.pid,
      host: hostname(),
      owner: opts.owner,
      acquiredAt: now(),
      expiresAt: now() + ttl,
    };
    try {
      const fd = openSync(file, 'wx');
      writeSync(fd, JSON.stringify(info));
      closeSync(fd);
      return startRenewal(file, info, ttl, now);
    } catch (e) {
      if (sysCode(e) !== 'EEXIST') {
        throw new LeaseError(
          'E_LEASE_IO',
          `cannot create the lease for board "${board}" at ${file}: ${(e as Error).message}`,
          { file },
        );
      }
    }
    const holder = readLease(file);
    if (leaseHeld(holder, now())) {
      throw new LeaseError(
        'E_BOARD_LEASED',
        `board "${board}" is in use by ${holder!.owner} (pid ${holder!.pid} on ${holder!.host}) until ${new Date(holder!.expiresAt).toISOString()}`,
        { board, holder },
      );
    }
    // Stale: the holder died or let it expire. Move it aside atomically so two takers cannot both remove it.
    try {
      renameSync(file, `${file}.stale-${process.pid}`);
      rmSync(`${file}.stale-${process.pid}`, { force: true });
    } catch {
      // Someone else cleaned it up first; try again.
    }
  }
  throw new LeaseError(
    'E_BOARD_LEASED',
    `board "${board}": could not take the lease (another run keeps taking it)`,
    { board },
  );
}

function startRenewal(file: string, info: LeaseInfo, ttl: number, now: () => number): Lease {
  let released = false;
  const timer = setInterval(
    () => {
      if (released) return;
      info.expiresAt = now() + ttl;
      try {
        writeFileSync(file, JSON.stringify(info));
      } catch {
        // The next renewal tries again; the lease only expires if renewals keep failing.
      }
    },
    Math.max(1000, ttl / 3),
  );
  timer.unref();
  return {
    info,
    release() {
      if (released) return;
      released = true;
      clearInterval(timer);
      const current = readLease(file);
      if (current && current.pid === info.pid && current.acquiredAt === info.acquiredAt)
        rmSync(file, { force: true });
    },
  };
}
