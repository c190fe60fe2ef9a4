import { ImageError, type Segment } from './model.ts';

/** One stretch of consecutive addresses decoded from a text file, stored at `offset` in the scratch buffer. */
interface Run {
  address: number;
  offset: number;
  length: number;
  line: number;
}

/**
 * Collects the data bytes of a HEX or S-record file into one scratch buffer, as runs of consecutive
 * addresses, so a 32 MiB image costs one allocation instead of two million 16-byte arrays.
 * Every data byte needs two hex digits, so half the text length always suffices.
 */
export class RunCollector {
  scratch: Uint8Array;
  pos = 0;
  readonly #runs: Run[] = [];
  #cur: Run | undefined;

  constructor(textLength: number) {
    this.scratch = new Uint8Array(Math.max(256, Math.ceil(textLength / 2)));
  }

  /** Makes room for `n` more bytes (only needed if the file grew while being read). */
  reserve(n: number): Uint8Array {
    if (this.pos + n > this.scratch.length) {
      const bigger = new Uint8Array(Math.max(this.scratch.length * 2, this.pos + n));
      bigger.set(this.scratch.subarray(0, this.pos));
      this.scratch = bigger;
    }
    return this.scratch;
  }

  /** The `n` bytes just written at `pos` belong at `address`; they extend the current run when they follow it. */
  commit(address: number, n: number, line: number): void {
    const cur = this.#cur;
    if (cur !== undefined && cur.address + cur.length === address) {
      cur.length += n;
    } else {
      this.#cur = { address, offset: this.pos, length: n, line };
      this.#runs.push(this.#cur);
    }
    this.pos += n;
  }

  /**
   * Runs in address order, touching runs merged (records written out of order are copied together).
   * Overlaps are left for FirmwareImage.add to judge.
   */
  segments(file: string, kind: string): Segment[] {
    const runs = this.#runs.filter((r) => r.length > 0).sort((a, b) => a.address - b.address);
    const groups: Run[][] = [];
    for (const r of runs) {
      const g = groups.at(-1);
      const last = g?.at(-1);
      if (g && last && last.address + last.length === r.address) g.push(r);
      else groups.push([r]);
    }
    // Keep the scratch buffer unless most of it is unused (short records): then copy into a tight one.
    const tight = this.pos * 2 < this.scratch.length;
    const total = tight ? groups.reduce((n, g) => n + g.reduce((m, r) => m + r.length, 0), 0) : 0;
    const packed = tight ? new Uint8Array(total) : undefined;
    let at = 0;
    return groups.map((g) => {
      const first = g[0]!;
      const length = g.reduce((n, r) => n + r.length, 0);
      const inPlace = g.every((r, i) => i === 0 || r.offset === g[i - 1]!.offset + g[i - 1]!.length);
      let data: Uint8Array;
      if (packed) {
        data = packed.subarray(at, at + length);
        at += length;
      } else {
        data = inPlace ? this.scratch.subarray(first.offset, first.offset + length) : new Uint8Array(length);
      }
      if (packed || !inPlace) {
        let o = 0;
        for (const r of g) {
          data.set(this.scratch.subarray(r.offset, r.offset + r.length), o);
          o += r.length;
        }
      }
      return {
        name: `${kind}@line ${first.line}`,
        address: first.address,
        data,
        source: { file, line: first.line },
      };
    });
  }
}

/** ASCII hex digit -> value, -1 for anything else. OR-ing lookups keeps one sign check per record. */
export const HEX_VALUE: Int8Array = (() => {
  const t = new Int8Array(256).fill(-1);
  for (let i = 0; i < 10; i++) t[0x30 + i] = i;
  for (let i = 0; i < 6; i++) {
    t[0x41 + i] = 10 + i;
    t[0x61 + i] = 10 + i;
  }
  return t;
})();

/** Byte -> two upper-case ASCII hex digits, for the writers. */
export const HEX_DIGITS: Uint8Array = (() => {
  const d = '0123456789ABCDEF';
  const t = new Uint8Array(512);
  for (let i = 0; i < 256; i++) {
    t[i * 2] = d.charCodeAt(i >> 4);
    t[i * 2 + 1] = d.charCodeAt(i & 15);
  }
  return t;
})();

