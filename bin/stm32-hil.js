#!/usr/bin/env node
// The stm32-hil command (src/cli/main.ts), on Node 24 whatever Node started it (see node24.js).
import { ensureNode24 } from './node24.js';

ensureNode24(import.meta.url, (found) =>
  process.stderr.write(
    `stm32-hil: error E_NODE_VERSION: Node ${found} is too old (24 or newer needed) and the pinned Node 24 is not installed\n  hint: run \`npm install\` in the stm32-hil folder, or use Node 24\n`,
  ),
);
const { main } = await import('../src/cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
