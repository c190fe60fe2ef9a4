// Image readers: parse speed of each format on a 1.5 MiB two-bank image, side by side with nrf-intel-hex on
// the same HEX text, and the peak memory of reading a 32 MiB image as a multiple of its size.
// Run: `npm run bench -- image` or `node_modules/.bin/node bench/image.bench.ts`.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import nrfModule from 'nrf-intel-hex';

// nrf-intel-hex is CommonJS: at run time the default import is the MemoryMap class itself.
const nrf = ((nrfModule as { default?: unknown }).default ?? nrfModule) as typeof nrfModule.default;

import { noise } from '../harness/images.ts';
import {
  FirmwareImage,
  parseImage,
  readImage,
  writeBinary,
  writeDfuse,
  writeIntelHex,
  writeSrec,
} from '../src/image/index.ts';

const MiB = 1024 * 1024;

/** Deterministic pseudo-random bytes (xorshift32): incompressible like real code. */
function twoBankImage(bank1: number, bank2: number): FirmwareImage {
  const img = new FirmwareImage('bin', 'bench');
  img.add({ name: 'bank1', address: 0x0800_0000, data: noise(bank1, 1), source: { file: 'bench' } });
  if (bank2)
    img.add({ name: 'bank2', address: 0x0810_0000, data: noise(bank2, 2), source: { file: 'bench' } });
  img.entry = 0x0800_0199;
  return img;
}

/** A minimal ELF32 ARM executable with one PT_LOAD per segment (TIS ELF 1.2 layout). */
function elfOf(img: FirmwareImage): Uint8Array {
  const segs = img.segments;
  const headers = 52 + 32 * segs.length;
  const size = headers + segs.reduce((n, s) => n + s.data.length, 0);
  const out = new Uint8Array(size);
  const dv = new DataView(out.buffer);
  out.set([0x7f, 0x45, 0x4c, 0x46, 1, 1, 1]);
  dv.setUint16(16, 2, true);
  dv.setUint16(18, 40, true);
  dv.setUint32(20, 1, true);
  dv.setUint32(24, img.entry ?? 0, true);
  dv.setUint32(28, 52, true);
  dv.setUint16(40, 52, true);
  dv.setUint16(42, 32, true);
  dv.setUint16(44, segs.length, true);
  let at = headers;
  segs.forEach((s, i) => {
    const h = 52 + 32 * i;
    dv.setUint32(h, 1, true);
    dv.setUint32(h + 4, at, true);
    dv.setUint32(h + 8, s.address, true);
    dv.setUint32(h + 12, s.address, true);
    dv.setUint32(h + 16, s.data.length, true);
    dv.setUint32(h + 20, s.data.length, true);
    out.set(s.data, at);
    at += s.data.length;
  });
  return out;
}

function files(img: FirmwareImage): Array<[string, Uint8Array]> {
  return [
    ['fw.hex', writeIntelHex(img, { eol: '\r\n' })],
    ['fw.srec', writeSrec(img)],
    ['fw.bin', writeBinary(img).data],
    ['fw.dfu', writeDfuse(img)],
    ['fw.elf', elfOf(img)],
  ];
}

/** Best of `rounds` timings after a warm-up, in ms. */
function time(rounds: number, fn: () => unknown): number {
  for (let i = 0; i < 3; i++) fn();
  let best = Number.POSITIVE_INFINITY;
  for (let i = 0; i < rounds; i++) {
    const t0 = performance.now();
    fn();
    best = Math.min(best, performance.now() - t0);
  }
  return best;
}

const mbps = (bytes: number, ms: number) => bytes / 1e6 / (ms / 1000);

function speed(): void {
  const img = twoBankImage(1 * MiB, MiB / 2);
  console.log(
    `parse speed: ${img.size / MiB} MiB image, bank 1 1 MiB at 0x08000000 + bank 2 0.5 MiB at 0x08100000 (best of 15)`,
  );
  let oursHex = 0;
  for (const [name, data] of files(img)) {
    const ms = time(15, () => parseImage(data, name));
    if (name === 'fw.hex') oursHex = ms;
    console.log(
      `  ${name.padEnd(8)} ${String(data.length).padStart(9)} bytes  ${ms.toFixed(2).padStart(7)} ms  ${mbps(data.length, ms).toFixed(0).padStart(5)} MB/s`,
    );
  }
  const hex = files(img)[0]![1];
  const hexText = Buffer.from(hex).toString('latin1');
  const theirs = time(15, () => nrf.fromHex(hexText));
  // Check both read the same bytes before comparing their speed.
  const map = nrf.fromHex(hexText);
  const ours = parseImage(hex, 'fw.hex');
  const same = ours.segments.every(
    (s) => Buffer.compare(map.get(s.address) ?? new Uint8Array(), s.data) === 0,
  );
  console.log(
    `  nrf-intel-hex MemoryMap.fromHex on the same HEX text: ${theirs.toFixed(2)} ms, ${mbps(hex.length, theirs).toFixed(0)} MB/s (same bytes: ${same})`,
  );
  console.log(`  ratio: ours is ${(theirs / oursHex).toFixed(1)}x faster than nrf-intel-hex on Intel HEX`);
}

function memory(): void {
  const size = 32 * MiB;
  const img = twoBankImage(size, 0);
  const dir = mkdtempSync(path.join(tmpdir(), 'stm32-hil-bench-'));
  console.log(
    `\nmemory: reading a ${size / MiB} MiB image from a file (readImage; text formats are streamed), each in a fresh process`,
  );
  try {
    for (const [name, data] of files(img)) {
      const file = path.join(dir, name);
      writeFileSync(file, data);
      const r = spawnSync(
        process.execPath,
        ['--expose-gc', fileURLToPath(import.meta.url), '--memory', file, String(size)],
        {
          encoding: 'utf8',
        },
      );
      if (r.status !== 0) throw new Error(`memory child for ${name} failed: ${r.stderr}`);
      const m = JSON.parse(r.stdout) as { peak: number; retained: number; ms: number };
      console.log(
        `  ${name.padEnd(8)} file ${(data.length / MiB).toFixed(1).padStart(5)} MiB  peak RSS +${(m.peak / MiB).toFixed(1).padStart(5)} MiB = ${(m.peak / size).toFixed(2)}x  array buffers kept ${(m.retained / size).toFixed(2)}x  (${m.ms.toFixed(0)} ms)`,
      );
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Peak RSS of this process: VmHWM from /proc (per address space, so not inherited from the parent the way
 * getrusage's maxRSS is across exec on Linux); maxRSS elsewhere.
 */
function highWater(): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
    if (m) return Number(m[1]) * 1024;
  } catch {
    // not Linux
  }
  return process.resourceUsage().maxRSS * 1024;
}

/** Child: peak RSS growth and retained ArrayBuffer memory while reading one file. */
function measure(file: string, size: number): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  const rss0 = process.memoryUsage().rss;
  const ab0 = process.memoryUsage().arrayBuffers;
  const t0 = performance.now();
  const img = readImage(file);
  const ms = performance.now() - t0;
  if (img.size !== size) throw new Error(`read ${img.size} bytes, expected ${size}`);
  gc?.();
  const peak = highWater() - rss0;
  const retained = process.memoryUsage().arrayBuffers - ab0;
  process.stdout.write(JSON.stringify({ peak, retained, ms, segments: img.segments.length }));
}

const at = process.argv.indexOf('--memory');
if (at >= 0) {
  measure(process.argv[at + 1]!, Number(process.argv[at + 2]));
} else {
  speed();
  memory();
}
