import { expect } from 'vitest';
import { hilTest as test } from '../harness/fixtures.ts';
import { syntheticImage } from '../harness/images.ts';
import { defineSuite } from '../harness/suite.ts';

export default defineSuite({
  name: 'bootloader-entry',
  guards:
    '"leave" that does not start the application, and dfu-util\'s false failure after leave (AN2606 H74x 0x90 jump issue)',
  tags: ['nightly'],
  appliesTo: (board) => (board.boot0 ? true : 'the board has no BOOT0 relay in boards.yaml'),
  define() {
    test('BOOT0 high and a power cycle enter the bootloader', async ({ board }) => {
      const r = await board.enterBootloader();
      expect(await board.usbPresent()).toBe(true);
      expect(r.enumerationMs).toBeGreaterThan(0);
    });

    test('leave starts the application', async ({ board, dfu }) => {
      const image = syntheticImage(board.part, { banks: [1], bytesPerBank: [4096], seed: 5 });
      // No verify: this test is about leave, and a board with weak bits must not fail it for another reason.
      await dfu.flash(image, { verify: false });
      const left = await dfu.leave();
      expect(['left', 'manifesting']).toContain(left);
      // The bootloader must be gone and stay gone: the application runs.
      await board.waitVanished();
      await board.settle();
      expect(
        await board.usbPresent(),
        'the DFU device came back after leave: the application did not start',
      ).toBe(false);
      expect(board.mode()).toBe('application');
    });

    test('BOOT0 low and a power cycle start the application', async ({ board }) => {
      await board.enterApplication();
      expect(await board.usbPresent()).toBe(false);
    });
  },
});
