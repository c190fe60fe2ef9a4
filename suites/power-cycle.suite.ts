import { expect } from 'vitest';
import { hilTest as test } from '../harness/fixtures.ts';
import { defineSuite } from '../harness/suite.ts';

export default defineSuite({
  name: 'power-cycle',
  guards:
    'a bootloader that enumerates late or not at all after power-on (AN2606: H74x 0x90 needs an extra reset)',
  tags: ['nightly'],
  appliesTo: (board) => (board.power ? true : 'the board has no power relay in boards.yaml'),
  define() {
    test('power cycle into the bootloader and time the re-enumeration', async ({ board }) => {
      const runs: number[] = [];
      for (let i = 0; i < 3; i++) {
        const r = await board.enterBootloader();
        runs.push(r.enumerationMs);
      }
      runs.sort((a, b) => a - b);
      board.measure('enumeration_ms', runs[1]!, 'ms');
      expect(runs[2]!).toBeLessThan(board.farm.deadlines?.enumerationMs ?? 5000);
    });

    test('the device goes away on power off', async ({ board }) => {
      await board.enterBootloader();
      await board.powerOff();
      await board.waitVanished();
      expect(await board.usbPresent()).toBe(false);
    });
  },
});
