// DfuSe .dfu files and the DFU suffix.
// Layout from ST UM0391 "DfuSe File Format Specification": an 11-byte prefix ("DfuSe", version 1,
// DFUImageSize, bTargets), per target a 274-byte prefix ("Target", bAlternateSetting, bTargetNamed (4 bytes),
// szTargetName[255], dwTargetSize, dwNbElements) and elements (dwElementAddress, dwElementSize, data); all
// little-endian. The file ends with the 16-byte suffix of USB DFU 1.1 appendix B (bcdDevice, idProduct,
// idVendor, bcdDFU, "UFD", bLength, dwCRC), bcdDFU 0x011A for DfuSe. dwCRC is the CRC-32 of every byte
// before it, without the final inversion (DFU 1.1 appendix B, as dfu-util computes it).
import { crc32 } from 'node:zlib';
import { hex32 } from '../util/hex.ts';
import { DEFAULT_BASE } from './bin.ts';
import { FirmwareImage, ImageError, type Segment } from './model.ts';

export const DFU_SUFFIX_LENGTH = 16;
const PREFIX_LENGTH = 11;
const TARGET_PREFIX_LENGTH = 274;

export interface DfuSuffix {
  bcdDevice: number;
  idProduct: number;
  idVendor: number;
  bcdDFU: number;
  /** bLength: the suffix's length (16, or more for extended suffixes). */
  length: number;
  crc: number;
}

/** The DFU file CRC of `bytes`. */
export function dfuCrc(bytes: Uint8Array): number {
  return ~crc32(bytes) >>> 0;
}

export function isDfuse(bytes: Uint8Array): boolean {
  return bytes.length >= 5 && Buffer.from(bytes.buffer, bytes.byteOffset, 5).toString('latin1') === 'DfuSe';
}

/** The suffix when the file ends with one ("UFD" signature and a plausible bLength), else undefined. */
export function readDfuSuffix(bytes: Uint8Array): DfuSuffix | undefined {
  const n = bytes.length;
  if (n < DFU_SUFFIX_LENGTH) return undefined;
  if (bytes[n - 8] !== 0x55 || bytes[n - 7] !== 0x46 || bytes[n - 6] !== 0x44) return undefined;
  const length = bytes[n - 5]!;
  if (length < DFU_SUFFIX_LENGTH || length > n) return undefined;
  const dv = new DataView(bytes.buffer, bytes.byteOffset + n - 16, 16);
  return {
    bcdDevice: dv.getUint16(0, true),
    idProduct: dv.getUint16(2, true),
    idVendor: dv.getUint16(4, true),
    bcdDFU: dv.getUint16(6, true),
    length,
    crc: dv.getUint32(12, true),
  };
}

function checkCrc(bytes: Uint8Array, file: string, suffix: DfuSuffix): void {
  const actual = dfuCrc(bytes.subarray(0, bytes.length - 4));
  if (actual !== suffix.crc) {
    throw new ImageError(
      'E_DFU_CRC',
      `${file}: DFU suffix CRC ${hex32(suffix.crc)} at byte offset ${bytes.length - 4} does not match the file (${hex32(actual)})`,
      { file, offset: bytes.length - 4, expected: suffix.crc, actual },
      'the file was damaged or edited after packing; rebuild it (stm32-hil image convert --to dfu, or dfuse-pack)',
    );
  }
}

function suffixMeta(s: DfuSuffix): Record<string, number> {
  return { vid: s.idVendor, pid: s.idProduct, bcdDevice: s.bcdDevice, bcdDFU: s.bcdDFU };
}

