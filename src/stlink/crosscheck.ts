import { HilError, isHilError } from '../errors.ts';
import type { FirmwareImage } from '../image/model.ts';
import { flashRange, type Part } from '../parts/catalogue.ts';
import { throwIfAborted } from '../util/abort.ts';
import { hex8, hex32 } from '../util/hex.ts';

/**
 * Cross-check: the same flash read two ways (USB DFU through the ROM bootloader, SWD through an ST-LINK) and
 * compared with the image and with each other, to tell "the flash holds the wrong bytes" from "one way of reading
 * it lies" (seed 000: a compare reported a difference at 0x08000000 nobody could see).
 */

export type Source = 'image' | 'dfu' | 'swd';

export interface RangeBytes {
  address: number;
  image: Uint8Array;
  /** Absent when that readback was not available. */
  dfu?: Uint8Array | undefined;
  swd?: Uint8Array | undefined;
}

export interface PairDiff {
  a: Source;
  b: Source;
  differingBytes: number;
  /** First address where they differ, with the byte from each side. */
  first?: { address: number; a: number; b: number };
}

export type Verdict =
  /** Every available source agrees. */
  | 'agree'
  /** Both readbacks agree with each other and differ from the image. */
  | 'flash-wrong'
  /** SWD agrees with the image; DFU reads something else. */
  | 'dfu-readback-wrong'
  /** DFU agrees with the image; SWD reads something else. */
  | 'swd-readback-wrong'
  /** At some address all three differ. */
  | 'all-differ'
  /** Different addresses disagree in different ways. */
  | 'mixed'
  /** Only one readback was available and it differs from the image: which side is wrong cannot be told. */
  | 'differs';

export interface AddressClassCounts {
  flashWrong: number;
  dfuWrong: number;
  swdWrong: number;
  allDiffer: number;
}

export interface CrossCheckResult {
  verdict: Verdict;
  /** One sentence a firmware engineer can act on. */
  message: string;
  sources: Source[];
  ranges: Array<{ address: number; length: number }>;
  bytes: number;
  pairs: PairDiff[];
  counts: AddressClassCounts;
  /** First address of each kind of disagreement. */
  firstOf: Partial<
    Record<keyof AddressClassCounts, { address: number; image: number; dfu?: number; swd?: number }>
  >;
}

function pair(ranges: readonly RangeBytes[], a: Source, b: Source): PairDiff | undefined {
  if (ranges.some((r) => !r[a] || !r[b])) return undefined;
  const out: PairDiff = { a, b, differingBytes: 0 };
  for (const r of ranges) {
    const x = r[a]!;
    const y = r[b]!;
    for (let i = 0; i < r.image.length; i++) {
      if (x[i] !== y[i]) {
        out.differingBytes++;
        out.first ??= { address: r.address + i, a: x[i]!, b: y[i]! };
      }
    }
  }
  return out;
}

const NAME: Record<Source, string> = { image: 'image', dfu: 'DFU readback', swd: 'SWD readback' };

/**
 * Compares image, DFU readback and SWD readback byte by byte. Pure: the three byte sources in, the verdict out.
 * Each readback must have the image's length for its range.
 */
