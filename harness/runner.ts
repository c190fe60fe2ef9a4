import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { startVitest } from 'vitest/node';
import { HilError, UsageError } from '../src/errors.ts';
import type { FarmConfig } from '../src/farm/config.ts';
import { acquireLease, type Lease } from '../src/farm/lease.ts';
import type { BoardConfig } from '../src/farm/schema.ts';
import { type Analysis, analyse } from '../src/results/regressions.ts';
import { defaultStorePath, openStore } from '../src/results/store.ts';
import { REPO_ROOT } from './paths.ts';
import { HilAllureReporter } from './reporters/allure-reporter.ts';
import { type OutcomeEvent, StoreReporter } from './reporters/store-reporter.ts';

export { REPO_ROOT };
export const SUITES_DIR = path.join(REPO_ROOT, 'suites');

/** Values handed to each board's vitest project (`inject()` in harness/board.run.ts). */
export interface BoardProvide {
  board: string;
  configFile: string;
  runId: number;
  suites: string[];
  tags: string[];
  allureResultsDir: string;
  tracesDir: string;
}

declare module 'vitest' {
  interface ProvidedContext extends BoardProvide {}
}

export interface RunOptions {
  config: FarmConfig;
  boards?: string[];
  suites?: string[];
  tags?: string[];
  trigger?: string;
  signal: AbortSignal;
  /** Called with each outcome as soon as it is known (progress lines). */
  onOutcome?: (o: OutcomeEvent) => void;
  log?: (line: string) => void;
}

export interface RunResult {
  runId: number;
  storeFile: string;
  boards: BoardConfig[];
  skippedBoards: Array<{ id: string; reason: string }>;
  outcomes: OutcomeEvent[];
  analysis: Analysis;
  allureResultsDir: string;
  wallMs: number;
  cancelled: boolean;
}

export function availableSuites(): string[] {
  return readdirSync(SUITES_DIR)
    .filter((f) => f.endsWith('.suite.ts'))
    .map((f) => f.replace(/\.suite\.ts$/, ''))
    .sort();
}

function selectBoards(
  config: FarmConfig,
  ids: string[] | undefined,
  tags: string[] | undefined,
): BoardConfig[] {
  let boards = config.boards;
  if (ids?.length) {
    const unknown = ids.filter((id) => !boards.some((b) => b.id === id));
    if (unknown.length) {
      throw new UsageError(`no board ${unknown.map((u) => `"${u}"`).join(', ')} in ${config.file}`, {
        code: 'E_BOARD_UNKNOWN',
        hint: `boards: ${boards.map((b) => b.id).join(', ')}`,
      });
    }
    boards = boards.filter((b) => ids.includes(b.id));
  }
  if (tags?.length) boards = boards.filter((b) => tags.every((t) => b.tags.includes(t)));
  if (boards.length === 0) {
    throw new UsageError(
      `no board of ${config.file} matches${tags?.length ? ` --tag ${tags.join(',')}` : ''}`,
      { code: 'E_NO_BOARDS' },
    );
  }
  return boards;
}

function gitRevision(): string | null {
  try {
    return execFileSync('git', ['rev-parse', '--short=12', 'HEAD'], {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'pipe', 'ignore'],
    })
      .toString()
      .trim();
  } catch {
    return null;
  }
}

/**
 * Runs the suites on the selected boards: one vitest project per board, so boards run in parallel (one worker
 * each) while the tests of one board run in sequence. Every outcome goes to the results store as it happens.
 */
