import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { dfuReaderForBoard } from '../farm/board.ts';
import { findBoard } from '../farm/config.ts';
import { rejection } from '../util/testing.ts';
import { StlinkError } from './errors.ts';
import { makeTestFarm } from './fixtures/farm.ts';
import { locateProgrammerCli } from './locate.ts';
import { allowMassErase, StlinkProgrammer } from './programmer.ts';

const rejected = (p: Promise<unknown>) => rejection(p, StlinkError);

// The adapter against the stand-in executable: the same code path as the real tool, only the CLI path differs.
describe('StlinkProgrammer contract, against the virtual STM32_Programmer_CLI', () => {
  const farm = makeTestFarm();
  const prog = (id: string) => StlinkProgrammer.forBoard(farm.config, findBoard(farm.config, id));

  it('uses the stand-in for virtual boards and identifies the chip', async () => {
    const p = prog('h7v');
    expect(p.options.cli).toMatchObject({ source: 'virtual', viaNode: true });
    const id = await p.identify();
    expect(id.target).toMatchObject({
      deviceId: 0x450,
      revision: 'V',
      bootloaderVersion: 0x90,
      flashSize: 0x200000,
    });
    expect(id.probe?.serial).toBe('TESTSN0001');
  });

  it('reads what the DFU side wrote, by file and by -r32, and lists probes', async () => {
    const chip = farm.chip('h7v');
    const data = Uint8Array.from({ length: 64 }, (_, i) => (i * 7) & 0xff);
    expect(chip.programFlash(0x08040000, data).ok).toBe(true);
    chip.close();
    const p = prog('h7v');
    expect([...(await p.readMemory(0x08040000, 64))]).toEqual([...data]);
    expect([...(await p.read32(0x08040000, 4))]).toEqual([...data.subarray(0, 16)]);
    expect((await p.listProbes()).map((x) => x.serial)).toContain('TESTSN0004');
  });

  it('writes and verifies; erases sectors; mass-erases only with a permission', async () => {
    const p = prog('h7v');
    const bin = path.join(farm.dir, 'w.bin');
    writeFileSync(bin, new Uint8Array(256).fill(0x3c));
    await p.write(bin, { address: 0x08060000 });
    expect((await p.readMemory(0x08060000, 4)).every((b) => b === 0x3c)).toBe(true);
    await p.erase({ sectors: [3] });
    expect((await p.readMemory(0x08060000, 4)).every((b) => b === 0xff)).toBe(true);
    await p.write(bin, { address: 0x08060000 });
    await expect(p.erase({ all: { board: 'h7v', reason: 'forged' } as never })).rejects.toMatchObject({
      code: 'E_STLINK_MASS_ERASE_NOT_PERMITTED',
    });
    await p.erase({ all: allowMassErase('h7v', 'contract test') });
    expect((await p.readMemory(0x08060000, 4)).every((b) => b === 0xff)).toBe(true);
  });

  it('raises the verify mismatch with address, expected and actual (seed 004)', async () => {
    const bin = path.join(farm.dir, 'weak.bin');
    writeFileSync(bin, new Uint8Array(32).fill(0x0f));
    const e = await rejected(prog('h7weak').write(bin, { address: 0x08000000 }));
    expect(e.code).toBe('E_STLINK_DATA_MISMATCH');
    expect(e.kind).toBe('check');
    expect(e.details).toMatchObject({ address: 0x08000002, expected: 0x0f, actual: 0x07, exitCode: 1 });
  });

  it('raises the post-DFU lock as a download failure of sector 0 (seed 003), and no target on a dead board', async () => {
    const chip = farm.chip('h7locked');
    chip.updateVolatile({ dfuUsedSincePowerOn: true });
    const bin = path.join(farm.dir, 'l.bin');
    writeFileSync(bin, new Uint8Array(32).fill(1));
    const e = await rejected(prog('h7locked').write(bin, { address: 0x08000000 }));
    expect(e.code).toBe('E_STLINK_DOWNLOAD_FAILED');
    expect(e.details).toMatchObject({ unit: 'sector', index: 0 });
    chip.updateVolatile({ powered: false });
    const dead = await rejected(prog('h7locked').identify());
    expect(dead.code).toBe('E_STLINK_NO_TARGET');
    expect(dead.details.probe).toMatchObject({ voltage: 0 });
    chip.close();
  });

  it('the lock follows real DFU use: reading over DFU locks SWD programming until a power cycle', async () => {
    const b = findBoard(farm.config, 'h7locked');
    const chip = farm.chip('h7locked');
    chip.powerCycle(false);
    chip.close();
    const bin = path.join(farm.dir, 'd.bin');
    writeFileSync(bin, new Uint8Array(32).fill(0x42));
    const runs: string[] = [];
    const p = StlinkProgrammer.forBoard(farm.config, b, { onRun: (r) => runs.push(r.stdout) });
    await p.write(bin, { address: 0x08020000 });
    await dfuReaderForBoard(farm.config, b)([{ address: 0x08020000, length: 32 }]);
    const e = await rejected(p.write(bin, { address: 0x08040000 }));
    expect(e.code).toBe('E_STLINK_DOWNLOAD_FAILED');
    expect(runs.at(-1)).toContain('Error: failed to download  Sector[2]');
    const again = farm.chip('h7locked');
    again.powerCycle(false);
    again.close();
    await p.write(bin, { address: 0x08040000 });
    expect(runs).toHaveLength(3);
  });

  it('reads the option bytes that matter', async () => {
    const chip = farm.chip('h7v');
    chip.setOptions({ swapBank: true, bootAdd0: 0x0810 });
    chip.close();
    const ob = await prog('h7v').optionBytes();
    expect(ob.ofInterest).toEqual({
      rdpLevel: 0,
      rdpRaw: '0xAA',
      swapBank: true,
      bootAddress0: 0x08100000,
      bootAddress1: 0x1ff00000,
    });
    expect(ob.identity.target.deviceId).toBe(0x450);
  });

  it('honours the deadline and the signal on the stand-in too', async () => {
    const ctl = new AbortController();
    ctl.abort(new Error('stop'));
    await expect(prog('h7v').identify(ctl.signal)).rejects.toThrow('stop');
  });
});

const serial = process.env.HIL_STLINK_SERIAL;
describe.skipIf(!serial)(
  'StlinkProgrammer against the real STM32_Programmer_CLI and ST-LINK (set HIL_STLINK_SERIAL=<probe serial> to run)',
  () => {
    const p = () => new StlinkProgrammer({ cli: locateProgrammerCli(), serial, deadlineMs: 60_000 });

    it('lists the probe and identifies its target', async () => {
      expect((await p().listProbes()).map((x) => x.serial)).toContain(serial);
      const id = await p().identify();
      expect(id.target.deviceId).toBeGreaterThan(0);
      expect(id.probe?.serial).toBe(serial);
      expect(id.version).toMatch(/^2\.\d+/);
    });

    it('reads the same flash by file and by -r32, and the option bytes', async () => {
      const a = await p().readMemory(0x08000000, 64);
      const b = await p().read32(0x08000000, 16);
      expect([...b]).toEqual([...a]);
      const ob = await p().optionBytes();
      expect(ob.ofInterest.rdpLevel).toBe(0);
    });
  },
);