export function compareThreeWays(ranges: readonly RangeBytes[], erasedValue = 0xff): CrossCheckResult {
  for (const r of ranges) {
    for (const s of ['dfu', 'swd'] as const) {
      if (r[s] && r[s].length !== r.image.length) {
        throw new HilError(
          'E_CROSSCHECK_LENGTH',
          `${NAME[s]} of ${hex32(r.address)} has ${r[s].length} bytes, the image ${r.image.length}`,
          {
            kind: 'infra',
            details: { address: r.address, source: s },
          },
        );
      }
    }
  }
  const hasDfu = ranges.length > 0 && ranges.every((r) => r.dfu);
  const hasSwd = ranges.length > 0 && ranges.every((r) => r.swd);
  const sources: Source[] = [
    'image',
    ...(hasDfu ? (['dfu'] as const) : []),
    ...(hasSwd ? (['swd'] as const) : []),
  ];
  const pairs = [
    pair(ranges, 'image', 'dfu'),
    pair(ranges, 'image', 'swd'),
    pair(ranges, 'dfu', 'swd'),
  ].filter((p): p is PairDiff => !!p);
  const counts: AddressClassCounts = { flashWrong: 0, dfuWrong: 0, swdWrong: 0, allDiffer: 0 };
  const firstOf: CrossCheckResult['firstOf'] = {};
  let wrongButErased = 0;
  const bytes = ranges.reduce((n, r) => n + r.image.length, 0);
  if (hasDfu && hasSwd) {
    for (const r of ranges) {
      for (let k = 0; k < r.image.length; k++) {
        const i = r.image[k]!;
        const d = r.dfu![k]!;
        const s = r.swd![k]!;
        if (i === d && d === s) continue;
        const cls: keyof AddressClassCounts =
          d === s ? 'flashWrong' : i === s ? 'dfuWrong' : i === d ? 'swdWrong' : 'allDiffer';
        counts[cls]++;
        if (cls === 'flashWrong' && d === erasedValue) wrongButErased++;
        firstOf[cls] ??= { address: r.address + k, image: i, dfu: d, swd: s };
      }
    }
  }
  const base = {
    sources,
    ranges: ranges.map((r) => ({ address: r.address, length: r.image.length })),
    bytes,
    pairs,
    counts,
    firstOf,
  };
  const differing = pairs.filter((p) => p.differingBytes > 0);
  if (differing.length === 0) {
    const names = sources.map((s) => NAME[s]);
    return {
      ...base,
      verdict: 'agree',
      message: `${names.slice(0, -1).join(', ')} and ${names.at(-1)} agree on all ${bytes} bytes`,
    };
  }
  if (!(hasDfu && hasSwd)) {
    const p = differing[0]!;
    const f = p.first!;
    return {
      ...base,
      verdict: 'differs',
      message: `${NAME[p.b]} differs from the image in ${p.differingBytes} bytes (first at ${hex32(f.address)}: image ${hex8(f.a)}, read ${hex8(f.b)}); read the other way too to tell whether the flash or this readback is wrong`,
    };
  }
  const classes = (Object.keys(counts) as Array<keyof AddressClassCounts>).filter((k) => counts[k] > 0);
  const at = (k: keyof AddressClassCounts) => {
    const f = firstOf[k]!;
    return `first at ${hex32(f.address)}: image ${hex8(f.image)}, DFU ${hex8(f.dfu!)}, SWD ${hex8(f.swd!)}`;
  };
  if (classes.length > 1) {
    return {
      ...base,
      verdict: 'mixed',
      message: `the sources disagree in more than one way: ${classes.map((k) => `${k} at ${counts[k]} bytes (${at(k)})`).join('; ')}`,
    };
  }
  const only = classes[0]!;
  const n = counts[only];
  switch (only) {
    case 'flashWrong':
      return {
        ...base,
        verdict: 'flash-wrong',
        message:
          `flash holds the wrong bytes: DFU and SWD readbacks agree with each other and differ from the image at ${n} bytes (${at(only)})` +
          (wrongButErased === n
            ? `; all of them read erased (${hex8(erasedValue)}): was the image written at all?`
            : ''),
      };
    case 'dfuWrong':
      return {
        ...base,
        verdict: 'dfu-readback-wrong',
        message: `DFU readback differs from the chip: SWD agrees with the image, DFU does not at ${n} bytes (${at(only)})`,
      };
    case 'swdWrong':
      return {
        ...base,
        verdict: 'swd-readback-wrong',
        message: `SWD readback differs: DFU agrees with the image, SWD does not at ${n} bytes (${at(only)}); check that stlink.serial names this board's probe`,
      };
    default:
      return {
        ...base,
        verdict: 'all-differ',
        message: `image, DFU readback and SWD readback all differ at ${n} bytes (${at(only)})`,
      };
  }
}

