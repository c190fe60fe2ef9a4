import { existsSync, mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { DatabaseSync, SQLInputValue } from 'node:sqlite';
import { HilError, sysCode } from '../errors.ts';
import { sqlite } from './sqlite.ts';

/**
 * The results store: every run, board, test outcome and measurement of the farm in one SQLite file
 * (`<stateDir>/results.sqlite`). Each write is its own transaction, committed before the call returns,
 * so a run killed halfway keeps everything it finished. Several processes (the parallel board workers)
 * may write at once: WAL mode plus a busy timeout serialise them.
 */

export class ResultsError extends HilError {
  constructor(
    code: string,
    message: string,
    options: {
      kind?: 'input' | 'infra';
      cause?: unknown;
      details?: Record<string, unknown>;
      hint?: string;
    } = {},
  ) {
    super(code, message, { kind: options.kind ?? 'infra', ...options });
  }
}

export type RunStatus = 'running' | 'completed' | 'cancelled' | 'error' | 'interrupted';
export type OutcomeStatus = 'passed' | 'failed' | 'skipped' | 'broken';
export const OUTCOME_STATUSES: readonly OutcomeStatus[] = ['passed', 'failed', 'skipped', 'broken'];
const RUN_END_STATUSES = ['completed', 'cancelled', 'error'] as const;

export type TimeInput = Date | string | number;

export interface BeginRunOptions {
  /** Machine running the harness (default: os.hostname()). */
  host?: string;
  /** Git revision of the suites. */
  revision?: string | null;
  /** What started it: `nightly`, `manual`, `ci`, ... */
  trigger?: string | null;
  /** Default: now. Tests and imports pass the night's date. */
  startedAt?: TimeInput;
  /** Process that owns the run (default: this one); a dead owner means the run was interrupted. */
  pid?: number;
}

export interface RunRow {
  id: number;
  startedAt: string;
  finishedAt: string | null;
  lastActivity: string;
  host: string;
  pid: number | null;
  revision: string | null;
  trigger: string | null;
  status: RunStatus;
  summary: Record<string, unknown> | null;
}

export interface BoardInput {
  id: string;
  part: string;
  chipRevision?: string | null;
  bootloader?: number | null;
  host?: string | null;
  virtual?: boolean;
}

export interface BoardRow {
  id: string;
  part: string;
  chipRevision: string | null;
  bootloader: number | null;
  host: string | null;
  virtual: boolean;
  firstSeen: string;
  lastSeen: string;
}

export interface OutcomeInput {
  runId: number;
  board: string;
  part: string;
  chipRevision?: string | null;
  bootloader?: number | null;
  suite: string;
  test: string;
  status: OutcomeStatus;
  durationMs?: number | null;
  errorCode?: string | null;
  details?: Record<string, unknown> | null;
  /** Id of the known issue (boards.yaml `knownIssues:`) the harness matched this outcome to, if any. */
  knownIssue?: string | null;
  /** Board facts the outcome may add to the boards table. */
  host?: string | null;
  virtual?: boolean;
  at?: TimeInput;
}

export interface OutcomeRow {
  id: number;
  runId: number;
  board: string;
  part: string;
  chipRevision: string | null;
  bootloader: number | null;
  suite: string;
  test: string;
  status: OutcomeStatus;
  durationMs: number | null;
  errorCode: string | null;
  details: Record<string, unknown> | null;
  knownIssue: string | null;
  recordedAt: string;
}

export interface MeasurementInput {
  runId: number;
  board: string;
  part: string;
  bootloader?: number | null;
  /** `erase_ms`, `enumeration_ms`, `throughput_kib_s`, ... */
  name: string;
  value: number;
  /** `ms`, `KiB/s`, ... */
  unit: string;
  suite?: string | null;
  test?: string | null;
  at?: TimeInput;
}

export interface MeasurementRow {
  id: number;
  runId: number;
  board: string;
  part: string | null;
  bootloader: number | null;
  suite: string | null;
  test: string | null;
  name: string;
  value: number;
  unit: string;
  recordedAt: string;
}

export interface OutcomeFilter {
  runId?: number;
  /** Runs with id >= sinceRun. */
  sinceRun?: number;
  board?: string;
  part?: string;
  bootloader?: number;
  suite?: string;
  test?: string;
  /** Only these statuses (`['failed', 'broken']` for the failures). */
  statuses?: readonly OutcomeStatus[];
}

/** Counts of one (board, part, bootloader, suite, test) over a window of runs. */
export interface OutcomeCount {
  board: string;
  part: string;
  bootloader: number | null;
  suite: string;
  test: string;
  /** Executions: passed + failed + broken. */
  runs: number;
  /** failed + broken */
  failures: number;
  passed: number;
  skipped: number;
  /** Last run in which it was executed (not skipped). */
  lastRun: number | null;
}

/** A test's status on a board's latest run next to its previous execution on the same board and bootloader. */
export interface LastTwo {
  board: string;
  part: string;
  bootloader: number | null;
  suite: string;
  test: string;
  run: number;
  failed: boolean;
  previousRun: number;
  previousFailed: boolean;
}

export interface MeasurementFilter {
  runId?: number;
  sinceRun?: number;
  board?: string;
  name?: string;
}

export interface OpenStoreOptions {
  /** Create the file (and its directory) when missing (default true). */
  create?: boolean;
  /** How long a write waits for another process's transaction (default 15 s). */
  busyTimeoutMs?: number;
  /**
   * A `running` run of another host (or without a pid) whose last write is older than this is taken as
   * interrupted by the next beginRun (default 12 h). Runs of this host are checked by their pid instead.
   */
  staleAfterMs?: number;
  /**
   * `full` (default): each commit is on disk before the call returns, even across a power loss of the
   * host. `normal`: safe against a killed process (WAL), may lose the last commits on power loss; about
   * ten times faster per outcome.
   */
  synchronous?: 'full' | 'normal';
}

/** Schema version kept in PRAGMA user_version; each entry migrates from index to index + 1. */
const MIGRATIONS: string[] = [
  `
  CREATE TABLE runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    last_activity TEXT NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER,
    revision TEXT,
    trigger TEXT,
    status TEXT NOT NULL CHECK (status IN ('running', 'completed', 'cancelled', 'error', 'interrupted')),
    summary TEXT
  );
  CREATE TABLE boards (
    id TEXT PRIMARY KEY,
    part TEXT NOT NULL,
    chip_revision TEXT,
    bootloader INTEGER,
    host TEXT,
    virtual INTEGER NOT NULL DEFAULT 0,
    first_seen TEXT NOT NULL,
    last_seen TEXT NOT NULL
  );
  CREATE TABLE outcomes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id INTEGER NOT NULL REFERENCES runs(id),
    board_id TEXT NOT NULL REFERENCES boards(id),
    part TEXT NOT NULL,
    chip_revision TEXT,
    bootloader INTEGER,
    suite TEXT NOT NULL,
    test TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('passed', 'failed', 'skipped', 'broken')),
    duration_ms REAL,
    error_code TEXT,
    details TEXT,
    known_issue TEXT,
    recorded_at TEXT NOT NULL
  );
  CREATE INDEX outcomes_run ON outcomes(run_id);
  CREATE INDEX outcomes_board ON outcomes(board_id, run_id);
  CREATE INDEX outcomes_history ON outcomes(board_id, suite, test, run_id);
  CREATE INDEX outcomes_failures ON outcomes(run_id) WHERE status IN ('failed', 'broken');
  CREATE TABLE measurements (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id INTEGER NOT NULL REFERENCES runs(id),
    board_id TEXT NOT NULL REFERENCES boards(id),
    part TEXT,
    bootloader INTEGER,
    suite TEXT,
    test TEXT,
    name TEXT NOT NULL,
    value REAL NOT NULL,
    unit TEXT NOT NULL,
    recorded_at TEXT NOT NULL
  );
  CREATE INDEX measurements_key ON measurements(board_id, name, run_id);
  `,
];

export const SCHEMA_VERSION = MIGRATIONS.length;

/** `<stateDir>/results.sqlite`: where the harness and the CLI keep the store by default. */
export function defaultStorePath(stateDir: string): string {
  return path.join(stateDir, 'results.sqlite');
}

function iso(t: TimeInput | undefined): string {
  const d = t === undefined ? new Date() : t instanceof Date ? t : new Date(t);
  if (Number.isNaN(d.getTime())) throw new ResultsError('E_RESULTS_INPUT', `not a time: ${String(t)}`);
  return d.toISOString();
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return sysCode(e) === 'EPERM';
  }
}

