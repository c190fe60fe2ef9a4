#!/usr/bin/env node
// Entry point. The CLI is TypeScript run by Node 24's built-in type stripping; when this file is started
// by an older Node (a system Node 20 outside npm scripts), re-run it on the Node 24 the project pins in
// devDependencies (the `node` package), so `./node_modules/.bin/stm32-hil` works from any shell.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const major = Number(process.versions.node.split('.')[0]);
if (major < 24) {
  const here = fileURLToPath(import.meta.url);
  const pinned = fileURLToPath(new URL('../node_modules/node/bin/node', import.meta.url));
  if (!existsSync(pinned)) {
    process.stderr.write(
      `stm32-hil: error E_NODE_VERSION: Node ${process.versions.node} is too old (24 or newer needed) and the pinned Node 24 is not installed\n  hint: run \`npm install\` in the stm32-hil folder, or use Node 24\n`,
    );
    process.exit(3);
  }
  const r = spawnSync(pinned, [here, ...process.argv.slice(2)], { stdio: 'inherit' });
  process.exit(r.status ?? (r.signal ? 128 + 2 : 3));
} else {
  const { main } = await import('../src/cli/main.ts');
  process.exitCode = await main(process.argv.slice(2));
}
