import { expect } from 'vitest';
import { hilTest as test, verifyText } from '../harness/fixtures.ts';
import { fixtureImage } from '../harness/images.ts';
import { defineSuite } from '../harness/suite.ts';
import { flashOnly } from '../src/image/diagnose.ts';

export default defineSuite({
  name: 'ram-sections',
  guards:
    'an image carrying SRAM4 data (a CM7/CM4 mailbox not marked NOLOAD) fails with "Not flash Memory : No erase done" (seed 002)',
  tags: ['nightly'],
  appliesTo: (_board, part) =>
    part.memories.some((m) => m.name === 'SRAM4') ? true : 'the part has no SRAM4',
  define() {
    test('an image with SRAM4 data is refused before any erase, with its diagnosis', async ({
      board,
      dfu,
    }) => {
      const image = await fixtureImage('sram4.elf');
      const sent = dfu.trace?.entries.length ?? 0;
      const refused = await dfu.flash(image).then(
        () => undefined,
        (e: unknown) =>
          e as { code: string; message: string; hint?: string; details: Record<string, unknown> },
      );
      expect(refused, 'the flash of an image with SRAM4 data went through').toBeDefined();
      expect(refused).toMatchObject({
        code: 'E_DFU_PLAN_OUTSIDE',
        details: { imageCode: 'E_IMAGE_RAM_DATA' },
      });
      // The same diagnosis as `image inspect`: the section, the region, and both remedies.
      expect(refused!.message).toMatch(/\.shared.*SRAM4|SRAM4.*\.shared/);
      expect(refused!.hint).toMatch(/NOLOAD/);
      expect(refused!.hint).toMatch(/--flash-only/);
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
