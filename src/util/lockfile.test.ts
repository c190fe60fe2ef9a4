import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { type LockFileInfo, type LockFilePolicy, tryLockFile } from './lockfile.ts';

const never: LockFilePolicy<LockFileInfo> = {
  lapsed: () => undefined,
  renew: () => {},
  renewEveryMs: 60_000,
  ioError: (e) => e as Error,
};
const me = (): LockFileInfo => ({
  pid: process.pid,
  host: hostname(),
  owner: 'me',
  acquiredAt: Date.now(),
  token: randomUUID(),
});

describe('lock files', () => {
  it('leaves a half-written lock file alone while it may still be written, and takes it over after 5 s', () => {
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'lockfile-')), 'x.lock');
    writeFileSync(file, '{"pid": 12');
    expect(tryLockFile(file, me(), never)).toEqual({ holder: undefined });
    const old = new Date(Date.now() - 6000);
    utimesSync(file, old, old);
    const r = tryLockFile(file, me(), never);
    expect('lock' in r).toBe(true);
    if ('lock' in r) {
      expect(JSON.parse(readFileSync(file, 'utf8')).token).toBe(r.lock.info.token);
      r.lock.release();
    }
  });

  it('release removes only the lock it holds', () => {
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'lockfile-')), 'y.lock');
    const r = tryLockFile(file, me(), never);
    if (!('lock' in r)) throw new Error('expected the lock');
    const other = { ...me(), owner: 'other' };
    writeFileSync(file, JSON.stringify(other));
    r.lock.release();
    expect(JSON.parse(readFileSync(file, 'utf8')).owner).toBe('other');
  });
});
