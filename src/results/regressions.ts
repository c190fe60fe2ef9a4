import type { KnownIssue } from '../farm/schema.ts';
import { findPart } from '../parts/catalogue.ts';
import { hex8 } from '../util/hex.ts';
import { fisherExact, meanSd, wilson } from './stats.ts';
import {
  type MeasurementRow,
  type OutcomeCount,
  type OutcomeRow,
  ResultsError,
  type ResultsStore,
  type RunRow,
} from './store.ts';

/**
 * Bootloader regression analysis over the results store.
 *
 * Rules (each is a documented choice; the report prints them too):
 * - Counting: every recorded outcome of a test is one execution; `failed` and `broken` count as failures,
 *   `skipped` is not counted. The matrix cell is (test, part, bootloader version).
 * - Board problem: in one (test, part, bootloader) group, a board whose failures are not shared by its
 *   siblings (other boards with the same part and bootloader that ran the test and never failed it), and
 *   either fails at least half of its executions or differs from the siblings by Fisher's exact test
 *   (p < alpha). Its outcomes are then taken out of the bootloader's cell and reported as a board problem.
 *   With no sibling there is no way to tell a board from its bootloader: the failure stays with the
 *   version (the report says so).
 * - Comparison of baseline B and candidate C for a test (same part): with no data on one side,
 *   `insufficient`. Regression when C fails more than B and either Fisher's exact test gives p < alpha,
 *   or B passed every execution and C failed every execution with at least `minRuns` on each side
 *   (ROM bootloader bugs are deterministic; a one-off glitch shows up later as flaky). Fixed is the mirror
 *   image. Otherwise `flaky` when some board both passed and failed the test on C, `unchanged` when the
 *   failure rates are equal (all pass or all fail on both), else `insufficient` (a difference too small
 *   for the data so far).
 * - Default comparisons: each version against the one released before it, per part (release order from
 *   ST AN2606 where known, else numeric). `--baseline` alone compares every other version with it;
 *   `--candidate` alone compares it with its predecessor.
 * - Night-over-night: a test that passed on the previous run of the same board and bootloader and fails
 *   on the board's latest run.
 * - Timing: per (board, bootloader, measurement), the latest run's mean against the previous runs' means
 *   (the last `historyRuns`, at least `minHistory`): worse than both mean + sigmas·sd and
 *   max·(1 + margin) (lower is better for times; mirrored for throughput) is a timing regression. The margin keeps a
 *   perfectly steady series (sd = 0) from flagging noise.
 * - Known issues (boards.yaml `knownIssues:`): a failure in an issue's scope (tests by `suite/test`,
 *   a `suite` or `suite/test` prefix followed by `/`, or a prefix ending in `*`; parts; bootloaders;
 *   boards) is known. An issue reproduced when a failure in its scope is in the latest execution of its
 *   (board, test); possibly fixed when its tests ran and passed there. An issue's `measurements:` make a
 *   timing regression of those measurements in its scope known the same way.
 * - Verdict: `fail` on an unknown regression (comparison, night-over-night other than on a board
 *   problem, timing) or on a failure not listed as known in the judged run (`run`, default each board's
 *   latest run). An unknown board problem thus fails the verdict without counting as a regression.
 */

export type Verdict = 'regression' | 'fixed' | 'flaky' | 'unchanged' | 'insufficient';

export interface TimingRule {
  /** How many previous runs form the spread (default 20). */
  historyRuns: number;
  /** Fewer previous runs than this: no verdict (default 3). */
  minHistory: number;
  /** Standard deviations beyond the mean (default 3). */
  sigmas: number;
  /** Relative margin beyond the previous extreme (default 0.1 = 10%). */
  margin: number;
}

