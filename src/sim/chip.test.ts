import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { RDP_LEVEL1, RDP_LEVEL2, VirtualChip } from './chip.ts';

const id = { part: 'stm32h743', chipRevision: 'V', bootloader: 0x90 };
const tmp = () => path.join(mkdtempSync(path.join(tmpdir(), 'chip-')), 'chip.bin');

describe('VirtualChip', () => {
  it('starts erased and keeps what was programmed across opens (another process reads it)', () => {
    const file = tmp();
    const a = VirtualChip.open(file, id);
    expect([...a.readFlash(0x08000000, 4)]).toEqual([0xff, 0xff, 0xff, 0xff]);
    expect(a.programFlash(0x08100000, new Uint8Array(32).fill(0x5a))).toEqual({ ok: true });
    a.close();
    const b = VirtualChip.open(file, id);
    expect(b.readFlash(0x08100000, 32).every((x) => x === 0x5a)).toBe(true);
    b.close();
  });

  it('refuses to program an H7 flash word twice before erase, and allows it after', () => {
    const chip = VirtualChip.open(tmp(), id);
    expect(chip.programFlash(0x08000000, new Uint8Array(32).fill(0xf0)).ok).toBe(true);
    const again = chip.programFlash(0x08000010, new Uint8Array(4).fill(0x00));
    expect(again).toMatchObject({ ok: false, address: 0x08000000 });
    chip.eraseSector(chip.sectorAt(0x08000000)!);
    expect(chip.readFlash(0x08000000, 32).every((x) => x === 0xff)).toBe(true);
    expect(chip.programFlash(0x08000010, new Uint8Array(4).fill(0x00)).ok).toBe(true);
  });

  it('lets F4 flash clear bits again but never set them', () => {
    const chip = VirtualChip.open(tmp(), { part: 'stm32f407', chipRevision: 'Y', bootloader: 0x90 });
    expect(chip.programFlash(0x08000000, Uint8Array.of(0xf0)).ok).toBe(true);
    expect(chip.programFlash(0x08000000, Uint8Array.of(0x30)).ok).toBe(true);
    expect(chip.programFlash(0x08000000, Uint8Array.of(0x31))).toMatchObject({
      ok: false,
      address: 0x08000000,
    });
  });

  it('stores weak bits wrong, so every reader sees the same wrong byte', () => {
    const chip = VirtualChip.open(tmp(), id, { weakBits: new Map([[0x08000002, 0x08]]) });
    chip.programFlash(0x08000000, new Uint8Array(32).fill(0x08));
    expect(chip.readFlash(0x08000002, 1)[0]).toBe(0x00);
    expect(chip.readFlash(0x08000001, 1)[0]).toBe(0x08);
  });

  it('never sets RDP level 2, and leaving level 1 mass-erases', () => {
    const chip = VirtualChip.open(tmp(), id);
    chip.programFlash(0x08000000, new Uint8Array(32).fill(1));
    expect(() => chip.setOptions({ rdp: RDP_LEVEL2 })).toThrow(/never set/);
    chip.setOptions({ rdp: RDP_LEVEL1 });
    expect(chip.rdpLevel).toBe(1);
    chip.setOptions({ rdp: 0xaa });
    expect(chip.rdpLevel).toBe(0);
    expect(chip.readFlash(0x08000000, 1)[0]).toBe(0xff);
  });

  it('clears volatile flags on a power cycle but keeps flash', () => {
    const chip = VirtualChip.open(tmp(), id);
    chip.programFlash(0x08000000, new Uint8Array(32).fill(7));
    chip.updateVolatile({ dfuUsedSincePowerOn: true });
    const before = chip.volatile.powerCycles;
    chip.powerCycle(false);
    expect(chip.volatile).toMatchObject({
      dfuUsedSincePowerOn: false,
      boot0: false,
      powerCycles: before + 1,
    });
    expect(chip.readFlash(0x08000000, 1)[0]).toBe(7);
  });

  it('rejects a state file of another part with a clear error', () => {
    const file = tmp();
    VirtualChip.open(file, id).close();
    expect(() => VirtualChip.open(file, { ...id, part: 'stm32f407' })).toThrow(/holds a virtual stm32h743/);
  });
});
