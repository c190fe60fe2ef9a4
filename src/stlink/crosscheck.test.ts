import { describe, expect, it } from 'vitest';
import { dfuReaderForBoard } from '../farm/board.ts';
import { findBoard } from '../farm/config.ts';
import { FirmwareImage } from '../image/model.ts';
import { getPart } from '../parts/catalogue.ts';
import { VirtualChip } from '../sim/chip.ts';
import { chipStateFile } from '../sim/paths.ts';
import { compareThreeWays, crossCheckImage, flashRangesOf, type MemoryReader } from './crosscheck.ts';
import { makeTestFarm } from './fixtures/farm.ts';
import { StlinkProgrammer } from './programmer.ts';

const bytes = (...b: number[]) => Uint8Array.from(b);

describe('compareThreeWays (pure)', () => {
  it('all agree', () => {
    const r = compareThreeWays([
      { address: 0x08000000, image: bytes(1, 2, 3), dfu: bytes(1, 2, 3), swd: bytes(1, 2, 3) },
    ]);
    expect(r.verdict).toBe('agree');
    expect(r.message).toBe('image, DFU readback and SWD readback agree on all 3 bytes');
    expect(r.pairs.every((p) => p.differingBytes === 0)).toBe(true);
  });

  it('flash holds the wrong bytes: both readbacks agree, the image differs (seed 004 pattern)', () => {
    const r = compareThreeWays([
      { address: 0x08000000, image: bytes(0, 0, 8, 8), dfu: bytes(0, 0, 0, 8), swd: bytes(0, 0, 0, 8) },
    ]);
    expect(r.verdict).toBe('flash-wrong');
    expect(r.message).toMatch(
      /^flash holds the wrong bytes: .* at 1 bytes \(first at 0x08000002: image 0x08, DFU 0x00, SWD 0x00\)/,
    );
    expect(r.message).not.toMatch(/erased/);
    const blank = compareThreeWays([
      { address: 0x08000000, image: bytes(1, 2), dfu: bytes(0xff, 0xff), swd: bytes(0xff, 0xff) },
    ]);
    expect(blank.message).toMatch(/all of them read erased \(0xFF\): was the image written at all\?$/);
    expect(r.pairs).toEqual([
      { a: 'image', b: 'dfu', differingBytes: 1, first: { address: 0x08000002, a: 8, b: 0 } },
      { a: 'image', b: 'swd', differingBytes: 1, first: { address: 0x08000002, a: 8, b: 0 } },
      { a: 'dfu', b: 'swd', differingBytes: 0 },
    ]);
  });

  it('DFU readback differs from the chip when SWD agrees with the image (seed 000 pattern)', () => {
    const r = compareThreeWays([
      { address: 0x08000000, image: bytes(1, 2), dfu: bytes(1, 2), swd: bytes(1, 2) },
      { address: 0x08020000, image: bytes(5, 6), dfu: bytes(5, 0xff), swd: bytes(5, 6) },
    ]);
    expect(r.verdict).toBe('dfu-readback-wrong');
    expect(r.firstOf.dfuWrong).toEqual({ address: 0x08020001, image: 6, dfu: 0xff, swd: 6 });
    expect(r.message).toMatch(/^DFU readback differs from the chip/);
  });

  it('SWD readback wrong, all differ, and mixed', () => {
    expect(compareThreeWays([{ address: 0, image: bytes(1), dfu: bytes(1), swd: bytes(2) }]).verdict).toBe(
      'swd-readback-wrong',
    );
    expect(compareThreeWays([{ address: 0, image: bytes(1), dfu: bytes(2), swd: bytes(3) }]).verdict).toBe(
      'all-differ',
    );
    const mixed = compareThreeWays([
      { address: 0x100, image: bytes(1, 1), dfu: bytes(2, 1), swd: bytes(2, 3) },
    ]);
    expect(mixed.verdict).toBe('mixed');
    expect(mixed.counts).toEqual({ flashWrong: 1, dfuWrong: 0, swdWrong: 1, allDiffer: 0 });
  });

  it('with one readback only it says which pair differs and that the culprit is unknown', () => {
    const r = compareThreeWays([{ address: 0x08000000, image: bytes(1, 2), swd: bytes(1, 3) }]);
    expect(r.verdict).toBe('differs');
    expect(r.sources).toEqual(['image', 'swd']);
    expect(r.message).toMatch(/SWD readback differs from the image in 1 bytes \(first at 0x08000001/);
  });

  it('refuses readbacks of the wrong length', () => {
    expect(() => compareThreeWays([{ address: 0, image: bytes(1, 2), dfu: bytes(1) }])).toThrow(
      /has 1 bytes/,
    );
  });
});

describe('crossCheckImage', () => {
  const part = getPart('stm32h743');
  const image = () => {
    const img = new FirmwareImage('elf', 'fw.elf');
    img.add({ name: '.text', address: 0x08000000, data: bytes(1, 2, 3, 4), source: { file: 'fw.elf' } });
    img.add({ name: '.shared', address: 0x38000000, data: bytes(9, 9), source: { file: 'fw.elf' } });
    return img;
  };

  it('compares only flash bytes and names what it skipped', () => {
    const { ranges, skipped } = flashRangesOf(image(), part);
    expect(ranges.map((r) => r.address)).toEqual([0x08000000]);
    expect(skipped).toEqual([{ address: 0x38000000, length: 2, name: '.shared' }]);
  });

  it('goes on without a readback that fails, and reports why', async () => {
    const swd: MemoryReader = async (ranges) => ranges.map((r) => new Uint8Array(r.length).fill(1));
    const dfu: MemoryReader = async () => {
      throw Object.assign(new Error('boom'), {});
    };
    const r = await crossCheckImage(image(), part, { dfu, swd });
    expect(r.sourceErrors.dfu).toEqual({ code: 'E_INTERNAL', message: 'boom' });
    expect(r.verdict).toBe('differs');
  });

  it('end to end on a virtual board: DFU through the DfuSe host, SWD through the stand-in, a weak bit in flash', async () => {
    const farm = makeTestFarm();
    const b = findBoard(farm.config, 'h7weak');
    const data = new Uint8Array(64).fill(0x08);
    // As the DFU flash left it: the chip (with its weak bit) holds the image but for one bit.
    const chip = VirtualChip.open(
      chipStateFile(farm.config, b),
      { part: b.part, chipRevision: 'Y', bootloader: 0xd2 },
      { weakBits: new Map([[0x08000002, 0x08]]) },
    );
    expect(chip.programFlash(0x08000000, data).ok).toBe(true);
    chip.close();
    const img = new FirmwareImage('bin', 'fw.bin');
    img.add({ name: 'bin', address: 0x08000000, data, source: { file: 'fw.bin' } });
    const prog = StlinkProgrammer.forBoard(farm.config, b);
    const r = await crossCheckImage(img, part, {
      dfu: dfuReaderForBoard(farm.config, b),
      swd: (rs, s) => prog.readRanges(rs, s),
    });
    expect(r.sourceErrors).toEqual({});
    expect(r.verdict).toBe('flash-wrong');
    expect(r.firstOf.flashWrong).toEqual({ address: 0x08000002, image: 0x08, dfu: 0x00, swd: 0x00 });

    // The probe of another board: SWD reads a different chip, DFU agrees with the image elsewhere.
    const wrongProbe = new StlinkProgrammer({ ...prog.options, serial: 'TESTSN0001' });
    const w = await crossCheckImage(img, part, {
      dfu: dfuReaderForBoard(farm.config, b),
      swd: (rs, s) => wrongProbe.readRanges(rs, s),
    });
    expect(w.verdict).toBe('mixed');
    expect(w.counts.swdWrong).toBe(63);
  });
});
