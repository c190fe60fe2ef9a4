// Intel HEX reader and writer (Intel "Hexadecimal Object File Format Specification", rev A, 1988: record
// types 00 data, 01 end of file, 02 extended segment address, 03 start segment address, 04 extended
// linear address, 05 start linear address; checksum = two's complement of the byte sum).
// Hand-written rather than nrf-intel-hex: it parses bytes without building strings or per-record arrays
// (several times faster, see bench/image.bench.ts) and reports the line and column of every fault.
import { hex32 } from '../util/hex.ts';
import { FirmwareImage, ImageError, type Segment } from './model.ts';
import {
  charAt,
  HEX_DIGITS,
  HEX_VALUE,
  hex2,
  parseWhole,
  RecordErrors,
  RunCollector,
  type TextParser,
} from './runs.ts';

const COLON = 0x3a;
const LF = 0x0a;
const CR = 0x0d;

export class IntelHexParser implements TextParser<FirmwareImage> {
  readonly #file: string;
  readonly #runs: RunCollector;
  readonly #err: RecordErrors;
  #line = 1;
  /** Base added to each record's 16-bit offset: ULBA << 16 (type 04) or USBA << 4 (type 02). */
  #base = 0;
  #segmented = false;
  #eofLine = 0;
  #lastLine = 0;
  #entry: number | undefined;
  #startSegment: { cs: number; ip: number } | undefined;
  readonly #small = new Uint8Array(255);

  constructor(file: string, textLength: number) {
    this.#file = file;
    this.#runs = new RunCollector(textLength);
    this.#err = new RecordErrors(file, 'E_HEX', 'length');
  }

  feed(t: Uint8Array, from: number, to: number, offset: number, final: boolean): void {
    const HV = HEX_VALUE;
    const runs = this.#runs;
    let line = this.#line;
    let p = from;
    while (p < to) {
      const c = t[p]!;
      if (c === COLON) {
        if (this.#eofLine) {
          this.#err.fail(
            'E_HEX_SYNTAX',
            `record after the end-of-file record of line ${this.#eofLine}`,
            t,
            from,
            p,
            line,
            offset,
            {
              hint: 'two HEX files were concatenated; merge them with `srec_cat a.hex -Intel b.hex -Intel -o out.hex -Intel`',
            },
          );
        }
        if (p + 11 > to) this.#err.short(t, from, p, to, line, offset, final);
        const l1 = HV[t[p + 1]!]!;
        const l2 = HV[t[p + 2]!]!;
        const a1 = HV[t[p + 3]!]!;
        const a2 = HV[t[p + 4]!]!;
        const a3 = HV[t[p + 5]!]!;
        const a4 = HV[t[p + 6]!]!;
        const t1 = HV[t[p + 7]!]!;
        const t2 = HV[t[p + 8]!]!;
        if ((l1 | l2 | a1 | a2 | a3 | a4 | t1 | t2) < 0) this.#err.badDigit(t, from, p, p + 9, line, offset);
        const n = (l1 << 4) | l2;
        const addr = (a1 << 12) | (a2 << 8) | (a3 << 4) | a4;
        const type = (t1 << 4) | t2;
        const end = p + 11 + 2 * n;
        if (end > to) this.#err.short(t, from, p, to, line, offset, final);
        let sum = n + (addr >> 8) + (addr & 0xff) + type;
        let bad = 0;
        let q = p + 9;
        const out = type === 0 ? runs.reserve(n) : this.#small;
        const w = type === 0 ? runs.pos : 0;
        for (let i = 0; i < n; i++) {
          const hi = HV[t[q]!]!;
          const lo = HV[t[q + 1]!]!;
          bad |= hi | lo;
          const v = (hi << 4) | lo;
          out[w + i] = v;
          sum += v;
          q += 2;
        }
        const c1 = HV[t[q]!]!;
        const c2 = HV[t[q + 1]!]!;
        if ((bad | c1 | c2) < 0) this.#err.badDigit(t, from, p, end, line, offset);
        const cs = (c1 << 4) | c2;
        if (((sum + cs) & 0xff) !== 0) {
          this.#err.fail(
            'E_HEX_CHECKSUM',
            `checksum 0x${hex2(cs)} should be 0x${hex2(-sum)}`,
            t,
            from,
            q,
            line,
            offset,
            {
              hint: 'the file was edited or damaged; rebuild it from the ELF (arm-none-eabi-objcopy -O ihex)',
            },
          );
        }
        if (end < to) {
          const e = t[end]!;
          if (e !== LF && e !== CR && e !== 0x20 && e !== 0x09) {
            this.#err.fail(
              'E_HEX_SYNTAX',
              `record longer than its length byte (${n} data bytes) says`,
              t,
              from,
              end,
              line,
              offset,
            );
          }
        }
        if (type === 0) {
          if (this.#segmented) {
            // Type 02 addressing wraps inside the 64 KiB segment (Intel spec, extended segment address).
            const first = Math.min(n, 0x10000 - addr);
            runs.commit(this.#base + addr, first, line);
            if (first < n) runs.commit(this.#base, n - first, line);
          } else {
            const address = this.#base + addr;
            if (address + n > 0x1_0000_0000) {
              this.#err.fail(
                'E_IMAGE_ADDRESS_RANGE',
                `${n} data bytes at ${hex32(address)} run past the 4 GiB address space`,
                t,
                from,
                p,
                line,
                offset,
                { details: { address } },
              );
            }
            runs.commit(address, n, line);
          }
        } else {
          this.#control(type, n, t, from, p, line, offset);
        }
        this.#lastLine = line;
        p = end;
      } else if (c === LF) {
        line++;
        p++;
      } else if (c === CR) {
        if (p + 1 < to && t[p + 1] !== LF) line++;
        p++;
      } else if (c === 0x20 || c === 0x09) {
        p++;
      } else {
        this.#err.fail(
          'E_HEX_SYNTAX',
          `expected ':' at the start of a record, found ${charAt(t, p, to)}`,
          t,
          from,
          p,
          line,
          offset,
        );
      }
    }
    this.#line = line;
  }

  finish(): FirmwareImage {
    if (!this.#eofLine) {
      throw new ImageError(
        'E_HEX_TRUNCATED',
        `${this.#file}:${this.#lastLine || 1}: no end-of-file record (:00000001FF): the file is incomplete`,
        { file: this.#file, line: this.#lastLine || 1 },
        'the file was cut short (interrupted copy or download); rebuild or fetch it again',
      );
    }
    const img = new FirmwareImage('ihex', this.#file);
    img.entry = this.#entry;
    if (this.#startSegment) img.meta.startSegment = this.#startSegment;
    for (const s of this.#runs.segments(this.#file, 'hex')) img.add(s);
    return img;
  }

  /** Types 01-05: everything but data. */
  #control(
    type: number,
    n: number,
    t: Uint8Array,
    from: number,
    p: number,
    line: number,
    offset: number,
  ): void {
    const d = this.#small;
    const want = type === 1 ? 0 : type === 2 || type === 4 ? 2 : type === 3 || type === 5 ? 4 : -1;
    if (want < 0) {
      this.#err.fail(
        'E_HEX_RECORD_TYPE',
        `unknown record type 0x${hex2(type)} (Intel HEX has types 00 to 05)`,
        t,
        from,
        p + 7,
        line,
        offset,
        { details: { type } },
      );
    }
    if (n !== want) {
      this.#err.fail(
        'E_HEX_SYNTAX',
        `a type 0${type} record carries ${want} bytes, this one ${n}`,
        t,
        from,
        p + 1,
        line,
        offset,
      );
    }
    const u16 = (d[0]! << 8) | d[1]!;
    const u32 = ((d[0]! << 24) | (d[1]! << 16) | (d[2]! << 8) | d[3]!) >>> 0;
    switch (type) {
      case 1:
        this.#eofLine = line;
        break;
      case 2:
        this.#base = u16 << 4;
        this.#segmented = true;
        break;
      case 3:
        this.#startSegment = { cs: u16, ip: (d[2]! << 8) | d[3]! };
        this.#entry = (u16 << 4) + ((d[2]! << 8) | d[3]!);
        break;
      case 4:
        this.#base = u16 * 0x10000;
        this.#segmented = false;
        break;
      case 5:
        this.#entry = u32;
        break;
    }
  }
}

