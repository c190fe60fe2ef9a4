import { describe, expect, it } from 'vitest';
import { formatLayout, layoutSectors, parseLayout } from './layout.ts';

describe('parseLayout', () => {
  it('parses the STM32H743 flash string', () => {
    const l = parseLayout('@Internal Flash   /0x08000000/16*128Kg');
    expect(l.name).toBe('Internal Flash');
    expect(l.regions).toEqual([
      {
        base: 0x08000000,
        runs: [{ count: 16, size: 131072, readable: true, erasable: true, writable: true, type: 'g' }],
      },
    ]);
    const sectors = layoutSectors(l);
    expect(sectors).toHaveLength(16);
    expect(sectors[8]!.start).toBe(0x08100000);
  });

  it('parses mixed sector sizes (F407)', () => {
    const s = layoutSectors(parseLayout('@Internal Flash  /0x08000000/04*016Kg,01*064Kg,07*128Kg'));
    expect(s.map((x) => x.size / 1024)).toEqual([16, 16, 16, 16, 64, 128, 128, 128, 128, 128, 128, 128]);
    expect(s[5]!.start).toBe(0x08020000);
  });

  it('reads the option bytes type letter e as readable and writable, not erasable', () => {
    const [run] = parseLayout('@Option Bytes   /0x5200201C/01*128 e').regions[0]!.runs;
    expect(run).toMatchObject({ count: 1, size: 128, readable: true, erasable: false, writable: true });
  });

  it('tolerates leading zeros and a type letter glued to the unit', () => {
    expect(parseLayout('@Internal Flash  /0x08000000/0128*0002Kg').regions[0]!.runs[0]).toMatchObject({
      count: 128,
      size: 2048,
    });
    expect(parseLayout('@OTP Memory /0x1FFF7000/01*0001Ke').regions[0]!.runs[0]).toMatchObject({
      count: 1,
      size: 1024,
    });
  });

  it('parses several /base/ ranges and megabyte units', () => {
    const l = parseLayout('@Option Bytes   /0x1FFF7800/01*048 e/0x1FFFF800/01*048 e');
    expect(l.regions.map((r) => r.base)).toEqual([0x1fff7800, 0x1ffff800]);
    expect(parseLayout('@X/0x90000000/02*001Mg').regions[0]!.runs[0]!.size).toBe(1024 * 1024);
  });

  it('decodes each type letter into its bits', () => {
    const bits = 'abcdefg'.split('').map((t) => {
      const r = parseLayout(`@X/0x0/01*001K${t}`).regions[0]!.runs[0]!;
      return [r.readable, r.erasable, r.writable].map(Number).join('');
    });
    expect(bits).toEqual(['100', '010', '110', '001', '101', '011', '111']);
  });

  it('rejects strings that are not layouts, with the string in the message', () => {
    expect(() => parseLayout('Internal Flash')).toThrow(/does not start with "@"/);
    expect(() => parseLayout('@Flash/08000000/16*128Kg')).toThrow(/not a hex address/);
    expect(() => parseLayout('@Flash/0x08000000/16x128Kg')).toThrow(/16x128Kg/);
    try {
      parseLayout('@Flash/0x0');
    } catch (e) {
      expect((e as { code: string }).code).toBe('E_LAYOUT_PARSE');
    }
  });

  it('formats back into a string it parses to the same sectors', () => {
    const l = parseLayout('@Internal Flash  /0x08000000/04*016Kg,01*064Kg,07*128Kg');
    expect(layoutSectors(parseLayout(formatLayout(l)))).toEqual(layoutSectors(l));
  });
});