/** Where a text parser is: used to give errors a line, a column and a byte offset. */
export function columnOf(text: Uint8Array, from: number, p: number): number {
  let s = p;
  while (s > from && text[s - 1] !== 0x0a && text[s - 1] !== 0x0d) s--;
  return p - s + 1;
}

/** Printable rendering of the character at `p` for an error message. */
export function charAt(text: Uint8Array, p: number, to: number): string {
  if (p >= to) return 'end of file';
  const c = text[p]!;
  if (c === 0x0a || c === 0x0d) return 'end of line';
  return c >= 0x20 && c < 0x7f ? `'${String.fromCharCode(c)}'` : `byte 0x${c.toString(16).padStart(2, '0')}`;
}

/** True when a line break lies in text[from, to). */
export function hasLineBreak(text: Uint8Array, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (text[i] === 0x0a || text[i] === 0x0d) return true;
  return false;
}

/** A parser of a line-oriented format fed with chunks that end on a line break (except the last one). */
export interface TextParser<T> {
  /** Parses text[from, to); `offset` is the file offset of text[0]. */
  feed(text: Uint8Array, from: number, to: number, offset: number, final: boolean): void;
  finish(): T;
}

/**
 * The errors of one text-record file (HEX or S-record), thrown at byte `p` of the chunk `t` read from `offset`
 * and named file:line:column. One object per parser, so the parsers' hot loops pass positions only.
 */
export class RecordErrors {
  readonly file: string;
  readonly prefix: 'E_HEX' | 'E_SREC';
  /** What the record's length byte is called: `length` (HEX) or `count` (S-record). */
  readonly lengthByte: string;

  constructor(file: string, prefix: 'E_HEX' | 'E_SREC', lengthByte: string) {
    this.file = file;
    this.prefix = prefix;
    this.lengthByte = lengthByte;
  }

  fail(
    code: string,
    message: string,
    t: Uint8Array,
    from: number,
    p: number,
    line: number,
    offset: number,
    extra: { hint?: string; details?: Record<string, unknown> } = {},
  ): never {
    const column = columnOf(t, from, p);
    throw new ImageError(
      code,
      `${this.file}:${line}:${column}: ${message}`,
      { file: this.file, line, column, offset: offset + p, ...extra.details },
      extra.hint,
    );
  }

  /** Something other than a hex digit inside a record: points at the first non-digit after `p`. */
  badDigit(t: Uint8Array, from: number, p: number, end: number, line: number, offset: number): never {
    let q = p + 1;
    while (q < end && HEX_VALUE[t[q]!]! >= 0) q++;
    this.fail(
      `${this.prefix}_SYNTAX`,
      `${charAt(t, q, end + 1)} where a hex digit belongs`,
      t,
      from,
      q,
      line,
      offset,
    );
  }

  /**
   * A record shorter than its length byte says: in the last chunk without a line break after it, the file was
   * cut short (`<prefix>_TRUNCATED`); otherwise the record is malformed (`<prefix>_SYNTAX`).
   */
  short(
    t: Uint8Array,
    from: number,
    p: number,
    to: number,
    line: number,
    offset: number,
    final: boolean,
  ): never {
    if (final && !hasLineBreak(t, p, to)) {
      this.fail(
        `${this.prefix}_TRUNCATED`,
        'the file ends inside this record: it is incomplete',
        t,
        from,
        p,
        line,
        offset,
        { hint: 'the file was cut short (interrupted copy or download); rebuild or fetch it again' },
      );
    }
    this.fail(
      `${this.prefix}_SYNTAX`,
      `record shorter than its ${this.lengthByte} byte says`,
      t,
      from,
      p,
      line,
      offset,
    );
  }
}

/** Parses a whole text held in memory with `parser`. */
export function parseWhole<T>(parser: TextParser<T>, text: Uint8Array): T {
  parser.feed(text, 0, text.length, 0, true);
  return parser.finish();
}

export function hex2(n: number): string {
  return (n & 0xff).toString(16).toUpperCase().padStart(2, '0');
}
