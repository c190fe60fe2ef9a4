import { execFileSync } from 'node:child_process';
import path from 'node:path';
import type { Reporter, TestCase, TestModule } from 'vitest/node';
import { configPath, type FarmConfig, loadConfig } from '../../src/farm/config.ts';
import type { BoardConfig } from '../../src/farm/schema.ts';
import {
  defaultStorePath,
  type OutcomeStatus,
  openStore,
  type ResultsStore,
} from '../../src/results/store.ts';
import '../meta.ts';
import { REPO_ROOT } from '../paths.ts';

/**
 * Records the e2e lane's outcomes in the farm's results store (the store of boards.yaml, or of
 * $STM32_HIL_CONFIG), as one run with trigger `e2e`, so the lane's boards appear in `stm32-hil report` and
 * the regression analysis like any suite's. A test names its board in `task.meta.hil`; tests without one
 * (the guest's own checks) are not board outcomes.
 */
export default class E2eStoreReporter implements Reporter {
  #store: ResultsStore | undefined;
  #runId = 0;
  #boards = new Map<string, BoardConfig>();
  readonly #counts: Record<OutcomeStatus, number> = { passed: 0, failed: 0, skipped: 0, broken: 0 };

  onInit(): void {
    let farm: FarmConfig;
    try {
      farm = loadConfig(configPath(undefined));
    } catch (e) {
      console.warn(
        `[e2e] outcomes not recorded in a results store: ${e instanceof Error ? e.message : String(e)}`,
      );
      return;
    }
    const lane = loadConfig(path.join(REPO_ROOT, 'harness/e2e/boards.yaml'));
    this.#boards = new Map(lane.boards.map((b) => [b.id, b]));
    this.#store = openStore(defaultStorePath(farm.stateDir));
    this.#runId = this.#store.beginRun({ revision: gitRevision(), trigger: 'e2e' }).id;
  }

  onTestCaseResult(testCase: TestCase): void {
    const store = this.#store;
    const meta = testCase.meta().hil;
    const board = meta ? this.#boards.get(meta.board) : undefined;
    if (!store || !meta || !board) return;
    const result = testCase.result();
    if (result.state === 'pending') return;
    const status: OutcomeStatus =
      result.state === 'passed' ? 'passed' : result.state === 'skipped' ? 'skipped' : 'failed';
    this.#counts[status]++;
    const error = result.state === 'failed' ? result.errors?.[0] : undefined;
    store.recordOutcome({
      runId: this.#runId,
      board: board.id,
      part: board.part,
      chipRevision: board.virtual?.chipRevision ?? null,
      bootloader: board.virtual?.bootloader ?? null,
      suite: meta.suite,
      test: testCase.name,
      status,
      durationMs: Math.round(testCase.diagnostic()?.duration ?? 0),
      errorCode: null,
      details: {
        ...(meta.details ?? {}),
        ...(error?.message ? { message: error.message.slice(0, 2000) } : {}),
      },
      virtual: true,
    });
  }

  onTestRunEnd(_modules: ReadonlyArray<TestModule>): void {
    if (!this.#store) return;
    this.#store.finishRun(this.#runId, {
      status: 'completed',
      summary: { ...this.#counts, lane: 'e2e-usbip' },
    });
    this.#store.close();
  }
}

function gitRevision(): string | null {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: REPO_ROOT, encoding: 'utf8' }).trim();
  } catch {
    return null;
  }
}
