import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { dfuCrc, readImage } from './index.ts';
import { fixture, fixtureBytes, hexRecord, runCli, srecRecord } from './test-helpers.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'stm32-hil-bad-'));
const lines = (name: string) =>
  readFileSync(fixture(name), 'latin1')
    .split(/\r?\n/)
    .filter((l) => l !== '');
const sixteen = Array.from({ length: 16 }, (_, i) => i);

function patched(name: string, edit: (b: Uint8Array, dv: DataView) => void): Uint8Array {
  const b = new Uint8Array(fixtureBytes(name));
  edit(b, new DataView(b.buffer));
  return b;
}

/** A DfuSe file edited in place, its CRC recomputed so only the edit is wrong. */
function patchedDfu(name: string, edit: (b: Uint8Array, dv: DataView) => void): Uint8Array {
  return patched(name, (b, dv) => {
    edit(b, dv);
    dv.setUint32(b.length - 4, dfuCrc(b.subarray(0, b.length - 4)), true);
  });
}

interface Case {
  title: string;
  file: string;
  content: () => string | Uint8Array;
  code: string;
  /** Location facts the error must carry. */
  details: Record<string, unknown>;
  /** What the one-line message must show. */
  message: RegExp;
  base?: number;
}

const hex = lines('plain.hex');
const srec = lines('bank2.srec_cat.s37');
const plainHexText = readFileSync(fixture('plain.hex'), 'latin1');