export interface AnalyseOptions {
  baseline?: number;
  candidate?: number;
  /** A run id, or a date: the matrix covers runs from there on (default: every run). */
  since?: number | string;
  knownIssues?: readonly KnownIssue[];
  /**
   * The run being judged (what `stm32-hil run` just did): night-over-night, timing and the failures that
   * decide the verdict come from this run only. Default: each board's latest run.
   */
  run?: number;
  /** Significance level (default 0.05). */
  alpha?: number;
  /** Executions needed on each side for the all-pass vs all-fail rule (default 1). */
  minRuns?: number;
  timing?: Partial<TimingRule>;
}

export interface Column {
  /** `STM32H743 0x90` */
  key: string;
  part: string;
  bootloader: number | null;
  boards: string[];
}

export interface Cell {
  runs: number;
  passed: number;
  failures: number;
  skipped: number;
  /** Failure rate and its Wilson 95% interval. */
  rate: number;
  low: number;
  high: number;
  boards: string[];
  /** Boards that both passed and failed this test on this version. */
  flakyBoards: string[];
  /** Boards whose failures were attributed to the board and left out of the counts above. */
  boardProblems: string[];
  /** Known issues matching the failures counted here. */
  knownIssues: string[];
  /** Failures not covered by a known issue. */
  unknownFailures: number;
}

export interface MatrixRow {
  /** `suite/test` */
  test: string;
  cells: Record<string, Cell>;
}

export interface Comparison {
  test: string;
  part: string;
  baseline: number;
  candidate: number;
  before: Cell | null;
  after: Cell | null;
  verdict: Verdict;
  /** Fisher's exact two-sided p (null when a side has no data). */
  p: number | null;
  basis: 'fisher' | 'all-or-nothing' | null;
  /** For a regression: every failure on the candidate is a known issue. */
  known: boolean;
  knownIssues: string[];
  note: string;
}

export interface BoardProblem {
  board: string;
  part: string;
  bootloader: number | null;
  test: string;
  runs: number;
  failures: number;
  siblings: string[];
  siblingRuns: number;
  p: number;
  errorCodes: string[];
  known: boolean;
  knownIssues: string[];
}

export interface NightChange {
  board: string;
  part: string;
  bootloader: number | null;
  test: string;
  previousRun: number;
  run: number;
  change: 'regression' | 'fixed';
  errorCode: string | null;
  boardProblem: boolean;
  known: boolean;
  knownIssues: string[];
}

export interface TimingPoint {
  run: number;
  startedAt: string;
  value: number;
}

export interface TimingSeries {
  board: string;
  part: string | null;
  bootloader: number | null;
  name: string;
  unit: string;
  better: 'lower' | 'higher';
  points: TimingPoint[];
  verdict: 'regression' | 'improved' | 'ok' | 'insufficient';
  latest: number | null;
  mean: number | null;
  sd: number | null;
  /** The bound the latest value crossed (or would have to cross) to be a regression. */
  limit: number | null;
  /** A regression here is expected: known issues whose `measurements:` cover this series. */
  known: boolean;
  knownIssues: string[];
}

export interface KnownIssueStatus {
  id: string;
  title: string;
  source: string;
  status: 'reproduced' | 'possibly-fixed' | 'not-run';
  runs: number;
  failures: number;
  boards: string[];
  lastRun: number | null;
}

export interface LatestFailure {
  run: number;
  board: string;
  part: string;
  bootloader: number | null;
  test: string;
  status: 'failed' | 'broken';
  errorCode: string | null;
  boardProblem: boolean;
  known: boolean;
  knownIssues: string[];
}

export interface Analysis {
  generatedAt: string;
  store: string;
  window: { since: number | null; runs: RunRow[] };
  rules: { alpha: number; minRuns: number; timing: TimingRule };
  columns: Column[];
  matrix: MatrixRow[];
  comparisons: Comparison[];
  boardProblems: BoardProblem[];
  nightOverNight: NightChange[];
  timing: TimingSeries[];
  knownIssues: KnownIssueStatus[];
  latestFailures: LatestFailure[];
  /** Regressions not covered by a known issue (comparisons, night-over-night, timing). */
  unknownRegressions: number;
  /** `fail` when an unknown regression or an unknown failure in a board's latest run was found. */
  verdict: 'pass' | 'fail';
  reasons: string[];
}