export async function runFarm(opts: RunOptions): Promise<RunResult> {
  const { config } = opts;
  const log = opts.log ?? (() => {});
  const known = availableSuites();
  const suites = opts.suites?.length ? opts.suites : known;
  const unknownSuites = suites.filter((s) => !known.includes(s));
  if (unknownSuites.length) {
    throw new UsageError(`unknown suite ${unknownSuites.join(', ')}`, {
      code: 'E_SUITE_UNKNOWN',
      hint: `suites: ${known.join(', ')}`,
    });
  }
  const selected = selectBoards(config, opts.boards, opts.tags);

  const storeFile = defaultStorePath(config.stateDir);
  const store = openStore(storeFile);
  const run = store.beginRun({ revision: gitRevision(), trigger: opts.trigger ?? 'manual' });
  if (run.interrupted.length)
    log(
      `results: run${run.interrupted.length > 1 ? 's' : ''} ${run.interrupted.map((r) => `#${r}`).join(', ')} had been interrupted; kept what they finished`,
    );
  const allureResultsDir = path.join(config.reportsDir, 'allure-results');
  const tracesDir = path.join(config.reportsDir, 'traces', `run-${run.id}`);
  mkdirSync(allureResultsDir, { recursive: true });
  mkdirSync(tracesDir, { recursive: true });

  // Leases first: a board another run is driving is skipped (and said so), the others go on.
  const leases: Lease[] = [];
  const skippedBoards: RunResult['skippedBoards'] = [];
  const boards: BoardConfig[] = [];
  for (const b of selected) {
    try {
      leases.push(acquireLease(config.stateDir, b.id, { owner: `stm32-hil run #${run.id}`, ttlMs: 120_000 }));
      boards.push(b);
      store.recordBoard({
        id: b.id,
        part: b.part,
        chipRevision: b.virtual?.chipRevision ?? b.expect?.chipRevision ?? null,
        bootloader: b.virtual?.bootloader ?? b.expect?.bootloader ?? null,
        host: b.host ?? null,
        virtual: Boolean(b.virtual),
      });
    } catch (e) {
      skippedBoards.push({ id: b.id, reason: e instanceof HilError ? e.message : String(e) });
      log(`board ${b.id}: skipped: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  const reporter = new StoreReporter({
    store,
    runId: run.id,
    boards,
    knownIssues: config.knownIssues ?? [],
    ...(opts.onOutcome ? { onOutcome: opts.onOutcome } : {}),
  });
  const started = performance.now();
  let cancelled = false;
  let status: 'completed' | 'cancelled' | 'error' = 'completed';
  try {
    if (boards.length) {
      const vitest = await startVitest(
        'test',
        [],
        {
          root: REPO_ROOT,
          config: false,
          watch: false,
          pool: 'forks',
          maxWorkers: Math.min(boards.length, 64),
          testTimeout: config.deadlines?.operationMs ?? 600_000,
          hookTimeout: config.deadlines?.operationMs ?? 600_000,
          reporters: [reporter, new HilAllureReporter({ resultsDir: allureResultsDir })],
          projects: boards.map((b) => ({
            test: {
              name: b.id,
              root: REPO_ROOT,
              include: ['harness/board.run.ts'],
              provide: {
                board: b.id,
                configFile: config.file,
                runId: run.id,
                suites,
                tags: opts.tags ?? [],
                allureResultsDir,
                tracesDir,
              } satisfies BoardProvide,
            },
          })),
        },
        { logLevel: 'silent' },
      );
      const onAbort = () => {
        cancelled = true;
        void vitest?.cancelCurrentRun('keyboard-input');
      };
      opts.signal.addEventListener('abort', onAbort, { once: true });
      try {
        await vitest?.close();
      } finally {
        opts.signal.removeEventListener('abort', onAbort);
      }
      if (cancelled) status = 'cancelled';
    }
  } catch (e) {
    status = 'error';
    throw e;
  } finally {
    for (const l of leases) l.release();
    const counts = Object.fromEntries(
      ['passed', 'failed', 'broken', 'skipped'].map((s) => [
        s,
        reporter.outcomes.filter((o) => o.status === s).length,
      ]),
    );
    store.finishRun(run.id, {
      status,
      summary: { ...counts, boards: boards.map((b) => b.id), skippedBoards },
    });
  }
  const analysis = analyse(store, { run: run.id, knownIssues: config.knownIssues ?? [] });
  store.close();
  return {
    runId: run.id,
    storeFile,
    boards,
    skippedBoards,
    outcomes: reporter.outcomes,
    analysis,
    allureResultsDir,
    wallMs: performance.now() - started,
    cancelled,
  };
}
