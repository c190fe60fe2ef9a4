// Shared by the image tests: fixture paths and hand-made records.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { type FirmwareImage, segmentEnd } from './model.ts';

/** Built by harness/fixtures/firmware/build.sh; the .bin files are `objcopy -O binary` output. */
export const FIXTURES = path.resolve(import.meta.dirname, '../../harness/fixtures/firmware/out');
export const fixture = (name: string): string => path.join(FIXTURES, name);
export const fixtureBytes = (name: string): Uint8Array => new Uint8Array(readFileSync(fixture(name)));

/** The image's bytes in [start, end), gaps filled as objcopy fills them (zero) unless told. */
export function flatten(img: FirmwareImage, start: number, end: number, fill = 0): Uint8Array {
  const out = new Uint8Array(end - start).fill(fill);
  for (const s of img.segments) {
    const from = Math.max(s.address, start);
    const to = Math.min(segmentEnd(s), end);
    if (from < to) out.set(s.data.subarray(from - s.address, to - s.address), from - start);
  }
  return out;
}

const hex = (bytes: number[]) => bytes.map((b) => b.toString(16).toUpperCase().padStart(2, '0')).join('');

/** One Intel HEX record with a correct checksum. */
export function hexRecord(type: number, address: number, data: number[]): string {
  const body = [data.length, address >> 8, address & 0xff, type, ...data];
  return `:${hex([...body, -body.reduce((a, b) => a + b, 0) & 0xff])}`;
}

/** One S-record with a correct count and checksum; the address takes `addressBytes` bytes. */
export function srecRecord(type: number, address: number, data: number[], addressBytes = 4): string {
  const addr: number[] = [];
  for (let i = addressBytes - 1; i >= 0; i--) addr.push(Math.floor(address / 2 ** (8 * i)) & 0xff);
  const body = [addressBytes + data.length + 1, ...addr, ...data];
  return `S${type}${hex([...body, ~body.reduce((a, b) => a + b, 0) & 0xff])}`;
}

export const text = (s: string): Uint8Array => new TextEncoder().encode(s);

/** Runs the CLI in-process with captured output. */
export async function runCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const { main } = await import('../cli/main.ts');
  const { PassThrough } = await import('node:stream');
  const capture = () => {
    const s = new PassThrough();
    let text = '';
    s.on('data', (c: Buffer) => {
      text += c.toString('utf8');
    });
    return {
      s,
      get text() {
        return text;
      },
    };
  };
  const out = capture();
  const err = capture();
  const saved = process.exitCode;
  process.exitCode = undefined;
  try {
    const code = await main(args, { stdout: out.s, stderr: err.s });
    await new Promise((r) => setImmediate(r));
    return { code, stdout: out.text, stderr: err.text };
  } finally {
    process.exitCode = saved;
  }
}
