import { defineConfig } from 'vitest/config';

// The end-to-end lane (npm run test:e2e): boots a Linux guest under QEMU and drives the virtual boards over
// USB/IP with dfu-util and stm32-hil. Kept out of `npm test` (harness/vitest.config.ts excludes harness/e2e).
export default defineConfig({
  root: new URL('../..', import.meta.url).pathname,
  test: {
    include: ['harness/e2e/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 20 * 60_000,
    pool: 'forks',
  },
});
