// ST-LINK side: (1) the cost of one SWD operation on a virtual board, i.e. one start of the STM32_Programmer_CLI
// stand-in, against a bare `node -e 0` start measured in the same run (the floor any process pays): as the harness
// starts it (boards handed over in the environment), and by hand (boards.yaml parsed) with and without Node's
// compile cache; (2) parser and triage throughput on the seed logs against a plain split of the
// same text into cleaned lines. Targets: a stand-in run under 4x a bare Node start with the cache; parsing and
// triage within 20x of splitting the text (a multi-megabyte log still parses in well under a second).
// Run: `npm run bench -- stlink` or `node_modules/.bin/node bench/stlink.bench.ts`.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { loadConfig } from '../src/farm/config.ts';
import { SWD_BOARDS_ENV, swdBoardsOf } from '../src/sim/swd/boards.ts';
import { cleanLine, parseProgrammerOutput } from '../src/stlink/parse.ts';
import { triageLog } from '../src/triage/triage.ts';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const dir = mkdtempSync(path.join(tmpdir(), 'stlink-bench-'));
const config = path.join(dir, 'boards.yaml');
writeFileSync(
  config,
  'farm: { stateDir: state }\nboards:\n  - id: b\n    part: stm32h743\n    stlink: { serial: BENCH1 }\n    virtual: { chipRevision: V, bootloader: 0x90 }\n',
);

function timeSpawn(args: string[], env: NodeJS.ProcessEnv, runs: number): number {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    const r = spawnSync(process.execPath, args, { env, encoding: 'utf8' });
    times.push(performance.now() - t);
    if (r.status !== 0) throw new Error(`${args.join(' ')} exited ${r.status}: ${r.stdout}${r.stderr}`);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)]!;
}

const runs = 7;
const standIn = [
  path.join(root, 'bin/virtual-stm32-programmer-cli.js'),
  '-c',
  'port=SWD',
  'sn=BENCH1',
  '-ob',
  'displ',
];
const baseEnv = { ...process.env, STM32_HIL_CONFIG: config };
const bare = timeSpawn(['-e', '0'], baseEnv, runs);
const cache = { NODE_COMPILE_CACHE: path.join(dir, 'cache') };
const harnessEnv = { ...baseEnv, [SWD_BOARDS_ENV]: JSON.stringify(swdBoardsOf(loadConfig(config))) };
const viaHarness = timeSpawn(standIn, { ...harnessEnv, ...cache }, runs);
const cached = timeSpawn(standIn, { ...baseEnv, ...cache }, runs);
const uncached = timeSpawn(standIn, { ...baseEnv, NODE_DISABLE_COMPILE_CACHE: '1' }, runs);

const seeds = ['000_86af520f69e124d8.txt', '003_36c1774b50054e92.txt', '004_8273e94a02fe9c72.txt'].map((f) =>
  readFileSync(path.join(root, 'src/triage/fixtures', f), 'utf8'),
);
const big = Array.from({ length: 200 }, (_, i) => seeds[i % seeds.length]).join('\n');
const mb = Buffer.byteLength(big) / 1e6;
function best(fn: () => void, n = 5): number {
  let min = Number.POSITIVE_INFINITY;
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    fn();
    min = Math.min(min, performance.now() - t);
  }
  return min;
}
const split = best(() => big.split('\n').map(cleanLine));
const parse = best(() => parseProgrammerOutput(big));
const triage = best(() => triageLog(big));

const f = (n: number) => n.toFixed(1);
const row = (label: string, ms: number, ratio: number, note = '') =>
  process.stdout.write(
    `  ${label.padEnd(58)} ${f(ms).padStart(8)} ms ${f(ratio).padStart(6)}x${note ? `   ${note}` : ''}\n`,
  );
process.stdout.write(`machine: ${cpus().length} cores, load ${loadavg()[0]!.toFixed(2)}\n`);
process.stdout.write(`SWD operation on a virtual board (median of ${runs} process starts, -ob displ):\n`);
row('bare node -e 0', bare, 1);
row(
  'stand-in as the harness starts it (boards in env, cache)',
  viaHarness,
  viaHarness / bare,
  '(target < 4x)',
);
row('stand-in by hand (reads boards.yaml), compile cache', cached, cached / bare);
row('stand-in by hand, no compile cache', uncached, uncached / bare);
process.stdout.write(`log of ${f(mb)} MB (${big.split('\n').length} lines, seeds 000/003/004 x200):\n`);
row('split + clean lines', split, 1);
row('parseProgrammerOutput', parse, parse / split, '(target < 20x)');
row('triageLog', triage, triage / split, '(target < 20x)');
rmSync(dir, { recursive: true, force: true });
