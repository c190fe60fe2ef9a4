import path from 'node:path';
import { readImage } from '../src/image/index.ts';
import { FirmwareImage } from '../src/image/model.ts';
import { flashSectors, type Part } from '../src/parts/catalogue.ts';
import { REPO_ROOT } from './paths.ts';

/** Images built by harness/fixtures/firmware/build.sh with arm-none-eabi-gcc (committed outputs). */
export async function fixtureImage(name: string): Promise<FirmwareImage> {
  return readImage(path.join(REPO_ROOT, 'harness/fixtures/firmware/out', name));
}

/** `n` deterministic pseudo-random bytes (xorshift32) from `seed`: test and bench data that compresses to nothing. */
export function noise(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  fill(out, seed, false);
  return out;
}

/** Deterministic bytes (xorshift32): every sector gets different content, so a misplaced block shows. */
function fill(data: Uint8Array, seed: number, vectorTable = true): void {
  let x = seed >>> 0 || 1;
  for (let i = 0; i < data.length; i += 4) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    data[i] = x & 0xff;
    data[i + 1] = (x >>> 8) & 0xff;
    data[i + 2] = (x >>> 16) & 0xff;
    data[i + 3] = x >>> 24;
  }
  // A vector table as linkers write it: initial SP at the very end of RAM (0x24080000, the end of the H743's AXI
  // SRAM, as in the seed 004 image whose byte 0x08000002 is 0x08), reset handler in flash with the thumb bit.
  if (vectorTable && data.length >= 8) {
    data.set([0x00, 0x00, 0x08, 0x24, 0x99, 0x02, 0x00, 0x08], 0);
  }
}

/**
 * A synthetic image over the given banks' sectors: `bytes` per bank from each bank's start (the 1.5 MiB
 * two-bank image is `{ banks: [1, 2], bytesPerBank: [1 MiB, 512 KiB] }` on an H743).
 */
export function syntheticImage(
  part: Part,
  spec: { banks: number[]; bytesPerBank: number[]; seed?: number },
): FirmwareImage {
  const img = new FirmwareImage('bin', `synthetic-${part.id}-banks-${spec.banks.join('+')}`);
  spec.banks.forEach((bank, i) => {
    const sectors = flashSectors(part).filter((s) => s.bank === bank);
    if (!sectors.length) throw new Error(`${part.id} has no bank ${bank}`);
    const data = new Uint8Array(spec.bytesPerBank[i]!);
    fill(data, (spec.seed ?? 1) * 31 + bank);
    img.add({ name: `bank${bank}`, address: sectors[0]!.start, data, source: { file: img.file, offset: 0 } });
  });
  return img;
}
