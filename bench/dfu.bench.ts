// DfuSe host: flash and verify a 1.5 MiB two-bank image on a virtual STM32H743 (bootloader 0xD2) in real time
// (RealClock, timeScale 1), and print how much of the wall time the device's timing model imposed (the
// bwPollTimeouts a DFU 1.1 host must wait) against what the host added, plus control transfers per data block
// and GETSTATUS polls beyond the minimum. Targets: host overhead under 3 % of wall time; no extra polls.
// Run: `npm run bench -- dfu` or `node_modules/.bin/node bench/dfu.bench.ts`.
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { noise } from '../harness/images.ts';
import { DfuseHost } from '../src/dfu/index.ts';
import { FirmwareImage } from '../src/image/model.ts';
import { createVirtualBoard } from '../src/sim/board.ts';
import { realClock } from '../src/util/clock.ts';

const KiB = 1024;

const image = new FirmwareImage('bin', 'bench-1.5MiB');
image.add({ name: 'bank1', address: 0x0800_0000, data: noise(768 * KiB, 1), source: { file: 'bench' } });
image.add({ name: 'bank2', address: 0x0810_0000, data: noise(768 * KiB, 2), source: { file: 'bench' } });

const dir = mkdtempSync(path.join(tmpdir(), 'dfu-bench-'));
const board = createVirtualBoard({
  id: 'bench',
  part: 'stm32h743',
  chipRevision: 'Y',
  bootloader: 0xd2,
  stateFile: path.join(dir, 'chip.bin'),
  clock: realClock,
  timeScale: 1,
});
/**
 * The machine's own timer lateness: `n` one-millisecond waits done the way the host waits, with no USB and no
 * simulator. On a busy machine the OS schedules the process late and every wait ends late; measured side by
 * side with the flash so the host's share can be told apart.
 */
async function baselineLateness(n: number): Promise<number> {
  const cell = new Int32Array(new SharedArrayBuffer(4));
  let late = 0;
  for (let i = 0; i < n; i++) {
    // As DfuDevice.sleep waits a 1 ms poll timeout: blocking slices of at most 0.25 ms, yielding in between.
    const target = performance.now() + 1;
    for (let left = target - performance.now(); left > 0; left = target - performance.now()) {
      Atomics.wait(cell, 0, 0, Math.min(left, 0.25));
      if (performance.now() < target) await new Promise<void>((resolve) => setImmediate(resolve));
    }
    late += performance.now() - target;
  }
  return late / n;
}