function wrap(what: string, file: string, e: unknown): never {
  if (e instanceof HilError) throw e;
  const errstr = (e as { errstr?: string }).errstr ?? '';
  const message = e instanceof Error ? e.message : String(e);
  if (/locked|busy/i.test(errstr) || /database is locked|busy/i.test(message)) {
    throw new ResultsError(
      'E_RESULTS_BUSY',
      `${file}: ${what}: the results store stayed locked by another process`,
      {
        cause: e,
        details: { file },
        hint: 'another stm32-hil process holds a long write; retry, or raise the busy timeout',
      },
    );
  }
  throw new ResultsError('E_RESULTS_DB', `${file}: ${what}: ${message}`, { cause: e, details: { file } });
}

type Row = Record<string, SQLInputValue>;

// SQLite NULL becomes null; columns stored as JSON text come back parsed.
const optText = (v: unknown): string | null => (v as string | null) ?? null;
const optNumber = (v: unknown): number | null => (v === null ? null : Number(v));
const optJson = (v: unknown): Record<string, unknown> | null =>
  v ? (JSON.parse(String(v)) as Record<string, unknown>) : null;

function toRun(r: Row): RunRow {
  return {
    id: Number(r.id),
    startedAt: String(r.started_at),
    finishedAt: optText(r.finished_at),
    lastActivity: String(r.last_activity),
    host: String(r.host),
    pid: optNumber(r.pid),
    revision: optText(r.revision),
    trigger: optText(r.trigger),
    status: r.status as RunStatus,
    summary: optJson(r.summary),
  };
}