/** Canonical part name (`stm32h743zi` and `STM32H753` both become the catalogue's entry name). */
export function partName(part: string): string {
  return findPart(part)?.name ?? part.toUpperCase();
}

export function testKey(o: { suite: string; test: string }): string {
  return `${o.suite}/${o.test}`;
}

export function columnKey(part: string, bootloader: number | null): string {
  return `${partName(part)} ${bootloader === null ? '?' : hex8(bootloader)}`;
}

// Release order of ROM bootloader versions, oldest first. ST AN2606, STM32H74xxx/75xxx bootloader
// versions table: V13.2 (0xD2) and V13.3 (0xD3) on rev Y, then V9.0 (0x90), V9.1 (0x91), V9.2 (0x92).
const RELEASE_ORDER: Record<string, readonly number[]> = {
  STM32H743: [0xd2, 0xd3, 0x90, 0x91, 0x92],
  STM32H747: [0xd2, 0xd3, 0x90, 0x91, 0x92],
};

/** Sorts versions of one part oldest first (AN2606 release order where known, else numeric). */
export function releaseOrder(part: string, versions: readonly number[]): number[] {
  const order = RELEASE_ORDER[partName(part)] ?? [];
  const rank = (v: number) => {
    const i = order.indexOf(v);
    return i < 0 ? order.length + v : i;
  };
  return [...new Set(versions)].sort((a, b) => rank(a) - rank(b));
}

function matchesTest(key: string, pattern: string): boolean {
  if (pattern.endsWith('*')) return key.startsWith(pattern.slice(0, -1));
  return key === pattern || key.startsWith(pattern.endsWith('/') ? pattern : `${pattern}/`);
}

/** Known issues whose scope covers this outcome. */
export function matchKnownIssues(
  issues: readonly KnownIssue[],
  o: { board: string; part: string; bootloader: number | null; suite: string; test: string },
): KnownIssue[] {
  const key = testKey(o);
  const part = partName(o.part);
  return issues.filter((k) => (k.tests ?? []).some((t) => matchesTest(key, t)) && inIssueScope(k, o, part));
}

/** Known issues whose scope covers this timing series (a measurement on a board and bootloader). */
export function matchKnownTiming(
  issues: readonly KnownIssue[],
  t: { board: string; part: string | null; bootloader: number | null; name: string },
): KnownIssue[] {
  const part = t.part === null ? null : partName(t.part);
  return issues.filter(
    (k) =>
      (k.measurements ?? []).some((m) =>
        m.endsWith('*') ? t.name.startsWith(m.slice(0, -1)) : t.name === m,
      ) && inIssueScope(k, t, part),
  );
}

function inIssueScope(
  k: KnownIssue,
  o: { board: string; bootloader: number | null },
  part: string | null,
): boolean {
  return (
    (!k.parts?.length || (part !== null && k.parts.some((p) => partName(p) === part))) &&
    (!k.bootloaders?.length || (o.bootloader !== null && k.bootloaders.includes(o.bootloader))) &&
    (!k.boards?.length || k.boards.includes(o.board))
  );
}

function knownIds(issues: readonly KnownIssue[], o: OutcomeRow): string[] {
  const ids = matchKnownIssues(issues, o).map((k) => k.id);
  if (o.knownIssue && !ids.includes(o.knownIssue)) ids.push(o.knownIssue);
  return ids;
}

function groupBy<T>(items: readonly T[], key: (t: T) => string): Map<string, T[]> {
  const m = new Map<string, T[]>();
  for (const it of items) {
    const k = key(it);
    const list = m.get(k);
    if (list) list.push(it);
    else m.set(k, [it]);
  }
  return m;
}