/** A DfuSe file: every element of every target becomes a segment remembering its alternate setting. */
export function parseDfuse(bytes: Uint8Array, file: string): FirmwareImage {
  const len = bytes.length;
  const fail = (
    code: string,
    offset: number,
    message: string,
    details: Record<string, unknown> = {},
    hint?: string,
  ): never => {
    throw new ImageError(
      code,
      `${file}: ${message} (byte offset ${offset})`,
      { file, offset, ...details },
      hint,
    );
  };
  const truncatedHint = 'the file was cut short (interrupted copy or download); rebuild or fetch it again';
  if (len < PREFIX_LENGTH)
    fail(
      'E_DFUSE_TRUNCATED',
      len,
      `the file ends inside the ${PREFIX_LENGTH}-byte DfuSe prefix`,
      {},
      truncatedHint,
    );
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = bytes[5]!;
  if (version !== 1)
    fail('E_DFUSE_VERSION', 5, `DfuSe format version ${version}; only version 1 exists (UM0391)`, {
      version,
    });
  const imageSize = dv.getUint32(6, true);
  // UM0391 means the size without the suffix; dfuse-pack counts the suffix too. Accept both.
  if (imageSize > len || (imageSize < len && imageSize + DFU_SUFFIX_LENGTH > len)) {
    fail(
      'E_DFUSE_TRUNCATED',
      len,
      `the prefix announces ${imageSize} bytes (plus the suffix) but the file has ${len}`,
      { imageSize, size: len },
      truncatedHint,
    );
  }
  const suffix = readDfuSuffix(bytes);
  if (!suffix) {
    fail(
      'E_DFU_SUFFIX',
      Math.max(0, len - DFU_SUFFIX_LENGTH),
      'no DFU suffix ("UFD" signature) at the end of the file: it is truncated or was not finished by a DfuSe packer',
      {},
      truncatedHint,
    );
  }
  const sfx = suffix as DfuSuffix;
  checkCrc(bytes, file, sfx);
  const limit = len - sfx.length;
  const img = new FirmwareImage('dfuse', file);
  img.meta.dfu = suffixMeta(sfx);
  const targets: Array<{ alt: number; name: string; elements: number; size: number }> = [];
  let p = PREFIX_LENGTH;
  const count = bytes[10]!;
  for (let t = 0; t < count; t++) {
    if (p + TARGET_PREFIX_LENGTH > limit)
      fail(
        'E_DFUSE_TRUNCATED',
        p,
        `target ${t} of ${count}: its prefix runs past the data`,
        {},
        truncatedHint,
      );
    if (Buffer.from(bytes.buffer, bytes.byteOffset + p, 6).toString('latin1') !== 'Target') {
      fail('E_DFUSE_SYNTAX', p, `target ${t}: "Target" signature expected`);
    }
    const alt = bytes[p + 6]!;
    const named = dv.getUint32(p + 7, true) !== 0;
    const name = named ? cString(bytes, p + 11, p + 11 + 255) : '';
    const targetSize = dv.getUint32(p + 266, true);
    const elements = dv.getUint32(p + 270, true);
    const body = p + TARGET_PREFIX_LENGTH;
    if (body + targetSize > limit)
      fail(
        'E_DFUSE_TRUNCATED',
        p + 266,
        `target ${t} announces ${targetSize} bytes, past the data`,
        {},
        truncatedHint,
      );
    let q = body;
    for (let e = 0; e < elements; e++) {
      if (q + 8 > body + targetSize)
        fail('E_DFUSE_SYNTAX', q, `target ${t} element ${e}: header past the target's ${targetSize} bytes`);
      const address = dv.getUint32(q, true);
      const size = dv.getUint32(q + 4, true);
      if (q + 8 + size > body + targetSize)
        fail('E_DFUSE_SYNTAX', q + 4, `target ${t} element ${e}: ${size} bytes run past the target`);
      if (address + size > 0x1_0000_0000) {
        fail(
          'E_IMAGE_ADDRESS_RANGE',
          q,
          `target ${t} element ${e}: ${size} bytes at ${hex32(address)} run past the 4 GiB address space`,
          {
            address,
            length: size,
          },
        );
      }
      img.add({
        name: `alt ${alt}${name ? ` "${name}"` : ''} element ${e}`,
        address,
        data: bytes.subarray(q + 8, q + 8 + size),
        source: { file, offset: q + 8, target: { alt, name } },
      });
      q += 8 + size;
    }
    if (q !== body + targetSize)
      fail(
        'E_DFUSE_SYNTAX',
        q,
        `target ${t}: elements take ${q - body} bytes, the target prefix says ${targetSize}`,
      );
    targets.push({ alt, name, elements, size: targetSize });
    p = q;
  }
  if (p !== limit) fail('E_DFUSE_SYNTAX', p, `${limit - p} bytes after the last of ${count} targets`);
  img.meta.targets = targets;
  return img;
}

/** A plain binary with a DFU suffix (dfu-suffix -a): the bytes before the suffix, at `base`. */
export function parseDfuSuffixed(bytes: Uint8Array, file: string, base?: number): FirmwareImage {
  const suffix = readDfuSuffix(bytes);
  if (!suffix)
    throw new ImageError('E_DFU_SUFFIX', `${file}: no DFU suffix at the end of the file`, {
      file,
      offset: bytes.length,
    });
  checkCrc(bytes, file, suffix);
  const img = new FirmwareImage('dfu-suffix', file);
  img.meta.dfu = suffixMeta(suffix);
  const at = base ?? DEFAULT_BASE;
  if (base === undefined) img.meta.baseAssumed = true;
  const data = bytes.subarray(0, bytes.length - suffix.length);
  if (at + data.length > 0x1_0000_0000) {
    throw new ImageError(
      'E_IMAGE_ADDRESS_RANGE',
      `${file}: ${data.length} bytes at ${hex32(at)} run past the 4 GiB address space`,
      {
        file,
        offset: 0x1_0000_0000 - at,
        address: at,
      },
    );
  }
  img.add({ name: 'bin', address: at, data, source: { file, offset: 0 } });
  return img;
}