function toBoard(r: Row): BoardRow {
  return {
    id: String(r.id),
    part: String(r.part),
    chipRevision: optText(r.chip_revision),
    bootloader: optNumber(r.bootloader),
    host: optText(r.host),
    virtual: Boolean(r.virtual),
    firstSeen: String(r.first_seen),
    lastSeen: String(r.last_seen),
  };
}

function toOutcome(r: Row): OutcomeRow {
  return {
    id: Number(r.id),
    runId: Number(r.run_id),
    board: String(r.board_id),
    part: String(r.part),
    chipRevision: optText(r.chip_revision),
    bootloader: optNumber(r.bootloader),
    suite: String(r.suite),
    test: String(r.test),
    status: r.status as OutcomeStatus,
    durationMs: optNumber(r.duration_ms),
    errorCode: optText(r.error_code),
    details: optJson(r.details),
    knownIssue: optText(r.known_issue),
    recordedAt: String(r.recorded_at),
  };
}

function toMeasurement(r: Row): MeasurementRow {
  return {
    id: Number(r.id),
    runId: Number(r.run_id),
    board: String(r.board_id),
    part: optText(r.part),
    bootloader: optNumber(r.bootloader),
    suite: optText(r.suite),
    test: optText(r.test),
    name: String(r.name),
    value: Number(r.value),
    unit: String(r.unit),
    recordedAt: String(r.recorded_at),
  };
}

