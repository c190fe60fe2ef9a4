// Shared by the executables in bin/: their code is TypeScript run by Node 24's built-in type stripping. Started
// by an older Node (a system Node 20 outside npm scripts), they re-run themselves on the Node 24 the project
// pins in devDependencies (the `node` package).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/**
 * Returns when this process runs on Node 24 or newer; otherwise runs `script` again on the pinned Node and
 * exits with its status. `onMissing` prints the tool's own complaint when the pinned Node is not installed.
 */
export function ensureNode24(script, onMissing) {
  // Output piped into `head` and the like: a closed pipe ends the program quietly, as for any Unix tool.
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (e) => {
      if (e.code === 'EPIPE') process.exit(0);
      throw e;
    });
  }
  if (Number(process.versions.node.split('.')[0]) >= 24) return;
  const pinned = fileURLToPath(new URL('../node_modules/node/bin/node', import.meta.url));
  if (!existsSync(pinned)) {
    onMissing(process.versions.node);
    process.exit(3);
  }
  const r = spawnSync(pinned, [fileURLToPath(script), ...process.argv.slice(2)], { stdio: 'inherit' });
  process.exit(r.status ?? (r.signal ? 130 : 3));
}
