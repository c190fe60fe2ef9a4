import { expect } from 'vitest';
import { hilTest as test, verifyText } from '../harness/fixtures.ts';
import { syntheticImage } from '../harness/images.ts';
import { defineSuite } from '../harness/suite.ts';
import { Permissions } from '../src/dfu/permissions.ts';

export default defineSuite({
  name: 'bank2-write',
  guards:
    'STM32H74x rev V bootloader 0x90/0x91 hangs on a bank 2 page erase over USB DFU (seed 001, dfu-util ticket 88)',
  tags: ['nightly'],
  appliesTo: (_board, part) => (part.flash.banks.length > 1 ? true : 'single-bank part: there is no bank 2'),
  define() {
    const bank2Image = (part: Parameters<typeof syntheticImage>[0]) =>
      syntheticImage(part, { banks: [2], bytesPerBank: [256 * 1024], seed: 2 });

    test('page erase and program bank 2', async ({ board, dfu }) => {
      const image = bank2Image(board.part);
      const result = await board.step('sector erase bank 2, program, verify', () =>
        dfu.flash(image, { verify: true, ...board.phases('bank2_sectors') }),
      );
      board.measure('bank2_flash_ms', result.elapsedMs, 'ms');
      expect(result.plan.erase.mode).toBe('sectors');
      expect(result.verify?.ok, verifyText(result.verify)).toBe(true);
    });

    test('mass erase then program bank 2', async ({ board, dfu }) => {
      // The field workaround: `dfu-util -s 0x08000000:force:mass-erase`. Needs an explicit permission.
      const image = bank2Image(board.part);
      expect(() => dfu.plan(image, { massErase: true })).toThrow(/permission|force/i);
      const result = await board.step('mass erase, program bank 2, verify', () =>
        dfu.flash(image, {
          massErase: true,
          permissions: Permissions.none().allowMassErase(),
          verify: true,
          ...board.phases('bank2_mass_erase'),
        }),
      );
      board.measure('mass_erase_flash_ms', result.elapsedMs, 'ms');
      expect(result.plan.erase.mode).toBe('mass');
      expect(result.verify?.ok, verifyText(result.verify)).toBe(true);
    });
  },
});
