// Virtual ROM bootloader: what the simulator itself costs while a host flashes and reads back the 1.5 MiB
// two-bank image (1 MiB in bank 1, 512 KiB in bank 2) on a virtual STM32H743 (0xD2) through raw control
// transfers on a VirtualClock. Prints the device-busy time the timing model imposes, the simulator's CPU
// time for the same transfers, their ratio (how much of a real-time run the simulator eats), and control
// transfers per 1024-byte block.
// Run: `npm run bench -- sim` or `node_modules/.bin/node bench/sim.bench.ts`.
import { rmSync } from 'node:fs';
import path from 'node:path';
import { RawDfu, testBoard } from '../src/sim/testing.ts';

const KiB = 1024;
const segments = [
  { address: 0x0800_0000, size: 1024 * KiB },
  { address: 0x0810_0000, size: 512 * KiB },
];

async function flashOnce(): Promise<{ busyMs: number; cpuMs: number; transfers: number; blocks: number }> {
  const board = testBoard({ id: 'bench' });
  const raw = new RawDfu(board);
  let transfers = 0;
  const control = board.control.bind(board);
  board.control = (...args) => {
    transfers++;
    return control(...args);
  };
  let blocks = 0;
  const cpu0 = process.cpuUsage();
  for (const seg of segments) {
    for (let a = seg.address; a < seg.address + seg.size; a += 128 * KiB) await raw.run(() => raw.erase(a));
    await raw.run(() => raw.setAddress(seg.address));
    const data = new Uint8Array(1024);
    for (let n = 0; n < seg.size / 1024; n++) {
      data.fill(n & 0xff);
      await raw.run(() => raw.dnload(n + 2, data));
      blocks++;
    }
    await raw.abort();
    for (let n = 0; n < seg.size / 1024; n++) await raw.upload(n + 2, 1024);
    await raw.abort();
  }
  const cpu = process.cpuUsage(cpu0);
  const busyMs = board.clock.now();
  const file = board.chip.file;
  board.close();
  rmSync(path.dirname(file), { recursive: true, force: true });
  return { busyMs, cpuMs: (cpu.user + cpu.system) / 1000, transfers, blocks };
}

await flashOnce(); // warm-up
const runs = [];
for (let i = 0; i < 3; i++) runs.push(await flashOnce());
const best = runs.reduce((a, b) => (a.cpuMs <= b.cpuMs ? a : b));
console.log(
  `modelled device-busy time : ${(best.busyMs / 1000).toFixed(2)} s (12 sector erases + 1536 blocks)`,
);
console.log(`simulator CPU time        : ${best.cpuMs.toFixed(0)} ms`);
console.log(`simulator / busy time     : ${((100 * best.cpuMs) / best.busyMs).toFixed(2)} %`);
console.log(
  `control transfers / block : ${(best.transfers / (best.blocks * 2)).toFixed(2)} (flash + read back)`,
);
