import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../src/farm/config.ts';
import { openStore } from '../src/results/store.ts';
import { REPO_ROOT } from './paths.ts';
import { runFarm } from './runner.ts';

/** A small virtual farm in a temporary folder: the baseline, the rev V 0x90 board and the 0x92 fix. */
function farm(boards = ['d2', '90', '92'], timeScale = 50): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'farm-'));
  const versions: Record<string, [string, number]> = {
    d2: ['Y', 0xd2],
    '90': ['V', 0x90],
    '92': ['V', 0x92],
  };
  const yaml = [
    `farm: { stateDir: state, reportsDir: reports, timeScale: ${timeScale} }`,
    'knownIssues:',
    '  - id: bank2',
    '    title: bank 2 erase hang',
    '    tests: [bank2-write/page erase and program bank 2]',
    '    bootloaders: [0x90, 0x91]',
    '    source: ST AN2606',
    'boards:',
    ...boards.map((b) => {
      const [rev, bl] = versions[b]!;
      return [
        `  - id: h743-${b}`,
        '    part: stm32h743',
        `    stlink: { serial: TEST${b} }`,
        '    power: { protocol: virtual, channel: 1 }',
        '    boot0: { protocol: virtual, channel: 2 }',
        '    tags: [nightly]',
        `    virtual: { chipRevision: ${rev}, bootloader: ${bl} }`,
      ].join('\n');
    }),
  ].join('\n');
  writeFileSync(path.join(dir, 'boards.yaml'), `${yaml}\n`);
  return path.join(dir, 'boards.yaml');
}

describe('stm32-hil run on a virtual farm', () => {
  it('finds the bank 2 regression on 0x90, known, fixed on 0x92, and the workaround passing everywhere', async () => {
    const config = loadConfig(farm());
    const result = await runFarm({ config, suites: ['bank2-write'], signal: new AbortController().signal });
    const status = (board: string, test: string) =>
      result.outcomes.find((o) => o.board === board && o.test === test)?.status;
    expect(status('h743-d2', 'page erase and program bank 2')).toBe('passed');
    expect(status('h743-90', 'page erase and program bank 2')).toBe('failed');
    expect(status('h743-92', 'page erase and program bank 2')).toBe('passed');
    for (const b of ['h743-d2', 'h743-90', 'h743-92'])
      expect(status(b, 'mass erase then program bank 2')).toBe('passed');
    const verdict = (from: number, to: number, test: string) =>
      result.analysis.comparisons.find(
        (c) => c.baseline === from && c.candidate === to && c.test === `bank2-write/${test}`,
      );
    expect(verdict(0xd2, 0x90, 'page erase and program bank 2')).toMatchObject({
      verdict: 'regression',
      known: true,
    });
    expect(verdict(0x90, 0x92, 'page erase and program bank 2')?.verdict).toBe('fixed');
    expect(verdict(0xd2, 0x90, 'mass erase then program bank 2')?.verdict).toBe('unchanged');
    expect(result.analysis.verdict).toBe('pass');
    // The Allure results agree with the store: the hang is a failed test of the chip, not a broken harness.
    const allure = readdirSync(result.allureResultsDir)
      .filter((f) => f.endsWith('-result.json'))
      .map(
        (f) =>
          JSON.parse(readFileSync(path.join(result.allureResultsDir, f), 'utf8')) as {
            name: string;
            status: string;
            labels: { name: string; value: string }[];
          },
      );
    const allureStatus = (board: string, test: string) =>
      allure.find((r) => r.name === test && r.labels.some((l) => l.name === 'board' && l.value === board))
        ?.status;
    expect(allureStatus('h743-90', 'page erase and program bank 2')).toBe('failed');
    expect(allureStatus('h743-d2', 'page erase and program bank 2')).toBe('passed');
    // Every outcome is in the store, with the board's bootloader version.
    const store = openStore(result.storeFile, { create: false });
    expect(store.outcomes({ runId: result.runId }).filter((o) => o.bootloader === 0x90)).toHaveLength(2);
    store.close();
  });

  it('keeps every finished outcome when killed halfway, and the next run starts cleanly', async () => {
    const file = farm(['d2', '90'], 20);
    const config = loadConfig(file);
    const child = spawn(
      path.join(REPO_ROOT, 'node_modules/.bin/node'),
      [
        path.join(REPO_ROOT, 'bin/stm32-hil.js'),
        '--config',
        file,
        'run',
        '--no-report',
        '--suite',
        'flash-verify,bank2-write,sector-stress',
      ],
      {
        detached: true,
        stdio: 'ignore',
      },
    );
    const dbFile = path.join(config.stateDir, 'results.sqlite');
    // Wait (bounded) for a few outcomes, then kill the run and its vitest workers at once.
    let seen = 0;
    for (let i = 0; i < 600 && seen < 3; i++) {
      await new Promise((r) => setTimeout(r, 100));
      try {
        const s = openStore(dbFile, { create: false });
        seen = s.outcomes().length;
        s.close();
      } catch {
        // Not created yet.
      }
    }
    expect(seen).toBeGreaterThanOrEqual(3);
    process.kill(-child.pid!, 'SIGKILL');
    await new Promise((r) => child.once('exit', r));
    const store = openStore(dbFile, { create: false });
    const kept = store.outcomes();
    expect(kept.length).toBeGreaterThanOrEqual(seen);
    expect(store.latestRun()?.status).toBe('running');
    store.close();
    // The killed run left leases behind; the next run takes them over and finishes.
    expect(readdirSync(path.join(config.stateDir, 'leases')).length).toBeGreaterThan(0);
    const next = await runFarm({ config, suites: ['option-bytes'], signal: new AbortController().signal });
    expect(next.skippedBoards).toEqual([]);
    expect(next.outcomes.filter((o) => o.status !== 'passed')).toEqual([]);
    const after = openStore(dbFile, { create: false });
    const runs = after.runs();
    expect(runs[0]!.status).toBe('interrupted');
    expect(runs.at(-1)!.status).toBe('completed');
    // Nothing the killed run finished was lost.
    expect(after.outcomes({ runId: runs[0]!.id }).length).toBe(kept.length);
    after.close();
  });
});
