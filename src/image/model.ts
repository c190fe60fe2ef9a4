import { HilError } from '../errors.ts';
import { hex32 } from '../util/hex.ts';

/** Where a segment's bytes came from, so every diagnosis can name the file, section or line. */
export interface SegmentSource {
  file: string;
  /** ELF section names the segment holds (ELF only). */
  sections?: string[];
  /** ELF only: where each of those sections lies (load address) and its size, to name the exact culprit. */
  sectionSpans?: Array<{ name: string; address: number; size: number }>;
  /** 1-based line of the first record (HEX, S-record). */
  line?: number;
  /** Byte offset in the file (ELF, binary, DfuSe). */
  offset?: number;
  /** DfuSe target: alternate setting and name. */
  target?: { alt: number; name: string };
}

export interface Segment {
  /** Human name: ELF section list, `hex@line 12`, `bin`, ... */
  name: string;
  address: number;
  data: Uint8Array;
  source: SegmentSource;
}

export type ImageFormat = 'elf' | 'ihex' | 'srec' | 'bin' | 'dfuse' | 'dfu-suffix';

export class ImageError extends HilError {
  constructor(code: string, message: string, details: Record<string, unknown> = {}, hint?: string) {
    super(code, message, { kind: 'input', details, ...(hint ? { hint } : {}) });
  }
}

export function segmentEnd(s: Segment): number {
  return s.address + s.data.length;
}

function describe(src: SegmentSource): string {
  const where = [src.file];
  if (src.line !== undefined) where.push(`line ${src.line}`);
  if (src.offset !== undefined) where.push(`offset ${src.offset}`);
  if (src.sections?.length) where.push(`section ${src.sections.join(',')}`);
  if (src.target) where.push(`target ${src.target.alt} "${src.target.name}"`);
  return where.join(' ');
}

/**
 * A firmware image: named, sorted, non-overlapping segments at 32-bit addresses.
 * Adding bytes that overlap existing ones is allowed only when the bytes agree.
 */
export class FirmwareImage {
  readonly format: ImageFormat;
  readonly file: string;
  /** Entry point (ELF e_entry, HEX type 05, S7-S9), when the file carries one. */
  entry: number | undefined;
  /** Extra facts the reader found (ELF machine, DfuSe VID/PID, ...). */
  readonly meta: Record<string, unknown> = {};
  #segments: Segment[] = [];

  constructor(format: ImageFormat, file: string) {
    this.format = format;
    this.file = file;
  }

  get segments(): readonly Segment[] {
    return this.#segments;
  }

  get size(): number {
    let n = 0;
    for (const s of this.#segments) n += s.data.length;
    return n;
  }

  /** Lowest and one-past-highest address, or undefined for an empty image. */
  get span(): { start: number; end: number } | undefined {
    const first = this.#segments[0];
    const last = this.#segments.at(-1);
    return first && last ? { start: first.address, end: segmentEnd(last) } : undefined;
  }

  add(segment: Segment): void {
    if (segment.data.length === 0) return;
    if (segment.address < 0 || segmentEnd(segment) > 0x1_0000_0000) {
      throw new ImageError(
        'E_IMAGE_ADDRESS_RANGE',
        `${describe(segment.source)}: ${segment.data.length} bytes at ${hex32(segment.address)} run past the 4 GiB address space`,
        { address: segment.address, length: segment.data.length, source: segment.source },
      );
    }
    // Binary search for the insertion point; check only the neighbours that can overlap.
    const segs = this.#segments;
    let lo = 0;
    let hi = segs.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (segs[mid]!.address < segment.address) lo = mid + 1;
      else hi = mid;
    }
    for (let i = Math.max(0, lo - 1); i < segs.length && segs[i]!.address < segmentEnd(segment); i++) {
      const other = segs[i]!;
      const from = Math.max(other.address, segment.address);
      const to = Math.min(segmentEnd(other), segmentEnd(segment));
      if (from >= to) continue;
      for (let a = from; a < to; a++) {
        const mine = segment.data[a - segment.address]!;
        const theirs = other.data[a - other.address]!;
        if (mine !== theirs) {
          throw new ImageError(
            'E_IMAGE_OVERLAP',
            `conflicting data at ${hex32(a)}: ${describe(other.source)} has 0x${theirs.toString(16).padStart(2, '0')}, ${describe(segment.source)} has 0x${mine.toString(16).padStart(2, '0')}`,
            { address: a, first: other.source, second: segment.source },
          );
        }
      }
      // Identical bytes: keep the existing segment, add only what lies outside it.
      const before = segment.data.subarray(0, Math.max(0, other.address - segment.address));
      const after = segment.data.subarray(Math.max(0, segmentEnd(other) - segment.address));
      if (before.length) this.add({ ...segment, data: before });
      if (after.length) this.add({ ...segment, address: segmentEnd(other), data: after });
      return;
    }
    segs.splice(lo, 0, segment);
  }

  /**
   * Merges touching segments (same source file) into one, as a writer or the flash planner wants;
   * names are joined. Sources keep the first segment's location.
   */
  coalesced(): Segment[] {
    const out: Segment[] = [];
    for (const s of this.#segments) {
      const prev = out.at(-1);
      if (prev && segmentEnd(prev) === s.address) {
        const data = new Uint8Array(prev.data.length + s.data.length);
        data.set(prev.data, 0);
        data.set(s.data, prev.data.length);
        const sections = [...(prev.source.sections ?? []), ...(s.source.sections ?? [])];
        out[out.length - 1] = {
          name: prev.name === s.name ? prev.name : `${prev.name}+${s.name}`,
          address: prev.address,
          data,
          source: { ...prev.source, ...(sections.length ? { sections: [...new Set(sections)] } : {}) },
        };
      } else {
        out.push(s);
      }
    }
    return out;
  }

  /** A new image with only the bytes `keep` accepts, split at its boundaries (used by --flash-only). */
  filter(keep: (address: number, length: number) => Array<{ start: number; end: number }>): FirmwareImage {
    const img = new FirmwareImage(this.format, this.file);
    img.entry = this.entry;
    Object.assign(img.meta, this.meta);
    for (const s of this.#segments) {
      for (const r of keep(s.address, s.data.length)) {
        const from = Math.max(r.start, s.address);
        const to = Math.min(r.end, segmentEnd(s));
        if (from < to)
          img.add({ ...s, address: from, data: s.data.subarray(from - s.address, to - s.address) });
      }
    }
    return img;
  }

  /** Byte at `address`, or undefined where the image has none. */
  byteAt(address: number): number | undefined {
    for (const s of this.#segments) {
      if (address >= s.address && address < segmentEnd(s)) return s.data[address - s.address];
    }
    return undefined;
  }
}