export type MemoryReader = (
  ranges: ReadonlyArray<{ address: number; length: number }>,
  signal?: AbortSignal,
) => Promise<Uint8Array[]>;

export interface CrossCheckReport extends CrossCheckResult {
  file: string;
  /** Image bytes not compared because they are not in flash (RAM sections and the like). */
  skipped: Array<{ address: number; length: number; name: string }>;
  /** A readback that failed: the comparison went on without it. */
  sourceErrors: Partial<Record<'dfu' | 'swd', { code: string; message: string }>>;
}

/** The image's flash ranges (touching segments merged), and what lies outside flash. */
export function flashRangesOf(
  image: FirmwareImage,
  part: Part,
): { ranges: Array<{ address: number; data: Uint8Array }>; skipped: CrossCheckReport['skipped'] } {
  const flash = flashRange(part);
  const ranges: Array<{ address: number; data: Uint8Array }> = [];
  const skipped: CrossCheckReport['skipped'] = [];
  for (const seg of image.coalesced()) {
    const end = seg.address + seg.data.length;
    const from = Math.max(seg.address, flash.start);
    const to = Math.min(end, flash.end);
    if (from < to)
      ranges.push({ address: from, data: seg.data.subarray(from - seg.address, to - seg.address) });
    const beforeEnd = Math.min(end, flash.start);
    if (seg.address < beforeEnd)
      skipped.push({ address: seg.address, length: beforeEnd - seg.address, name: seg.name });
    const afterStart = Math.max(seg.address, flash.end);
    if (afterStart < end) skipped.push({ address: afterStart, length: end - afterStart, name: seg.name });
  }
  return { ranges, skipped };
}

/**
 * Reads the image's flash ranges over each available path and compares the three ways. A readback that fails
 * is reported in `sourceErrors` and left out; when both fail the first error is thrown.
 */
export async function crossCheckImage(
  image: FirmwareImage,
  part: Part,
  readers: { dfu?: MemoryReader | undefined; swd?: MemoryReader | undefined },
  signal?: AbortSignal,
): Promise<CrossCheckReport> {
  const { ranges, skipped } = flashRangesOf(image, part);
  if (ranges.length === 0) {
    throw new HilError('E_CROSSCHECK_NO_FLASH', `${image.file} has no bytes in the flash of a ${part.name}`, {
      kind: 'input',
      details: { file: image.file, skipped },
    });
  }
  const want = ranges.map((r) => ({ address: r.address, length: r.data.length }));
  const sourceErrors: CrossCheckReport['sourceErrors'] = {};
  const got: Partial<Record<'dfu' | 'swd', Uint8Array[]>> = {};
  let firstError: unknown;
  // DFU first: an SWD connect under reset would drop a board out of its bootloader.
  for (const s of ['dfu', 'swd'] as const) {
    const reader = readers[s];
    if (!reader) continue;
    throwIfAborted(signal);
    try {
      got[s] = await reader(want, signal);
    } catch (e) {
      if (signal?.aborted) throw e;
      firstError ??= e;
      sourceErrors[s] = isHilError(e)
        ? { code: e.code, message: e.message }
        : { code: 'E_INTERNAL', message: e instanceof Error ? e.message : String(e) };
    }
  }
  if (!got.dfu && !got.swd) {
    if (firstError) throw firstError;
    throw new HilError(
      'E_CROSSCHECK_NO_READER',
      'nothing to compare the image with: no DFU and no SWD reader',
      { kind: 'usage' },
    );
  }
  const result = compareThreeWays(
    ranges.map((r, i) => ({ address: r.address, image: r.data, dfu: got.dfu?.[i], swd: got.swd?.[i] })),
    part.flash.erasedValue,
  );
  return { ...result, file: image.file, skipped, sourceErrors };
}
