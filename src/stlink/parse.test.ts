import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  classifyError,
  cleanLine,
  optionBytesOfInterest,
  parseProgrammerOutput,
  parseSize,
  parseVoltage,
  primaryError,
  standingErrors,
} from './parse.ts';

const seed = (name: string) => readFileSync(new URL(`../triage/fixtures/${name}`, import.meta.url), 'utf8');
const fixture = (name: string) => readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8');

describe('parseProgrammerOutput on the field reports, verbatim', () => {
  it('seed 004 (CLI 2.17 in CubeIDE, NBSP-padded): a recovered connect, then a data mismatch with actual and expected the right way round', () => {
    const out = parseProgrammerOutput(seed('004_8273e94a02fe9c72.txt'));
    expect(out.version).toBe('2.17.0');
    expect(out.probe).toEqual({
      serial: '002E000A4D46501220383832',
      firmware: 'V3J15M7B5S1',
      board: 'STLINK-V3SET',
      voltage: 3.26,
      frequencyKHz: 8000,
    });
    expect(out.connection).toMatchObject({
      interface: 'swd',
      connectMode: 'Under Reset',
      resetMode: 'Hardware reset',
    });
    expect(out.target).toEqual({
      deviceId: 0x450,
      revision: 'V',
      deviceName: 'STM32H7xx',
      flashSize: 2 * 1024 * 1024,
      flashSizeText: '2 MBytes',
      deviceType: 'MCU',
      cpu: 'Cortex-M7',
      bootloaderVersion: 0x90,
    });
    const noTarget = out.errors.find((e) => e.code === 'E_STLINK_NO_TARGET');
    expect(noTarget?.recovered).toBe(true);
    const primary = primaryError(out);
    expect(primary?.code).toBe('E_STLINK_DATA_MISMATCH');
    // "(byte = 0x00 instead of 0x08)": 0x00 was read, 0x08 was expected.
    expect(primary?.details).toEqual({ address: 0x08000002, actual: 0x00, expected: 0x08 });
    expect(out.lines[primary!.line - 1]).toContain('Data mismatch');
    expect(out.errors.find((e) => e.code === 'E_STLINK_VERIFY_FAILED')?.secondary).toBe(true);
    const kinds = out.operations.map((o) => [o.kind, o.outcome]);
    expect(kinds).toEqual([
      ['connect', 'failed'],
      ['connect', 'ok'],
      ['download', 'ok'],
      ['verify', 'failed'],
    ]);
    expect(out.operations[2]!.details).toMatchObject({
      file: 'ST-LINK_GDB_server_a11912.srec',
      address: 0x08000000,
      size: Math.round(65.18 * 1024),
    });
    expect(out.ok).toBe(false);
  });

  it('seed 003 (CLI 2.20): "failed to download  Sector[0]" with two spaces, after a sector range erase', () => {
    const out = parseProgrammerOutput(seed('003_36c1774b50054e92.txt'));
    expect(out.version).toBe('2.20.0');
    expect(out.target).toMatchObject({
      deviceId: 0x489,
      revision: 'A',
      flashSize: 256 * 1024,
      bootloaderVersion: 0xd0,
      cpu: 'Cortex-M0+',
    });
    expect(out.probe?.board).toBe('NUCLEO-F070RB');
    const primary = primaryError(out);
    expect(primary).toMatchObject({
      code: 'E_STLINK_DOWNLOAD_FAILED',
      details: { unit: 'sector', index: 0 },
    });
    expect(out.errors.filter((e) => e.secondary).map((e) => e.text)).toEqual([
      'Error: failed to download the File',
    ]);
    const dl = out.operations.find((o) => o.kind === 'download')!;
    expect(dl.outcome).toBe('failed');
    expect(dl.details.erase).toEqual([
      'Erasing memory corresponding to segment 0:',
      'Erasing internal memory sectors [0 33]',
    ]);
    expect(out.ok).toBe(false);
  });

  it('seed 000 (GUI log with "10:34:59 : " prefixes, USB DFU): not flash memory is the cause, the sector failure follows', () => {
    const out = parseProgrammerOutput(seed('000_86af520f69e124d8.txt'));
    expect(out.version).toBe('2.19.0');
    expect(out.connection?.interface).toBe('usb-dfu');
    expect(out.usb).toEqual({
      speed: 'Full Speed (12MBit/s)',
      manufacturer: 'STMicroelectronics',
      product: 'DFU in FS Mode',
      serial: '200364500000',
      dfuProtocol: '1.1',
    });
    expect(out.target?.deviceId).toBe(0x450);
    expect(primaryError(out)?.code).toBe('E_STLINK_NOT_FLASH');
    expect(standingErrors(out).map((e) => [e.code, e.secondary ?? false])).toEqual([
      ['E_STLINK_NOT_FLASH', false],
      ['E_STLINK_DOWNLOAD_FAILED', true],
      ['E_STLINK_DOWNLOAD_FAILED', true],
      ['E_STLINK_DOWNLOAD_FAILED', true],
    ]);
    expect(out.errors[1]!.details).toEqual({ unit: 'sector', index: 0 });
    const read = out.operations.find((o) => o.kind === 'read')!;
    expect(read).toMatchObject({ outcome: 'ok', details: { size: 1024, address: 0x08000000 } });
    // The "First difference found" warning is quoted inside prose there: only the bare line counts.
    expect(out.operations.find((o) => o.kind === 'compare')).toBeUndefined();
    expect(parseProgrammerOutput('Warning: First difference found at 0x8000000').operations[0]).toMatchObject(
      {
        kind: 'compare',
        outcome: 'failed',
        details: { address: 0x08000000 },
      },
    );
    expect(out.warnings.map((w) => w.text)).toContain('Warning: difference found');
  });

  it('seeds without tool output are not recognised', () => {
    expect(parseProgrammerOutput(seed('002_6d9a619620d78aec.txt')).recognised).toBe(false);
    expect(parseProgrammerOutput('hello\nworld\n').recognised).toBe(false);
  });
});

