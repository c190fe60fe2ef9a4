// Nightly run on 1, 8 and 32 virtual boards, side by side in one process: wall time and CPU time of each.
// Real farms wait on hardware, so wall time must grow far slower than the board count (target: 32 boards in at
// most 1.5x the wall time of one). The timing model runs on the real clock, scaled down by HIL_BENCH_SCALE
// (default 1, real time): a wait stays a wait.
//   node_modules/.bin/node bench/farm.bench.ts            all three sizes
//   HIL_BENCH_BOARDS=1,8 HIL_BENCH_SUITES=flash-verify,bank2-write node_modules/.bin/node bench/farm.bench.ts
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const sizes = (process.env.HIL_BENCH_BOARDS ?? '1,8,32').split(',').map(Number);
const scale = Number(process.env.HIL_BENCH_SCALE ?? 1);
const suites =
  process.env.HIL_BENCH_SUITES ?? 'flash-verify,bank2-write,sector-stress,power-cycle,bootloader-entry';

/** CPU seconds of this process's waited-for children (/proc/self/stat cutime + cstime, in clock ticks). */
function childCpuSeconds(): number {
  const fields = readFileSync('/proc/self/stat', 'utf8').split(') ')[1]!.split(' ');
  // After "pid (comm) ", field 3 is state; cutime and cstime are fields 16 and 17 of the full line.
  return (Number(fields[13]) + Number(fields[14])) / 100;
}

function farm(n: number): string {
  const dir = mkdtempSync(path.join(tmpdir(), `bench-farm-${n}-`));
  const boards = Array.from({ length: n }, (_, i) =>
    [
      `  - id: h743-${i}`,
      '    part: stm32h743',
      `    stlink: { serial: BENCH${i} }`,
      '    power: { protocol: virtual, channel: 1 }',
      '    boot0: { protocol: virtual, channel: 2 }',
      `    virtual: { chipRevision: Y, bootloader: 0xD2 }`,
    ].join('\n'),
  );
  writeFileSync(
    path.join(dir, 'boards.yaml'),
    `farm: { stateDir: state, reportsDir: reports, timeScale: ${scale} }\nboards:\n${boards.join('\n')}\n`,
  );
  return path.join(dir, 'boards.yaml');
}

console.log(`farm bench: suites ${suites}, timing model scaled 1/${scale}`);
const rows: Array<{ n: number; wall: number; cpu: number; outcomes: number }> = [];
for (const n of sizes) {
  const config = farm(n);
  const cpu0 = childCpuSeconds();
  const t0 = performance.now();
  const r = spawnSync(
    path.join(root, 'node_modules/.bin/node'),
    [
      path.join(root, 'bin/stm32-hil.js'),
      '--config',
      config,
      '--json',
      'run',
      '--no-report',
      '--suite',
      suites,
    ],
    {
      encoding: 'utf8',
      maxBuffer: 64 * 1024 * 1024,
    },
  );
  const wall = (performance.now() - t0) / 1000;
  const cpu = childCpuSeconds() - cpu0;
  let outcomes = 0;
  try {
    outcomes = (JSON.parse(r.stdout) as { outcomes: unknown[] }).outcomes.length;
  } catch {
    console.log(
      `  ${n} boards: the run printed no JSON (exit ${r.status}): ${r.stderr.split('\n').slice(-3).join(' | ')}`,
    );
  }
  rows.push({ n, wall, cpu, outcomes });
  console.log(
    `  ${String(n).padStart(2)} board(s): wall ${wall.toFixed(1)} s, CPU ${cpu.toFixed(1)} s, ${outcomes} outcomes, exit ${r.status}`,
  );
}
const one = rows.find((r) => r.n === 1);
if (one) {
  console.log('\n  boards  wall/wall(1)  CPU/CPU(1)');
  for (const r of rows)
    console.log(
      `  ${String(r.n).padStart(6)}  ${(r.wall / one.wall).toFixed(2).padStart(12)}  ${(r.cpu / one.cpu).toFixed(2).padStart(10)}`,
    );
  const big = rows.find((r) => r.n === 32);
  if (big)
    console.log(
      `\n  target: 32 boards in at most 1.5x the wall time of one: ${(big.wall / one.wall).toFixed(2)}x ${big.wall / one.wall <= 1.5 ? 'met' : 'NOT met'}`,
    );
}
