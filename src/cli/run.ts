import type { OutcomeEvent } from '../../harness/reporters/store-reporter.ts';
import { type RunResult, runFarm } from '../../harness/runner.ts';
import { HilError } from '../errors.ts';
import { openStore } from '../results/store.ts';
import type { RegisterCommands } from './context.ts';
import { formatAnalysis, writeReports } from './results.ts';

const collect = (value: string, previous: string[] = []) => [
  ...previous,
  ...value.split(',').filter(Boolean),
];

const MARK: Record<OutcomeEvent['status'], string> = {
  passed: 'ok',
  failed: 'FAIL',
  broken: 'BROKEN',
  skipped: 'skip',
};

function outcomeLine(o: OutcomeEvent): string {
  const why =
    o.status === 'passed'
      ? ''
      : ` ${o.errorCode ?? ''}${o.knownIssue ? ` (known: ${o.knownIssue})` : ''}${o.message ? `: ${o.message.split('\n')[0]!.slice(0, 160)}` : ''}`;
  return `${o.board.padEnd(14)} ${MARK[o.status].padEnd(6)} ${o.suite}/${o.test} (${o.durationMs} ms)${why}`;
}

/** Board by suite: passed/executed, with markers for failures (known or not) and broken boards. */
export function summaryTable(r: Pick<RunResult, 'outcomes' | 'boards' | 'skippedBoards'>): string {
  const suites = [...new Set(r.outcomes.map((o) => o.suite))].sort();
  const rows = [['BOARD', ...suites]];
  for (const b of r.boards) {
    rows.push([
      b.id,
      ...suites.map((s) => {
        const mine = r.outcomes.filter((o) => o.board === b.id && o.suite === s);
        if (!mine.length) return '-';
        const ran = mine.filter((o) => o.status !== 'skipped');
        if (!ran.length) return 'skipped';
        const passed = ran.filter((o) => o.status === 'passed').length;
        const failedUnknown = ran.some((o) => o.status === 'failed' && !o.knownIssue);
        const broken = ran.some((o) => o.status === 'broken');
        const known = ran.some((o) => o.status !== 'passed' && o.knownIssue);
        return `${passed}/${ran.length}${failedUnknown ? ' FAIL' : ''}${broken ? ' BROKEN' : ''}${known ? ' known' : ''}`;
      }),
    ]);
  }
  for (const s of r.skippedBoards) rows.push([s.id, `skipped: ${s.reason}`]);
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => (row[i] ?? '').length)));
  return rows
    .map((row) =>
      row
        .map((c, i) => c.padEnd(widths[i] ?? 0))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

export const registerRunCommands: RegisterCommands = (program, ctx) => {
  program
    .command('run')
    .description(
      'run the HIL suites on the boards of boards.yaml (in parallel across boards), record and analyse',
    )
    .option('--board <id>', 'only this board (repeat or comma-separate)', collect)
    .option('--suite <name>', 'only this suite (repeat or comma-separate)', collect)
    .option('--tag <tag>', 'only boards carrying this tag (e.g. nightly)', collect)
    .option('--trigger <name>', 'what started the run, recorded with it (nightly, manual, ci)', 'manual')
    .option('--no-report', 'do not write the HTML reports at the end')
    .action(
      async (opts: {
        board?: string[];
        suite?: string[];
        tag?: string[];
        trigger: string;
        report: boolean;
      }) => {
        const config = ctx.config();
        if (!ctx.json) ctx.info(`stm32-hil run: ${config.file}`);
        const result = await runFarm({
          config,
          ...(opts.board ? { boards: opts.board } : {}),
          ...(opts.suite ? { suites: opts.suite } : {}),
          ...(opts.tag ? { tags: opts.tag } : {}),
          trigger: opts.trigger,
          signal: ctx.signal,
          log: (line) => ctx.info(line),
          onOutcome: (o) => {
            if (!ctx.json) ctx.info(outcomeLine(o));
          },
        });
        const unknownFailures = result.outcomes.filter(
          (o) => (o.status === 'failed' || o.status === 'broken') && !o.knownIssue,
        );
        let reports: { file: string; allure: string | undefined } | undefined;
        if (opts.report && result.boards.length) {
          const store = openStore(result.storeFile, { create: false });
          try {
            reports = await writeReports(
              store,
              config.reportsDir,
              { run: result.runId, knownIssues: config.knownIssues ?? [] },
              { signal: ctx.signal },
            );
          } catch (e) {
            // The run's outcomes are stored; a report that cannot be written is said, not fatal.
            ctx.warn(`reports not written: ${e instanceof Error ? e.message : String(e)}`);
          } finally {
            store.close();
          }
        }
        ctx.result(
          {
            run: result.runId,
            store: result.storeFile,
            wallMs: Math.round(result.wallMs),
            outcomes: result.outcomes,
            skippedBoards: result.skippedBoards,
            verdict: result.analysis.verdict,
            reasons: result.analysis.reasons,
            comparisons: result.analysis.comparisons,
            boardProblems: result.analysis.boardProblems,
            reports,
          },
          () =>
            [
              '',
              `Run #${result.runId}: ${result.outcomes.length} outcomes on ${result.boards.length} board(s) in ${(result.wallMs / 1000).toFixed(1)} s`,
              '',
              summaryTable(result),
              '',
              formatAnalysis(result.analysis),
              '',
              `Results:               ${result.storeFile}`,
              ...(reports
                ? [
                    `Qualification report:  ${reports.file}`,
                    ...(reports.allure ? [`Allure report:         ${reports.allure}`] : []),
                  ]
                : [`Reports: run \`stm32-hil report\` to write them from ${result.allureResultsDir}`]),
            ].join('\n'),
        );
        if (result.cancelled)
          throw new HilError(
            'E_CANCELLED',
            `run #${result.runId} was cancelled; finished outcomes are kept`,
            { kind: 'infra' },
          );
        if (result.boards.length === 0) {
          throw new HilError('E_NO_BOARD_RAN', 'no board could be run (all were in use or unavailable)', {
            kind: 'infra',
          });
        }
        process.exitCode = result.analysis.verdict === 'fail' || unknownFailures.length ? 1 : 0;
      },
    );
};