export interface DfuWriteOptions {
  /** idVendor in the suffix (default 0x0483, ST). */
  vid?: number;
  /** idProduct in the suffix (default 0xDF11, the ST ROM bootloader). */
  pid?: number;
  /** bcdDevice in the suffix (default 0xFFFF: any device release, as USB DFU 1.1 appendix B allows). */
  bcdDevice?: number;
  /**
   * Alternate setting and target name for a segment. Default: the DfuSe target it came from, else
   * alternate setting 0 "Internal Flash".
   */
  targetFor?: (segment: Segment) => { alt: number; name: string };
}

/** Appends a DFU 1.1 suffix (bcdDFU 0x011A for DfuSe files, 0x0100 for plain ones) and its CRC. */
export function withDfuSuffix(
  body: Uint8Array,
  suffix: { vid: number; pid: number; bcdDevice: number; bcdDFU: number },
): Uint8Array {
  const out = new Uint8Array(body.length + DFU_SUFFIX_LENGTH);
  out.set(body);
  const dv = new DataView(out.buffer, body.length, DFU_SUFFIX_LENGTH);
  dv.setUint16(0, suffix.bcdDevice, true);
  dv.setUint16(2, suffix.pid, true);
  dv.setUint16(4, suffix.vid, true);
  dv.setUint16(6, suffix.bcdDFU, true);
  out.set([0x55, 0x46, 0x44, DFU_SUFFIX_LENGTH], body.length + 8);
  dv.setUint32(12, dfuCrc(out.subarray(0, out.length - 4)), true);
  return out;
}

/** A DfuSe file with one target per alternate setting and one element per run of consecutive bytes. */
export function writeDfuse(
  image: { segments: readonly Segment[] },
  options: DfuWriteOptions = {},
): Uint8Array {
  const targetFor =
    options.targetFor ?? ((s: Segment) => s.source.target ?? { alt: 0, name: 'Internal Flash' });
  const targets = new Map<
    number,
    { name: string; elements: Array<{ address: number; parts: Uint8Array[]; size: number }> }
  >();
  for (const s of image.segments) {
    const { alt, name } = targetFor(s);
    if (!Number.isInteger(alt) || alt < 0 || alt > 255)
      throw new RangeError(`alternate setting ${alt} is not 0..255`);
    let t = targets.get(alt);
    if (!t) {
      t = { name, elements: [] };
      targets.set(alt, t);
    }
    const last = t.elements.at(-1);
    if (last && last.address + last.size === s.address) {
      last.parts.push(s.data);
      last.size += s.data.length;
    } else {
      t.elements.push({ address: s.address, parts: [s.data], size: s.data.length });
    }
  }
  if (targets.size > 255) throw new RangeError('a DfuSe file holds at most 255 targets');
  const ordered = [...targets.entries()].sort((a, b) => a[0] - b[0]);
  let total = PREFIX_LENGTH;
  for (const [, t] of ordered) total += TARGET_PREFIX_LENGTH + t.elements.reduce((n, e) => n + 8 + e.size, 0);
  const body = new Uint8Array(total);
  const dv = new DataView(body.buffer);
  body.set(Buffer.from('DfuSe', 'latin1'), 0);
  body[5] = 1;
  dv.setUint32(6, total, true);
  body[10] = ordered.length;
  let p = PREFIX_LENGTH;
  for (const [alt, t] of ordered) {
    body.set(Buffer.from('Target', 'latin1'), p);
    body[p + 6] = alt;
    const name = Buffer.from(t.name, 'latin1').subarray(0, 254);
    dv.setUint32(p + 7, name.length ? 1 : 0, true);
    body.set(name, p + 11);
    const size = t.elements.reduce((n, e) => n + 8 + e.size, 0);
    dv.setUint32(p + 266, size, true);
    dv.setUint32(p + 270, t.elements.length, true);
    p += TARGET_PREFIX_LENGTH;
    for (const e of t.elements) {
      dv.setUint32(p, e.address, true);
      dv.setUint32(p + 4, e.size, true);
      p += 8;
      for (const part of e.parts) {
        body.set(part, p);
        p += part.length;
      }
    }
  }
  return withDfuSuffix(body, {
    vid: options.vid ?? 0x0483,
    pid: options.pid ?? 0xdf11,
    bcdDevice: options.bcdDevice ?? 0xffff,
    bcdDFU: 0x011a,
  });
}

function cString(bytes: Uint8Array, from: number, limit: number): string {
  let end = from;
  while (end < limit && bytes[end] !== 0) end++;
  return Buffer.from(bytes.subarray(from, end)).toString('latin1');
}
