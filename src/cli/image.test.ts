import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { readImage } from '../image/index.ts';
import { fixture, fixtureBytes, flatten, runCli } from '../image/test-helpers.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'stm32-hil-cli-image-'));

describe('stm32-hil image inspect', () => {
  it('the field report image: exit 1, the section, both remedies', async () => {
    const r = await runCli(['image', 'inspect', fixture('sram4.elf'), '--part', 'stm32h747']);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(
      /problem E_IMAGE_RAM_DATA: section \.shared: 64 bytes at 0x38000000-0x3800003F are in SRAM4/,
    );
    expect(r.stdout).toMatch(/fix: mark \.shared NOLOAD in the linker script/);
    expect(r.stdout).toMatch(
      /or: {2}keep only the flash bytes: stm32-hil image convert .* --part stm32h747 --flash-only -o sram4-flash\.hex/,
    );
    expect(r.stdout).toMatch(/result: 1 problem would make a DFU download fail/);
  });

  it('--json: segments with SHA-256 and sections, banks and sectors, problems', async () => {
    const r = await runCli(['image', 'inspect', fixture('bank2.hex'), '--part', 'stm32h743', '--json']);
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report).toMatchObject({ format: 'ihex', entry: 0x0800_0045, flashable: true, problems: [] });
    expect(report.part).toMatchObject({ id: 'stm32h743', banks: [1, 2] });
    expect(report.part.sectors.map((s: { globalIndex: number }) => s.globalIndex)).toEqual([0, 8]);
    const table = fixtureBytes('bank2.bank2.bin');
    const seg = report.segments.find((s: { address: number }) => s.address === 0x0810_0000);
    expect(seg.sha256).toBe(createHash('sha256').update(table).digest('hex'));
    expect(seg.size).toBe(table.length);
  });

  it('--json on the SRAM4 ELF: the problem with code, sections and remedies', async () => {
    const r = await runCli(['--json', 'image', 'inspect', fixture('sram4.elf'), '--part', 'stm32h747']);
    expect(r.code).toBe(1);
    const report = JSON.parse(r.stdout);
    expect(report.flashable).toBe(false);
    expect(report.segments.at(-1)).toMatchObject({ address: 0x3800_0000, sections: ['.shared'] });
    expect(report.problems[0]).toMatchObject({
      code: 'E_IMAGE_RAM_DATA',
      sections: ['.shared'],
      failsFlash: true,
    });
    expect(report.problems[0].remedies.length).toBeGreaterThanOrEqual(2);
  });

  it('a clean image: exit 0', async () => {
    const r = await runCli(['image', 'inspect', fixture('plain.dfu'), '--part', 'stm32h743']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/DfuSe, 1 segment, 748 bytes/);
    expect(r.stdout).toMatch(/STM32H743: bank 1 sector 0/);
    expect(r.stdout).toMatch(/result: ready to flash/);
  });

  it('without --part: no placement, exit 0', async () => {
    const r = await runCli(['image', 'inspect', fixture('sram4.hex')]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/placement not checked/);
  });

  it('a raw binary: --base places it, a note when it is assumed', async () => {
    const placed = await runCli([
      'image',
      'inspect',
      fixture('plain.bin'),
      '--base',
      '0x08100000',
      '--part',
      'stm32h743',
    ]);
    expect(placed.stdout).toMatch(/bank 2 sector 0/);
    expect(placed.stderr).toBe('');
    const assumed = await runCli(['image', 'inspect', fixture('plain.bin')]);
    expect(assumed.stderr).toMatch(/no base address given: placed at 0x08000000/);
  });

  it.each([
    [['image', 'inspect', path.join(dir, 'missing.hex')], 'E_FILE_NOT_FOUND'],
    [['image', 'inspect', fixture('plain.hex'), '--part', 'stm32h999'], 'E_PART_UNKNOWN'],
    [['image', 'inspect', fixture('plain.bin'), '--base', 'eight'], 'E_USAGE'],
  ])('bad input %j: exit 2 with %s', async (args, code) => {
    const r = await runCli(args);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`error ${code}:`);
  });
});

