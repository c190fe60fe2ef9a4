import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openStore, type ResultsStore, SCHEMA_VERSION } from './store.ts';

const NODE = path.resolve('node_modules/.bin/node');
const STORE_TS = new URL('./store.ts', import.meta.url).pathname;

let dir: string;
let file: string;
const open: ResultsStore[] = [];
const openTracked = (...args: Parameters<typeof openStore>) => {
  const s = openStore(...args);
  open.push(s);
  return s;
};

beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'stm32-hil-results-'));
  file = path.join(dir, 'state', 'results.sqlite');
});
afterEach(() => {
  for (const s of open.splice(0)) s.close();
  rmSync(dir, { recursive: true, force: true });
});

const outcome = (runId: number, i: number) => ({
  runId,
  board: 'h743-revV-90',
  part: 'stm32h743',
  chipRevision: 'V',
  bootloader: 0x90,
  suite: 'bank2-write',
  test: `case ${i}`,
  status: 'passed' as const,
});

/** Runs a child Node process with the given module script; resolves with its stdout, stderr and end. */
function child(
  script: string,
  env: Record<string, string>,
): {
  proc: ChildProcess;
  done: Promise<{ stdout: string; stderr: string; signal: NodeJS.Signals | null; code: number | null }>;
} {
  const proc = spawn(NODE, ['--input-type=module', '-e', script], {
    env: { ...process.env, ...env, STORE_TS },
  });
  let stdout = '';
  let stderr = '';
  proc.stdout!.on('data', (d) => {
    stdout += d;
  });
  proc.stderr!.on('data', (d) => {
    stderr += d;
  });
  const done = new Promise<{
    stdout: string;
    stderr: string;
    signal: NodeJS.Signals | null;
    code: number | null;
  }>((resolve) => proc.on('close', (code, signal) => resolve({ stdout, stderr, signal, code })));
  return { proc, done };
}

