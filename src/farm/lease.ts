import { randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import { HilError } from '../errors.ts';
import { type HeldLockFile, type LockFileInfo, readLockFile, tryLockFile } from '../util/lockfile.ts';

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

export interface LeaseInfo extends LockFileInfo {
  board: string;
  expiresAt: number;
}

export type Lease = HeldLockFile<LeaseInfo>;

export function leaseFile(stateDir: string, board: string): string {
  return path.join(stateDir, 'leases', `${board}.lease`);
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
  const info: LeaseInfo = {
    board,
    pid: process.pid,
    host: hostname(),
    owner: opts.owner,
    token: randomUUID(),
    acquiredAt: now(),
    expiresAt: now() + ttl,
  };
  // A lease lapses at its expiresAt; the holder moves that on every ttl / 3.
  const r = tryLockFile(file, info, {
    lapsed: ({ info: held }) => (held.expiresAt <= now() ? 'expired' : undefined),
    renew: (f, held) => {
      // Never over a lease another run took after ours lapsed in a long stall.
      if (readLockFile<LeaseInfo>(f)?.info?.token !== held.token) return;
      held.expiresAt = now() + ttl;
      writeFileSync(f, JSON.stringify(held));
    },
    renewEveryMs: Math.max(1000, ttl / 3),
    ioError: (e) =>
      new LeaseError(
        'E_LEASE_IO',
        `cannot create the lease for board "${board}" at ${file}: ${(e as Error).message}`,
        { file },
      ),
  });
  if ('lock' in r) return r.lock;
  const holder = r.holder;
  throw new LeaseError(
    'E_BOARD_LEASED',
    holder
      ? `board "${board}" is in use by ${holder.owner} (pid ${holder.pid} on ${holder.host}) until ${new Date(holder.expiresAt).toISOString()}`
      : `board "${board}": could not take the lease (another run keeps taking it)`,
    { board, holder: holder ?? null },
  );
}