const cases: Case[] = [
  {
    title: 'HEX cut inside a record',
    file: 'cut.hex',
    content: () => plainHexText.slice(0, plainHexText.indexOf(hex[9]!) + 20),
    code: 'E_HEX_TRUNCATED',
    details: { line: 10, column: 1 },
    message: /cut\.hex:10:1: the file ends inside this record/,
  },
  {
    title: 'HEX cut at a line end (no end-of-file record)',
    file: 'noeof.hex',
    content: () => `${hex.slice(0, 10).join('\n')}\n`,
    code: 'E_HEX_TRUNCATED',
    details: { line: 10 },
    message: /noeof\.hex:10: no end-of-file record/,
  },
  {
    title: 'HEX checksum',
    file: 'checksum.hex',
    content: () =>
      [
        ...hex.slice(0, 4),
        `${hex[4]!.slice(0, -2)}${hex[4]!.endsWith('00') ? '01' : '00'}`,
        ...hex.slice(5),
      ].join('\n'),
    code: 'E_HEX_CHECKSUM',
    details: { line: 5, column: 42 },
    message: /checksum\.hex:5:42: checksum 0x.. should be 0x/,
  },
  {
    title: 'HEX unknown record type',
    file: 'type.hex',
    content: () => [hex[0], hex[1], hexRecord(6, 0, [1, 2]), ...hex.slice(2)].join('\n'),
    code: 'E_HEX_RECORD_TYPE',
    details: { line: 3, column: 8, type: 6 },
    message: /type\.hex:3:8: unknown record type 0x06/,
  },
  {
    title: 'HEX non-hex character',
    file: 'digit.hex',
    content: () =>
      [...hex.slice(0, 3), `${hex[3]!.slice(0, 11)}G${hex[3]!.slice(12)}`, ...hex.slice(4)].join('\n'),
    code: 'E_HEX_SYNTAX',
    details: { line: 4, column: 12 },
    message: /digit\.hex:4:12: 'G' where a hex digit belongs/,
  },
  {
    title: 'HEX records after the end-of-file record (two files concatenated)',
    file: 'twice.hex',
    content: () => [...hex, ...hex].join('\n'),
    code: 'E_HEX_SYNTAX',
    details: { line: hex.length + 1 },
    message: /record after the end-of-file record/,
  },
  {
    title: 'HEX data past 4 GiB',
    file: 'past4g.hex',
    content: () => [':02000004FFFFFC', hexRecord(0, 0xfff8, sixteen), ':00000001FF'].join('\n'),
    code: 'E_IMAGE_ADDRESS_RANGE',
    details: { line: 2, address: 0xfffffff8 },
    message: /past4g\.hex:2:1: 16 data bytes at 0xFFFFFFF8 run past the 4 GiB address space/,
  },
  {
    title: 'HEX overlapping records with different data',
    file: 'overlap.hex',
    content: () =>
      [...hex.slice(0, -1), ':020000040800F2', hexRecord(0, 0x0004, [0xaa, 0xbb]), hex.at(-1)].join('\n'),
    code: 'E_IMAGE_OVERLAP',
    details: {
      address: 0x0800_0004,
      first: { file: expect.stringMatching(/overlap\.hex$/), line: 2 },
      second: expect.objectContaining({ line: hex.length + 1 }),
    },
    message: new RegExp(
      `conflicting data at 0x08000004: .*overlap\\.hex line 2 has 0x.., .*overlap\\.hex line ${hex.length + 1} has 0xaa`,
    ),
  },
  {
    title: 'S-record checksum',
    file: 'checksum.s37',
    content: () =>
      [
        ...srec.slice(0, 2),
        `${srec[2]!.slice(0, -2)}${srec[2]!.endsWith('00') ? '01' : '00'}`,
        ...srec.slice(3),
      ].join('\n'),
    code: 'E_SREC_CHECKSUM',
    details: { line: 3 },
    message: /checksum\.s37:3:\d+: checksum 0x.. should be 0x/,
  },
  {
    title: 'S-record reserved type S4',
    file: 's4.s37',
    content: () => [srec[0], srecRecord(4, 0, [1]), ...srec.slice(1)].join('\n'),
    code: 'E_SREC_RECORD_TYPE',
    details: { line: 2, column: 1 },
    message: /s4\.s37:2:1: record type S4 is reserved/,
  },
  {
    title: 'S-record count record disagrees (a line lost)',
    file: 'count.s37',
    content: () => [srec[0], ...srec.slice(2)].join('\n'),
    code: 'E_SREC_COUNT',
    details: { line: srec.length - 2 },
    message: /count record says \d+ data records, the file has \d+/,
  },
  {
    title: 'S-record cut inside a record',
    file: 'cut.s37',
    content: () => `${srec.slice(0, 5).join('\n')}\n${srec[5]!.slice(0, 30)}`,
    code: 'E_SREC_TRUNCATED',
    details: { line: 6 },
    message: /cut\.s37:6:1: the file ends inside this record/,
  },
  {
    title: 'S-record data past 4 GiB',
    file: 'past4g.s37',
    content: () => [srecRecord(3, 0xfffffff8, sixteen), srecRecord(7, 0, [])].join('\n'),
    code: 'E_IMAGE_ADDRESS_RANGE',
    details: { line: 1, address: 0xfffffff8 },
    message: /past4g\.s37:1:1: 16 data bytes at 0xFFFFFFF8/,
  },
  {
    title: 'ELF for another machine (the x86-64 build host)',
    file: 'host.elf',
    content: () => fixtureBytes('host.o'),
    code: 'E_ELF_MACHINE',
    details: { offset: 18, machine: 62 },
    message: /ELF for x86-64 \(e_machine 62, 64-bit\)/,
  },
  {
    title: 'ELF cut short',
    file: 'cut.elf',
    content: () => fixtureBytes('plain.elf').subarray(0, 0x1100),
    code: 'E_ELF_TRUNCATED',
    details: { offset: 0x1000, size: 0x1100 },
    message: /byte offset 4096 .* lies past the end of the 4352-byte file/,
  },
  {
    title: 'ELF segment past 4 GiB',
    file: 'past4g.elf',
    content: () => patched('plain.elf', (_, dv) => dv.setUint32(52 + 12, 0xffff_ff00, true)),
    code: 'E_IMAGE_ADDRESS_RANGE',
    details: { offset: 52, address: 0xffff_ff00 },
    message: /program header 0 \(byte offset 52\): 716 bytes at 0xFFFFFF00 run past the 4 GiB/,
  },
  {
    title: 'ELF segments overlapping with different data',
    file: 'overlap.elf',
    content: () => patched('plain.elf', (_, dv) => dv.setUint32(52 + 32 + 12, 0x0800_0000, true)),
    code: 'E_IMAGE_OVERLAP',
    details: {
      address: 0x0800_0000,
      first: expect.objectContaining({ sections: ['.isr_vector', '.text'] }),
      second: expect.objectContaining({ sections: ['.data'] }),
    },
    message: /conflicting data at 0x08000000: .* section \.isr_vector,\.text .* section \.data/,
  },
  {
    title: 'DfuSe with a damaged byte (CRC)',
    file: 'crc.dfu',
    content: () =>
      patched('plain.dfu', (b) => {
        b[400]! ^= 0x01;
      }),
    code: 'E_DFU_CRC',
    details: { offset: fixtureBytes('plain.dfu').length - 4 },
    message: /does not match the file/,
  },
  {
    title: 'DfuSe cut short',
    file: 'cut.dfu',
    content: () => fixtureBytes('plain.dfu').subarray(0, 700),
    code: 'E_DFUSE_TRUNCATED',
    details: { offset: 700 },
    message: /prefix announces \d+ bytes .* the file has 700/,
  },
  {
    title: 'DfuSe element past 4 GiB',
    file: 'past4g.dfu',
    content: () => patchedDfu('plain.dfu', (_, dv) => dv.setUint32(11 + 274, 0xffff_ff00, true)),
    code: 'E_IMAGE_ADDRESS_RANGE',
    details: { offset: 11 + 274, address: 0xffff_ff00 },
    message: /element 0: 748 bytes at 0xFFFFFF00 run past the 4 GiB/,
  },
  {
    title: 'DfuSe version 2',
    file: 'version.dfu',
    content: () =>
      patchedDfu('plain.dfu', (b) => {
        b[5] = 2;
      }),
    code: 'E_DFUSE_VERSION',
    details: { offset: 5, version: 2 },
    message: /DfuSe format version 2/,
  },
  {
    title: 'DFU-suffixed binary with a damaged byte',
    file: 'crc.suffix.dfu',
    content: () =>
      patched('plain.suffix.dfu', (b) => {
        b[10]! ^= 0x80;
      }),
    code: 'E_DFU_CRC',
    details: { offset: fixtureBytes('plain.suffix.dfu').length - 4 },
    message: /CRC/,
  },
  {
    title: 'raw binary past 4 GiB',
    file: 'past4g.bin',
    content: () => fixtureBytes('plain.bin'),
    base: 0xffff_ff00,
    code: 'E_IMAGE_ADDRESS_RANGE',
    details: { offset: 256, address: 0xffff_ff00 },
    message: /748 bytes at base 0xFFFFFF00 run past the 4 GiB address space from byte offset 256/,
  },
];