function requireText(field: string, v: unknown): string {
  if (typeof v !== 'string' || v.length === 0) {
    throw new ResultsError(
      'E_RESULTS_INPUT',
      `${field} must be a non-empty string (got ${JSON.stringify(v)})`,
    );
  }
  return v;
}

function bootloaderValue(v: number | null | undefined): number | null {
  if (v === undefined || v === null) return null;
  if (!Number.isInteger(v) || v < 0 || v > 0xff)
    throw new ResultsError('E_RESULTS_INPUT', `bootloader must be a byte (got ${v})`);
  return v;
}

export class ResultsStore {
  readonly file: string;
  readonly #db: DatabaseSync;
  readonly #staleAfterMs: number;

  constructor(file: string, db: DatabaseSync, staleAfterMs: number) {
    this.file = file;
    this.#db = db;
    this.#staleAfterMs = staleAfterMs;
  }

  /** Runs `fn` in one IMMEDIATE transaction (takes the write lock up front, so busy_timeout applies). */
  #tx<T>(what: string, fn: () => T): T {
    try {
      this.#db.exec('BEGIN IMMEDIATE');
    } catch (e) {
      wrap(what, this.file, e);
    }
    try {
      const r = fn();
      this.#db.exec('COMMIT');
      return r;
    } catch (e) {
      try {
        if (this.#db.isTransaction) this.#db.exec('ROLLBACK');
      } catch {
        // The original error is the one worth reporting.
      }
      wrap(what, this.file, e);
    }
  }

