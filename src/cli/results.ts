import { existsSync } from 'node:fs';
import path from 'node:path';
import { UsageError } from '../errors.ts';
import type { KnownIssue } from '../farm/schema.ts';
import { generateAllureReport } from '../results/allure.ts';
import { type AnalyseOptions, type Analysis, analyse, type Cell } from '../results/regressions.ts';
import { writeQualificationPage } from '../results/report.ts';
import { defaultStorePath, openStore, type ResultsStore } from '../results/store.ts';
import { hex8, parseNumber } from '../util/hex.ts';
import type { CliContext, RegisterCommands } from './context.ts';

interface CommonOptions {
  db?: string;
  since?: string;
  baseline?: string;
  candidate?: string;
}

function version(flag: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const v = parseNumber(text);
  if (v === undefined || v > 0xff)
    throw new UsageError(`${flag} ${text}: expected a bootloader version byte such as 0x90`);
  return v;
}

/** The store and the known issues: --db wins; boards.yaml is read when it exists (or when no --db). */
function sources(
  ctx: CliContext,
  opts: CommonOptions,
): { db: string; knownIssues: KnownIssue[]; reportsDir?: string } {
  if (opts.db && !existsSync(ctx.configFile())) return { db: opts.db, knownIssues: [] };
  const config = ctx.config();
  return {
    db: opts.db ?? defaultStorePath(config.stateDir),
    knownIssues: config.knownIssues ?? [],
    reportsDir: config.reportsDir,
  };
}

function analyseOptions(opts: CommonOptions, knownIssues: KnownIssue[]): AnalyseOptions {
  return {
    baseline: version('--baseline', opts.baseline),
    candidate: version('--candidate', opts.candidate),
    since: opts.since,
    knownIssues,
  };
}

/** Plain left-aligned columns. */
function columns(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows
    .map((r) => `  ${r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')}`.trimEnd())
    .join('\n');
}

const bl = (v: number | null) => (v === null ? '?' : hex8(v));
const pct = (x: number) => `${Math.round(x * 100)}%`;
const cellText = (c: Cell | undefined) =>
  !c
    ? '-'
    : `${c.failures}/${c.runs} ${pct(c.rate)} [${pct(c.low)}-${pct(c.high)}]${c.flakyBoards.length ? ' flaky' : ''}${c.boardProblems.length ? ' +board' : ''}`;

export function formatAnalysis(a: Analysis): string {
  const out: string[] = [];
  const runs = a.window.runs;
  out.push(
    `Results ${a.store}: ${runs.length ? `${runs.length} run(s), #${runs[0]!.id} (${runs[0]!.startedAt.slice(0, 10)}) to #${runs.at(-1)!.id} (${runs.at(-1)!.startedAt.slice(0, 10)})` : 'no runs'}`,
  );
  if (a.comparisons.length) {
    out.push('', 'Verdicts (baseline -> candidate):');
    out.push(
      columns([
        ['TEST', 'PART', 'VERSIONS', 'VERDICT', 'P', 'WHY'],
        ...a.comparisons.map((c) => [
          c.test,
          c.part,
          `${bl(c.baseline)} -> ${bl(c.candidate)}`,
          `${c.verdict}${c.verdict === 'regression' ? (c.known ? ` (known: ${c.knownIssues.join(', ')})` : ' (UNKNOWN)') : ''}`,
          c.p === null ? '-' : c.p.toPrecision(2),
          c.note,
        ]),
      ]),
    );
  }
  if (a.matrix.length) {
    out.push('', 'Matrix (failures/executions, failure rate [95% interval]):');
    out.push(
      columns([
        ['TEST', ...a.columns.map((c) => c.key)],
        ...a.matrix.map((r) => [r.test, ...a.columns.map((c) => cellText(r.cells[c.key]))]),
      ]),
    );
  }
  if (a.boardProblems.length) {
    out.push('', 'Board problems (failures confined to one board; not counted against the bootloader):');
    out.push(
      columns([
        ['BOARD', 'VERSION', 'TEST', 'FAILED', 'SIBLINGS PASSING', 'KNOWN'],
        ...a.boardProblems.map((b) => [
          b.board,
          `${b.part} ${bl(b.bootloader)}`,
          b.test,
          `${b.failures}/${b.runs}`,
          b.siblings.join(', '),
          b.known ? b.knownIssues.join(', ') : 'UNKNOWN',
        ]),
      ]),
    );
  }
  if (a.nightOverNight.length) {
    out.push('', 'Night over night:');
    out.push(
      columns([
        ['BOARD', 'TEST', 'CHANGE', 'NOTE'],
        ...a.nightOverNight.map((n) => [
          n.board,
          n.test,
          n.change === 'regression'
            ? `passed #${n.previousRun}, fails #${n.run}`
            : `failed #${n.previousRun}, passes #${n.run}`,
          [
            n.boardProblem ? 'board problem' : '',
            n.known ? `known: ${n.knownIssues.join(', ')}` : n.change === 'regression' ? 'UNKNOWN' : '',
          ]
            .filter(Boolean)
            .join('; '),
        ]),
      ]),
    );
  }
  const timed = a.timing.filter((t) => t.verdict !== 'insufficient');
  if (timed.length) {
    out.push('', 'Timing (latest run against the previous runs):');
    out.push(
      columns([
        ['MEASUREMENT', 'BOARD', 'LATEST', 'MEAN', 'LIMIT', 'VERDICT'],
        ...timed.map((t) => [
          t.name,
          t.board,
          `${t.latest?.toPrecision(4)} ${t.unit}`,
          `${t.mean?.toPrecision(4)}`,
          `${t.limit?.toPrecision(4)}`,
          t.verdict === 'regression' && t.known
            ? `regression (known: ${t.knownIssues.join(', ')})`
            : t.verdict,
        ]),
      ]),
    );
  }
  if (a.knownIssues.length) {
    out.push('', 'Known issues:');
    out.push(
      columns([
        ['ID', 'STATUS', 'FAILED', 'SOURCE'],
        ...a.knownIssues.map((k) => [
          k.id,
          k.status === 'possibly-fixed' ? 'possibly fixed' : k.status,
          `${k.failures}/${k.runs}`,
          k.source,
        ]),
      ]),
    );
  }
  out.push('', a.verdict === 'pass' ? 'Verdict: PASS (no unknown regression or failure)' : 'Verdict: FAIL');
  for (const r of a.reasons) out.push(`  - ${r}`);
  return out.join('\n');
}

