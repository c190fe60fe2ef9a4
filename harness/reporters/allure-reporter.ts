import AllureVitestReporter from 'allure-vitest/reporter';
import type { RunnerTask as Task, TestError } from 'vitest';

/** The error kinds (src/errors.ts) that are a finding about the chip or its bootloader, not about the farm. */
const CHIP_KINDS = new Set(['check', 'device']);

/**
 * How Allure should see a failed test's error. allure-vitest files every error that is not an assertion as
 * "broken" (allure-js-commons getStatusFromError: failed only for assertion errors or errors that carry
 * `expected`/`actual`). On a board farm a verify mismatch or a hung bootloader is a failed test of the chip,
 * and only an infrastructure or tool error is broken, as the results store files them
 * (harness/reporters/store-reporter.ts). A chip error is therefore given its check's expected and actual
 * values (the bytes of a verify mismatch, shown by Allure beside the message), or an empty `expected`.
 */
export function allureError(error: TestError): TestError {
  const e = error as TestError & { kind?: unknown; details?: { expected?: unknown; actual?: unknown } };
  if (typeof e.kind !== 'string' || !CHIP_KINDS.has(e.kind) || 'expected' in e || 'actual' in e) return error;
  const d = e.details ?? {};
  const bytes = typeof d.expected === 'number' && typeof d.actual === 'number';
  return {
    ...e,
    expected: bytes ? hexByte(d.expected as number) : undefined,
    ...(bytes ? { actual: hexByte(d.actual as number) } : {}),
  };
}

function hexByte(n: number): string {
  return `0x${n.toString(16).toUpperCase().padStart(2, '0')}`;
}

function withAllureErrors(task: Task): Task {
  // Suites pass through: the base class walks their tasks through handleTask, this override included.
  if (task.type === 'suite') return task;
  const errors = task.result?.errors;
  if (task.result?.state !== 'fail' || !errors?.length) return task;
  return { ...task, result: { ...task.result, errors: errors.map(allureError) } } as Task;
}

/** allure-vitest's reporter, with chip failures filed as failed rather than broken (see allureError). */
export class HilAllureReporter extends AllureVitestReporter {
  override handleTask(task: Task): void {
    super.handleTask(withAllureErrors(task));
  }
}

export default HilAllureReporter;