describe('stm32-hil image convert', () => {
  it('--flash-only drops the SRAM4 section; the result inspects clean', async () => {
    const out = path.join(dir, 'sram4-flash.hex');
    const r = await runCli([
      'image',
      'convert',
      fixture('sram4.hex'),
      '--part',
      'stm32h747',
      '--flash-only',
      '-o',
      out,
    ]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/dropped 64 bytes at 0x38000000-0x3800003F \(line \d+, SRAM4\)/);
    const flash = fixtureBytes('sram4.flash.bin');
    const img = readImage(out);
    expect(img.span).toEqual({ start: 0x0800_0000, end: 0x0800_0000 + flash.length });
    expect(flatten(img, 0x0800_0000, 0x0800_0000 + flash.length)).toEqual(flash);
    expect((await runCli(['image', 'inspect', out, '--part', 'stm32h747'])).code).toBe(0);
  });

  it('ELF to raw binary: the objcopy -O binary bytes, the base address reported', async () => {
    const out = path.join(dir, 'plain.bin');
    const r = await runCli(['image', 'convert', fixture('plain.elf'), '-o', out, '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ format: 'bin', base: 0x0800_0000, bytes: 748 });
    expect(new Uint8Array(readFileSync(out))).toEqual(fixtureBytes('plain.bin'));
  });

  it('--fill sets the gap bytes of a binary', async () => {
    const out = path.join(dir, 'bank2.fill.bin');
    expect((await runCli(['image', 'convert', fixture('bank2.elf'), '-o', out, '--fill', '0x5A'])).code).toBe(
      0,
    );
    const data = readFileSync(out);
    expect(data[0x8000]).toBe(0x5a);
    expect(data.length).toBe(fixtureBytes('bank2.bin').length);
  });

  it('--to dfu with --part: the part USB IDs and alternate setting names', async () => {
    const out = path.join(dir, 'bank2.out');
    const r = await runCli([
      'image',
      'convert',
      fixture('bank2.srec'),
      '--to',
      'dfu',
      '--part',
      'stm32h743',
      '-o',
      out,
    ]);
    expect(r.code).toBe(0);
    const img = readImage(out);
    expect(img.format).toBe('dfuse');
    expect(img.meta.targets).toEqual([
      { alt: 0, name: 'Internal Flash', elements: 2, size: 8 + 636 + 8 + 256 },
    ]);
    expect(img.meta.dfu).toMatchObject({ vid: 0x0483, pid: 0xdf11 });
  });

  it('refuses a 768 MiB binary and says how to fix it (exit 2, nothing written)', async () => {
    const out = path.join(dir, 'sram4.bin');
    const r = await runCli(['image', 'convert', fixture('sram4.elf'), '-o', out]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/error E_IMAGE_BIN_SPAN: .* would be 769 MiB/);
    expect(r.stderr).toMatch(/hint: .*--flash-only/);
    expect(existsSync(out)).toBe(false);
  });

  it.each([
    [
      ['image', 'convert', fixture('sram4.elf'), '--flash-only', '-o', path.join(dir, 'x.hex')],
      /--flash-only needs --part/,
    ],
    [
      ['image', 'convert', fixture('plain.elf'), '-o', path.join(dir, 'x.txt')],
      /cannot tell the output format/,
    ],
    [
      ['image', 'convert', fixture('plain.elf'), '--to', 'elf', '-o', path.join(dir, 'x.elf')],
      /--to elf: unknown format/,
    ],
    [['image', 'convert', fixture('plain.elf')], /required option '-o, --output <file>'/],
  ])('usage error %#: exit 2', async (args, message) => {
    const r = await runCli(args);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
  });
});