const sortedUnique = (xs: Iterable<string>) => [...new Set(xs)].sort();

function emptyCell(): Cell {
  return {
    runs: 0,
    passed: 0,
    failures: 0,
    skipped: 0,
    rate: 0,
    low: 0,
    high: 1,
    boards: [],
    flakyBoards: [],
    boardProblems: [],
    knownIssues: [],
    unknownFailures: 0,
  };
}

function compare(
  before: Cell | null,
  after: Cell | null,
  alpha: number,
  minRuns: number,
): Pick<Comparison, 'verdict' | 'p' | 'basis' | 'note'> {
  if (!before?.runs || !after?.runs) {
    return {
      verdict: 'insufficient',
      p: null,
      basis: null,
      note: `no executions on the ${before?.runs ? 'candidate' : 'baseline'}`,
    };
  }
  const p = fisherExact(before.failures, before.passed, after.failures, after.passed);
  const rates = `${before.failures}/${before.runs} → ${after.failures}/${after.runs} failed`;
  const allOrNothing = (clean: Cell, broken: Cell) =>
    clean.failures === 0 &&
    broken.failures === broken.runs &&
    clean.runs >= minRuns &&
    broken.runs >= minRuns;
  if (after.rate > before.rate) {
    if (p < alpha)
      return { verdict: 'regression', p, basis: 'fisher', note: `${rates}, p = ${p.toPrecision(2)}` };
    if (allOrNothing(before, after))
      return {
        verdict: 'regression',
        p,
        basis: 'all-or-nothing',
        note: `${rates}: passes every time on the baseline, fails every time on the candidate`,
      };
  } else if (after.rate < before.rate) {
    if (p < alpha) return { verdict: 'fixed', p, basis: 'fisher', note: `${rates}, p = ${p.toPrecision(2)}` };
    if (allOrNothing(after, before))
      return {
        verdict: 'fixed',
        p,
        basis: 'all-or-nothing',
        note: `${rates}: fails every time on the baseline, passes every time on the candidate`,
      };
  }
  if (after.flakyBoards.length)
    return {
      verdict: 'flaky',
      p,
      basis: null,
      note: `${rates}; fails sometimes on ${after.flakyBoards.join(', ')}`,
    };
  if (after.rate === before.rate)
    return {
      verdict: 'unchanged',
      p,
      basis: null,
      note: after.failures ? `${rates}: fails on both` : `${rates}: passes on both`,
    };
  return {
    verdict: 'insufficient',
    p,
    basis: null,
    note: `${rates}: not significant (p = ${p.toPrecision(2)}); more runs needed`,
  };
}

function direction(name: string, unit: string): 'lower' | 'higher' {
  return /\/s$|per.?s(ec)?$|throughput|_s$|bps$/i.test(`${unit} ${name}`) && !/^(ms|s|us|µs)$/i.test(unit)
    ? 'higher'
    : 'lower';
}

