import { configDefaults, defineConfig } from 'vitest/config';

// Unit and contract tests of the library (src/**), the harness itself, and the HIL suites against the
// virtual farm. `stm32-hil run` drives the suites through vitest's Node API with its own settings.
export default defineConfig({
  root: new URL('..', import.meta.url).pathname,
  test: {
    include: ['src/**/*.test.ts', 'harness/**/*.test.ts'],
    // The end-to-end lane boots a VM: `npm run test:e2e` (harness/e2e/vitest.config.ts).
    exclude: [...configDefaults.exclude, 'harness/e2e/**'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    // CI asks for a JSON summary too (HIL_JSON_REPORT=file) to print one plain closing line.
    reporters: [
      'default',
      ...(process.env.HIL_JSON_REPORT
        ? [['json', { outputFile: process.env.HIL_JSON_REPORT }] as ['json', { outputFile: string }]]
        : []),
    ],
  },
});
