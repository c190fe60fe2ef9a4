// Format detection from content (the extension only breaks ties), and the two entry points that read
// any image: parseImage for bytes in memory, readImage for a file (text formats are streamed so a large
// HEX file is never held in memory whole).
import { closeSync, fstatSync, openSync, readFileSync, readSync } from 'node:fs';
import path from 'node:path';
import { FileError, isHilError, sysCode } from '../errors.ts';
import { hex32 } from '../util/hex.ts';
import { parseBinary } from './bin.ts';
import { isDfuse, parseDfuSuffixed, parseDfuse, readDfuSuffix } from './dfuse.ts';
import { isElf, parseElf } from './elf.ts';
import { IntelHexParser } from './ihex.ts';
import { type FirmwareImage, ImageError, type ImageFormat } from './model.ts';
import type { TextParser } from './runs.ts';
import { SrecParser } from './srec.ts';

export interface ReadOptions {
  /** Load address of a raw binary (default 0x08000000, noted in meta.baseAssumed). Ignored by other formats. */
  base?: number;
  /** Skip detection. */
  format?: ImageFormat;
}

export const FORMAT_NAMES: Record<ImageFormat, string> = {
  elf: 'ELF',
  ihex: 'Intel HEX',
  srec: 'Motorola S-record',
  bin: 'raw binary',
  dfuse: 'DfuSe',
  'dfu-suffix': 'binary with DFU suffix',
};

const TEXT_EXTENSIONS: Record<string, ImageFormat> = {
  '.hex': 'ihex',
  '.ihex': 'ihex',
  '.ihx': 'ihex',
  '.srec': 'srec',
  '.s19': 'srec',
  '.s28': 'srec',
  '.s37': 'srec',
  '.mot': 'srec',
};

function bomLength(b: Uint8Array): number {
  return b.length >= 3 && b[0] === 0xef && b[1] === 0xbb && b[2] === 0xbf ? 3 : 0;
}

/** 'ihex' or 'srec' when the first record starts like one (a Cortex-M vector table never starts with ':' or 'S'). */
export function sniffText(head: Uint8Array): 'ihex' | 'srec' | undefined {
  let p = bomLength(head);
  while (p < head.length && (head[p] === 0x20 || head[p] === 0x09 || head[p] === 0x0a || head[p] === 0x0d))
    p++;
  if (head[p] === 0x3a) return 'ihex';
  if (head[p] === 0x53 && head[p + 1] !== undefined && head[p + 1]! >= 0x30 && head[p + 1]! <= 0x39)
    return 'srec';
  return undefined;
}

function looksLikeText(head: Uint8Array): boolean {
  const n = Math.min(head.length, 512);
  if (n === 0) return false;
  for (let i = 0; i < n; i++) {
    const c = head[i]!;
    if (c < 0x09 || (c > 0x0d && c < 0x20) || c === 0x7f) return false;
  }
  return true;
}

/** The format of a whole file's bytes; `name` only breaks ties and catches a misnamed file. */
export function detectFormat(bytes: Uint8Array, name: string): ImageFormat {
  if (isElf(bytes)) return 'elf';
  if (isDfuse(bytes)) return 'dfuse';
  const ext = path.extname(name).toLowerCase();
  const text = ext === '.bin' ? undefined : sniffText(bytes);
  if (text) return text;
  if (readDfuSuffix(bytes)) return 'dfu-suffix';
  const claimed =
    TEXT_EXTENSIONS[ext] ??
    (ext === '.elf' || ext === '.axf' || ext === '.out' ? 'elf' : ext === '.dfu' ? 'dfuse' : undefined);
  if (claimed) {
    throw new ImageError(
      'E_IMAGE_FORMAT',
      `${name}: the extension says ${FORMAT_NAMES[claimed]} but the content is not (it starts with ${describeHead(bytes)})`,
      { file: name, offset: 0, claimed },
      'check that this is the file you meant; a raw binary should be named .bin',
    );
  }
  if (ext !== '.bin' && looksLikeText(bytes)) {
    throw new ImageError(
      'E_IMAGE_FORMAT',
      `${name}: a text file that is neither Intel HEX nor S-record (it starts with ${describeHead(bytes)})`,
      { file: name, offset: 0 },
      'give the firmware image (.elf, .hex, .srec, .bin or .dfu), not a map or listing; name a raw binary .bin',
    );
  }
  return 'bin';
}