/** Parses a whole Intel HEX text held in memory. */
export function parseIntelHex(text: Uint8Array, file: string): FirmwareImage {
  return parseWhole(new IntelHexParser(file, text.length), text);
}

export interface IntelHexWriteOptions {
  /** Data bytes per record, 1-255 (default 16, as objcopy writes). */
  recordSize?: number;
  /** Line ending (default "\n"). */
  eol?: '\n' | '\r\n';
}

/**
 * Writes type 04 (extended linear address) + 00 (data) records, a type 05 start address when the image has
 * an entry point, and the 01 end-of-file record. Records are aligned to `recordSize` and never cross a
 * 64 KiB boundary.
 */
export function writeIntelHex(
  image: { segments: readonly Segment[]; entry?: number | undefined },
  options: IntelHexWriteOptions = {},
): Uint8Array {
  const size = options.recordSize ?? 16;
  if (!Number.isInteger(size) || size < 1 || size > 255)
    throw new RangeError(`record size ${size} is not 1..255`);
  const crlf = options.eol === '\r\n';
  const eol0 = crlf ? CR : LF;
  const eol1 = crlf ? LF : -1;
  // Upper bound: every record costs 11 characters plus the line end, every data byte 2.
  let bytes = 0;
  let records = 2;
  for (const s of image.segments) {
    bytes += s.data.length;
    records += 2 * (Math.ceil(s.data.length / size) + 2) + Math.ceil(s.data.length / 0x10000);
  }
  const out = new Uint8Array(2 * bytes + records * (crlf ? 13 : 12));
  const H = HEX_DIGITS;
  let o = 0;
  const put = (b: number) => {
    out[o++] = H[b * 2]!;
    out[o++] = H[b * 2 + 1]!;
  };
  const record = (type: number, addr: number, data: Uint8Array, from: number, n: number) => {
    out[o++] = COLON;
    const sum0 = n + (addr >> 8) + (addr & 0xff) + type;
    put(n);
    put(addr >> 8);
    put(addr & 0xff);
    put(type);
    let sum = sum0;
    for (let i = from; i < from + n; i++) {
      const b = data[i]!;
      sum += b;
      put(b);
    }
    put(-sum & 0xff);
    out[o++] = eol0;
    if (eol1 >= 0) out[o++] = eol1;
  };
  let upper = -1;
  for (const s of image.segments) {
    let i = 0;
    while (i < s.data.length) {
      const address = s.address + i;
      const hi = Math.floor(address / 0x10000);
      if (hi !== upper) {
        record(4, 0, Uint8Array.of(hi >> 8, hi & 0xff), 0, 2);
        upper = hi;
      }
      const lo = address & 0xffff;
      const n = Math.min(size - (lo % size), s.data.length - i, 0x10000 - lo);
      record(0, lo, s.data, i, n);
      i += n;
    }
  }
  if (image.entry !== undefined) {
    const e = image.entry >>> 0;
    record(5, 0, Uint8Array.of(e >>> 24, (e >> 16) & 0xff, (e >> 8) & 0xff, e & 0xff), 0, 4);
  }
  record(1, 0, new Uint8Array(0), 0, 0);
  return out.subarray(0, o);
}
