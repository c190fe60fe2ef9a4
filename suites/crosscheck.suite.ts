import { expect } from 'vitest';
import { hilTest as test } from '../harness/fixtures.ts';
import { syntheticImage } from '../harness/images.ts';
import { defineSuite } from '../harness/suite.ts';
import { hex8, hex32 } from '../src/util/hex.ts';

export default defineSuite({
  name: 'crosscheck',
  guards: 'a verify difference nobody can see: is the flash wrong, or is the DFU readback lying? (seed 000)',
  tags: ['nightly'],
  appliesTo: (board) => (board.stlink ? true : 'the board has no stlink: { serial } in boards.yaml'),
  define() {
    test('what DFU wrote, SWD reads back byte for byte', async ({ board, dfu, swd }) => {
      const image = syntheticImage(board.part, { banks: [1], bytesPerBank: [8 * 1024], seed: 11 });
      await dfu.flash(image, { verify: false });
      const seg = image.segments[0]!;
      const viaDfu = await dfu.read(seg.address, seg.data.length);
      await dfu.close();
      const viaSwd = await swd.readMemory(seg.address, seg.data.length);
      const firstDiff = (a: Uint8Array, b: Uint8Array) => a.findIndex((x, i) => x !== b[i]);
      const dfuVsChip = firstDiff(viaDfu, viaSwd);
      const imageVsChip = firstDiff(seg.data, viaSwd);
      const where = (i: number, a: Uint8Array, b: Uint8Array) =>
        `${hex32(seg.address + i)} (${hex8(a[i]!)} vs ${hex8(b[i]!)})`;
      board.detail({
        dfuVsSwd: dfuVsChip < 0 ? 'agree' : where(dfuVsChip, viaDfu, viaSwd),
        imageVsSwd: imageVsChip < 0 ? 'agree' : where(imageVsChip, seg.data, viaSwd),
      });
      expect(dfuVsChip, 'DFU readback differs from the chip as SWD reads it').toBe(-1);
      expect(
        imageVsChip,
        imageVsChip < 0
          ? ''
          : `flash holds the wrong bytes: first difference at ${where(imageVsChip, seg.data, viaSwd)} (image vs chip)`,
      ).toBe(-1);
    });

    test('SWD identifies the chip boards.yaml says it is', async ({ board, swd }) => {
      const id = await swd.identify();
      expect(id.target.deviceId).toBe(board.part.deviceId);
      if (board.config.expect?.chipRevision)
        expect(id.target.revision).toBe(board.config.expect.chipRevision);
      if (board.config.expect?.bootloader !== undefined && id.target.bootloaderVersion !== undefined) {
        expect(hex8(id.target.bootloaderVersion)).toBe(hex8(board.config.expect.bootloader));
      }
    });
  },
});