  #all(sql: string, ...params: SQLInputValue[]): Row[] {
    try {
      return this.#db.prepare(sql).all(...params) as Row[];
    } catch (e) {
      wrap('query', this.file, e);
    }
  }

  /**
   * Starts a run. Runs left `running` by a process that no longer exists (killed, crashed, host
   * rebooted) are marked `interrupted` first; their finished outcomes stay. Returns the new run and the
   * ids of the runs it marked interrupted.
   */
  beginRun(options: BeginRunOptions = {}): RunRow & { interrupted: number[] } {
    const host = options.host ?? os.hostname();
    const startedAt = iso(options.startedAt);
    const pid = options.pid ?? process.pid;
    return this.#tx('begin run', () => {
      const interrupted: number[] = [];
      const now = Date.now();
      const open = this.#db.prepare(`SELECT * FROM runs WHERE status = 'running'`).all() as Row[];
      for (const row of open.map(toRun)) {
        const dead =
          row.host === host && row.pid !== null
            ? !pidAlive(row.pid)
            : now - Date.parse(row.lastActivity) > this.#staleAfterMs;
        if (!dead) continue;
        this.#db
          .prepare(`UPDATE runs SET status = 'interrupted', finished_at = last_activity WHERE id = ?`)
          .run(row.id);
        interrupted.push(row.id);
      }
      const r = this.#db
        .prepare(
          `INSERT INTO runs (started_at, last_activity, host, pid, revision, trigger, status)
           VALUES (?, ?, ?, ?, ?, ?, 'running')`,
        )
        .run(startedAt, startedAt, host, pid, options.revision ?? null, options.trigger ?? null);
      const run = toRun(this.#db.prepare('SELECT * FROM runs WHERE id = ?').get(r.lastInsertRowid) as Row);
      return { ...run, interrupted };
    });
  }

  /** Ends a run with its final status and an optional summary (counts, verdict) kept as JSON. */
  finishRun(
    runId: number,
    options: {
      status?: (typeof RUN_END_STATUSES)[number];
      finishedAt?: TimeInput;
      summary?: Record<string, unknown>;
    } = {},
  ): RunRow {
    const status = options.status ?? 'completed';
    if (!RUN_END_STATUSES.includes(status)) {
      throw new ResultsError(
        'E_RESULTS_INPUT',
        `a run ends as ${RUN_END_STATUSES.join(', ')} (got ${status})`,
      );
    }
    const finishedAt = iso(options.finishedAt);
    return this.#tx('finish run', () => {
      const r = this.#db
        .prepare('UPDATE runs SET status = ?, finished_at = ?, last_activity = ?, summary = ? WHERE id = ?')
        .run(status, finishedAt, finishedAt, options.summary ? JSON.stringify(options.summary) : null, runId);
      if (r.changes === 0) throw this.#unknownRun(runId);
      return toRun(this.#db.prepare('SELECT * FROM runs WHERE id = ?').get(runId) as Row);
    });
  }

  #unknownRun(runId: number): ResultsError {
    return new ResultsError('E_RESULTS_RUN_UNKNOWN', `${this.file}: no run ${runId}`, { details: { runId } });
  }

  #touchRun(runId: number, at: string): void {
    const r = this.#db
      .prepare('UPDATE runs SET last_activity = max(last_activity, ?) WHERE id = ?')
      .run(at, runId);
    if (r.changes === 0) throw this.#unknownRun(runId);
  }

  #upsertBoard(b: BoardInput, at: string): void {
    this.#db
      .prepare(
        `INSERT INTO boards (id, part, chip_revision, bootloader, host, virtual, first_seen, last_seen)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT(id) DO UPDATE SET
           part = excluded.part,
           chip_revision = coalesce(excluded.chip_revision, chip_revision),
           bootloader = coalesce(excluded.bootloader, bootloader),
           host = coalesce(excluded.host, host),
           virtual = CASE WHEN ? IS NULL THEN virtual ELSE excluded.virtual END,
           last_seen = max(last_seen, excluded.last_seen)`,
      )
      .run(
        b.id,
        b.part,
        b.chipRevision ?? null,
        bootloaderValue(b.bootloader),
        b.host ?? null,
        b.virtual ? 1 : 0,
        at,
        at,
        b.virtual === undefined ? null : 1,
      );
  }

  /** Adds or updates a board (part, chip revision, bootloader, host, virtual). */
  recordBoard(board: BoardInput, at?: TimeInput): void {
    requireText('board id', board.id);
    requireText('board part', board.part);
    const t = iso(at);
    this.#tx('record board', () => this.#upsertBoard(board, t));
  }

  /** Writes one outcome in its own transaction; returns its id. The board row is created or refreshed. */
  recordOutcome(o: OutcomeInput): number {
    requireText('board', o.board);
    requireText('part', o.part);
    requireText('suite', o.suite);
    requireText('test', o.test);
    if (!OUTCOME_STATUSES.includes(o.status)) {
      throw new ResultsError(
        'E_RESULTS_INPUT',
        `status must be one of ${OUTCOME_STATUSES.join(', ')} (got ${String(o.status)})`,
      );
    }
    const at = iso(o.at);
    const details = o.details ? JSON.stringify(o.details) : null;
    return this.#tx('record outcome', () => {
      this.#touchRun(o.runId, at);
      this.#upsertBoard(
        {
          id: o.board,
          part: o.part,
          chipRevision: o.chipRevision,
          bootloader: o.bootloader,
          host: o.host,
          virtual: o.virtual,
        },
        at,
      );
      const r = this.#db
        .prepare(
          `INSERT INTO outcomes (run_id, board_id, part, chip_revision, bootloader, suite, test, status,
             duration_ms, error_code, details, known_issue, recorded_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        )
        .run(
          o.runId,
          o.board,
          o.part,
          o.chipRevision ?? null,
          bootloaderValue(o.bootloader),
          o.suite,
          o.test,
          o.status,
          o.durationMs ?? null,
          o.errorCode ?? null,
          details,
          o.knownIssue ?? null,
          at,
        );
      return Number(r.lastInsertRowid);
    });
  }

  /** Writes one measurement (erase time, enumeration time, throughput) in its own transaction. */
  recordMeasurement(m: MeasurementInput): number {
    requireText('board', m.board);
    requireText('part', m.part);
    requireText('measurement name', m.name);
    requireText('unit', m.unit);
    if (typeof m.value !== 'number' || !Number.isFinite(m.value)) {
      throw new ResultsError(
        'E_RESULTS_INPUT',
        `measurement ${m.name}: value must be a finite number (got ${String(m.value)})`,
      );
    }
    const at = iso(m.at);
    return this.#tx('record measurement', () => {
      this.#touchRun(m.runId, at);
      this.#upsertBoard({ id: m.board, part: m.part, bootloader: m.bootloader }, at);
      const r = this.#db
        .prepare(
          `INSERT INTO measurements (run_id, board_id, part, bootloader, suite, test, name, value, unit, recorded_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        )
        .run(
          m.runId,
          m.board,
          m.part,
          bootloaderValue(m.bootloader),
          m.suite ?? null,
          m.test ?? null,
          m.name,
          m.value,
          m.unit,
          at,
        );
      return Number(r.lastInsertRowid);
    });
  }

  /** Runs in id order (oldest first); `sinceRun` keeps ids >= it. */
  runs(options: { sinceRun?: number } = {}): RunRow[] {
    return this.#all('SELECT * FROM runs WHERE id >= ? ORDER BY id', options.sinceRun ?? 0).map(toRun);
  }

  run(id: number): RunRow | undefined {
    const r = this.#all('SELECT * FROM runs WHERE id = ?', id)[0];
    return r ? toRun(r) : undefined;
  }

  latestRun(): RunRow | undefined {
    const r = this.#all('SELECT * FROM runs ORDER BY id DESC LIMIT 1')[0];
    return r ? toRun(r) : undefined;
  }

  boards(): BoardRow[] {
    return this.#all('SELECT * FROM boards ORDER BY id').map(toBoard);
  }

  outcomes(filter: OutcomeFilter = {}): OutcomeRow[] {
    const { where, params } = conditions([
      ['run_id = ?', filter.runId],
      ['run_id >= ?', filter.sinceRun],
      ['board_id = ?', filter.board],
      ['part = ?', filter.part],
      ['bootloader = ?', filter.bootloader],
      ['suite = ?', filter.suite],
      ['test = ?', filter.test],
    ]);
    if (filter.statuses) {
      const ok = filter.statuses.filter((x) => OUTCOME_STATUSES.includes(x));
      where.push(ok.length ? `status IN (${ok.map((x) => `'${x}'`).join(', ')})` : '0');
    }
    const sql = `SELECT * FROM outcomes ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY run_id, id`;
    return this.#all(sql, ...params).map(toOutcome);
  }

  /** Per (board, part, bootloader, suite, test) counts over runs >= sinceRun, computed by SQLite. */
  outcomeCounts(options: { sinceRun?: number } = {}): OutcomeCount[] {
    return this.#all(
      `SELECT board_id, part, bootloader, suite, test,
         sum(status != 'skipped') AS runs,
         sum(status IN ('failed', 'broken')) AS failures,
         sum(status = 'passed') AS passed,
         sum(status = 'skipped') AS skipped,
         max(CASE WHEN status != 'skipped' THEN run_id END) AS last_run
       FROM outcomes WHERE run_id >= ?
       GROUP BY board_id, part, bootloader, suite, test
       ORDER BY board_id, suite, test`,
      options.sinceRun ?? 0,
    ).map((r) => ({
      board: String(r.board_id),
      part: String(r.part),
      bootloader: r.bootloader === null ? null : Number(r.bootloader),
      suite: String(r.suite),
      test: String(r.test),
      runs: Number(r.runs),
      failures: Number(r.failures),
      passed: Number(r.passed),
      skipped: Number(r.skipped),
      lastRun: r.last_run === null ? null : Number(r.last_run),
    }));
  }

  /** The latest run each board has outcomes in. */
  latestRunOfBoards(): Map<string, number> {
    return new Map(
      this.#all('SELECT board_id, max(run_id) AS run FROM outcomes GROUP BY board_id').map((r) => [
        String(r.board_id),
        Number(r.run),
      ]),
    );
  }

  /**
   * For every test executed on a board's latest run: its result there and on the previous run in which
   * the same board executed it with the same bootloader.
   */
  lastTwo(): LastTwo[] {
    const failed = `max(status IN ('failed', 'broken'))`;
    return this.#all(
      `WITH latest AS (SELECT board_id, max(run_id) AS run FROM outcomes GROUP BY board_id),
       cur AS (
         SELECT o.board_id, o.part, o.bootloader, o.suite, o.test, o.run_id, ${failed.replace('status', 'o.status')} AS failed
         FROM outcomes o JOIN latest l ON o.board_id = l.board_id AND o.run_id = l.run
         WHERE o.status != 'skipped'
         GROUP BY o.board_id, o.part, o.bootloader, o.suite, o.test, o.run_id
       ),
       prev AS (
         SELECT c.*, (SELECT max(p.run_id) FROM outcomes p
           WHERE p.board_id = c.board_id AND p.suite = c.suite AND p.test = c.test AND p.run_id < c.run_id
             AND p.bootloader IS c.bootloader AND p.status != 'skipped') AS prev_run
         FROM cur c
       )
       SELECT w.*, (SELECT ${failed} FROM outcomes p
           WHERE p.board_id = w.board_id AND p.suite = w.suite AND p.test = w.test AND p.run_id = w.prev_run
             AND p.bootloader IS w.bootloader AND p.status != 'skipped') AS prev_failed
       FROM prev w WHERE w.prev_run IS NOT NULL
       ORDER BY w.board_id, w.suite, w.test`,
    ).map((r) => ({
      board: String(r.board_id),
      part: String(r.part),
      bootloader: r.bootloader === null ? null : Number(r.bootloader),
      suite: String(r.suite),
      test: String(r.test),
      run: Number(r.run_id),
      failed: Boolean(r.failed),
      previousRun: Number(r.prev_run),
      previousFailed: Boolean(r.prev_failed),
    }));
  }

  measurements(filter: MeasurementFilter = {}): MeasurementRow[] {
    const { where, params } = conditions([
      ['run_id = ?', filter.runId],
      ['run_id >= ?', filter.sinceRun],
      ['board_id = ?', filter.board],
      ['name = ?', filter.name],
    ]);
    const sql = `SELECT * FROM measurements ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY run_id, id`;
    return this.#all(sql, ...params).map(toMeasurement);
  }

  /**
   * Turns `--since` into a run id: a run id as is (it must exist), or an ISO date/time meaning the first
   * run started at or after it.
   */
  resolveSince(since: number | string): number {
    const text = String(since).trim();
    if (/^[0-9]+$/.test(text)) {
      const id = Number(text);
      if (!this.run(id)) {
        throw new ResultsError('E_RESULTS_RUN_UNKNOWN', `no run ${id} in ${this.file}`, {
          kind: 'input',
          details: { runId: id },
          hint: 'pass a run id shown by `stm32-hil regressions`, or a date such as 2025-01-31',
        });
      }
      return id;
    }
    const t = Date.parse(text);
    if (Number.isNaN(t)) {
      throw new ResultsError('E_RESULTS_SINCE', `--since ${text}: expected a run id or a date (2025-01-31)`, {
        kind: 'input',
      });
    }
    const r = this.#all(
      'SELECT id FROM runs WHERE started_at >= ? ORDER BY id LIMIT 1',
      new Date(t).toISOString(),
    )[0];
    // No run after that date: an id past the last one selects nothing.
    return r ? Number(r.id) : (this.latestRun()?.id ?? 0) + 1;
  }

  close(): void {
    try {
      if (this.#db.isOpen) this.#db.close();
    } catch (e) {
      wrap('close', this.file, e);
    }
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * Opens (and creates or migrates) the results store at `file`. Several processes may hold it open at
 * once; each write waits up to `busyTimeoutMs` for the others.
 */
/** The WHERE conditions (and their parameters) of the filter fields that are set. */
function conditions(pairs: Array<[string, SQLInputValue | undefined]>): {
  where: string[];
  params: SQLInputValue[];
} {
  const set = pairs.filter((p): p is [string, SQLInputValue] => p[1] !== undefined);
  return { where: set.map(([sql]) => sql), params: set.map(([, v]) => v) };
}

export function openStore(file: string, options: OpenStoreOptions = {}): ResultsStore {
  const resolved = file === ':memory:' ? file : path.resolve(file);
  if (resolved !== ':memory:') {
    if (!existsSync(resolved)) {
      if (options.create === false) {
        throw new ResultsError('E_RESULTS_NOT_FOUND', `${resolved}: no results store yet`, {
          kind: 'input',
          details: { file: resolved },
          hint: 'run `stm32-hil run` first, or pass --db FILE',
        });
      }
      try {
        mkdirSync(path.dirname(resolved), { recursive: true });
      } catch (e) {
        throw new ResultsError(
          'E_RESULTS_OPEN',
          `${resolved}: cannot create its directory: ${(e as Error).message}`,
          {
            cause: e,
            details: { file: resolved },
          },
        );
      }
    }
  }
  const { DatabaseSync } = sqlite();
  let db: DatabaseSync;
  try {
    db = new DatabaseSync(resolved, {
      timeout: options.busyTimeoutMs ?? 15_000,
      enableForeignKeyConstraints: true,
    });
  } catch (e) {
    throw new ResultsError(
      'E_RESULTS_OPEN',
      `${resolved}: cannot open the results store: ${(e as Error).message}`,
      {
        cause: e,
        details: { file: resolved },
      },
    );
  }
  try {
    db.exec(`PRAGMA busy_timeout = ${Math.max(0, Math.trunc(options.busyTimeoutMs ?? 15_000))}`);
    if (resolved !== ':memory:') db.exec('PRAGMA journal_mode = WAL');
    db.exec(`PRAGMA synchronous = ${options.synchronous === 'normal' ? 'NORMAL' : 'FULL'}`);
    migrate(db, resolved);
  } catch (e) {
    db.close();
    if (e instanceof HilError) throw e;
    const message = (e as Error).message;
    throw new ResultsError('E_RESULTS_OPEN', `${resolved}: not a usable results store: ${message}`, {
      cause: e,
      details: { file: resolved },
      hint: /not a database|malformed/i.test(message)
        ? 'point --db at a results.sqlite written by stm32-hil'
        : undefined,
    });
  }
  return new ResultsStore(resolved, db, options.staleAfterMs ?? 12 * 3600_000);
}

function migrate(db: DatabaseSync, file: string): void {
  const version = () =>
    Number((db.prepare('PRAGMA user_version').get() as { user_version: number }).user_version);
  if (version() === SCHEMA_VERSION) return;
  db.exec('BEGIN IMMEDIATE');
  try {
    // Another process may have migrated while we waited for the lock.
    const from = version();
    if (from > SCHEMA_VERSION) {
      throw new ResultsError(
        'E_RESULTS_SCHEMA',
        `${file}: written by a newer stm32-hil (schema ${from}, this one knows ${SCHEMA_VERSION})`,
        {
          kind: 'input',
          details: { file, schema: from, supported: SCHEMA_VERSION },
          hint: 'update stm32-hil',
        },
      );
    }
    for (let v = from; v < SCHEMA_VERSION; v++) db.exec(MIGRATIONS[v]!);
    db.exec(`PRAGMA user_version = ${SCHEMA_VERSION}`);
    db.exec('COMMIT');
  } catch (e) {
    if (db.isTransaction) db.exec('ROLLBACK');
    throw e;
  }
}
