import type { Part } from '../parts/catalogue.ts';
import type { OptionBytes } from './chip.ts';

/**
 * The option-bytes area as the ROM bootloader shows it on the option-bytes alternate setting, and how a
 * DFU write to it maps back onto the chip's option bytes. Only the fields VirtualChip models (RDP, bank swap,
 * boot addresses, write protection) are encoded; the other bits hold the factory values assumed below.
 */

interface Field {
  /** Byte offsets of the little-endian 32-bit words that may carry the field, in order of preference. */
  offsets: number[];
  encode(o: Readonly<OptionBytes>, current: number): number;
  decode(word: number): Partial<OptionBytes>;
}

interface Codec {
  size: number;
  base(): Uint8Array;
  fields: Field[];
}

// RM0433 section 4.9 (FLASH registers, base 0x52002000), offsets relative to 0x5200201C:
// +0x00 OPTSR_CUR, +0x04 OPTSR_PRG, +0x0C PRAR_CUR1, +0x14 SCAR_CUR1, +0x1C WPSN_CUR1R, +0x20 WPSN_PRG1R,
// +0x24 BOOT_CURR, +0x28 BOOT_PRGR, +0x10C PRAR_CUR2, +0x114 SCAR_CUR2, +0x11C WPSN_CUR2R, +0x120 WPSN_PRG2R.
// OPTSR: RDP bits 15:8, SWAP_BANK_OPT bit 31; BOOT: BOOT_ADD0 bits 15:0, BOOT_ADD1 bits 31:16;
// WPSN: WRPSn bits 7:0, a 0 bit protects the sector.
const H7_OPTSR_FACTORY = 0x0003_00f0; // IWDG1_SW, NRST_STOP/STBY_D1, FZ_IWDG_STOP/SDBY set (assumed factory)
const h7: Codec = {
  size: 0x134,
  base() {
    const b = new Uint8Array(0x134);
    const v = new DataView(b.buffer);
    v.setUint32(0x00, H7_OPTSR_FACTORY, true);
    v.setUint32(0x04, H7_OPTSR_FACTORY, true);
    // PRAR/SCAR with start > end: no protected or secure area (RM0433 4.5.6/4.5.7 reset values).
    for (const off of [0x0c, 0x10, 0x14, 0x18, 0x10c, 0x110, 0x114, 0x118])
      v.setUint32(off, 0x0000_00ff, true);
    return b;
  },
  fields: [
    {
      offsets: [0x04, 0x00],
      encode: (o, cur) =>
        ((cur & ~0x8000_ff00) | ((o.rdp & 0xff) << 8) | (o.swapBank ? 0x8000_0000 : 0)) >>> 0,
      decode: (w) => ({ rdp: (w >>> 8) & 0xff, swapBank: (w & 0x8000_0000) !== 0 }),
    },
    {
      offsets: [0x28, 0x24],
      encode: (o) => (((o.bootAdd1 & 0xffff) << 16) | (o.bootAdd0 & 0xffff)) >>> 0,
      decode: (w) => ({ bootAdd0: w & 0xffff, bootAdd1: w >>> 16 }),
    },
  ],
};
for (const [bank, offsets] of [
  [0, [0x20, 0x1c]],
  [8, [0x120, 0x11c]],
] as const) {
  h7.fields.push({
    offsets: [...offsets],
    encode: (o) => {
      let bits = 0xff;
      for (const s of o.writeProtected) if (s >= bank && s < bank + 8) bits &= ~(1 << (s - bank));
      return bits;
    },
    // Only this bank's sectors: the merge in decodeOptionWrite keeps the other bank's.
    decode: (w) => ({
      writeProtected: [0, 1, 2, 3, 4, 5, 6, 7].filter((i) => (w & (1 << i)) === 0).map((i) => i + bank),
    }),
  });
}

// RM0090 section 3.6.1 table 16: 0x1FFFC000 USER (bits 7:0) and RDP (bits 15:8); 0x1FFFC008 nWRP (bits 11:0,
// a 0 bit protects the sector).
const f4: Codec = {
  size: 16,
  base: () => new Uint8Array(16).fill(0xff),
  fields: [
    {
      offsets: [0],
      encode: (o, cur) => ((cur & 0xffff_00ff) | ((o.rdp & 0xff) << 8)) >>> 0,
      decode: (w) => ({ rdp: (w >>> 8) & 0xff }),
    },
    {
      offsets: [8],
      encode: (o, cur) => {
        let bits = 0x0fff;
        for (const s of o.writeProtected) if (s < 12) bits &= ~(1 << s);
        return ((cur & 0xffff_f000) | bits) >>> 0;
      },
      decode: (w) => ({ writeProtected: [...Array(12).keys()].filter((i) => (w & (1 << i)) === 0) }),
    },
  ],
};

// RM0503 (STM32U0) FLASH_OPTR at the start of the option bytes: RDP bits 7:0.
const u0: Codec = {
  size: 128,
  base: () => new Uint8Array(128).fill(0xff),
  fields: [
    {
      offsets: [0],
      encode: (o, cur) => ((cur & 0xffff_ff00) | (o.rdp & 0xff)) >>> 0,
      decode: (w) => ({ rdp: w & 0xff }),
    },
  ],
};

function codecFor(part: Part): Codec {
  if (part.family === 'STM32H7') return h7;
  if (part.family === 'STM32F4') return f4;
  return u0;
}

export function optionBytesSize(part: Part): number {
  return codecFor(part).size;
}

/** The option-bytes area as an UPLOAD from its base returns it. */
export function encodeOptionBytes(part: Part, o: Readonly<OptionBytes>): Uint8Array {
  const codec = codecFor(part);
  const image = codec.base();
  const view = new DataView(image.buffer);
  for (const f of codec.fields) {
    for (const off of f.offsets) view.setUint32(off, f.encode(o, view.getUint32(off, true)), true);
  }
  return image;
}

/**
 * What a DFU write of `data` at byte `offset` of the option-bytes area changes. For each field the first
 * written word (in `offsets` order: the _PRG register before the _CUR one on the H7) whose value differs from
 * what the chip shows decides; words not written or unchanged leave the field alone.
 */
export function decodeOptionWrite(
  part: Part,
  current: Readonly<OptionBytes>,
  offset: number,
  data: Uint8Array,
): Partial<OptionBytes> {
  const codec = codecFor(part);
  const shown = encodeOptionBytes(part, current);
  const image = shown.slice();
  image.set(data.subarray(0, Math.max(0, image.length - offset)), offset);
  const before = new DataView(shown.buffer);
  const after = new DataView(image.buffer);
  const change: Partial<OptionBytes> = {};
  let protectedSectors = [...current.writeProtected];
  for (const f of codec.fields) {
    for (const off of f.offsets) {
      if (off < offset || off + 4 > offset + data.length) continue;
      const w = after.getUint32(off, true);
      if (w === before.getUint32(off, true)) continue;
      const d = f.decode(w);
      if (d.writeProtected) {
        // Replace the protection of the sectors this word covers only.
        const covered = new Set(f.decode(0).writeProtected);
        protectedSectors = [...protectedSectors.filter((s) => !covered.has(s)), ...d.writeProtected].sort(
          (a, b) => a - b,
        );
        change.writeProtected = protectedSectors;
        const { writeProtected: _, ...rest } = d;
        Object.assign(change, rest);
      } else {
        Object.assign(change, d);
      }
      break;
    }
  }
  return change;
}
