import { describe, expect, it } from 'vitest';
import { compareIdentity } from './identify.ts';

const board = { id: 'b', part: 'stm32h743', expect: { chipRevision: 'V', bootloader: 0x90 } };

describe('compareIdentity', () => {
  it('matches a board that is what boards.yaml says', () => {
    const r = compareIdentity(
      board,
      { deviceId: 0x450, revision: 'v', bootloaderVersion: 0x90, flashSize: 0x200000 },
      { rdpLevel: 0, swapBank: false, bootAddress0: 0x08000000 },
    );
    expect(r.mismatches).toEqual([]);
    expect(r.notes).toEqual([]);
    expect(r.expected).toEqual({ deviceId: 0x450, flashSize: 0x200000, chipRevision: 'V', bootloader: 0x90 });
  });

  it('names every difference and the option bytes worth a warning', () => {
    const r = compareIdentity(
      board,
      { deviceId: 0x413, revision: 'Y', bootloaderVersion: 0xd2, flashSize: 0x100000 },
      { rdpLevel: 1, swapBank: true, bootAddress0: 0x08100000 },
    );
    expect(r.mismatches.map((m) => [m.field, m.expected, m.actual])).toEqual([
      ['deviceId', 0x450, 0x413],
      ['chipRevision', 'V', 'Y'],
      ['bootloader', 0x90, 0xd2],
      ['flashSize', 0x200000, 0x100000],
    ]);
    expect(r.mismatches[0]!.message).toMatch(/stlink\.serial names another board's probe/);
    expect(r.notes).toHaveLength(3);
    expect(r.notes[1]).toMatch(/SWAP_BANK=1/);
  });
});
