import type { Reporter, TestCase, TestModule } from 'vitest/node';
import type { BoardConfig, KnownIssue } from '../../src/farm/schema.ts';
import { matchKnownIssues } from '../../src/results/regressions.ts';
import type { OutcomeStatus, ResultsStore } from '../../src/results/store.ts';
import '../meta.ts';

export interface OutcomeEvent {
  board: string;
  suite: string;
  test: string;
  status: OutcomeStatus;
  durationMs: number;
  errorCode: string | null;
  message: string | null;
  knownIssue: string | null;
}

/**
 * Writes every test outcome to the results store the moment vitest reports it (one transaction each), so a
 * run killed halfway keeps everything it finished. Runs in the main process, where the store is open.
 */
export class StoreReporter implements Reporter {
  readonly outcomes: OutcomeEvent[] = [];
  readonly #store: ResultsStore;
  readonly #runId: number;
  readonly #boards: Map<string, BoardConfig>;
  readonly #known: readonly KnownIssue[];
  readonly #onOutcome: ((o: OutcomeEvent) => void) | undefined;

  constructor(opts: {
    store: ResultsStore;
    runId: number;
    boards: BoardConfig[];
    knownIssues: readonly KnownIssue[];
    onOutcome?: (o: OutcomeEvent) => void;
  }) {
    this.#store = opts.store;
    this.#runId = opts.runId;
    this.#boards = new Map(opts.boards.map((b) => [b.id, b]));
    this.#known = opts.knownIssues;
    this.#onOutcome = opts.onOutcome;
  }

  onTestCaseResult(testCase: TestCase): void {
    const result = testCase.result();
    if (result.state === 'pending') return;
    const board = this.#boards.get(testCase.project.name);
    if (!board) return;
    const meta = testCase.meta().hil;
    const suite = meta?.suite ?? suiteOf(testCase);
    const error = result.state === 'failed' ? result.errors?.[0] : undefined;
    const errorCode = meta?.errorCode ?? codeOf(error) ?? null;
    // An infrastructure failure (relay, enumeration, lease, tool) is not a failed test of the chip.
    const infra =
      meta?.errorKind === 'infra' ||
      meta?.errorKind === 'tool' ||
      /^E_(RELAY|BOARD_BROKEN|LEASE|SERIAL)/.test(errorCode ?? '');
    const status: OutcomeStatus =
      result.state === 'passed'
        ? 'passed'
        : result.state === 'skipped'
          ? 'skipped'
          : infra
            ? 'broken'
            : 'failed';
    const bootloader = board.virtual?.bootloader ?? board.expect?.bootloader ?? null;
    const part = board.part;
    const known =
      status === 'failed' || status === 'broken'
        ? (matchKnownIssues(this.#known, { board: board.id, part, bootloader, suite, test: testCase.name })[0]
            ?.id ?? null)
        : null;
    const durationMs = Math.round(testCase.diagnostic()?.duration ?? 0);
    const message = error?.message ?? (result.state === 'skipped' ? (result.note ?? null) : null);
    this.#store.recordOutcome({
      runId: this.#runId,
      board: board.id,
      part,
      chipRevision: board.virtual?.chipRevision ?? board.expect?.chipRevision ?? null,
      bootloader,
      suite,
      test: testCase.name,
      status,
      durationMs,
      errorCode,
      details: { ...(meta?.details ?? {}), ...(message ? { message: message.slice(0, 2000) } : {}) },
      knownIssue: known,
      host: board.host ?? null,
      virtual: Boolean(board.virtual),
    });
    for (const m of meta?.measurements ?? []) {
      this.#store.recordMeasurement({
        runId: this.#runId,
        board: board.id,
        part,
        bootloader,
        name: m.name,
        value: m.value,
        unit: m.unit,
        suite,
        test: testCase.name,
      });
    }
    const event: OutcomeEvent = {
      board: board.id,
      suite,
      test: testCase.name,
      status,
      durationMs,
      errorCode,
      message,
      knownIssue: known,
    };
    this.outcomes.push(event);
    this.#onOutcome?.(event);
  }

  onTestRunEnd(_modules: ReadonlyArray<TestModule>): void {}
}

function suiteOf(testCase: TestCase): string {
  let parent = testCase.parent;
  let name = '';
  while (parent.type === 'suite') {
    name = parent.name;
    parent = parent.parent;
  }
  return name || 'unknown';
}

function codeOf(
  error: { message?: string; code?: unknown; [k: string]: unknown } | undefined,
): string | undefined {
  if (!error) return undefined;
  if (typeof error.code === 'string' && /^E_[A-Z0-9_]+$/.test(error.code)) return error.code;
  return /\b(E_[A-Z0-9_]{3,})\b/.exec(error.message ?? '')?.[1];
}
