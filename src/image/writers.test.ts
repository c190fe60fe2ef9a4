import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { getPart } from '../parts/catalogue.ts';
import {
  dfuTargetsFor,
  FirmwareImage,
  parseImage,
  readDfuSuffix,
  readImage,
  writeBinary,
  writeDfuse,
  writeIntelHex,
  writeSrec,
} from './index.ts';
import { fixture, fixtureBytes, flatten, hexRecord, srecRecord, text } from './test-helpers.ts';

const PROGRAMS = ['plain', 'bank2', 'sram4'] as const;
const dir = mkdtempSync(path.join(tmpdir(), 'stm32-hil-writers-'));

function runs(img: FirmwareImage): Array<[number, Uint8Array]> {
  return img.coalesced().map((s) => [s.address, new Uint8Array(s.data)]);
}

/** A small image crossing a 64 KiB boundary, with an entry point, built in memory. */
function crossing(): FirmwareImage {
  const img = new FirmwareImage('bin', 'crossing.bin');
  img.add({
    name: 'a',
    address: 0x0800_fff8,
    data: Uint8Array.from({ length: 40 }, (_, i) => i + 1),
    source: { file: 'crossing.bin' },
  });
  img.add({
    name: 'b',
    address: 0x0810_0000,
    data: Uint8Array.of(0xde, 0xad),
    source: { file: 'crossing.bin' },
  });
  img.entry = 0x0800_0201;
  return img;
}

describe('writers round-trip through the readers', () => {
  it.each(PROGRAMS)('%s.elf -> hex, srec, dfu -> same bytes at the same addresses', (p) => {
    const img = readImage(fixture(`${p}.elf`));
    for (const [name, data] of [
      ['x.hex', writeIntelHex(img)],
      ['x.srec', writeSrec(img)],
      ['x.dfu', writeDfuse(img)],
    ] as const) {
      const back = parseImage(data, name);
      expect(runs(back), name).toEqual(runs(img));
      if (!name.endsWith('.dfu')) expect(back.entry, name).toBe(0x0800_0045);
    }
  });

  it('raw binary: objcopy -O binary bytes with fill 0, erased-flash gaps by default', () => {
    const img = readImage(fixture('bank2.elf'));
    const zero = writeBinary(img, { fill: 0 });
    expect(zero.base).toBe(0x0800_0000);
    expect(Buffer.compare(zero.data, fixtureBytes('bank2.bin'))).toBe(0);
    const ff = writeBinary(img);
    expect(ff.data[0x1000]).toBe(0xff);
    expect(ff.data.subarray(0x10_0000)).toEqual(fixtureBytes('bank2.bank2.bin'));
  });

  it('raw binary: refuses a span of hundreds of MiB and names both ends', () => {
    const img = readImage(fixture('sram4.elf'));
    expect(() => writeBinary(img)).toThrow(
      expect.objectContaining({
        code: 'E_IMAGE_BIN_SPAN',
        message: expect.stringMatching(/0x08000000 .*0x3800003F \(\.shared\)/),
      }),
    );
  });

  it('HEX: 04 at each 64 KiB, records inside 64 KiB, 05 entry, 01 last', () => {
    const lines = new TextDecoder().decode(writeIntelHex(crossing())).trim().split('\n');
    const bytes = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);
    expect(lines).toEqual([
      ':020000040800F2',
      hexRecord(0, 0xfff8, bytes(1, 8)),
      hexRecord(4, 0, [0x08, 0x01]),
      hexRecord(0, 0x0000, bytes(9, 24)),
      hexRecord(0, 0x0010, bytes(25, 40)),
      hexRecord(4, 0, [0x08, 0x10]),
      ':02000000DEAD73',
      hexRecord(5, 0, [0x08, 0x00, 0x02, 0x01]),
      ':00000001FF',
    ]);
    expect(runs(parseImage(text(lines.join('\n')), 'c.hex'))).toEqual(runs(crossing()));
  });

  it('S-record: S0 header, S3 data, S5 count, S7 entry', () => {
    const lines = new TextDecoder()
      .decode(writeSrec(crossing(), { header: 'hil' }))
      .trim()
      .split('\n');
    expect(lines[0]).toBe(srecRecord(0, 0, [0x68, 0x69, 0x6c], 2));
    expect(lines.slice(1, -2).map((l) => l.slice(0, 12))).toEqual([
      'S30D0800FFF8',
      'S31508010000',
      'S31508010010',
      'S30708100000',
    ]);
    expect(lines.at(-2)).toBe(srecRecord(5, 4, [], 2));
    expect(lines.at(-1)).toBe(srecRecord(7, 0x0800_0201, [], 4));
    const back = parseImage(text(lines.join('\n')), 'c.srec');
    expect(runs(back)).toEqual(runs(crossing()));
    expect(back.entry).toBe(0x0800_0201);
  });

  it('DfuSe: the bytes dfuse-pack writes, except DFUImageSize (UM0391: without the suffix) and so the CRC', () => {
    const img = readImage(fixture('bank2.dfu'));
    const ours = writeDfuse(img, { bcdDevice: 0 });
    const theirs = fixtureBytes('bank2.dfu');
    expect(ours.length).toBe(theirs.length);
    const dv = new DataView(ours.buffer, ours.byteOffset);
    expect(dv.getUint32(6, true)).toBe(ours.length - 16);
    expect(new DataView(theirs.buffer).getUint32(6, true)).toBe(theirs.length);
    const mask = (b: Uint8Array) => {
      const c = new Uint8Array(b);
      c.fill(0, 6, 10);
      c.fill(0, c.length - 4);
      return c;
    };
    expect(mask(ours)).toEqual(mask(theirs));
    expect(readDfuSuffix(ours)).toMatchObject({
      idVendor: 0x0483,
      idProduct: 0xdf11,
      bcdDevice: 0,
      bcdDFU: 0x011a,
    });
  });

  it('DfuSe: one target per alternate setting, chosen from the part layout', () => {
    const img = readImage(fixture('plain.elf'));
    img.add({ name: 'ob', address: 0x5200_201c, data: fixtureBytes('optbytes.bin'), source: { file: 'ob' } });
    const part = getPart('stm32h743');
    const back = parseImage(writeDfuse(img, { targetFor: dfuTargetsFor(part) }), 'x.dfu');
    expect(back.meta.targets).toEqual([
      { alt: 0, name: 'Internal Flash', elements: 1, size: 8 + 748 },
      { alt: 1, name: 'Option Bytes', elements: 1, size: 8 + 8 },
    ]);
    expect(flatten(back, 0x0800_0000, 0x0800_0000 + 748)).toEqual(fixtureBytes('plain.bin'));
  });
});

