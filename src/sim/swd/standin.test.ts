import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { makeTestFarm } from '../../stlink/fixtures/farm.ts';
import { optionBytesOfInterest, parseProgrammerOutput, primaryError } from '../../stlink/parse.ts';
import { RDP_LEVEL1 } from '../chip.ts';
import { ArgsError, parseArgs } from './args.ts';
import { swdBoardsOf } from './boards.ts';
import { runStandIn } from './standin.ts';

async function cli(env: NodeJS.ProcessEnv, ...argv: string[]) {
  let text = '';
  const code = await runStandIn(argv, { env, write: (t) => (text += t) });
  return { code, text, out: parseProgrammerOutput(text) };
}

const swd = (sn: string) => ['-c', 'port=SWD', `sn=${sn}`, 'mode=UR', 'reset=HWrst'];

describe('virtual STM32_Programmer_CLI (stand-in)', () => {
  it('reports the virtual board the real way: device ID, revision, bootloader version from the catalogue and boards.yaml', async () => {
    const farm = makeTestFarm();
    const r = await cli({ STM32_HIL_CONFIG: farm.file }, ...swd('TESTSN0001'), 'freq=4000');
    expect(r.code).toBe(0);
    expect(r.out.target).toMatchObject({
      deviceId: 0x450,
      revision: 'V',
      bootloaderVersion: 0x90,
      flashSize: 2 * 1024 * 1024,
      cpu: 'Cortex-M7',
    });
    expect(r.out.probe).toMatchObject({ serial: 'TESTSN0001', voltage: 3.3, frequencyKHz: 3300 });
    expect(r.out.connection).toMatchObject({ connectMode: 'Under Reset', resetMode: 'Hardware reset' });
    const f4 = await cli({ STM32_HIL_CONFIG: farm.file }, ...swd('TESTSN0004'));
    expect(f4.out.target).toMatchObject({
      deviceId: 0x413,
      revision: 'Y',
      bootloaderVersion: 0x31,
      flashSize: 1024 * 1024,
    });
  });

  it('shares the chip with the DFU side: what DFU wrote SWD reads, what SWD erases DFU sees erased', async () => {
    const farm = makeTestFarm();
    const env = { STM32_HIL_CONFIG: farm.file };
    const dfuSide = farm.chip('h7v');
    expect(dfuSide.programFlash(0x08100000, new Uint8Array(32).fill(0x5a)).ok).toBe(true);
    const file = path.join(farm.dir, 'read.bin');
    const read = await cli(env, ...swd('TESTSN0001'), '-u', '0x08100000', '32', file);
    expect(read.code).toBe(0);
    expect([...readFileSync(file)]).toEqual(new Array(32).fill(0x5a));
    const erase = await cli(env, ...swd('TESTSN0001'), '-e', '8');
    expect(erase.code).toBe(0);
    expect(erase.out.operations.find((o) => o.kind === 'erase')?.outcome).toBe('ok');
    expect(dfuSide.readFlash(0x08100000, 32).every((b) => b === 0xff)).toBe(true);
    dfuSide.close();
  });

  it('writes and verifies a file, and -r32 prints the words little-endian', async () => {
    const farm = makeTestFarm();
    const env = { STM32_HIL_CONFIG: farm.file };
    const bin = path.join(farm.dir, 'fw.bin');
    writeFileSync(
      bin,
      Uint8Array.from({ length: 100 }, (_, i) => i),
    );
    const w = await cli(env, ...swd('TESTSN0001'), '-w', bin, '0x08020004', '-v');
    expect(w.code).toBe(0);
    expect(w.out.operations.map((o) => [o.kind, o.outcome])).toEqual([
      ['connect', 'ok'],
      ['download', 'ok'],
      ['verify', 'ok'],
    ]);
    const r = await cli(env, ...swd('TESTSN0001'), '-r32', '0x08020000', '8');
    expect([...r.out.memory[0]!.bytes]).toEqual([0xff, 0xff, 0xff, 0xff, 0, 1, 2, 3]);
  });

  it('an unpowered board: voltage 0 and "No STM32 target found", exit 1', async () => {
    const farm = makeTestFarm();
    const chip = farm.chip('h7v');
    chip.updateVolatile({ powered: false });
    const r = await cli({ STM32_HIL_CONFIG: farm.file }, ...swd('TESTSN0001'), '-ob', 'displ');
    expect(r.code).toBe(1);
    expect(r.out.probe?.voltage).toBe(0);
    expect(primaryError(r.out)?.code).toBe('E_STLINK_NO_TARGET');
    chip.close();
  });

  it('seed 003: after the DFU bootloader ran, programming fails with "failed to download  Sector[0]" until a power cycle; reads still work', async () => {
    const farm = makeTestFarm();
    const env = { STM32_HIL_CONFIG: farm.file };
    const chip = farm.chip('h7locked');
    chip.updateVolatile({ dfuUsedSincePowerOn: true });
    const bin = path.join(farm.dir, 'fw.bin');
    writeFileSync(bin, new Uint8Array(64).fill(0x11));
    const locked = await cli(env, ...swd('TESTSN0002'), '-w', bin, '0x08000000', '-v');
    expect(locked.code).toBe(1);
    expect(locked.text).toContain('Error: failed to download  Sector[0]');
    expect(primaryError(locked.out)).toMatchObject({
      code: 'E_STLINK_DOWNLOAD_FAILED',
      details: { unit: 'sector', index: 0 },
    });
    expect(chip.readFlash(0x08000000, 4).every((b) => b === 0xff)).toBe(true);
    const read = await cli(env, ...swd('TESTSN0002'), '-r32', '0x08000000', '4');
    expect(read.code).toBe(0);
    chip.powerCycle(false);
    const after = await cli(env, ...swd('TESTSN0002'), '-w', bin, '0x08000000', '-v');
    expect(after.code).toBe(0);
    expect(chip.readFlash(0x08000000, 4).every((b) => b === 0x11)).toBe(true);
    chip.close();
  });

  it('seed 004: a weak bit gives the real mismatch line, two spaces and actual before expected', async () => {
    const farm = makeTestFarm();
    const bin = path.join(farm.dir, 'fw.bin');
    writeFileSync(bin, new Uint8Array(64).fill(0x08));
    const r = await cli({ STM32_HIL_CONFIG: farm.file }, ...swd('TESTSN0003'), '-w', bin, '0x08000000', '-v');
    expect(r.code).toBe(1);
    expect(r.text).toContain(
      'Error: Data mismatch found at address  0x08000002 (byte = 0x00 instead of 0x08)',
    );
    expect(primaryError(r.out)?.details).toEqual({ address: 0x08000002, actual: 0, expected: 8 });
  });

  it('RDP level 1: option bytes show it, flash reads are refused, regression to level 0 mass-erases', async () => {
    const farm = makeTestFarm();
    const env = { STM32_HIL_CONFIG: farm.file };
    const chip = farm.chip('h7v');
    chip.programFlash(0x08000000, new Uint8Array(32).fill(1));
    chip.setOptions({ rdp: RDP_LEVEL1, swapBank: true });
    const ob = await cli(env, ...swd('TESTSN0001'), '-ob', 'displ');
    expect(optionBytesOfInterest(ob.out.optionBytes)).toEqual({
      rdpLevel: 1,
      rdpRaw: '0xBB',
      swapBank: true,
      bootAddress0: 0x08000000,
      bootAddress1: 0x1ff00000,
    });
    const read = await cli(env, ...swd('TESTSN0001'), '-u', '0x08000000', '16', path.join(farm.dir, 'x.bin'));
    expect(read.code).toBe(1);
    expect(primaryError(read.out)?.code).toBe('E_STLINK_RDP_ACTIVE');
    expect(read.out.target?.readProtected).toBe(true);
    const unprotect = await cli(env, ...swd('TESTSN0001'), '-ob', 'RDP=0xAA');
    expect(unprotect.code).toBe(0);
    expect(chip.rdpLevel).toBe(0);
    expect(chip.readFlash(0x08000000, 1)[0]).toBe(0xff);
    chip.close();
  });

  it('reads the bootloader version byte from system memory like a real chip', async () => {
    const farm = makeTestFarm();
    const r = await cli({ STM32_HIL_CONFIG: farm.file }, ...swd('TESTSN0001'), '-r32', '0x1FF1E7FC', '4');
    // 0x1FF1E7FE holds the version (AN2606): byte 2 of the word at 0x1FF1E7FC.
    expect(r.out.memory[0]!.bytes[2]).toBe(0x90);
  });

  it('lists the virtual probes; an unknown serial or no farm is an error the parser names', async () => {
    const farm = makeTestFarm();
    const list = await cli({ STM32_HIL_CONFIG: farm.file }, '-l', 'st-link');
    expect(list.out.probes.map((p) => p.serial)).toEqual([
      'TESTSN0001',
      'TESTSN0002',
      'TESTSN0003',
      'TESTSN0004',
    ]);
    const unknown = await cli({ STM32_HIL_CONFIG: farm.file }, ...swd('NOPE'));
    expect(primaryError(unknown.out)?.code).toBe('E_STLINK_PROBE_NOT_FOUND');
    const real = await cli({ STM32_HIL_CONFIG: farm.file }, ...swd('REALSN'));
    expect(primaryError(real.out)?.code).toBe('E_STLINK_PROBE_NOT_FOUND');
    const none = await cli({}, ...swd('TESTSN0001'));
    expect(primaryError(none.out)?.code).toBe('E_STLINK_NO_PROBE');
    const broken = await cli({ STM32_HIL_SWD_BOARDS: '[{"id": 1}]' }, ...swd('TESTSN0001'));
    expect(broken.text).toMatch(
      /Error: No debug probe detected\. \(virtual farm: STM32_HIL_SWD_BOARDS does not list boards/,
    );
    const handed = await cli(
      { STM32_HIL_SWD_BOARDS: JSON.stringify(swdBoardsOf(farm.config)) },
      ...swd('TESTSN0004'),
    );
    expect(handed.out.target?.deviceId).toBe(0x413);
    const bad = await cli({ STM32_HIL_CONFIG: farm.file }, '-c', 'port=SWD', '--frobnicate');
    expect(bad.code).toBe(1);
    expect(primaryError(bad.out)?.code).toBe('E_STLINK_USAGE');
  });
});

describe('stand-in argument parser', () => {
  it('understands the real syntax', () => {
    expect(
      parseArgs([
        '-c',
        'port=SWD',
        'sn=AB',
        'freq=4000',
        '-e',
        '[0 3]',
        '-w',
        'f.bin',
        '0x08000000',
        '-v',
        '-ob',
        'displ',
        '-hardRst',
      ]),
    ).toEqual({
      connect: { port: 'SWD', sn: 'AB', freq: '4000' },
      commands: [
        { kind: 'erase', all: false, sectors: [0, 1, 2, 3] },
        { kind: 'write', file: 'f.bin', address: 0x08000000 },
        { kind: 'verify' },
        { kind: 'ob-display' },
        { kind: 'reset', hard: true },
      ],
      quiet: false,
      version: false,
      help: false,
    });
    expect(parseArgs(['--connect', 'port=swd sn=1', '-e', '0', '2']).commands).toEqual([
      { kind: 'erase', all: false, sectors: [0, 2] },
    ]);
    expect(() => parseArgs(['-u', '0x08000000', '16'])).toThrow(ArgsError);
    expect(() => parseArgs(['-e', '[3 1]'])).toThrow(/range/);
  });
});
