import { defineConfig } from 'vitest/config';

// Unit and contract tests of the library (src/**), the harness itself, and the HIL suites against the
// virtual farm. `stm32-hil run` drives the suites through vitest's Node API with its own settings.
export default defineConfig({
  root: new URL('..', import.meta.url).pathname,
  test: {
    include: ['src/**/*.test.ts', 'harness/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
  },
});