async function onPath(tool: string): Promise<boolean> {
  return (await execa('sh', ['-c', `command -v ${tool}`], { reject: false })).exitCode === 0;
}

const haveSrecCat = await onPath('srec_cat');
const haveDfuSuffix = await onPath('dfu-suffix');

describe.skipIf(!haveSrecCat)(
  'srec_cat reads what the writers produce (install Debian package srecord to run)',
  () => {
    it.each(['plain', 'bank2'])('%s: HEX and S-record back to the objcopy bytes', async (p) => {
      const img = readImage(fixture(`${p}.elf`));
      for (const [file, data, kind] of [
        [`${p}.ours.hex`, writeIntelHex(img), '-Intel'],
        [`${p}.ours.srec`, writeSrec(img), '-Motorola'],
      ] as const) {
        const src = path.join(dir, file);
        const out = path.join(dir, `${file}.bin`);
        writeFileSync(src, data);
        await execa('srec_cat', [src, kind, '-offset', '-0x08000000', '-o', out, '-Binary']);
        expect(new Uint8Array(readFileSync(out)), file).toEqual(fixtureBytes(`${p}.bin`));
      }
    });

    it('sram4: the SRAM4 bytes survive in HEX', async () => {
      const src = path.join(dir, 'sram4.ours.hex');
      const out = path.join(dir, 'sram4.shared.bin');
      writeFileSync(src, writeIntelHex(readImage(fixture('sram4.elf'))));
      await execa('srec_cat', [
        src,
        '-Intel',
        '-crop',
        '0x38000000',
        '0x38010000',
        '-offset',
        '-0x38000000',
        '-o',
        out,
        '-Binary',
      ]);
      expect(new Uint8Array(readFileSync(out))).toEqual(fixtureBytes('sram4.shared.bin'));
    });
  },
);

describe.skipIf(!haveDfuSuffix)(
  'dfu-suffix accepts the DfuSe files (install Debian package dfu-util to run)',
  () => {
    it.each(PROGRAMS)('%s.dfu', async (p) => {
      const file = path.join(dir, `${p}.ours.dfu`);
      writeFileSync(
        file,
        writeDfuse(readImage(fixture(`${p}.elf`)), { vid: 0x0483, pid: 0xdf11, bcdDevice: 0x0200 }),
      );
      const r = await execa('dfu-suffix', ['-c', file], { reject: false });
      expect(r.exitCode, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/Vendor ID:\s+0x0483/);
      expect(r.stdout).toMatch(/BCD DFU:\s+0x011A/);
    });

    it('and rejects one with a damaged byte (the check can fail)', async () => {
      const data = writeDfuse(readImage(fixture('plain.elf')));
      data[300]! ^= 0xff;
      const file = path.join(dir, 'damaged.dfu');
      writeFileSync(file, data);
      const r = await execa('dfu-suffix', ['-c', file], { reject: false });
      expect(r.exitCode).not.toBe(0);
      expect(r.stderr).toMatch(/CRC/);
    });
  },
);
