import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runStandIn } from '../sim/swd/standin.ts';
import { makeTestFarm } from '../stlink/fixtures/farm.ts';
import { describeTriage, SIGNATURES, triageLog } from './triage.ts';

const fixture = (name: string) => readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8');
const triage = (name: string) => triageLog(fixture(name), name);
const codes = (name: string) => triage(name).findings.map((f) => f.code);

describe('triage of the field reports, verbatim', () => {
  it('seed 000 (GUI log, USB DFU): data outside flash first, with its evidence lines; the unseen compare difference next', () => {
    const r = triage('000_86af520f69e124d8.txt');
    expect(r.tool).toBe('cubeprogrammer-gui');
    expect(r.facts).toMatchObject({ interface: 'usb-dfu', deviceId: 0x450, cliVersion: '2.19.0' });
    expect(codes('000_86af520f69e124d8.txt')).toEqual(['DATA_OUTSIDE_FLASH', 'COMPARE_DIFFERENCE']);
    const f = r.findings[0]!;
    expect(f.confidence).toBe('certain');
    expect(f.suite).toBe('ram-sections');
    expect(f.evidence).toContainEqual({ line: 32, text: 'Not flash Memory : No erase done' });
    expect(f.evidence).toContainEqual({ line: 34, text: 'Error: failed to download Sector[0]' });
    expect(r.findings[1]!.suite).toBe('crosscheck');
    expect(r.findings[1]!.details).toEqual({ address: 0x08000000 });
  });

  it('seed 001 (forum text): bank 2 erase hang on rev V / bootloader 90, mass erase as the way out', () => {
    const r = triage('001_17c7863569a4af26.txt');
    const f = r.findings.find((x) => x.code === 'H74X_BANK2_ERASE_HANG')!;
    expect(f.confidence).toBe('likely');
    expect(f.evidence.some((e) => e.text.includes('0x8100000'))).toBe(true);
    expect(f.evidence.some((e) => /bootloader version 90/.test(e.text))).toBe(true);
    expect(f.next).toMatch(/mass-erase/);
    expect(f.suite).toBe('bank2-write');
  });

  it('seed 002 (forum text): data outside flash, naming the SRAM4 address', () => {
    const r = triage('002_6d9a619620d78aec.txt');
    expect(r.findings[0]).toMatchObject({ code: 'DATA_OUTSIDE_FLASH', confidence: 'likely' });
    // "the 0x38000000 - 0x3800FFFF range" the user quotes.
    expect(r.findings[0]!.details).toEqual({ addressesOutsideFlash: ['0x38000000', '0x3800FFFF'] });
  });

  it('seed 003 (CLI 2.20 in CubeIDE): ST-LINK programming failing after DFU, fixed by a power cycle', () => {
    const r = triage('003_36c1774b50054e92.txt');
    expect(codes('003_36c1774b50054e92.txt')).toEqual(['SWD_LOCKED_AFTER_DFU']);
    const f = r.findings[0]!;
    expect(f.confidence).toBe('likely');
    expect(f.evidence.map((e) => e.text)).toContain('Error: failed to download  Sector[0]');
    expect(f.next).toMatch(/power-cycle/);
    expect(f.suite).toBe('power-cycle');
    expect(r.facts).toMatchObject({ interface: 'swd', deviceId: 0x489, bootloaderVersion: 0xd0 });
  });

  it('seed 004 (custom H743 board): verify mismatch at a fixed address first, the recovered connect after it', () => {
    const r = triage('004_8273e94a02fe9c72.txt');
    expect(codes('004_8273e94a02fe9c72.txt')).toEqual(['VERIFY_MISMATCH', 'SWD_NO_TARGET']);
    const v = r.findings[0]!;
    expect(v.title).toBe('verify finds 0x00 instead of 0x08 at 0x08000002');
    expect(v.evidence[0]).toEqual({
      line: 158,
      text: 'Error: Data mismatch found at address  0x08000002 (byte = 0x00 instead of 0x08)',
    });
    expect(v.causes.join(' ')).toMatch(/VCAP/);
    expect(v.causes.join(' ')).toMatch(/SWAP_BANK/);
    const n = r.findings[1]!;
    expect(n).toMatchObject({ confidence: 'possible', details: { voltage: 3.25, recovered: true } });
  });

  it('the rev V bank 2 traces: CubeProgrammer busy polls and dfu-util poll timeouts at 0x08100000', () => {
    const cube = triage('cubeprogrammer-h743-revV-bank2-erase-verbose.txt');
    expect(cube.tool).toBe('cubeprogrammer-verbose');
    expect(cube.findings[0]).toMatchObject({ code: 'H74X_BANK2_ERASE_HANG', confidence: 'certain' });
    expect(cube.findings[0]!.evidence[0]!.text).toBe('sending a page erase request @: 0x08100000');
    expect(cube.findings[0]!.evidence.map((e) => e.text)).toContain('Status: errUNKNOWN, State: dfuERROR');
    const du = triage('dfu-util-h743-revV-bank2-erase-poll.txt');
    expect(du.tool).toBe('dfu-util');
    expect(du.findings[0]).toMatchObject({ code: 'H74X_BANK2_ERASE_HANG', confidence: 'certain' });
    expect(du.findings[0]!.evidence[0]!.text).toMatch(/at address 0x08100000/);
    // Bank 1 erases in the same trace are not the problem.
    expect(du.findings[0]!.evidence.some((e) => e.text.includes('0x080e0000'))).toBe(false);
  });
});

