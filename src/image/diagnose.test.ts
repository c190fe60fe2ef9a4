import { describe, expect, it } from 'vitest';
import { getPart } from '../parts/catalogue.ts';
import {
  describeSectors,
  diagnoseImage,
  flashOnly,
  parseImage,
  readImage,
  unflashableError,
} from './index.ts';
import { fixture, fixtureBytes, flatten, srecRecord, text } from './test-helpers.ts';

const h747 = getPart('stm32h747');
const h743 = getPart('stm32h743');

describe('diagnoseImage', () => {
  it('the field report: SRAM4 data from a section that should be NOLOAD', () => {
    const d = diagnoseImage(readImage(fixture('sram4.elf')), h747);
    expect(d.failsFlash).toBe(true);
    expect(d.problems).toHaveLength(1);
    const p = d.problems[0]!;
    expect(p).toMatchObject({
      code: 'E_IMAGE_RAM_DATA',
      where: 'ram',
      region: 'SRAM4',
      start: 0x3800_0000,
      end: 0x3800_0040,
      sections: ['.shared'],
    });
    expect(p.message).toMatch(/section \.shared: 64 bytes at 0x38000000-0x3800003F are in SRAM4 \(RAM\)/);
    expect(p.message).toContain('Not flash Memory : No erase done');
    expect(p.remedies[0]).toMatch(/mark \.shared NOLOAD in the linker script/);
    expect(p.remedies[1]).toMatch(
      /stm32-hil image convert .*sram4\.elf --part stm32h747 --flash-only -o sram4-flash\.hex/,
    );
  });

  it('the same diagnosis from the HEX, naming the line instead of the section', () => {
    const d = diagnoseImage(readImage(fixture('sram4.hex')), h747);
    const p = d.problems[0]!;
    expect(p.code).toBe('E_IMAGE_RAM_DATA');
    expect(p.sections).toBeUndefined();
    expect(p.message).toMatch(/data from sram4\.hex line \d+: 64 bytes at 0x38000000/);
    expect(p.remedies.some((r) => r.includes('NOLOAD'))).toBe(true);
    expect(p.remedies.some((r) => r.includes('--flash-only -o sram4-flash.hex'))).toBe(true);
  });

  it('a section straddling the end of flash is named for the part outside only', () => {
    // One ELF-like segment whose second section runs past bank 2 into unmapped space.
    const img = parseImage(fixtureBytes('plain.bin'), 'x.bin', { base: 0x081f_ff00 });
    img.segments[0]!.source.sectionSpans = [
      { name: '.text', address: 0x081f_ff00, size: 0x100 },
      { name: '.rodata', address: 0x0820_0000, size: 748 - 0x100 },
    ];
    const [p] = diagnoseImage(img, h743).problems;
    expect(p).toMatchObject({
      code: 'E_IMAGE_UNMAPPED',
      start: 0x0820_0000,
      end: 0x081f_ff00 + 748,
      sections: ['.rodata'],
    });
  });

  it('option bytes, system memory and unmapped data each have their own code', () => {
    const ob = diagnoseImage(readImage(fixture('plain-ob.dfu')), h743).problems;
    expect(ob.map((p) => p.code)).toEqual(['E_IMAGE_OPTION_BYTES']);
    const rom = diagnoseImage(
      parseImage(fixtureBytes('plain.bin'), 'rom.bin', { base: 0x1ff0_0000 }),
      h743,
    ).problems;
    expect(rom.map((p) => p.code)).toEqual(['E_IMAGE_SYSTEM_MEMORY']);
    const nowhere = diagnoseImage(
      parseImage(fixtureBytes('plain.bin'), 'x.bin', { base: 0x0900_0000 }),
      h743,
    ).problems;
    expect(nowhere.map((p) => p.code)).toEqual(['E_IMAGE_UNMAPPED']);
    expect(nowhere[0]!.remedies.join('\n')).toMatch(/--base/);
  });

  it('banks and sectors touched', () => {
    const d = diagnoseImage(readImage(fixture('bank2.elf')), h743);
    expect(d.problems).toEqual([]);
    expect(d.failsFlash).toBe(false);
    expect(d.plan.banks).toEqual([1, 2]);
    expect(d.plan.sectors.map((s) => [s.bank, s.index, s.globalIndex])).toEqual([
      [1, 0, 0],
      [2, 0, 8],
    ]);
    expect(describeSectors(d.plan)).toBe('bank 1 sector 0, bank 2 sector 0');
    const f4 = diagnoseImage(parseImage(new Uint8Array(80 * 1024), 'big.bin'), getPart('stm32f407'));
    expect(describeSectors(f4.plan)).toBe('bank 1 sectors 0-4');
  });

  it('warns when an S-record file cannot show it is complete', () => {
    const img = parseImage(text(`${srecRecord(3, 0x0800_0000, [1, 2, 3, 4])}\n`), 'x.srec');
    const d = diagnoseImage(img, h743);
    expect(d.problems.map((p) => [p.code, p.failsFlash])).toEqual([['W_SREC_UNTERMINATED', false]]);
    expect(d.failsFlash).toBe(false);
  });

  it('unflashableError carries the diagnosis for the flash planner', () => {
    const e = unflashableError(diagnoseImage(readImage(fixture('sram4.elf')), h747))!;
    expect(e).toMatchObject({ code: 'E_IMAGE_RAM_DATA', kind: 'input' });
    expect(e.hint).toMatch(/NOLOAD.*; or .*--flash-only/);
    expect(unflashableError(diagnoseImage(readImage(fixture('plain.elf')), h747))).toBeUndefined();
  });
});

describe('flashOnly', () => {
  it('keeps the flash bytes (objcopy -R .shared) and reports what it dropped', () => {
    const { image, dropped } = flashOnly(readImage(fixture('sram4.elf')), h747);
    const flash = fixtureBytes('sram4.flash.bin');
    expect(image.span).toEqual({ start: 0x0800_0000, end: 0x0800_0000 + flash.length });
    expect(flatten(image, 0x0800_0000, 0x0800_0000 + flash.length)).toEqual(flash);
    expect(dropped.map((p) => [p.code, p.start, p.sections])).toEqual([
      ['E_IMAGE_RAM_DATA', 0x3800_0000, ['.shared']],
    ]);
    expect(diagnoseImage(image, h747).problems).toEqual([]);
  });
});
