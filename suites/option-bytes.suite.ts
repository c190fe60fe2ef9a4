import { expect } from 'vitest';
import { hilTest as test } from '../harness/fixtures.ts';
import { defineSuite } from '../harness/suite.ts';

export default defineSuite({
  name: 'option-bytes',
  guards:
    'a board shipped with read protection or swapped banks, which makes DFU reads fail or land in the wrong bank (seed 004)',
  tags: ['nightly'],
  appliesTo: (board) => (board.stlink ? true : 'the board has no stlink: { serial } in boards.yaml'),
  define() {
    test('RDP level 0 and banks not swapped (read only, never written)', async ({ board, swd }) => {
      const ob = await swd.optionBytes();
      board.detail({ optionBytes: ob.ofInterest });
      expect(ob.ofInterest.rdpLevel).toBe(0);
      if (board.part.flash.banks.length > 1) expect(ob.ofInterest.swapBank ?? false).toBe(false);
    });

    test('the option bytes read the same over DFU as over SWD', async ({ board, dfu, swd }) => {
      const alt = dfu.dfu.alternates.find((a) => /option/i.test(a.layout?.name ?? ''));
      expect(alt, 'the bootloader reports no option bytes alternate setting').toBeDefined();
      const region = alt!.layout!.regions[0]!;
      await dfu.dfu.selectAlternate(alt!.alt);
      const size = Math.min(region.runs[0]!.size, 64);
      const viaDfu = await dfu.read(region.base, size);
      const ob = await swd.optionBytes();
      board.detail({
        dfuFirstBytes: Buffer.from(viaDfu.subarray(0, 8)).toString('hex'),
        rdp: ob.ofInterest.rdpRaw,
      });
      // The RDP byte is byte 1 of the first option word on both families (H7 FLASH_OPTSR_CUR bits 15:8,
      // RM0433 4.9.8; F4 option byte at 0x1FFFC001, RM0090 3.6.1): 0xAA is level 0.
      expect(viaDfu[1], 'RDP byte over DFU').toBe(0xaa);
      expect(ob.ofInterest.rdpLevel, 'RDP level over SWD').toBe(0);
    });
  },
});
