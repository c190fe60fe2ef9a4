import { describe, expect, it } from 'vitest';
import { FirmwareImage } from '../image/model.ts';
import { getPart } from '../parts/catalogue.ts';
import { layoutSectors, parseLayout } from '../parts/layout.ts';
import type { DfuAlternate } from './device.ts';
import { DfuError } from './errors.ts';
import { Permissions } from './permissions.ts';
import { planFlash } from './plan.ts';
import { compareImage, describeReport, mismatchLine } from './verify.ts';

function alt(raw: string, n = 0): DfuAlternate {
  const layout = parseLayout(raw);
  return { alt: n, name: raw, layout, sectors: layoutSectors(layout) };
}
const H743 = {
  alternates: [alt('@Internal Flash   /0x08000000/16*128Kg'), alt('@Option Bytes   /0x5200201C/01*128 e', 1)],
  alt: 0,
};
const h743 = getPart('stm32h743');

function image(...parts: Array<[number, number[] | Uint8Array]>): FirmwareImage {
  const img = new FirmwareImage('elf', 'fw.elf');
  for (const [address, data] of parts) {
    img.add({
      name: '.text',
      address,
      data: Uint8Array.from(data),
      source: { file: 'fw.elf', sections: ['.text'] },
    });
  }
  return img;
}

describe('planFlash', () => {
  it('erases only the sectors the image touches, in address order', () => {
    const p = planFlash(image([0x0810_0010, [1, 2]], [0x0800_0000, [3]], [0x0801_fffe, [4, 5, 6, 7]]), H743, {
      part: h743,
    });
    expect(p.erase.mode === 'sectors' && p.erase.sectors.map((s) => s.index)).toEqual([0, 1, 8]);
    expect(p.eraseBytes).toBe(3 * 128 * 1024);
  });

  it('merges segments that share a 256-bit flash word and pads runs with 0xFF to whole words (H7 ECC)', () => {
    const p = planFlash(image([0x0800_0004, [1, 2]], [0x0800_0010, [3]], [0x0800_0040, [9]]), H743, {
      part: h743,
    });
    expect(p.writes.map((w) => [w.address, w.data.length])).toEqual([
      [0x0800_0000, 32],
      [0x0800_0040, 32],
    ]);
    expect([...p.writes[0]!.data.subarray(0, 0x12)]).toEqual([
      0xff,
      0xff,
      0xff,
      0xff,
      1,
      2,
      ...new Array(10).fill(0xff),
      3,
      0xff,
    ]);
    expect(p.imageBytes).toBe(4);
  });

  it('needs permission for a mass erase', () => {
    const img = image([0x0800_0000, [1]]);
    expect(() => planFlash(img, H743, { massErase: true })).toThrow(
      expect.objectContaining({ code: 'E_DFU_PERMISSION', kind: 'usage' }),
    );
    const p = planFlash(img, H743, { massErase: true, permissions: Permissions.none().allowMassErase() });
    expect(p.erase.mode).toBe('mass');
    expect(p.eraseBytes).toBe(2 * 1024 * 1024);
  });

  it('refuses bytes outside the layout and names where they fall, also without a catalogue part', () => {
    const img = image([0x0800_0000, [1]], [0x3800_0000, new Uint8Array(64)]);
    try {
      planFlash(img, H743);
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(DfuError);
      expect((e as DfuError).code).toBe('E_DFU_PLAN_OUTSIDE');
      expect((e as DfuError).message).toMatch(/64 bytes .*0x38000000-0x3800003F/);
    }
    // With the part, the message is the image diagnosis (the same text `image inspect` prints).
    expect(() => planFlash(img, H743, { part: h743 })).toThrow(/SRAM4 \(RAM\) on the STM32H743/);
  });

  it('refuses bytes past the end of the layout the device reports, even if the catalogue has flash there', () => {
    const small = { alternates: [alt('@Internal Flash   /0x08000000/8*128Kg')], alt: 0 };
    expect(() => planFlash(image([0x0810_0000, [1]]), small, { part: h743 })).toThrow(
      /outside the writable memory the device reports/,
    );
  });

  it('refuses an empty image', () => {
    expect(() => planFlash(new FirmwareImage('bin', 'empty.bin'), H743)).toThrow(
      expect.objectContaining({ code: 'E_DFU_PLAN_EMPTY' }),
    );
  });
});

describe('compareImage', () => {
  const sectors = H743.alternates[0]!.sectors;
  it('reports the first difference as STM32CubeProgrammer does, with count and sectors', () => {
    const want = Uint8Array.of(0x00, 0x00, 0x08, 0x20, 1, 2, 3, 4);
    const got = Uint8Array.of(0x00, 0x00, 0x00, 0x20, 1, 2, 3, 0);
    const r = compareImage(
      [
        { address: 0x0800_0000, data: want },
        { address: 0x0810_0000, data: Uint8Array.of(7) },
      ],
      [got, Uint8Array.of(6)],
      sectors,
    );
    expect(mismatchLine(r.first!)).toBe(
      'Data mismatch found at address 0x08000002 (byte = 0x00 instead of 0x08)',
    );
    expect(r.mismatches).toBe(3);
    expect(r.sectors).toEqual([
      { index: 0, start: 0x0800_0000, size: 131072, mismatches: 2 },
      { index: 8, start: 0x0810_0000, size: 131072, mismatches: 1 },
    ]);
    expect(describeReport(r)[1]).toBe(
      '3 of 9 bytes differ, in sector 0 at 0x08000000 (2), sector 8 at 0x08100000 (1)',
    );
    expect(r.dump).toContain('0x08000000  00 00 00 20 01 02 03 00');
    expect(r.dump).toContain('<- 0x08000002');
  });
  it('is ok when everything matches', () => {
    const d = Uint8Array.of(1, 2, 3);
    expect(compareImage([{ address: 0x0800_0000, data: d }], [d.slice()], sectors)).toMatchObject({
      ok: true,
      mismatches: 0,
      bytes: 3,
    });
  });
});
