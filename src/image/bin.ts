// Raw binary images: bytes with no address of their own, placed at a base address.
import { hex32 } from '../util/hex.ts';
import { FirmwareImage, ImageError, type Segment, segmentEnd } from './model.ts';

/** Where a raw binary goes when nobody says: the start of STM32 main flash (every STM32 memory map). */
export const DEFAULT_BASE = 0x0800_0000;

export function parseBinary(bytes: Uint8Array, file: string, base?: number): FirmwareImage {
  const img = new FirmwareImage('bin', file);
  const at = base ?? DEFAULT_BASE;
  if (base === undefined) img.meta.baseAssumed = true;
  if (at + bytes.length > 0x1_0000_0000) {
    throw new ImageError(
      'E_IMAGE_ADDRESS_RANGE',
      `${file}: ${bytes.length} bytes at base ${hex32(at)} run past the 4 GiB address space from byte offset ${0x1_0000_0000 - at}`,
      { file, offset: 0x1_0000_0000 - at, address: at, length: bytes.length },
      'check --base',
    );
  }
  img.add({ name: 'bin', address: at, data: bytes, source: { file, offset: 0 } });
  return img;
}

export interface BinaryWriteOptions {
  /** Value of the bytes between segments (default 0xFF, erased flash). */
  fill?: number;
  /** First address of the output (default: the image's lowest address). */
  start?: number;
  /** One past the last address (default: the image's highest address + 1). */
  end?: number;
  /** Refuse outputs larger than this (default 256 MiB): a RAM segment far from flash would make gigabytes. */
  maxSize?: number;
}

/** One contiguous range of bytes, gaps filled; returns the bytes and the address of the first one. */
export function writeBinary(
  image: { segments: readonly Segment[]; file?: string },
  options: BinaryWriteOptions = {},
): { data: Uint8Array; base: number } {
  const segs = image.segments;
  const first = segs[0];
  const last = segs.reduce<Segment | undefined>(
    (a, s) => (a && segmentEnd(a) >= segmentEnd(s) ? a : s),
    undefined,
  );
  if (!first || !last)
    throw new ImageError('E_IMAGE_EMPTY', `${image.file ?? 'image'}: no data to write`, { file: image.file });
  const start = options.start ?? segs.reduce((m, s) => Math.min(m, s.address), first.address);
  const end = options.end ?? segmentEnd(last);
  const max = options.maxSize ?? 256 * 1024 * 1024;
  if (end - start > max) {
    const low = segs.find((s) => segmentEnd(s) > start) ?? first;
    throw new ImageError(
      'E_IMAGE_BIN_SPAN',
      `a raw binary from ${hex32(start)} (${low.name}) to ${hex32(end - 1)} (${last.name}) would be ${Math.ceil((end - start) / 1048576)} MiB, mostly fill`,
      { start, end, low: low.source, high: last.source },
      'the image holds data far from the rest (RAM?): keep only flash with --part P --flash-only, or mark the section NOLOAD',
    );
  }
  const fill = options.fill ?? 0xff;
  const data = new Uint8Array(Math.max(0, end - start)).fill(fill);
  for (const s of segs) {
    const from = Math.max(s.address, start);
    const to = Math.min(segmentEnd(s), end);
    if (from < to) data.set(s.data.subarray(from - s.address, to - s.address), from - start);
  }
  return { data, base: start };
}
