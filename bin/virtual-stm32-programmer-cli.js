#!/usr/bin/env node
// Stand-in for ST's STM32_Programmer_CLI that drives the virtual boards of boards.yaml ($STM32_HIL_CONFIG) over a
// simulated SWD link (src/sim/swd). Same arguments, same output format. Like bin/stm32-hil.js, it re-runs itself
// on the Node 24 pinned in devDependencies when started by an older Node.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import module from 'node:module';
import { fileURLToPath } from 'node:url';

const major = Number(process.versions.node.split('.')[0]);
if (major < 24) {
  const here = fileURLToPath(import.meta.url);
  const pinned = fileURLToPath(new URL('../node_modules/node/bin/node', import.meta.url));
  if (!existsSync(pinned)) {
    process.stdout.write(
      `Error: the virtual STM32_Programmer_CLI needs Node 24 (found ${process.versions.node}); run npm install\n`,
    );
    process.exit(1);
  }
  const r = spawnSync(pinned, [here, ...process.argv.slice(2)], { stdio: 'inherit' });
  process.exit(r.status ?? 1);
} else {
  // Every SWD operation of a virtual board starts this process: cache the compiled modules between runs.
  module.enableCompileCache?.();
  await import('../src/sim/swd/main.ts');
}