describe('triage of other logs', () => {
  it('dfu-util exiting 74 after :leave is a false failure', () => {
    const r = triage('dfu-util-leave-false-failure.txt');
    expect(r.findings.map((f) => [f.code, f.confidence])).toEqual([['FALSE_FAILURE_AFTER_LEAVE', 'certain']]);
    expect(r.findings[0]!.evidence.map((e) => e.text)).toEqual([
      'File downloaded successfully',
      'Submitting leave request...',
      'dfu-util: Error during download get_status',
    ]);
  });

  it('LIBUSB_ERROR_PIPE on a status request, with the request before it', () => {
    const r = triage('dfu-util-pipe-on-status.txt');
    expect(r.findings[0]).toMatchObject({
      code: 'LIBUSB_PIPE_ON_STATUS',
      confidence: 'certain',
      suite: 'bootloader-entry',
    });
    expect(r.findings[0]!.evidence.map((e) => e.text)).toContain(
      'Downloading to address = 0x30000000, size = 4096',
    );
  });

  it('no target over SWD on an unpowered board says so from the voltage', () => {
    const r = triage('cli-unpowered.txt');
    expect(r.findings[0]).toMatchObject({
      code: 'SWD_NO_TARGET',
      confidence: 'certain',
      details: { voltage: 0.02, recovered: false },
    });
    expect(r.findings[0]!.causes[0]).toMatch(/not powered/);
  });

  it('an unknown log gets an honest "no known signature" with the error lines it found', () => {
    const r = triage('unknown-tool.txt');
    expect(r.known).toBe(false);
    expect(r.tool).toBe('unknown');
    expect(r.errorLines).toEqual([
      { line: 4, text: 'Error: init mode failed (unable to connect to the target)' },
      { line: 5, text: '** OpenOCD init failed **' },
    ]);
    const text = describeTriage(r);
    expect(text).toContain('no known signature in this log.');
    expect(text).toContain('    4: Error: init mode failed');
  });

  it('a success line printed after an error is called out', () => {
    const r = triageLog(
      readFileSync(new URL('../stlink/fixtures/error-then-success.txt', import.meta.url), 'utf8'),
    );
    expect(r.findings.map((f) => f.code)).toContain('SUCCESS_AFTER_ERROR');
  });

  it('every signature has a distinct code', () => {
    expect(new Set(SIGNATURES.map((s) => s.code)).size).toBe(SIGNATURES.length);
  });
});

describe('triage of the stand-in output', () => {
  async function standIn(env: NodeJS.ProcessEnv, ...argv: string[]) {
    let text = '';
    await runStandIn(argv, { env, write: (t) => (text += t) });
    return text;
  }

  it("recognises the stand-in's post-DFU lock and weak-bit mismatch like the real logs", async () => {
    const farm = makeTestFarm();
    const env = { STM32_HIL_CONFIG: farm.file };
    const bin = path.join(farm.dir, 'fw.bin');
    writeFileSync(bin, new Uint8Array(64).fill(0x08));
    const chip = farm.chip('h7locked');
    chip.updateVolatile({ dfuUsedSincePowerOn: true });
    chip.close();
    const locked = triageLog(
      await standIn(env, '-c', 'port=SWD', 'sn=TESTSN0002', '-w', bin, '0x08000000', '-v'),
    );
    expect(locked.tool).toBe('cubeprogrammer-cli');
    expect(locked.findings.map((f) => [f.code, f.confidence])).toEqual([
      ['SWD_LOCKED_AFTER_DFU', 'possible'],
    ]);
    const weak = triageLog(
      await standIn(env, '-c', 'port=SWD', 'sn=TESTSN0003', '-w', bin, '0x08000000', '-v'),
    );
    expect(weak.findings[0]).toMatchObject({
      code: 'VERIFY_MISMATCH',
      details: { mismatches: [{ address: 0x08000002, actual: 0, expected: 8 }] },
    });
  });
});