describe('results store', () => {
  it('round-trips runs, boards, outcomes and measurements across reopening', () => {
    const s = openTracked(file);
    expect(existsSync(`${file}-wal`)).toBe(true);
    const run = s.beginRun({
      host: 'rack-1',
      revision: 'abc123',
      trigger: 'nightly',
      startedAt: '2025-03-01T01:00:00Z',
    });
    expect(run).toMatchObject({
      id: 1,
      status: 'running',
      host: 'rack-1',
      revision: 'abc123',
      trigger: 'nightly',
      interrupted: [],
    });
    s.recordBoard({
      id: 'h743-revV-90',
      part: 'stm32h743',
      chipRevision: 'V',
      bootloader: 0x90,
      host: 'rack-1',
      virtual: true,
    });
    const id = s.recordOutcome({
      ...outcome(run.id, 1),
      status: 'failed',
      durationMs: 2012.5,
      errorCode: 'E_DFU_DEADLINE',
      details: { address: 0x08100000, state: 'dfuDNBUSY' },
      knownIssue: 'h74x-bl90-bank2-erase',
      at: '2025-03-01T01:02:00Z',
    });
    s.recordMeasurement({
      runId: run.id,
      board: 'h743-revV-90',
      part: 'stm32h743',
      bootloader: 0x90,
      name: 'erase_ms',
      value: 912.5,
      unit: 'ms',
    });
    s.finishRun(run.id, { finishedAt: '2025-03-01T01:10:00Z', summary: { passed: 0, failed: 1 } });
    s.close();

    const again = openTracked(file);
    expect(again.runs()).toEqual([
      expect.objectContaining({
        id: 1,
        status: 'completed',
        startedAt: '2025-03-01T01:00:00.000Z',
        finishedAt: '2025-03-01T01:10:00.000Z',
        summary: { passed: 0, failed: 1 },
      }),
    ]);
    expect(again.boards()).toEqual([
      expect.objectContaining({
        id: 'h743-revV-90',
        part: 'stm32h743',
        chipRevision: 'V',
        bootloader: 0x90,
        host: 'rack-1',
        virtual: true,
      }),
    ]);
    expect(again.outcomes()).toEqual([
      {
        id,
        runId: 1,
        board: 'h743-revV-90',
        part: 'stm32h743',
        chipRevision: 'V',
        bootloader: 0x90,
        suite: 'bank2-write',
        test: 'case 1',
        status: 'failed',
        durationMs: 2012.5,
        errorCode: 'E_DFU_DEADLINE',
        details: { address: 0x08100000, state: 'dfuDNBUSY' },
        knownIssue: 'h74x-bl90-bank2-erase',
        recordedAt: '2025-03-01T01:02:00.000Z',
      },
    ]);
    expect(again.measurements()).toEqual([
      expect.objectContaining({
        runId: 1,
        board: 'h743-revV-90',
        name: 'erase_ms',
        value: 912.5,
        unit: 'ms',
        bootloader: 0x90,
      }),
    ]);
    const db = new DatabaseSync(file);
    expect(db.prepare('PRAGMA user_version').get()).toEqual({ user_version: SCHEMA_VERSION });
    expect(db.prepare('PRAGMA journal_mode').get()).toEqual({ journal_mode: 'wal' });
    db.close();
  });

  it('filters outcomes by run, board, bootloader and suite', () => {
    const s = openTracked(file);
    const r1 = s.beginRun();
    s.recordOutcome(outcome(r1.id, 1));
    s.recordOutcome({ ...outcome(r1.id, 2), board: 'h743-revY-d2', bootloader: 0xd2, suite: 'flash' });
    const r2 = s.beginRun();
    s.recordOutcome(outcome(r2.id, 3));
    expect(s.outcomes({ runId: r1.id }).map((o) => o.test)).toEqual(['case 1', 'case 2']);
    expect(s.outcomes({ sinceRun: r2.id }).map((o) => o.test)).toEqual(['case 3']);
    expect(s.outcomes({ bootloader: 0xd2 }).map((o) => o.board)).toEqual(['h743-revY-d2']);
    expect(s.outcomes({ suite: 'bank2-write', board: 'h743-revV-90' })).toHaveLength(2);
  });

  it('rejects bad input and writes nothing of a rejected outcome', () => {
    const s = openTracked(file);
    const run = s.beginRun();
    expect(() => s.recordOutcome({ ...outcome(run.id, 1), status: 'exploded' as 'passed' })).toThrow(
      expect.objectContaining({ code: 'E_RESULTS_INPUT' }),
    );
    expect(() => s.recordOutcome({ ...outcome(run.id, 1), bootloader: 0x190 })).toThrow(
      expect.objectContaining({ code: 'E_RESULTS_INPUT' }),
    );
    expect(() => s.recordOutcome({ ...outcome(999, 1), board: 'ghost' })).toThrow(
      expect.objectContaining({ code: 'E_RESULTS_RUN_UNKNOWN' }),
    );
    expect(() =>
      s.recordMeasurement({
        runId: run.id,
        board: 'b',
        part: 'stm32h743',
        name: 'erase_ms',
        value: Number.NaN,
        unit: 'ms',
      }),
    ).toThrow(expect.objectContaining({ code: 'E_RESULTS_INPUT' }));
    expect(s.outcomes()).toEqual([]);
    expect(s.boards()).toEqual([]);
  });

  it('reports a missing store, a newer schema and a file that is not a database', () => {
    expect(() => openStore(path.join(dir, 'none.sqlite'), { create: false })).toThrow(
      expect.objectContaining({ code: 'E_RESULTS_NOT_FOUND', kind: 'input' }),
    );
    const newer = path.join(dir, 'newer.sqlite');
    const db = new DatabaseSync(newer);
    db.exec('PRAGMA user_version = 99');
    db.close();
    expect(() => openStore(newer)).toThrow(expect.objectContaining({ code: 'E_RESULTS_SCHEMA' }));
    const junk = path.join(dir, 'junk.sqlite');
    writeFileSync(junk, 'this is not a database, just text that is long enough to have a header'.repeat(20));
    expect(() => openStore(junk)).toThrow(expect.objectContaining({ code: 'E_RESULTS_OPEN' }));
  });

  it('resolves --since from a run id or a date', () => {
    const s = openTracked(file);
    s.beginRun({ startedAt: '2025-03-01T01:00:00Z' });
    s.beginRun({ startedAt: '2025-03-02T01:00:00Z' });
    s.beginRun({ startedAt: '2025-03-03T01:00:00Z' });
    expect(s.resolveSince('2')).toBe(2);
    expect(s.resolveSince('2025-03-02')).toBe(2);
    expect(s.resolveSince('2025-03-02T02:00:00Z')).toBe(3);
    expect(s.resolveSince('2026-01-01')).toBe(4);
    expect(() => s.resolveSince(7)).toThrow(
      expect.objectContaining({ code: 'E_RESULTS_RUN_UNKNOWN', kind: 'input' }),
    );
    expect(() => s.resolveSince('yesterday-ish')).toThrow(
      expect.objectContaining({ code: 'E_RESULTS_SINCE' }),
    );
  });

  it('marks runs of dead processes and stale runs of other hosts interrupted, and leaves live runs alone', () => {
    const s = openTracked(file, { staleAfterMs: 3600_000 });
    const deadPid = spawnSync(NODE, ['-e', 'process.pid']).pid!;
    const dead = s.beginRun({ host: os.hostname(), pid: deadPid });
    const live = s.beginRun({ host: os.hostname() });
    const staleElsewhere = s.beginRun({ host: 'rack-2', startedAt: new Date(Date.now() - 2 * 3600_000) });
    const freshElsewhere = s.beginRun({ host: 'rack-3' });
    const next = s.beginRun({ host: os.hostname() });
    // Each beginRun sweeps the runs left before it.
    expect(live.interrupted).toEqual([dead.id]);
    expect(staleElsewhere.interrupted).toEqual([]);
    expect(freshElsewhere.interrupted).toEqual([staleElsewhere.id]);
    expect(next.interrupted).toEqual([]);
    const status = Object.fromEntries(s.runs().map((r) => [r.id, r.status]));
    expect(status).toEqual({
      [dead.id]: 'interrupted',
      [live.id]: 'running',
      [staleElsewhere.id]: 'interrupted',
      [freshElsewhere.id]: 'running',
      [next.id]: 'running',
    });
  });

  it('keeps every finished outcome of a process killed halfway (SIGKILL mid-transaction) and starts the next run cleanly', async () => {
    openTracked(file).close();
    const script = `
      import { writeSync } from 'node:fs';
      import { DatabaseSync } from 'node:sqlite';
      const { openStore } = await import(process.env.STORE_TS);
      const s = openStore(process.env.DB);
      const run = s.beginRun({ trigger: 'killed' });
      for (let i = 0; i < 25; i++) {
        s.recordOutcome({ runId: run.id, board: 'h743-revV-90', part: 'stm32h743', bootloader: 0x90,
          suite: 'bank2-write', test: 'case ' + i, status: i % 5 ? 'passed' : 'failed', durationMs: i });
        writeSync(1, 'done ' + i + '\\n');
      }
      s.recordMeasurement({ runId: run.id, board: 'h743-revV-90', part: 'stm32h743', name: 'erase_ms', value: 900, unit: 'ms' });
      // A 26th outcome is being written when the process dies: its transaction holds the write lock.
      const raw = new DatabaseSync(process.env.DB);
      raw.exec('BEGIN IMMEDIATE');
      raw.prepare("INSERT INTO outcomes (run_id, board_id, part, suite, test, status, recorded_at) VALUES (?, 'h743-revV-90', 'stm32h743', 'bank2-write', 'case 25', 'passed', 'now')").run(run.id);
      writeSync(1, 'dying\\n');
      process.kill(process.pid, 'SIGKILL');
    `;
    const { done } = child(script, { DB: file });
    const r = await done;
    expect(r.signal).toBe('SIGKILL');
    expect(r.stderr).toBe('');
    const confirmed = r.stdout.split('\n').filter((l) => l.startsWith('done '));
    expect(confirmed).toHaveLength(25);
    expect(r.stdout).toContain('dying');

    const s = openTracked(file, { busyTimeoutMs: 2000 });
    const next = s.beginRun({ trigger: 'after the kill' });
    expect(next.interrupted).toEqual([1]);
    expect(s.run(1)?.status).toBe('interrupted');
    const kept = s.outcomes({ runId: 1 });
    expect(kept.map((o) => o.test)).toEqual(Array.from({ length: 25 }, (_, i) => `case ${i}`));
    expect(kept.filter((o) => o.status === 'failed')).toHaveLength(5);
    expect(s.measurements({ runId: 1 })).toHaveLength(1);
    // The next run writes at once (no lock left behind) and finishes.
    s.recordOutcome(outcome(next.id, 100));
    expect(s.finishRun(next.id).status).toBe('completed');
    expect(s.outcomes({ runId: next.id })).toHaveLength(1);
  });

  it('keeps exactly the confirmed outcomes of a writer killed from outside at an arbitrary moment', async () => {
    openTracked(file).close();
    const script = `
      import { writeSync } from 'node:fs';
      const { openStore } = await import(process.env.STORE_TS);
      const s = openStore(process.env.DB);
      const run = s.beginRun();
      for (let i = 0; ; i++) {
        s.recordOutcome({ runId: run.id, board: 'b1', part: 'stm32h743', suite: 's', test: 't' + i, status: 'passed' });
        writeSync(1, 'done ' + i + '\\n');
      }
    `;
    const { proc, done } = child(script, { DB: file });
    let seen = 0;
    proc.stdout!.on('data', (d: Buffer) => {
      seen += String(d)
        .split('\n')
        .filter((l) => l.startsWith('done ')).length;
      if (seen >= 40) proc.kill('SIGKILL');
    });
    const r = await done;
    expect(r.signal).toBe('SIGKILL');
    const confirmed = r.stdout.split('\n').filter((l) => l.startsWith('done ')).length;
    expect(confirmed).toBeGreaterThanOrEqual(40);
    const s = openTracked(file);
    const stored = s.outcomes().map((o) => o.test);
    // Every confirmed write is there, in order; at most one more (committed, not yet confirmed).
    expect(stored.slice(0, confirmed)).toEqual(Array.from({ length: confirmed }, (_, i) => `t${i}`));
    expect(stored.length - confirmed).toBeLessThanOrEqual(1);
    expect(s.beginRun().interrupted).toEqual([1]);
  });

  it('lets several processes write at once without losing an outcome', async () => {
    const s = openTracked(file);
    const run = s.beginRun();
    const script = `
      const { openStore } = await import(process.env.STORE_TS);
      const s = openStore(process.env.DB);
      for (let i = 0; i < 150; i++) {
        s.recordOutcome({ runId: Number(process.env.RUN), board: process.env.BOARD, part: 'stm32h743', suite: 's', test: 't' + i, status: 'passed' });
        s.recordMeasurement({ runId: Number(process.env.RUN), board: process.env.BOARD, part: 'stm32h743', name: 'erase_ms', value: i, unit: 'ms' });
      }
      s.close();
    `;
    const results = await Promise.all(
      ['b1', 'b2', 'b3'].map((board) => child(script, { DB: file, RUN: String(run.id), BOARD: board }).done),
    );
    for (const r of results) expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(s.outcomes({ runId: run.id })).toHaveLength(450);
    expect(s.measurements({ runId: run.id })).toHaveLength(450);
    expect(s.boards().map((b) => b.id)).toEqual(['b1', 'b2', 'b3']);
  });
});