/** Runs the analysis described at the top of this file over the store. */
export function analyse(store: ResultsStore, options: AnalyseOptions = {}): Analysis {
  const alpha = options.alpha ?? 0.05;
  const minRuns = options.minRuns ?? 1;
  const timingRule: TimingRule = {
    historyRuns: 20,
    minHistory: 3,
    sigmas: 3,
    margin: 0.1,
    ...options.timing,
  };
  const issues = options.knownIssues ?? [];
  const since = options.since === undefined ? null : store.resolveSince(options.since);
  const allRuns = store.runs();
  const runs = allRuns.filter((r) => r.id >= (since ?? 0));
  const runById = new Map(allRuns.map((r) => [r.id, r]));
  if (options.run !== undefined && !runById.has(options.run)) {
    throw new ResultsError('E_RESULTS_RUN_UNKNOWN', `no run ${options.run} in ${store.file}`, {
      details: { runId: options.run },
    });
  }

  // SQLite does the counting; only failures come back one by one (they are few).
  const counts = store.outcomeCounts({ sinceRun: since ?? 0 });
  const failures = store.outcomes({ sinceRun: since ?? 0, statuses: ['failed', 'broken'] });
  const latestRunOfBoard = store.latestRunOfBoards();

  const col = (o: { part: string; bootloader: number | null }) => columnKey(o.part, o.bootloader);
  const groupKey = (o: { suite: string; test: string; part: string; bootloader: number | null }) =>
    `${testKey(o)}\u0000${col(o)}`;
  const boardKey = (o: {
    suite: string;
    test: string;
    part: string;
    bootloader: number | null;
    board: string;
  }) => `${groupKey(o)}\u0000${o.board}`;
  const failuresOf = groupBy(failures, boardKey);

  // Per group, per board: executions, failures, passes (a board may appear under two spellings of a part).
  interface BoardCount {
    board: string;
    runs: number;
    failures: number;
    passed: number;
    skipped: number;
  }
  const groups = new Map<string, { sample: OutcomeCount; boards: Map<string, BoardCount> }>();
  for (const c of counts) {
    const gk = groupKey(c);
    const g = groups.get(gk) ?? { sample: c, boards: new Map<string, BoardCount>() };
    const b = g.boards.get(c.board) ?? { board: c.board, runs: 0, failures: 0, passed: 0, skipped: 0 };
    b.runs += c.runs;
    b.failures += c.failures;
    b.passed += c.passed;
    b.skipped += c.skipped;
    g.boards.set(c.board, b);
    groups.set(gk, g);
  }

  const boardProblems: BoardProblem[] = [];
  const problemKeys = new Set<string>();
  for (const [gk, { sample, boards }] of groups) {
    const ran = [...boards.values()].filter((b) => b.runs > 0);
    for (const own of ran) {
      if (own.failures === 0) continue;
      const siblings = ran.filter((b) => b.board !== own.board);
      if (!siblings.length || siblings.some((b) => b.failures > 0)) continue;
      const sibRuns = siblings.reduce((s, b) => s + b.runs, 0);
      const p = fisherExact(own.failures, own.runs - own.failures, 0, sibRuns);
      if (!(p < alpha || 2 * own.failures >= own.runs)) continue;
      const failing = failuresOf.get(`${gk}\u0000${own.board}`) ?? [];
      const ids = failing.map((o) => knownIds(issues, o));
      problemKeys.add(`${gk}\u0000${own.board}`);
      boardProblems.push({
        board: own.board,
        part: partName(sample.part),
        bootloader: sample.bootloader,
        test: testKey(sample),
        runs: own.runs,
        failures: own.failures,
        siblings: siblings.map((b) => b.board).sort(),
        siblingRuns: sibRuns,
        p,
        errorCodes: sortedUnique(failing.map((o) => o.errorCode ?? '').filter(Boolean)),
        known: ids.every((x) => x.length > 0),
        knownIssues: sortedUnique(ids.flat()),
      });
    }
  }
  boardProblems.sort((x, y) => x.board.localeCompare(y.board) || x.test.localeCompare(y.test));
  const isBoardProblem = (o: {
    suite: string;
    test: string;
    part: string;
    bootloader: number | null;
    board: string;
  }) => problemKeys.has(boardKey(o));

  // Columns and matrix.
  const columnMap = new Map<string, Column>();
  for (const c of counts) {
    const key = col(c);
    const column = columnMap.get(key) ?? {
      key,
      part: partName(c.part),
      bootloader: c.bootloader,
      boards: [],
    };
    if (!column.boards.includes(c.board)) column.boards.push(c.board);
    columnMap.set(key, column);
  }
  const columns = [...columnMap.values()].sort((a, b) => {
    if (a.part !== b.part) return a.part < b.part ? -1 : 1;
    if (a.bootloader === null || b.bootloader === null)
      return (a.bootloader === null ? 1 : 0) - (b.bootloader === null ? 1 : 0);
    const order = releaseOrder(a.part, [a.bootloader, b.bootloader]);
    return order[0] === a.bootloader ? -1 : 1;
  });
  for (const c of columns) c.boards.sort();

  const rows = new Map<string, MatrixRow>();
  for (const [gk, { sample, boards }] of groups) {
    const test = testKey(sample);
    const row = rows.get(test) ?? { test, cells: {} };
    rows.set(test, row);
    const cell = emptyCell();
    const counted = [...boards.values()].filter((b) => !problemKeys.has(`${gk}\u0000${b.board}`));
    cell.boardProblems = [...boards.keys()].filter((b) => problemKeys.has(`${gk}\u0000${b}`)).sort();
    cell.skipped = counted.reduce((s, b) => s + b.skipped, 0);
    cell.runs = counted.reduce((s, b) => s + b.runs, 0);
    cell.failures = counted.reduce((s, b) => s + b.failures, 0);
    cell.passed = cell.runs - cell.failures;
    Object.assign(cell, wilson(cell.failures, cell.runs));
    cell.boards = counted
      .filter((b) => b.runs > 0)
      .map((b) => b.board)
      .sort();
    cell.flakyBoards = counted
      .filter((b) => b.failures > 0 && b.passed > 0)
      .map((b) => b.board)
      .sort();
    const ids = counted
      .flatMap((b) => failuresOf.get(`${gk}\u0000${b.board}`) ?? [])
      .map((o) => knownIds(issues, o));
    cell.knownIssues = sortedUnique(ids.flat());
    cell.unknownFailures = ids.filter((x) => x.length === 0).length;
    row.cells[col(sample)] = cell;
  }
  // A test that never executed anywhere (only skipped: not applicable, board latched broken) has no row.
  const matrix = [...rows.values()]
    .filter((r) => Object.values(r.cells).some((c) => c.runs > 0 || c.boardProblems.length > 0))
    .sort((a, b) => (a.test < b.test ? -1 : a.test > b.test ? 1 : 0));

  // Comparisons.
  const comparisons: Comparison[] = [];
  const parts = sortedUnique(columns.map((c) => c.part));
  for (const part of parts) {
    const versions = releaseOrder(
      part,
      columns.filter((c) => c.part === part && c.bootloader !== null).map((c) => c.bootloader!),
    );
    const pairs: [number, number][] = [];
    const { baseline, candidate } = options;
    if (baseline !== undefined && candidate !== undefined) {
      if (versions.includes(baseline) && versions.includes(candidate)) pairs.push([baseline, candidate]);
    } else if (baseline !== undefined) {
      if (versions.includes(baseline))
        for (const v of versions) if (v !== baseline) pairs.push([baseline, v]);
    } else if (candidate !== undefined) {
      const i = versions.indexOf(candidate);
      if (i > 0) pairs.push([versions[i - 1]!, candidate]);
    } else {
      for (let i = 1; i < versions.length; i++) pairs.push([versions[i - 1]!, versions[i]!]);
    }
    for (const [b, c] of pairs) {
      const bk = columnKey(part, b);
      const ck = columnKey(part, c);
      for (const row of matrix) {
        const before = row.cells[bk] ?? null;
        const after = row.cells[ck] ?? null;
        if (!before && !after) continue;
        const result = compare(before, after, alpha, minRuns);
        const source = result.verdict === 'fixed' ? before : after;
        comparisons.push({
          test: row.test,
          part,
          baseline: b,
          candidate: c,
          before,
          after,
          ...result,
          known: result.verdict === 'regression' ? (after?.unknownFailures ?? 0) === 0 : true,
          knownIssues: source?.knownIssues ?? [],
        });
      }
    }
  }

  // Night-over-night, on the latest run of each board.
  const nightOverNight: NightChange[] = [];
  for (const t of store.lastTwo()) {
    if (t.failed === t.previousFailed || (since !== null && t.run < since)) continue;
    if (options.run !== undefined && t.run !== options.run) continue;
    const failing = store.outcomes({
      runId: t.failed ? t.run : t.previousRun,
      board: t.board,
      suite: t.suite,
      test: t.test,
      statuses: ['failed', 'broken'],
    });
    const ids = failing.map((o) => knownIds(issues, o));
    nightOverNight.push({
      board: t.board,
      part: partName(t.part),
      bootloader: t.bootloader,
      test: testKey(t),
      previousRun: t.previousRun,
      run: t.run,
      change: t.failed ? 'regression' : 'fixed',
      errorCode: failing[0]?.errorCode ?? null,
      boardProblem: isBoardProblem(t),
      known: ids.length > 0 && ids.every((x) => x.length > 0),
      knownIssues: sortedUnique(ids.flat()),
    });
  }
  nightOverNight.sort((a, b) => a.board.localeCompare(b.board) || a.test.localeCompare(b.test));

  const timing = timingSeries(store.measurements(), runById, since, timingRule, options.run);
  for (const t of timing) {
    t.knownIssues = matchKnownTiming(issues, t).map((k) => k.id);
    t.known = t.knownIssues.length > 0;
  }

  // Known issues: status at the latest execution of each (board, test) in scope.
  const failedAt = new Set(failures.map((o) => `${boardKey(o)}\u0000${o.runId}`));
  // A measurement issue counts each judged series as a run and each timing regression as a failure.
  const knownIssues: KnownIssueStatus[] = issues.map((k) => {
    const scoped = counts.filter((c) => c.runs > 0 && matchKnownIssues([k], c).length > 0);
    const judgedSeries = timing.filter((t) => t.verdict !== 'insufficient' && t.knownIssues.includes(k.id));
    const slowed = judgedSeries.filter((t) => t.verdict === 'regression');
    const reproduced =
      scoped.some((c) => failedAt.has(`${boardKey(c)}\u0000${c.lastRun}`)) || slowed.length > 0;
    const lastRuns = [...scoped.map((c) => c.lastRun ?? 0), ...judgedSeries.map((t) => t.points.at(-1)!.run)];
    return {
      id: k.id,
      title: k.title,
      source: k.source,
      status: !lastRuns.length ? 'not-run' : reproduced ? 'reproduced' : 'possibly-fixed',
      runs: scoped.reduce((s, c) => s + c.runs, 0) + judgedSeries.length,
      failures: scoped.reduce((s, c) => s + c.failures, 0) + slowed.length,
      boards: sortedUnique([...scoped.map((c) => c.board), ...judgedSeries.map((t) => t.board)]),
      lastRun: lastRuns.length ? Math.max(...lastRuns) : null,
    };
  });

  // Failures in each board's latest run (within the window).
  const latestFailures: LatestFailure[] = failures
    .filter((o) => o.runId === (options.run ?? latestRunOfBoard.get(o.board)))
    .map((o) => {
      const ids = knownIds(issues, o);
      return {
        run: o.runId,
        board: o.board,
        part: partName(o.part),
        bootloader: o.bootloader,
        test: testKey(o),
        status: o.status as 'failed' | 'broken',
        errorCode: o.errorCode,
        boardProblem: isBoardProblem(o),
        known: ids.length > 0,
        knownIssues: ids,
      };
    })
    .sort((x, y) => x.board.localeCompare(y.board) || x.test.localeCompare(y.test));

  const reasons: string[] = [];
  const unknownCmp = comparisons.filter((c) => c.verdict === 'regression' && !c.known);
  const unknownNight = nightOverNight.filter((n) => n.change === 'regression' && !n.known && !n.boardProblem);
  const slower = timing.filter((t) => t.verdict === 'regression' && !t.known);
  for (const c of unknownCmp)
    reasons.push(
      `regression: ${c.test} on ${c.part} ${hex8(c.candidate)} against ${hex8(c.baseline)} (${c.note})`,
    );
  for (const n of unknownNight)
    reasons.push(
      `night-over-night: ${n.test} on ${n.board} passed in run ${n.previousRun}, fails in run ${n.run}`,
    );
  for (const t of slower)
    reasons.push(
      `timing: ${t.name} on ${t.board} is ${t.latest} ${t.unit}, beyond ${t.limit?.toPrecision(4)} ${t.unit}`,
    );
  for (const f of latestFailures.filter((x) => !x.known)) {
    reasons.push(
      `unknown failure: ${f.test} on ${f.board} in run ${f.run}${f.boardProblem ? ' (board problem)' : ''}${f.errorCode ? ` [${f.errorCode}]` : ''}`,
    );
  }
  return {
    generatedAt: new Date().toISOString(),
    store: store.file,
    window: { since, runs },
    rules: { alpha, minRuns, timing: timingRule },
    columns,
    matrix,
    comparisons,
    boardProblems,
    nightOverNight,
    timing,
    knownIssues,
    latestFailures,
    unknownRegressions: unknownCmp.length + unknownNight.length + slower.length,
    verdict: reasons.length ? 'fail' : 'pass',
    reasons,
  };
}

