import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { acquireLease, leaseFile } from './lease.ts';

const dir = () => mkdtempSync(path.join(tmpdir(), 'lease-'));

describe('board lease', () => {
  it('lets one holder at a time drive a board, and frees it on release', () => {
    const d = dir();
    const a = acquireLease(d, 'h743', { owner: 'run-a' });
    expect(() => acquireLease(d, 'h743', { owner: 'run-b' })).toThrow(/in use by run-a/);
    expect(acquireLease(d, 'f407', { owner: 'run-b' }).info.board).toBe('f407');
    a.release();
    expect(acquireLease(d, 'h743', { owner: 'run-b' }).info.owner).toBe('run-b');
  });

  it('takes over a lease whose process was killed', () => {
    const d = dir();
    // A process that exits at once leaves a lease naming a pid that no longer exists.
    const child = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']);
    const deadPid = Number(child.stdout.toString());
    acquireLease(d, 'h743', { owner: 'setup' }).release();
    writeFileSync(
      leaseFile(d, 'h743'),
      JSON.stringify({
        board: 'h743',
        pid: deadPid,
        host: hostname(),
        owner: 'killed-run',
        acquiredAt: 0,
        expiresAt: Date.now() + 3_600_000,
      }),
    );
    expect(acquireLease(d, 'h743', { owner: 'next' }).info.owner).toBe('next');
  });

  it('takes over an expired lease from another host, but not a live one', () => {
    const d = dir();
    const write = (expiresAt: number) =>
      writeFileSync(
        leaseFile(d, 'b'),
        JSON.stringify({ board: 'b', pid: 1, host: 'other-host', owner: 'remote', acquiredAt: 0, expiresAt }),
      );
    acquireLease(d, 'b', { owner: 'x' }).release();
    write(Date.now() + 60_000);
    expect(() => acquireLease(d, 'b', { owner: 'me' })).toThrow(/remote \(pid 1 on other-host\)/);
    write(Date.now() - 1);
    expect(acquireLease(d, 'b', { owner: 'me' }).info.owner).toBe('me');
  });
});
