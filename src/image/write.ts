import path from 'node:path';
import { UsageError } from '../errors.ts';
import { type BinaryWriteOptions, writeBinary } from './bin.ts';
import { type DfuWriteOptions, writeDfuse } from './dfuse.ts';
import { type IntelHexWriteOptions, writeIntelHex } from './ihex.ts';
import type { FirmwareImage } from './model.ts';
import { type SrecWriteOptions, writeSrec } from './srec.ts';

export type OutputFormat = 'hex' | 'srec' | 'bin' | 'dfu';
export const OUTPUT_FORMATS: readonly OutputFormat[] = ['hex', 'srec', 'bin', 'dfu'];

const EXTENSIONS: Record<string, OutputFormat> = {
  '.hex': 'hex',
  '.ihex': 'hex',
  '.ihx': 'hex',
  '.srec': 'srec',
  '.s19': 'srec',
  '.s28': 'srec',
  '.s37': 'srec',
  '.mot': 'srec',
  '.bin': 'bin',
  '.dfu': 'dfu',
};

/** The output format from an explicit `--to` or else the output file's extension. */
export function outputFormat(out: string, to?: string): OutputFormat {
  if (to !== undefined) {
    const f = to.toLowerCase() === 'ihex' ? 'hex' : to.toLowerCase();
    if ((OUTPUT_FORMATS as readonly string[]).includes(f)) return f as OutputFormat;
    throw new UsageError(`--to ${to}: unknown format (use ${OUTPUT_FORMATS.join(', ')})`);
  }
  const ext = path.extname(out).toLowerCase();
  const f = EXTENSIONS[ext];
  if (!f)
    throw new UsageError(
      `cannot tell the output format from "${out}": give --to ${OUTPUT_FORMATS.join('|')}`,
    );
  return f;
}

export interface WriteOptions {
  hex?: IntelHexWriteOptions;
  srec?: SrecWriteOptions;
  bin?: BinaryWriteOptions;
  dfu?: DfuWriteOptions;
}

/** Serialises `image`; `base` is the address of the first byte for a raw binary. */
export function writeImage(
  image: FirmwareImage,
  format: OutputFormat,
  options: WriteOptions = {},
): { data: Uint8Array; base?: number } {
  switch (format) {
    case 'hex':
      return { data: writeIntelHex(image, options.hex) };
    case 'srec':
      return { data: writeSrec(image, options.srec) };
    case 'bin':
      return writeBinary(image, options.bin);
    case 'dfu':
      return { data: writeDfuse(image, options.dfu) };
  }
}