function timingSeries(
  measurements: readonly MeasurementRow[],
  runs: Map<number, RunRow>,
  since: number | null,
  rule: TimingRule,
  judged: number | undefined,
): TimingSeries[] {
  const out: TimingSeries[] = [];
  for (const [, ms] of groupBy(
    measurements,
    (m) => `${m.board}\u0000${m.bootloader}\u0000${m.name}\u0000${m.unit}`,
  )) {
    const first = ms[0]!;
    const points: TimingPoint[] = [...groupBy(ms, (m) => String(m.runId))]
      .map(([run, vs]) => ({
        run: Number(run),
        startedAt: runs.get(Number(run))?.startedAt ?? vs[0]!.recordedAt,
        value: vs.reduce((s, m) => s + m.value, 0) / vs.length,
      }))
      .sort((a, b) => a.run - b.run);
    const better = direction(first.name, first.unit);
    const latest = points.at(-1)!;
    const history = points
      .slice(0, -1)
      .slice(-rule.historyRuns)
      .map((p) => p.value);
    const series: TimingSeries = {
      board: first.board,
      part: first.part ? partName(first.part) : null,
      bootloader: first.bootloader,
      name: first.name,
      unit: first.unit,
      better,
      points,
      verdict: 'insufficient',
      latest: latest.value,
      mean: null,
      sd: null,
      limit: null,
      known: false,
      knownIssues: [],
    };
    const inScope = judged === undefined ? since === null || latest.run >= since : latest.run === judged;
    if (history.length >= rule.minHistory && inScope) {
      const { mean, sd } = meanSd(history);
      const max = Math.max(...history);
      const min = Math.min(...history);
      series.mean = mean;
      series.sd = sd;
      if (better === 'lower') {
        series.limit = Math.max(mean + rule.sigmas * sd, max * (1 + rule.margin));
        const good = Math.min(mean - rule.sigmas * sd, min * (1 - rule.margin));
        series.verdict = latest.value > series.limit ? 'regression' : latest.value < good ? 'improved' : 'ok';
      } else {
        series.limit = Math.min(mean - rule.sigmas * sd, min * (1 - rule.margin));
        const good = Math.max(mean + rule.sigmas * sd, max * (1 + rule.margin));
        series.verdict = latest.value < series.limit ? 'regression' : latest.value > good ? 'improved' : 'ok';
      }
    }
    out.push(series);
  }
  return out.sort((a, b) => a.name.localeCompare(b.name) || a.board.localeCompare(b.board));
}