function describeHead(b: Uint8Array): string {
  const head = b.subarray(0, 8);
  return looksLikeText(head)
    ? JSON.stringify(Buffer.from(head).toString('latin1'))
    : Buffer.from(head).toString('hex').replace(/(..)/g, '$1 ').trim();
}

function checkBase(base: number | undefined, file: string): void {
  if (base !== undefined && !(Number.isInteger(base) && base >= 0 && base <= 0xffff_ffff)) {
    throw new ImageError('E_IMAGE_BASE', `${file}: base address ${base} is not a 32-bit address`, {
      file,
      base,
    });
  }
}

function emptyFile(file: string): never {
  throw new ImageError('E_IMAGE_EMPTY', `${file}: the file is empty`, { file, offset: 0 });
}

function textParser(format: 'ihex' | 'srec', file: string, size: number): TextParser<FirmwareImage> {
  return format === 'ihex' ? new IntelHexParser(file, size) : new SrecParser(file, size);
}

/** Reads an image held in memory; `name` is used in messages and to break ties on format. */
export function parseImage(bytes: Uint8Array, name: string, options: ReadOptions = {}): FirmwareImage {
  checkBase(options.base, name);
  if (bytes.length === 0) emptyFile(name);
  const view = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const format = options.format ?? detectFormat(view, name);
  switch (format) {
    case 'elf':
      return parseElf(view, name);
    case 'dfuse':
      return parseDfuse(view, name);
    case 'dfu-suffix':
      return parseDfuSuffixed(view, name, options.base);
    case 'bin':
      return parseBinary(view, name, options.base);
    case 'ihex':
    case 'srec': {
      const p = textParser(format, name, view.length);
      p.feed(view, bomLength(view), view.length, 0, true);
      return p.finish();
    }
  }
}

const CHUNK = 1 << 20;

/** Reads an image file. Text formats are parsed in 1 MiB chunks cut at line ends. */
export function readImage(file: string, options: ReadOptions = {}): FirmwareImage {
  checkBase(options.base, file);
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (e) {
    throw new FileError(sysCode(e) === 'ENOENT' ? 'E_FILE_NOT_FOUND' : 'E_FILE_READ', file, e);
  }
  try {
    const stat = fstatSync(fd);
    if (stat.isDirectory()) throw new FileError('E_FILE_READ', file, new Error('is a directory'));
    if (stat.size === 0) emptyFile(file);
    const head = new Uint8Array(Math.min(stat.size, 4096));
    readSync(fd, head, 0, head.length, 0);
    // Text formats show in the first bytes and are streamed; everything else is read whole.
    const sniffed =
      options.format ??
      (isElf(head) || isDfuse(head) || path.extname(file).toLowerCase() === '.bin'
        ? undefined
        : sniffText(head));
    if (sniffed === 'ihex' || sniffed === 'srec')
      return streamText(fd, stat.size, textParser(sniffed, file, stat.size), bomLength(head));
    // Positional reads above left the file position at 0: this reads the whole file.
    return parseImage(readFileSync(fd), file, options);
  } catch (e) {
    if (!isHilError(e) && sysCode(e) !== undefined) throw new FileError('E_FILE_READ', file, e);
    throw e;
  } finally {
    closeSync(fd);
  }
}

function streamText(
  fd: number,
  size: number,
  parser: TextParser<FirmwareImage>,
  skip: number,
): FirmwareImage {
  let buf = new Uint8Array(Math.min(CHUNK, size + 1));
  let have = 0;
  let offset = 0;
  let start = skip;
  for (;;) {
    if (have === buf.length) {
      const bigger = new Uint8Array(buf.length * 2);
      bigger.set(buf);
      buf = bigger;
    }
    const n = readSync(fd, buf, have, buf.length - have, offset + have);
    have += n;
    if (n === 0) {
      parser.feed(buf, start, have, offset, true);
      return parser.finish();
    }
    let cut = buf.lastIndexOf(0x0a, have - 1) + 1;
    if (cut <= start) cut = buf.lastIndexOf(0x0d, have - 1) + 1;
    if (cut <= start) continue;
    parser.feed(buf, start, cut, offset, false);
    buf.copyWithin(0, cut, have);
    have -= cut;
    offset += cut;
    start = 0;
  }
}

/** `0x08000000 (assumed)` style note for binaries read without --base. */
export function baseNote(image: FirmwareImage): string | undefined {
  if (!image.meta.baseAssumed) return undefined;
  const at = image.segments[0]?.address;
  return `no base address given: placed at ${at === undefined ? '?' : hex32(at)} (use --base ADDR)`;
}
