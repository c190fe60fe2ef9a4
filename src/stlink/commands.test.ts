import { describe, expect, it } from 'vitest';
import { parseArgs } from '../sim/swd/args.ts';
import {
  allowMassErase,
  connectArgs,
  eraseArgs,
  listProbesArgs,
  type MassErasePermission,
  optionBytesDisplayArgs,
  read32Args,
  resetArgs,
  uploadArgs,
  writeArgs,
} from './commands.ts';

describe('STM32_Programmer_CLI argument builders', () => {
  it('builds the connect string with each parameter as its own word', () => {
    expect(connectArgs({ serial: '002E000A4D46501220383832', freqKHz: 4000 })).toEqual([
      '-c',
      'port=SWD',
      'sn=002E000A4D46501220383832',
      'mode=UR',
      'reset=HWrst',
      'freq=4000',
    ]);
    expect(connectArgs({ mode: 'HOTPLUG', reset: 'SWrst' })).toEqual([
      '-c',
      'port=SWD',
      'mode=HOTPLUG',
      'reset=SWrst',
    ]);
  });

  it('builds reads, writes, option bytes, resets and probe lists', () => {
    expect(listProbesArgs()).toEqual(['-l', 'st-link']);
    expect(uploadArgs(0x08000000, 1024, '/tmp/x.bin')).toEqual(['-u', '0x08000000', '1024', '/tmp/x.bin']);
    expect(read32Args(0x1ff1e7fc, 2)).toEqual(['-r32', '0x1FF1E7FC', '8']);
    expect(writeArgs('fw.bin', { address: 0x08020000 })).toEqual(['-w', 'fw.bin', '0x08020000', '-v']);
    expect(writeArgs('fw.elf', { verify: false })).toEqual(['-w', 'fw.elf']);
    expect(optionBytesDisplayArgs()).toEqual(['-ob', 'displ']);
    expect(resetArgs('soft')).toEqual(['-rst']);
    expect(resetArgs('hard')).toEqual(['-hardRst']);
    expect(() => uploadArgs(0, 0, 'x')).toThrow(RangeError);
  });

  it('erases sectors by number, and everything only with an explicit permission for this board', () => {
    expect(eraseArgs({ sectors: [9, 8, 8] })).toEqual(['-e', '8', '9']);
    expect(eraseArgs({ all: allowMassErase('h743-a', 'bank 2 erase hang workaround') }, 'h743-a')).toEqual([
      '-e',
      'all',
    ]);
    const forged = { board: 'h743-a', reason: 'x' } as unknown as MassErasePermission;
    expect(() => eraseArgs({ all: forged })).toThrow(
      expect.objectContaining({ code: 'E_STLINK_MASS_ERASE_NOT_PERMITTED' }),
    );
    expect(() => eraseArgs({ all: allowMassErase('h743-b', 'x') }, 'h743-a')).toThrow(/for board "h743-b"/);
    expect(() => allowMassErase('h743-a', ' ')).toThrow(
      expect.objectContaining({ code: 'E_STLINK_MASS_ERASE_NOT_PERMITTED', kind: 'usage' }),
    );
  });

  it('what the builders produce is what the stand-in understands', () => {
    const argv = [
      ...connectArgs({ serial: 'SN1', freqKHz: 8000 }),
      ...eraseArgs({ sectors: [0, 1] }),
      ...writeArgs('a.hex'),
      ...uploadArgs(0x08000000, 16, 'r.bin'),
      ...optionBytesDisplayArgs(),
      ...resetArgs('hard'),
    ];
    expect(parseArgs(argv)).toMatchObject({
      connect: { port: 'SWD', sn: 'SN1', mode: 'UR', reset: 'HWrst', freq: '8000' },
      commands: [
        { kind: 'erase', sectors: [0, 1] },
        { kind: 'write', file: 'a.hex' },
        { kind: 'verify' },
        { kind: 'upload', address: 0x08000000, size: 16, file: 'r.bin' },
        { kind: 'ob-display' },
        { kind: 'reset', hard: true },
      ],
    });
  });
});
