import type { BoardConfig } from '../src/farm/schema.ts';
import type { Part } from '../src/parts/catalogue.ts';

/**
 * A HIL suite, written once and run on every board whose part and tags fit. Each suite file in suites/
 * default-exports one of these; harness/board.run.ts registers it under the board's vitest project.
 */
export interface SuiteInfo {
  /** Stable name used in results, reports, known issues and triage (`bank2-write`). */
  name: string;
  /** One line: the field failure this suite guards against. */
  guards: string;
  /** Tags selecting it (`nightly`, ...). */
  tags: string[];
  /** `true` when the suite applies to the board, else the reason it does not (shown as skipped). */
  appliesTo(board: BoardConfig, part: Part): true | string;
  /** Registers the suite's tests (called inside a `describe` named after the suite). */
  define(): void;
}

export function defineSuite(suite: SuiteInfo): SuiteInfo {
  return suite;
}

export const hasTag = (board: BoardConfig, tag: string): boolean => board.tags.includes(tag);