describe.each(cases)('bad input: $title', (c) => {
  const file = path.join(dir, c.file);
  writeFileSync(file, c.content());

  it(`${c.code} with the file and its location`, () => {
    let caught: unknown;
    try {
      readImage(file, c.base === undefined ? {} : { base: c.base });
    } catch (e) {
      caught = e;
    }
    expect(caught).toMatchObject({ code: c.code, kind: 'input' });
    const e = caught as { message: string; details: Record<string, unknown> };
    expect(e.message).toMatch(c.message);
    expect(e.message).toContain(c.file);
    expect(e.details).toMatchObject(c.details);
  });

  it('CLI: exit 2, one line with the code, no stack trace', async () => {
    const r = await runCli([
      'image',
      'inspect',
      file,
      ...(c.base === undefined ? [] : ['--base', `0x${c.base.toString(16)}`]),
    ]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(new RegExp(`^stm32-hil: error ${c.code}: .*${c.file.replace('.', '\\.')}`, 'm'));
    expect(r.stderr).not.toMatch(/^\s+at /m);
    expect(r.stdout).toBe('');
  });
});

describe('bad input: --json puts the error on stdout', () => {
  it('with code, file and line', async () => {
    const file = path.join(dir, 'json.hex');
    writeFileSync(file, [hex[0], hexRecord(6, 0, [])].join('\n'));
    const r = await runCli(['image', 'inspect', file, '--json']);
    expect(r.code).toBe(2);
    expect(JSON.parse(r.stdout)).toMatchObject({
      error: 'E_HEX_RECORD_TYPE',
      kind: 'input',
      details: { file, line: 2, column: 8 },
    });
  });
});

describe('overlap that agrees is not an error', () => {
  it('duplicated records with the same bytes', () => {
    const file = path.join(dir, 'dup.hex');
    writeFileSync(file, [...hex.slice(0, 3), hex[1], ...hex.slice(3)].join('\n'));
    const img = readImage(file);
    expect(img.size).toBe(748);
  });
});
