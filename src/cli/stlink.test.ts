import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from '../image/test-helpers.ts';
import { makeTestFarm } from '../stlink/fixtures/farm.ts';

const fixture = (name: string) => new URL(`../triage/fixtures/${name}`, import.meta.url).pathname;

describe('stm32-hil board identify', () => {
  it('reports the chip over SWD and matches boards.yaml', async () => {
    const farm = makeTestFarm();
    const r = await runCli(['--config', farm.file, 'board', 'identify', '--board', 'h7v']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/device ID\s+0x450 \(STM32H7xx\)/);
    expect(r.stdout).toMatch(/bootloader\s+0x90/);
    expect(r.stdout).toMatch(/matches boards\.yaml/);
    expect(r.stderr).toBe('');
  });

  it('warns on a mismatch with expect:, and --strict makes it exit 1', async () => {
    const farm = makeTestFarm();
    const r = await runCli(['--config', farm.file, '--json', 'board', 'identify', '--board', 'f4']);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.mismatches.map((m: { field: string }) => m.field)).toEqual(['chipRevision', 'bootloader']);
    expect(r.stderr).toMatch(/warning: board f4: chip revision Y, boards\.yaml expects Z/);
    expect(r.stderr).toMatch(/warning: board f4: bootloader 0x31, boards\.yaml expects 0x90/);
    const strict = await runCli(['--config', farm.file, 'board', 'identify', '--board', 'f4', '--strict']);
    expect(strict.code).toBe(1);
    expect(strict.stderr).toMatch(/E_BOARD_MISMATCH/);
  });

  it('an unpowered board is a device error (exit 3) with the probe voltage in --json', async () => {
    const farm = makeTestFarm();
    const chip = farm.chip('h7v');
    chip.updateVolatile({ powered: false });
    chip.close();
    const r = await runCli(['--config', farm.file, '--json', 'board', 'identify', '--board', 'h7v']);
    expect(r.code).toBe(3);
    expect(JSON.parse(r.stdout)).toMatchObject({
      error: 'E_STLINK_NO_TARGET',
      details: { probe: { voltage: 0 } },
    });
  });
});

describe('stm32-hil crosscheck', () => {
  it('a disagreement exits 1 with the verdict; agreeing sources exit 0', async () => {
    const farm = makeTestFarm();
    const bin = path.join(farm.dir, 'fw.bin');
    writeFileSync(bin, new Uint8Array(48).fill(0x08));
    // Not flashed yet: SWD reads erased flash.
    const flashed = await runCli(['--config', farm.file, 'crosscheck', bin, '--board', 'h7v', '--no-dfu']);
    expect(flashed.code).toBe(1);
    expect(flashed.stdout).toMatch(/SWD readback differs from the image in 48 bytes/);
    // As a DFU flash leaves it.
    const chip = farm.chip('h7v');
    chip.programFlash(0x08000000, new Uint8Array(64).fill(0x08));
    chip.close();
    const ok = await runCli(['--config', farm.file, 'crosscheck', bin, '--board', 'h7v']);
    expect(ok.stdout).toMatch(/image, DFU readback and SWD readback agree on all 48 bytes/);
    expect(ok.code).toBe(0);
  });
});

describe('stm32-hil triage', () => {
  it('prints findings for a known log and exits 0', async () => {
    const r = await runCli(['triage', fixture('003_36c1774b50054e92.txt')]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/1\. SWD_LOCKED_AFTER_DFU \(likely\)/);
    expect(r.stdout).toMatch(/reproduced by suite: power-cycle/);
  });

  it('an unknown log: exit 0, known false, the error lines', async () => {
    const r = await runCli(['--json', 'triage', fixture('unknown-tool.txt')]);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.known).toBe(false);
    expect(j.findings).toEqual([]);
    expect(j.errorLines.length).toBe(2);
  });

  it('a missing log file is an input error (exit 2)', async () => {
    const r = await runCli(['triage', '/nonexistent/log.txt']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/E_FILE_NOT_FOUND/);
  });
});
