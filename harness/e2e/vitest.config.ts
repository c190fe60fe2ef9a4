import path from 'node:path';
import { defineConfig } from 'vitest/config';
import { configPath, loadConfig } from '../../src/farm/config.ts';
import { HilAllureReporter } from '../reporters/allure-reporter.ts';

// The end-to-end lane (npm run test:e2e): boots a Linux guest under QEMU and drives the virtual boards over
// USB/IP with dfu-util and stm32-hil. Kept out of `npm test` (harness/vitest.config.ts excludes harness/e2e).
// Its outcomes go where the farm's suites' go: the results store (harness/e2e/reporter.ts) and the Allure
// results of boards.yaml's reportsDir.
const root = new URL('../..', import.meta.url).pathname;
let reportsDir = path.join(root, 'reports');
try {
  reportsDir = loadConfig(configPath(undefined)).reportsDir;
} catch {
  // no boards.yaml: the default reports directory
}

export default defineConfig({
  root,
  test: {
    include: ['harness/e2e/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 20 * 60_000,
    pool: 'forks',
    setupFiles: ['allure-vitest/setup'],
    reporters: [
      'default',
      './harness/e2e/reporter.ts',
      new HilAllureReporter({ resultsDir: path.join(reportsDir, 'allure-results') }),
      ...(process.env.HIL_JSON_REPORT
        ? [['json', { outputFile: process.env.HIL_JSON_REPORT }] as ['json', { outputFile: string }]]
        : []),
    ],
  },
});
