import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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
  pruneAllureResults(opts.resultsDir);
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

interface AllureStep {
  attachments?: { source?: string }[];
  steps?: AllureStep[];
}
interface AllureResultFile extends AllureStep {
  uuid?: string;
  historyId?: string;
  fullName?: string;
  start?: number;
  stop?: number;
}

function attachmentSources(step: AllureStep, into: Set<string>): Set<string> {
  for (const a of step.attachments ?? []) if (a.source) into.add(a.source);
  for (const s of step.steps ?? []) attachmentSources(s, into);
  return into;
}

/**
 * Keeps the newest result of each test (Allure's historyId: test and board) and drops older ones with the
 * attachments only they used. Every run adds its results to the folder; kept forever, a nightly farm's folder
 * grows without bound, report generation slows past its deadline, and Allure shows last week's outcomes as
 * retries of tonight's. The trend lives on in the history file and every outcome in the results store.
 * Safe beside a run still writing: only files a superseded result names are removed.
 */
export function pruneAllureResults(dir: string): { removedResults: number; removedAttachments: number } {
  const newest = new Map<string, { file: string; result: AllureResultFile }>();
  const superseded: { file: string; result: AllureResultFile }[] = [];
  for (const file of readdirSync(dir).filter((f) => f.endsWith('-result.json'))) {
    let result: AllureResultFile;
    try {
      result = JSON.parse(readFileSync(path.join(dir, file), 'utf8')) as AllureResultFile;
    } catch {
      continue; // being written, or not ours to judge
    }
    const key = result.historyId ?? result.fullName;
    if (!key) continue;
    const entry = { file, result };
    const held = newest.get(key);
    const when = (r: AllureResultFile) => r.stop ?? r.start ?? 0;
    if (!held) newest.set(key, entry);
    else if (when(result) > when(held.result)) {
      superseded.push(held);
      newest.set(key, entry);
    } else superseded.push(entry);
  }
  const kept = new Set<string>();
  for (const { result } of newest.values()) attachmentSources(result, kept);
  let removedAttachments = 0;
  for (const { file, result } of superseded) {
    rmSync(path.join(dir, file), { force: true });
    for (const source of attachmentSources(result, new Set())) {
      if (kept.has(source) || path.basename(source) !== source) continue;
      rmSync(path.join(dir, source), { force: true });
      removedAttachments++;
    }
  }
  return { removedResults: superseded.length, removedAttachments };
}
