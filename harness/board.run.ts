// The test file every board's vitest project runs: it registers each selected suite that applies to this board.
// harness/runner.ts creates one project per board (boards in parallel, one worker each; tests of a board in
// sequence) and hands the board, the config file and the suite names in through `provide`.
import { describe, inject, test } from 'vitest';
import { findBoard, loadConfig } from '../src/farm/config.ts';
import { getPart } from '../src/parts/catalogue.ts';
import type { SuiteInfo } from './suite.ts';

const config = loadConfig(inject('configFile'));
const board = findBoard(config, inject('board'));
const part = getPart(board.part);

for (const name of inject('suites')) {
  const suite = ((await import(`../suites/${name}.suite.ts`)) as { default: SuiteInfo }).default;
  const applies = suite.appliesTo(board, part);
  describe(suite.name, () => {
    if (applies === true) suite.define();
    else
      test('not applicable', ({ skip }) => skip(`${suite.name} does not apply to ${board.id}: ${applies}`));
  });
}
