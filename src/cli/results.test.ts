import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { openStore } from '../results/store.ts';
import { recordSyntheticNights, SYNTHETIC_KNOWN_ISSUES } from '../results/synthetic.ts';
import { main } from './main.ts';

function sink() {
  let text = '';
  const stream = new Writable({
    write(chunk, _enc, cb) {
      text += String(chunk);
      cb();
    },
  });
  return { stream, text: () => text };
}

async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out = sink();
  const err = sink();
  try {
    const code = await main(argv, { stdout: out.stream, stderr: err.stream });
    return { code, out: out.text(), err: err.text() };
  } finally {
    // `regressions` reports an unknown regression through process.exitCode, as main() expects.
    process.exitCode = undefined;
  }
}

let dir: string;
let config: string;
let db: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'stm32-hil-cli-results-'));
  config = path.join(dir, 'boards.yaml');
  db = path.join(dir, 'state', 'results.sqlite');
  writeFileSync(
    config,
    stringify({
      farm: { stateDir: 'state', reportsDir: 'out' },
      knownIssues: SYNTHETIC_KNOWN_ISSUES,
      boards: [{ id: 'h743-revY-d2', part: 'stm32h743', virtual: { chipRevision: 'Y', bootloader: 0xd2 } }],
    }),
  );
  const store = openStore(db, { synchronous: 'normal' });
  recordSyntheticNights(store, 5);
  store.close();
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('stm32-hil regressions', () => {
  it('prints verdicts, matrix and known issues from the store of boards.yaml, exit 0 when all is known', async () => {
    const r = await cli('regressions', '--config', config);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/bank2\/write\s+STM32H743\s+0xD2 -> 0x90\s+regression \(known: h7-bank2-erase\)/);
    expect(r.out).toMatch(/bank2\/write\s+STM32H743\s+0x90 -> 0x92\s+fixed/);
    expect(r.out).toMatch(/bank2\/mass-erase-workaround\s+STM32H743\s+0xD2 -> 0x90\s+unchanged/);
    expect(r.out).toMatch(
      /h743-custom\s+STM32H743 0xD2\s+flash\/full-image\s+5\/5\s+h743-revy-d2\s+custom-weak-bits/,
    );
    expect(r.out).toMatch(/d2-enumeration-glitch\s+possibly fixed/);
    expect(r.out).toContain('Verdict: PASS');
  });

  it('exits 1 on an unknown regression (no known issues with --db and no boards.yaml)', async () => {
    const r = await cli('regressions', '--db', db, '--config', path.join(dir, 'none.yaml'));
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/0xD2 -> 0x90\s+regression \(UNKNOWN\)/);
    expect(r.out).toContain('Verdict: FAIL');
  });

  it('gives JSON with --json and narrows to --baseline/--candidate and --since', async () => {
    const r = await cli(
      'regressions',
      '--config',
      config,
      '--json',
      '--baseline',
      '0xD2',
      '--candidate',
      '0x90',
      '--since',
      '2',
    );
    expect(r.code).toBe(0);
    const a = JSON.parse(r.out);
    expect(a.window.since).toBe(2);
    expect(
      new Set(
        a.comparisons.map((c: { baseline: number; candidate: number }) => `${c.baseline}>${c.candidate}`),
      ),
    ).toEqual(new Set(['210>144']));
    expect(a.comparisons.find((c: { test: string }) => c.test === 'bank2/write')).toMatchObject({
      verdict: 'regression',
      known: true,
    });
  });

  it('reports usage and missing-store mistakes without a stack trace', async () => {
    const bad = await cli('regressions', '--config', config, '--baseline', '0x1ZZ');
    expect(bad.code).toBe(2);
    expect(bad.err).toBe(
      'stm32-hil: error E_USAGE: --baseline 0x1ZZ: expected a bootloader version byte such as 0x90\n',
    );
    const missing = await cli(
      'regressions',
      '--db',
      path.join(dir, 'nope.sqlite'),
      '--config',
      path.join(dir, 'none.yaml'),
    );
    expect(missing.code).toBe(2);
    expect(missing.err).toMatch(
      /^stm32-hil: error E_RESULTS_NOT_FOUND: .*nope\.sqlite: no results store yet\n {2}hint: /,
    );
    const since = await cli('regressions', '--config', config, '--since', '42');
    expect(since.code).toBe(2);
    expect(since.err).toContain('E_RESULTS_RUN_UNKNOWN');
  });
});

describe('stm32-hil report', () => {
  it('writes the qualification page under reportsDir and prints its path', async () => {
    const r = await cli('report', '--config', config);
    const file = path.join(dir, 'out', 'qualification', 'index.html');
    expect(r).toMatchObject({ code: 0, err: '' });
    expect(r.out).toBe(`qualification page: ${file}\n`);
    expect(readFileSync(file, 'utf8')).toContain('<table id="matrix">');
  });

  it('honours --out and --json', async () => {
    const out = path.join(dir, 'elsewhere');
    const r = await cli('report', '--config', config, '--out', out, '--json');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toEqual({
      file: path.join(out, 'qualification', 'index.html'),
      verdict: 'pass',
      reasons: [],
    });
    expect(existsSync(path.join(out, 'qualification', 'index.html'))).toBe(true);
  });
});