/** The qualification page and, when there are Allure results, the Allure report with its history. */
export async function writeReports(
  store: ResultsStore,
  reportsDir: string,
  options: AnalyseOptions,
  opts: { allure?: boolean; signal?: AbortSignal } = {},
): Promise<{ file: string; allure: string | undefined; analysis: Analysis }> {
  const { file, analysis } = writeQualificationPage(store, reportsDir, options);
  const resultsDir = path.join(reportsDir, 'allure-results');
  const allure =
    opts.allure !== false && existsSync(resultsDir)
      ? await generateAllureReport({
          resultsDir,
          outDir: path.join(reportsDir, 'allure'),
          historyFile: path.join(reportsDir, 'allure-history.jsonl'),
          ...(opts.signal ? { signal: opts.signal } : {}),
        })
      : undefined;
  return { file, allure, analysis };
}

export const registerResultsCommands: RegisterCommands = (program, ctx) => {
  program
    .command('regressions')
    .description('bootloader regression verdicts from the results store (exit 1 on an unknown regression)')
    .option('--baseline <version>', 'bootloader version to compare against, e.g. 0xD2')
    .option('--candidate <version>', 'bootloader version under test, e.g. 0x90')
    .option('--since <run>', 'only runs from this run id (or date, 2025-01-31) on')
    .option('--db <file>', 'results store (default <stateDir>/results.sqlite of boards.yaml)')
    .action((opts: CommonOptions) => {
      const src = sources(ctx, opts);
      const options = analyseOptions(opts, src.knownIssues);
      const store = openStore(src.db, { create: false });
      try {
        const analysis = analyse(store, options);
        ctx.result(analysis, () => formatAnalysis(analysis));
        if (analysis.unknownRegressions > 0) process.exitCode = 1;
      } finally {
        store.close();
      }
    });

  program
    .command('report')
    .description('write the HTML reports: Allure (<reportsDir>/allure) and the bootloader qualification page')
    .option('--db <file>', 'results store (default <stateDir>/results.sqlite of boards.yaml)')
    .option('--out <dir>', 'reports directory (default reportsDir of boards.yaml)')
    .option('--since <run>', 'only runs from this run id (or date) on')
    .option('--baseline <version>', 'bootloader version to compare against')
    .option('--candidate <version>', 'bootloader version under test')
    .option('--no-allure', 'only the qualification page')
    .action(async (opts: CommonOptions & { out?: string; allure: boolean }) => {
      const src = sources(ctx, opts);
      const options = analyseOptions(opts, src.knownIssues);
      const out = opts.out ?? src.reportsDir;
      if (!out) throw new UsageError('report: pass --out DIR (no boards.yaml to take reportsDir from)');
      const store = openStore(src.db, { create: false });
      try {
        const { file, allure, analysis } = await writeReports(store, out, options, {
          allure: opts.allure,
          signal: ctx.signal,
        });
        ctx.result(
          { file, allure, verdict: analysis.verdict, reasons: analysis.reasons },
          [`qualification page: ${file}`, ...(allure ? [`Allure report:      ${allure}`] : [])].join('\n'),
        );
      } finally {
        store.close();
      }
    });
};
