// Motorola S-record reader and writer (Motorola "M68000 Family Programmer's Reference Manual", appendix C:
// S0 header, S1/S2/S3 data with 16/24/32-bit addresses, S5/S6 record counts, S7/S8/S9 termination with
// the start address; the count byte covers address, data and checksum; checksum = ones' complement of the
// low byte of their sum).
// Hand-written for the same reasons as the HEX reader: speed without per-record arrays, and line-level
// diagnostics.
import path from 'node:path';
import { hex32 } from '../util/hex.ts';
import { FirmwareImage, type Segment } from './model.ts';
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

const LF = 0x0a;
const CR = 0x0d;
/** Address bytes per record type S0..S9 (S4 is reserved: 0). */
const ADDRESS_BYTES = [2, 2, 3, 4, 0, 2, 3, 4, 3, 2] as const;

export class SrecParser implements TextParser<FirmwareImage> {
  readonly #file: string;
  readonly #runs: RunCollector;
  readonly #err: RecordErrors;
  #line = 1;
  #dataRecords = 0;
  #endLine = 0;
  #entry: number | undefined;
  #header: string | undefined;
  #counted = false;
  readonly #small = new Uint8Array(255);

  constructor(file: string, textLength: number) {
    this.#file = file;
    this.#runs = new RunCollector(textLength);
    this.#err = new RecordErrors(file, 'E_SREC', 'count');
  }

