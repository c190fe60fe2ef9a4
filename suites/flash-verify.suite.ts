import { expect } from 'vitest';
import { hilTest as test, verifyText } from '../harness/fixtures.ts';
import { syntheticImage } from '../harness/images.ts';
import { defineSuite } from '../harness/suite.ts';

export default defineSuite({
  name: 'flash-verify',
  guards:
    'a DFU download that reports success but leaves wrong bytes in flash ("Download verification failed", seed 004)',
  tags: ['nightly'],
  appliesTo: () => true,
  define() {
    test('flash and verify the full image across both banks', async ({ board, dfu }) => {
      // The 1.5 MiB two-bank image on dual-bank parts; half the flash on single-bank ones.
      const banks = board.part.flash.banks;
      const image =
        banks.length > 1
          ? syntheticImage(board.part, { banks: [1, 2], bytesPerBank: [1024 * 1024, 512 * 1024] })
          : syntheticImage(board.part, { banks: [1], bytesPerBank: [512 * 1024] });
      const result = await board.step('erase, program, verify', () =>
        dfu.flash(image, { verify: true, ...board.phases('full_image') }),
      );
      board.measure('flash_ms', result.elapsedMs, 'ms');
      board.measure('throughput_kib_s', image.size / 1024 / (result.elapsedMs / 1000), 'KiB/s');
      expect(result.verify?.ok, verifyText(result.verify)).toBe(true);
      const erased =
        result.plan.erase.mode === 'sectors' ? result.plan.erase.sectors.map((s) => s.start) : [];
      // Every bank the image covers had its sectors erased (the planner erases only what the image touches).
      for (const b of banks) expect(erased.some((a) => a >= b.base && a < b.base + 0x100000)).toBe(true);
    });

    test('read back what an earlier process flashed', async ({ board, dfu }) => {
      // The chip keeps its flash across power cycles: flash, power-cycle into the bootloader, read again.
      const image = syntheticImage(board.part, { banks: [1], bytesPerBank: [64 * 1024], seed: 9 });
      await dfu.flash(image, { verify: false });
      await dfu.close();
      await board.enterBootloader();
      const again = await board.openDfu();
      const report = await again.verify(image);
      expect(report.ok, verifyText(report)).toBe(true);
    });
  },
});
