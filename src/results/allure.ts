import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { execa } from 'execa';
import { HilError } from '../errors.ts';

export interface AllureReportOptions {
  /** allure-vitest's results (`<reportsDir>/allure-results`). */
  resultsDir: string;
  /** Where the HTML report goes (`<reportsDir>/allure`). */
  outDir: string;
  /** History across runs (Allure 3 keeps it in a JSON-lines file). */
  historyFile: string;
  name?: string;
  signal?: AbortSignal;
  deadlineMs?: number;
}

/**
 * Generates the Allure 3 HTML report (the `allure` npm package, offline) from the results of every run, with
 * history kept across runs in `historyFile`.
 */
export async function generateAllureReport(opts: AllureReportOptions): Promise<string> {
  if (!existsSync(opts.resultsDir) || readdirSync(opts.resultsDir).length === 0) {
    throw new HilError('E_REPORT_NO_RESULTS', `no Allure results in ${opts.resultsDir}`, {
      kind: 'input',
      details: { resultsDir: opts.resultsDir },
      hint: 'run `stm32-hil run` (or `npm start`) first',
    });
  }
  mkdirSync(opts.outDir, { recursive: true });
  // The package exports no path to its CLI; it sits beside dist/ in the package folder.
  const cli = path.join(path.dirname(createRequire(import.meta.url).resolve('allure')), '..', 'cli.js');
  const config = path.join(opts.outDir, '..', '.allurerc.mjs');
  writeFileSync(
    config,
    `export default ${JSON.stringify({
      name: opts.name ?? 'stm32-hil',
      output: opts.outDir,
      historyPath: opts.historyFile,
      // One file that opens from disk (no server); tests grouped by board, then suite (labels set by harness/fixtures.ts).
      plugins: {
        awesome: {
          options: {
            reportName: opts.name ?? 'stm32-hil',
            singleFile: true,
            groupBy: ['board', 'hilSuite'],
          },
        },
      },
    })};\n`,
  );
  const run = await execa(process.execPath, [cli, 'generate', opts.resultsDir, '--config', config], {
    reject: false,
    all: true,
    timeout: opts.deadlineMs ?? 120_000,
    ...(opts.signal ? { cancelSignal: opts.signal } : {}),
    forceKillAfterDelay: 2000,
  });
  if (run.exitCode !== 0 || !existsSync(path.join(opts.outDir, 'index.html'))) {
    throw new HilError(
      'E_REPORT_ALLURE',
      `allure generate failed${run.timedOut ? ' (timed out)' : ''}: ${String(run.all ?? '')
        .trim()
        .split('\n')
        .slice(-3)
        .join(' | ')}`,
      {
        kind: 'tool',
        details: { exitCode: run.exitCode },
      },
    );
  }
  return path.join(opts.outDir, 'index.html');
}
