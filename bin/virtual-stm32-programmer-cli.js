#!/usr/bin/env node
// Stand-in for ST's STM32_Programmer_CLI that drives the virtual boards of boards.yaml ($STM32_HIL_CONFIG) over a
// simulated SWD link (src/sim/swd). Same arguments, same output format; on Node 24 (see node24.js).
import module from 'node:module';
import { ensureNode24 } from './node24.js';

ensureNode24(import.meta.url, (found) =>
  process.stdout.write(
    `Error: the virtual STM32_Programmer_CLI needs Node 24 (found ${found}); run npm install\n`,
  ),
);
// Every SWD operation of a virtual board starts this process: cache the compiled modules between runs.
module.enableCompileCache?.();
await import('../src/sim/swd/main.ts');