describe('parseProgrammerOutput on output variants', () => {
  it('reads CLI 2.4 output with decimal commas, no revision line and 4-digit device IDs', () => {
    const out = parseProgrammerOutput(fixture('cli-2.4-comma-locale.txt'));
    expect(out.version).toBe('2.4.0');
    expect(out.probe?.voltage).toBe(3.23);
    expect(out.target).toMatchObject({ deviceId: 0x410, flashSize: 128 * 1024 });
    expect(out.target?.revision).toBeUndefined();
    const dl = out.operations.find((o) => o.kind === 'download')!;
    expect(dl.details.size).toBe(Math.round(179.23 * 1024));
    expect(out.ok).toBe(true);
  });

  it('keeps an error that the tool follows with success lines (the write did not happen)', () => {
    const out = parseProgrammerOutput(fixture('error-then-success.txt'));
    expect(primaryError(out)?.code).toBe('E_STLINK_DOWNLOAD_FAILED');
    const first = out.operations.find((o) => o.kind === 'download')!;
    expect(first.outcome).toBe('failed');
    expect(first.successClaimedAfterError).toBe(true);
    expect(out.operations.find((o) => o.kind === 'verify')?.outcome).toBe('ok');
    expect(out.ok).toBe(false);
  });

  it('reads -ob displ into option bytes and the ones that matter', () => {
    const out = parseProgrammerOutput(fixture('h743-ob-displ.txt'));
    expect(out.operations.find((o) => o.kind === 'option-bytes-read')?.outcome).toBe('ok');
    expect(out.optionBytes.find((o) => o.name === 'RDP')).toMatchObject({
      bank: 0,
      value: 0xbb,
      raw: '0xBB',
    });
    expect(optionBytesOfInterest(out.optionBytes)).toEqual({
      rdpLevel: 1,
      rdpRaw: '0xBB',
      swapBank: true,
      bootAddress0: 0x08000000,
      bootAddress1: 0x1ff00000,
    });
    expect(out.optionBytes.some((o) => /^(Bank|Address|Size)$/.test(o.name))).toBe(false);
  });

  it('reads -r32 words little-endian and -l st-link probe lists', () => {
    const out = parseProgrammerOutput(fixture('r32-and-list.txt'));
    expect(out.memory[0]!.address).toBe(0x08000000);
    expect([...out.memory[0]!.bytes.subarray(0, 8)]).toEqual([
      0x00, 0x00, 0x02, 0x20, 0x99, 0x01, 0x00, 0x08,
    ]);
    expect(out.probes).toEqual([
      { serial: '066CFF535149756687104533', firmware: 'V2J46M32', accessPort: 0, board: 'NUCLEO-F070RB' },
      { serial: '002E000A4D46501220383832', firmware: 'V3J15M7B5S1', accessPort: 0, board: 'STLINK-V3SET' },
    ]);
    expect(out.ok).toBe(true);
  });

  it('an Error: line with exit code 0 is still an error', () => {
    const out = parseProgrammerOutput(
      '      STM32CubeProgrammer v2.1.0\nST-LINK SN  : 1\nVoltage     : 3.30V\nError: ST-LINK error (DEV_USB_COMM_ERR)\n',
    );
    expect(out.ok).toBe(false);
    expect(primaryError(out)).toMatchObject({
      code: 'E_STLINK_USB_COMM',
      details: { probeCode: 'DEV_USB_COMM_ERR' },
    });
  });
});