  feed(t: Uint8Array, from: number, to: number, offset: number, final: boolean): void {
    const HV = HEX_VALUE;
    const runs = this.#runs;
    let line = this.#line;
    let p = from;
    while (p < to) {
      const c = t[p]!;
      if (c === 0x53) {
        if (this.#endLine) {
          this.#err.fail(
            'E_SREC_SYNTAX',
            `record after the termination record of line ${this.#endLine}`,
            t,
            from,
            p,
            line,
            offset,
          );
        }
        if (p + 4 > to) this.#err.short(t, from, p, to, line, offset, final);
        const type = t[p + 1]! - 0x30;
        if (type < 0 || type > 9) {
          this.#err.fail(
            'E_SREC_SYNTAX',
            `${charAt(t, p + 1, to)} after 'S' where a record type digit belongs`,
            t,
            from,
            p + 1,
            line,
            offset,
          );
        }
        if (type === 4) {
          this.#err.fail(
            'E_SREC_RECORD_TYPE',
            'record type S4 is reserved (S-records have S0-S3 and S5-S9)',
            t,
            from,
            p,
            line,
            offset,
            {
              details: { type: 'S4' },
            },
          );
        }
        const c1 = HV[t[p + 2]!]!;
        const c2 = HV[t[p + 3]!]!;
        if ((c1 | c2) < 0) this.#err.badDigit(t, from, p + 1, p + 4, line, offset);
        const count = (c1 << 4) | c2;
        const alen = ADDRESS_BYTES[type]!;
        const end = p + 4 + 2 * count;
        if (end > to) this.#err.short(t, from, p, to, line, offset, final);
        if (count < alen + 1) {
          this.#err.fail(
            'E_SREC_SYNTAX',
            `count byte ${count} is too small for an S${type} record`,
            t,
            from,
            p + 2,
            line,
            offset,
          );
        }
        let sum = count;
        let bad = 0;
        let q = p + 4;
        let address = 0;
        for (let i = 0; i < alen; i++) {
          const hi = HV[t[q]!]!;
          const lo = HV[t[q + 1]!]!;
          bad |= hi | lo;
          const v = (hi << 4) | lo;
          address = address * 256 + v;
          sum += v;
          q += 2;
        }
        const n = count - alen - 1;
        const isData = type >= 1 && type <= 3;
        const out = isData ? runs.reserve(n) : this.#small;
        const w = isData ? runs.pos : 0;
        for (let i = 0; i < n; i++) {
          const hi = HV[t[q]!]!;
          const lo = HV[t[q + 1]!]!;
          bad |= hi | lo;
          const v = (hi << 4) | lo;
          out[w + i] = v;
          sum += v;
          q += 2;
        }
        const s1 = HV[t[q]!]!;
        const s2 = HV[t[q + 1]!]!;
        if ((bad | s1 | s2) < 0) this.#err.badDigit(t, from, p + 1, end, line, offset);
        const cs = (s1 << 4) | s2;
        if (((sum + cs) & 0xff) !== 0xff) {
          this.#err.fail(
            'E_SREC_CHECKSUM',
            `checksum 0x${hex2(cs)} should be 0x${hex2(~sum)}`,
            t,
            from,
            q,
            line,
            offset,
            {
              hint: 'the file was edited or damaged; rebuild it from the ELF (arm-none-eabi-objcopy -O srec)',
            },
          );
        }
        if (end < to) {
          const e = t[end]!;
          if (e !== LF && e !== CR && e !== 0x20 && e !== 0x09) {
            this.#err.fail(
              'E_SREC_SYNTAX',
              `record longer than its count byte (${count}) says`,
              t,
              from,
              end,
              line,
              offset,
            );
          }
        }
        if (isData) {
          if (address + n > 0x1_0000_0000) {
            this.#err.fail(
              'E_IMAGE_ADDRESS_RANGE',
              `${n} data bytes at ${hex32(address)} run past the 4 GiB address space`,
              t,
              from,
              p,
              line,
              offset,
              {
                details: { address },
              },
            );
          }
          runs.commit(address, n, line);
          this.#dataRecords++;
        } else if (type === 0) {
          this.#header = headerText(this.#small.subarray(0, n));
        } else if (type === 5 || type === 6) {
          if (address !== this.#dataRecords) {
            this.#err.fail(
              'E_SREC_COUNT',
              `count record says ${address} data records, the file has ${this.#dataRecords} before it`,
              t,
              from,
              p,
              line,
              offset,
              {
                hint: 'records are missing or duplicated; rebuild the file',
                details: { expected: address, actual: this.#dataRecords },
              },
            );
          }
          this.#counted = true;
        } else {
          this.#entry = address;
          this.#endLine = line;
        }
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
          'E_SREC_SYNTAX',
          `expected 'S' at the start of a record, found ${charAt(t, p, to)}`,
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
    const img = new FirmwareImage('srec', this.#file);
    img.entry = this.#entry;
    if (this.#header !== undefined) img.meta.header = this.#header;
    img.meta.dataRecords = this.#dataRecords;
    // srec_cat writes no S7-S9 when the image has no start address, so a missing one is not an error; but
    // without it (or a count record) a file cut at a line boundary cannot be told from a complete one.
    img.meta.terminated = this.#endLine > 0;
    img.meta.counted = this.#counted;
    for (const s of this.#runs.segments(this.#file, 'srec')) img.add(s);
    return img;
  }
}

function headerText(bytes: Uint8Array): string {
  let end = bytes.length;
  while (end > 0 && bytes[end - 1] === 0) end--;
  return Buffer.from(bytes.subarray(0, end)).toString('latin1');
}

/** Parses a whole S-record text held in memory. */
export function parseSrec(text: Uint8Array, file: string): FirmwareImage {
  return parseWhole(new SrecParser(file, text.length), text);
}

export interface SrecWriteOptions {
  /** Data bytes per S3 record, 1-250 (default 16, as objcopy writes). */
  recordSize?: number;
  /** S0 header text (default: the image's file name). */
  header?: string;
}

/**
 * Writes an S0 header, S3 data records (32-bit addresses, aligned to `recordSize`), an S5/S6 record count
 * (when it fits in 24 bits) and an S7 termination record carrying the entry point (0 when there is none).
 */
export function writeSrec(
  image: { segments: readonly Segment[]; entry?: number | undefined; file?: string },
  options: SrecWriteOptions = {},
): Uint8Array {
  const size = options.recordSize ?? 16;
  if (!Number.isInteger(size) || size < 1 || size > 250)
    throw new RangeError(`record size ${size} is not 1..250`);
  const header = Buffer.from(
    (options.header ?? (image.file ? path.basename(image.file) : 'stm32-hil')).slice(0, 64),
    'latin1',
  );
  let bytes = 0;
  let records = 3;
  for (const s of image.segments) {
    bytes += s.data.length;
    records += Math.ceil(s.data.length / size) + 1;
  }
  // Each record: "Snnn" + address (8) + checksum (2) + "\n" = 15 characters, plus 2 per data byte.
  const out = new Uint8Array(2 * (bytes + header.length) + records * 15);
  const H = HEX_DIGITS;
  let o = 0;
  const put = (b: number) => {
    out[o++] = H[b * 2]!;
    out[o++] = H[b * 2 + 1]!;
  };
  const record = (type: number, alen: number, address: number, data: Uint8Array, from: number, n: number) => {
    out[o++] = 0x53;
    out[o++] = 0x30 + type;
    const count = alen + n + 1;
    put(count);
    let sum = count;
    for (let i = alen - 1; i >= 0; i--) {
      const b = Math.floor(address / 2 ** (8 * i)) & 0xff;
      sum += b;
      put(b);
    }
    for (let i = from; i < from + n; i++) {
      const b = data[i]!;
      sum += b;
      put(b);
    }
    put(~sum & 0xff);
    out[o++] = LF;
  };
  record(0, 2, 0, header, 0, header.length);
  let dataRecords = 0;
  for (const s of image.segments) {
    let i = 0;
    while (i < s.data.length) {
      const address = s.address + i;
      const n = Math.min(size - (address % size), s.data.length - i);
      record(3, 4, address, s.data, i, n);
      dataRecords++;
      i += n;
    }
  }
  const none = new Uint8Array(0);
  if (dataRecords <= 0xffff) record(5, 2, dataRecords, none, 0, 0);
  else if (dataRecords <= 0xffffff) record(6, 3, dataRecords, none, 0, 0);
  record(7, 4, (image.entry ?? 0) >>> 0, none, 0, 0);
  return out.subarray(0, o);
}