try {
  board.setBoot0(true);
  board.setPower(true);
  const usb = await board.waitForUsb(5000);
  const host = await DfuseHost.open(usb, { clock: realClock });

  // Where sleeping went past the poll timeouts: the long erase waits or the 1 ms block waits.
  const late = { long: 0, short: 0, longN: 0, shortN: 0 };
  const sleep = host.dfu.sleep.bind(host.dfu);
  host.dfu.sleep = async (ms: number) => {
    const t = performance.now();
    await sleep(ms);
    const over = performance.now() - t - ms;
    if (ms >= 100) {
      late.long += over;
      late.longN++;
    } else {
      late.short += over;
      late.shortN++;
    }
  };

  const before = await baselineLateness(1536);
  const t0 = performance.now();
  const r = await host.flash(image, { verify: true });
  const wall = performance.now() - t0;
  const baseline = (before + (await baselineLateness(1536))) / 2;
  if (!r.verify?.ok) throw new Error('verify failed');

  const s = r.stats;
  const plan = r.plan;
  const sectors = plan.erase.mode === 'sectors' ? plan.erase.sectors : [];
  const blocks = plan.writes.reduce((n, w) => n + Math.ceil(w.data.length / host.dfu.transferSize), 0);
  const readBlocks = image
    .coalesced()
    .reduce((n, seg) => n + Math.ceil(seg.data.length / host.dfu.transferSize), 0);
  // What the timing model keeps the flash busy (erase 0.9 s per sector, 16 us per 32-byte flash word).
  const chipSectors = board.chip.sectors;
  const modelBusy =
    sectors.reduce(
      (n, sec) => n + board.timing.sectorErase(chipSectors.find((c) => c.start === sec.start)!).busyMs,
      0,
    ) +
    plan.writes.reduce((n, w) => {
      let t = 0;
      for (let off = 0; off < w.data.length; off += host.dfu.transferSize) {
        t += board.timing.program(Math.min(host.dfu.transferSize, w.data.length - off)).busyMs;
      }
      return n + t;
    }, 0);
  const imposed = s.requestedWaitMs;
  // Time inside control transfers is the device's (here: the simulator's flash file I/O) and the bus's.
  const inTransfers = s.transferMs;
  const overhead = wall - imposed - inTransfers;
  // Each DNLOAD needs two GETSTATUS (one starts it and answers dfuDNBUSY + bwPollTimeout, one after the wait
  // reports the outcome); the operation starts with one GETSTATUS to learn the state.
  const minPolls = 2 * s.dnload + 1;
  const writeTransfers = s.transfers - s.upload - 2 * 2; // minus UPLOADs and the ABORTs around the two read-backs

  const f = (ms: number) => `${(ms / 1000).toFixed(3).padStart(7)} s`;
  const pct = (x: number) => `${(x * 100).toFixed(2)} %`;
  console.log(
    `image: ${(image.size / KiB / KiB).toFixed(2)} MiB in two banks; ${sectors.length} sectors erased; ${blocks} blocks of ${host.dfu.transferSize} bytes written, ${readBlocks} read back`,
  );
  console.log(`device busy in the timing model (erase + programming):   ${f(modelBusy)}`);
  console.log(`device busy imposed on the host (sum of bwPollTimeouts): ${f(imposed)}`);
  console.log(`wall time, flash + verify:                               ${f(wall)}`);
  console.log(
    `  inside control transfers (device/simulator + bus):     ${f(inTransfers)}  = ${pct(inTransfers / wall)} of wall`,
  );
  console.log(
    `  slept honouring bwPollTimeout:                         ${f(s.sleptMs)}  = ${(s.sleptMs / imposed).toFixed(4)} x imposed`,
  );
  console.log(
    `  host overhead (wall - imposed - in transfers):         ${f(overhead)}  = ${pct(overhead / wall)} of wall (target < 3 %)`,
  );
  console.log(`    of which sleeping past the poll timeouts (timers):     ${f(s.sleptMs - imposed)}`);
  console.log(
    `      ${late.longN} erase waits late by ${f(late.long)}, ${late.shortN} block waits late by ${f(late.short)}`,
  );
  console.log(
    `    of which host code between transfers:                ${f(wall - s.sleptMs - inTransfers)}`,
  );
  console.log(
    `  everything beyond the imposed waits:                   ${f(wall - imposed)}  = ${pct((wall - imposed) / wall)} of wall`,
  );
  const machineLate = baseline * (late.longN + late.shortN);
  const hostOnly = overhead - machineLate;
  console.log(
    `machine: load average ${loadavg()[0]!.toFixed(2)} on ${cpus().length} CPUs; the same 1 ms waits without USB end ${baseline.toFixed(3)} ms late each`,
  );
  console.log(
    `  host overhead less that machine lateness (${f(machineLate).trim()}):     ${f(hostOnly)}  = ${pct(hostOnly / wall)} of wall (target < 3 %)`,
  );
  console.log(
    `control transfers: ${s.transfers}; per written data block ${(writeTransfers / blocks).toFixed(3)} ` +
      `(DNLOAD + 2 GETSTATUS = 3, plus the erase and set-address commands spread over the blocks); per read-back block ${(s.upload / readBlocks).toFixed(3)} UPLOAD`,
  );
  console.log(
    `GETSTATUS polls: ${s.getStatus}; minimum the poll timeouts require: ${minPolls}; re-polls of a still-busy device: ${s.repolls}`,
  );
  const polls = s.getStatus <= minPolls && s.repolls === 0;
  const quiet = overhead / wall < 0.03;
  const hostTarget = hostOnly / wall < 0.03;
  console.log(
    `targets: polls ${polls ? 'met' : 'MISSED'}; overhead < 3 % ${quiet ? 'met' : 'MISSED'} as measured, ${hostTarget ? 'met' : 'MISSED'} for the host's own share`,
  );
  const ok = polls && hostTarget;
  await host.close();
  if (!ok) process.exitCode = 1;
} finally {
  board.close();
  rmSync(dir, { recursive: true, force: true });
}