describe('helpers', () => {
  it('strips every timestamp style and progress bars', () => {
    expect(cleanLine('10:34:59 : Device ID : 0x0450')).toBe('Device ID : 0x0450');
    expect(cleanLine('13:05:04:121 : DFU State = 9')).toBe('DFU State = 9');
    expect(cleanLine('16:07:44:325 Device name : STM32F405xx')).toBe('Device name : STM32F405xx');
    expect(cleanLine('██████████████████████████████████████████████████ 100%')).toBe('');
    expect(cleanLine('0x08000000 : 20020000')).toBe('0x08000000 : 20020000');
  });

  it('parses localised numbers', () => {
    expect(parseVoltage('3,23V')).toBe(3.23);
    expect(parseSize('179,23 KB')).toBe(Math.round(179.23 * 1024));
    expect(parseSize('256 KBytes (default)')).toBe(262144);
    expect(parseSize('157296 Bytes')).toBe(157296);
  });

  it('classifies the error lines met in the wild', () => {
    expect(
      classifyError('Error: Data mismatch found at address 0x08000004 (byte = 0x31 instead of 0x5D)'),
    ).toEqual({
      code: 'E_STLINK_DATA_MISMATCH',
      details: { address: 0x08000004, actual: 0x31, expected: 0x5d },
    });
    expect(classifyError('Error: failed to download Segment[1]').details).toEqual({
      unit: 'segment',
      index: 1,
    });
    expect(classifyError('Error: No debug probe detected.').code).toBe('E_STLINK_NO_PROBE');
    expect(classifyError('Error: unknown or unsupported device (DevID = 0x0000)')).toEqual({
      code: 'E_STLINK_UNKNOWN_DEVICE',
      details: { deviceId: 0 },
    });
    expect(classifyError('Error: ST-LINK error (DEV_TARGET_CMD_ERR)')).toEqual({
      code: 'E_STLINK_PROBE_ERROR',
      details: { probeCode: 'DEV_TARGET_CMD_ERR' },
    });
    expect(classifyError('Error: Mass erase operation failed.').code).toBe('E_STLINK_ERASE_FAILED');
    expect(
      classifyError(
        'Error: a read Operation failed, please check if any memory protection mechanism is active.',
      ).code,
    ).toBe('E_STLINK_RDP_ACTIVE');
    expect(classifyError('Error: Option Byte Programming failed').code).toBe('E_STLINK_OPTION_BYTES');
    expect(classifyError('Error: something new').code).toBe('E_STLINK_ERROR');
  });
});
