import { expect } from 'vitest';
import { hilTest as test, verifyText } from '../harness/fixtures.ts';
import { fixtureImage } from '../harness/images.ts';
import { defineSuite } from '../harness/suite.ts';
import { flashOnly } from '../src/image/diagnose.ts';

export default defineSuite({
  name: 'ram-sections',
  guards: 'an image carrying SRAM4 data (a CM7/CM4 mailbox not marked NOLOAD) fails with "Not flash Memory : No erase done" (seed 002)',
  tags: ['nightly'],
  appliesTo: (_board, part) => (part.memories.some((m) => m.name === 'SRAM4') ? true : 'the part has no SRAM4'),
  define() {
    test('an image with SRAM4 data is refused before any erase, with its diagnosis', async ({ board, dfu }) => {
      const image = await fixtureImage('sram4.elf');
      const sent = dfu.trace?.entries.length ?? 0;
      await expect(dfu.flash(image)).rejects.toMatchObject({ code: 'E_IMAGE_RAM_DATA' });
      await expect(dfu.flash(image)).rejects.toThrow(/SRAM4/);
      // Nothing went to the device: no erase, no download.
      expect(dfu.trace?.entries.length ?? 0).toBe(sent);
      board.measure('refused_transfers', (dfu.trace?.entries.length ?? 0) - sent, 'transfers');
    });

    test('its flash-only conversion flashes and verifies', async ({ board, dfu }) => {
      const image = await fixtureImage('sram4.elf');
      const { image: flashPart, dropped } = flashOnly(image, board.part);
      expect(dropped.map((d) => d.region)).toContain('SRAM4');
      const result = await dfu.flash(flashPart, { verify: true });
      expect(result.verify?.ok, verifyText(result.verify)).toBe(true);
    });
  },
});
