import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { type FirmwareImage, parseImage, readImage, segmentEnd, withDfuSuffix } from './index.ts';
import { fixtureBytes as bytes, fixture, flatten, hexRecord, srecRecord, text } from './test-helpers.ts';

// Fixtures come from real toolchains (harness/fixtures/firmware/build.sh); the .bin files are
// `objcopy -O binary` output, the reference every reader must match.

function bytesIn(img: FirmwareImage, start: number, end: number): number {
  let n = 0;
  for (const s of img.segments) n += Math.max(0, Math.min(segmentEnd(s), end) - Math.max(s.address, start));
  return n;
}

const FLASH = 0x0800_0000;
const SRAM4 = 0x3800_0000;

describe('readers agree byte for byte with objcopy -O binary', () => {
  const plain = bytes('plain.bin');
  it.each([
    'plain.elf',
    'plain.hex',
    'plain.srec',
    'plain.srec_cat.hex',
    'plain.dfu',
    'plain.suffix.dfu',
    'plain.bin',
  ])('%s', (name) => {
    const img = readImage(fixture(name));
    expect(img.span).toEqual({ start: FLASH, end: FLASH + plain.length });
    expect(flatten(img, FLASH, FLASH + plain.length)).toEqual(plain);
  });

  const bank2 = bytes('bank2.bin');
  it.each(['bank2.elf', 'bank2.hex', 'bank2.srec', 'bank2.srec_cat.s37', 'bank2.dfu'])(
    '%s (two banks)',
    (name) => {
      const img = readImage(fixture(name));
      expect(img.span).toEqual({ start: FLASH, end: FLASH + bank2.length });
      expect(Buffer.compare(flatten(img, FLASH, FLASH + bank2.length), bank2)).toBe(0);
      // Only real data, not objcopy's zero gap: bank 1 code and the bank 2 table.
      expect(img.size).toBe(bytes('bank2.bank1.bin').length + bytes('bank2.bank2.bin').length);
      expect(img.segments.at(-1)!.address).toBe(0x0810_0000);
    },
  );

  const flash = bytes('sram4.flash.bin');
  const shared = bytes('sram4.shared.bin');
  it.each(['sram4.elf', 'sram4.hex', 'sram4.srec', 'sram4.srec_cat.s37', 'sram4.dfu'])(
    '%s (flash and SRAM4)',
    (name) => {
      const img = readImage(fixture(name));
      expect(flatten(img, FLASH, FLASH + flash.length)).toEqual(flash);
      expect(bytesIn(img, FLASH, SRAM4)).toBe(flash.length);
      expect(flatten(img, SRAM4, SRAM4 + shared.length)).toEqual(shared);
      expect(img.span?.end).toBe(SRAM4 + shared.length);
    },
  );
});

describe('what the readers remember', () => {
  it('ELF: load address, not run address; sections per segment; entry', () => {
    const img = readImage(fixture('plain.elf'));
    expect(img.format).toBe('elf');
    expect(img.entry).toBe(0x0800_0045);
    const data = img.segments.find((s) => s.source.sections?.includes('.data'))!;
    // .data runs in DTCM but is stored after .text in flash.
    expect(data.address).toBeGreaterThan(FLASH);
    expect(data.address).toBeLessThan(FLASH + 0x1000);
    expect(img.meta.relocated).toEqual([{ paddr: data.address, vaddr: 0x2000_0000, sections: ['.data'] }]);
    expect(img.segments[0]!.source.sections).toEqual(['.isr_vector', '.text']);
    const spans = img.segments[0]!.source.sectionSpans!;
    expect(spans[0]).toEqual({ name: '.isr_vector', address: FLASH, size: 64 });
    expect(spans[1]!.address).toBe(FLASH + 64);
  });

  it('ELF: the SRAM4 segment names its section', () => {
    const img = readImage(fixture('sram4.elf'));
    const ram = img.segments.find((s) => s.address === SRAM4)!;
    expect(ram.source.sections).toEqual(['.shared']);
    expect(ram.name).toBe('.shared');
  });

  it('HEX and S-record: entry point and the line of each run', () => {
    const hex = readImage(fixture('sram4.hex'));
    expect(hex.entry).toBe(0x0800_0045);
    const lines = readFileSync(fixture('sram4.hex'), 'latin1').split('\n');
    const ram = hex.segments.find((s) => s.address === SRAM4)!;
    // The run starts on the first data record after the ":020000043800C2" record.
    expect(lines[ram.source.line! - 2]!.trim()).toBe(':020000043800C2');
    const srec = readImage(fixture('bank2.srec_cat.s37'));
    expect(srec.entry).toBe(0x0800_0045);
    expect(srec.meta.header).toBe('http://srecord.sourceforge.net/');
    expect(srec.meta.counted).toBe(true);
  });

  it('DfuSe: targets with alternate setting and name, suffix IDs', () => {
    const img = readImage(fixture('plain-ob.dfu'));
    expect(img.format).toBe('dfuse');
    expect(img.meta.dfu).toEqual({ vid: 0x0483, pid: 0xdf11, bcdDevice: 0, bcdDFU: 0x011a });
    expect(img.meta.targets).toEqual([
      { alt: 0, name: 'ST...', elements: 1, size: 8 + 748 },
      { alt: 1, name: 'ST...', elements: 1, size: 8 + 8 },
    ]);
    const ob = img.segments.find((s) => s.source.target?.alt === 1)!;
    expect(ob.address).toBe(0x5200_201c);
    expect(ob.data).toEqual(bytes('optbytes.bin'));
  });

  it('binary with a DFU suffix: the suffix is not data', () => {
    const img = readImage(fixture('plain.suffix.dfu'), { base: 0x0810_0000 });
    expect(img.format).toBe('dfu-suffix');
    expect(img.meta.dfu).toMatchObject({ vid: 0x0483, pid: 0xdf11, bcdDevice: 0x0200 });
    expect(img.segments[0]!.address).toBe(0x0810_0000);
    expect(img.size).toBe(bytes('plain.bin').length);
  });

  it('raw binary: base address given or assumed', () => {
    expect(readImage(fixture('plain.bin')).meta.baseAssumed).toBe(true);
    const img = readImage(fixture('plain.bin'), { base: 0x0800_4000 });
    expect(img.meta.baseAssumed).toBeUndefined();
    expect(img.segments[0]!.address).toBe(0x0800_4000);
  });
});

describe('format detection from content', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'stm32-hil-detect-'));
  it.each([
    ['plain.hex', 'firmware.dat', 'ihex'],
    ['plain.srec', 'firmware', 'srec'],
    ['plain.elf', 'firmware.hex', 'elf'],
    ['plain.dfu', 'firmware.bin', 'dfuse'],
    ['plain.suffix.dfu', 'firmware.img', 'dfu-suffix'],
  ])('%s named %s is %s', (src, name, format) => {
    const to = path.join(dir, name);
    copyFileSync(fixture(src), to);
    expect(readImage(to).format).toBe(format);
    expect(parseImage(bytes(src), name).format).toBe(format);
  });

  it('a .bin is a binary even when it starts like text', () => {
    expect(parseImage(new TextEncoder().encode(':not hex'), 'x.bin').format).toBe('bin');
  });

  it('refuses a file whose extension promises a format its content lacks', () => {
    expect(() => parseImage(bytes('plain.bin'), 'firmware.hex')).toThrow(
      expect.objectContaining({ code: 'E_IMAGE_FORMAT' }),
    );
    expect(() => parseImage(new TextEncoder().encode('Memory Configuration\n'), 'firmware.map')).toThrow(
      expect.objectContaining({ code: 'E_IMAGE_FORMAT' }),
    );
  });

  it('HEX with CRLF, a BOM and lower-case digits', () => {
    const text = `\ufeff${readFileSync(fixture('plain.hex'), 'latin1').toLowerCase()}`;
    const img = parseImage(new TextEncoder().encode(text), 'lower.hex');
    expect(flatten(img, FLASH, FLASH + 748)).toEqual(bytes('plain.bin'));
  });
});

describe('streamed reading of large text files', () => {
  // 3 MiB of text: several 1 MiB chunks, records cut at chunk boundaries, CRLF line ends.
  const size = 1 << 20;
  const data = new Uint8Array(size).map((_, i) => (i * 7 + (i >> 9)) & 0xff);
  const lines: string[] = [];
  for (let a = 0; a < size; a += 16) {
    if (a % 0x10000 === 0) lines.push(hexRecord(4, 0, [0x08, 0x00 + (a >> 16)]));
    lines.push(hexRecord(0, a & 0xffff, [...data.subarray(a, a + 16)]));
  }
  lines.push(':00000001FF');
  const dir = mkdtempSync(path.join(tmpdir(), 'stm32-hil-stream-'));

  it('reads the same bytes as a whole-buffer parse', () => {
    const file = path.join(dir, 'big.hex');
    writeFileSync(file, `${lines.join('\r\n')}\r\n`);
    const img = readImage(file);
    expect(img.segments).toHaveLength(1);
    expect(Buffer.compare(img.segments[0]!.data, data)).toBe(0);
  });

  it('reports the right line past the first chunk', () => {
    const bad = [...lines];
    const n = 50_000; // line 50001, about 2.2 MB into the file: past the first 1 MiB chunk
    const line = bad[n]!;
    const wrong = (Number.parseInt(line.slice(-2), 16) + 1) & 0xff;
    bad[n] = `${line.slice(0, -2)}${wrong.toString(16).padStart(2, '0')}`;
    const file = path.join(dir, 'bad.hex');
    writeFileSync(file, `${bad.join('\n')}\n`);
    expect(() => readImage(file)).toThrow(
      expect.objectContaining({ code: 'E_HEX_CHECKSUM', details: expect.objectContaining({ line: n + 1 }) }),
    );
  });
});

describe('less common records', () => {
  it('HEX type 02 segment addresses wrap inside their 64 KiB segment; type 03 start address', () => {
    const data = Array.from({ length: 16 }, (_, i) => 0x40 + i);
    const img = parseImage(
      text(
        [
          hexRecord(2, 0, [0x10, 0x00]),
          hexRecord(0, 0xfff8, data),
          hexRecord(3, 0, [0x10, 0x00, 0x01, 0x23]),
          ':00000001FF',
        ].join('\n'),
      ),
      'seg.hex',
    );
    // Segment 0x1000 -> base 0x10000; offset 0xFFF8 + 8 bytes wraps to offset 0 of the same segment.
    expect(img.segments.map((s) => [s.address, [...s.data]])).toEqual([
      [0x10000, data.slice(8)],
      [0x1fff8, data.slice(0, 8)],
    ]);
    expect(img.entry).toBe(0x10123);
    expect(img.meta.startSegment).toEqual({ cs: 0x1000, ip: 0x0123 });
  });

  it('HEX records out of order become one run; one-byte records are packed', () => {
    const recs = Array.from({ length: 64 }, (_, i) => hexRecord(0, 0x100 + (63 - i) * 4, [i, i, i, i]));
    const img = parseImage(text([':020000040800F2', ...recs, ':00000001FF'].join('\n')), 'rev.hex');
    expect(img.segments).toHaveLength(1);
    expect(img.segments[0]!.address).toBe(0x0800_0100);
    expect(img.segments[0]!.data.subarray(0, 8)).toEqual(Uint8Array.of(63, 63, 63, 63, 62, 62, 62, 62));
    const ones = Array.from({ length: 100 }, (_, i) => hexRecord(0, i, [i]));
    const small = parseImage(text([...ones, ':00000001FF'].join('\n')), 'ones.hex');
    expect([...small.segments[0]!.data]).toEqual(Array.from({ length: 100 }, (_, i) => i));
    expect(small.segments[0]!.data.buffer.byteLength).toBe(100);
  });

  it('S1/S2 data with S9/S8 termination and an S0 header', () => {
    const s19 = parseImage(
      text(
        [
          srecRecord(0, 0, [0x41, 0x42], 2),
          srecRecord(1, 0x1234, [1, 2], 2),
          srecRecord(9, 0x1234, [], 2),
        ].join('\n'),
      ),
      'a.s19',
    );
    expect(s19.segments.map((s) => [s.address, [...s.data]])).toEqual([[0x1234, [1, 2]]]);
    expect(s19).toMatchObject({ entry: 0x1234, meta: { header: 'AB', terminated: true } });
    const s28 = parseImage(
      text(
        [srecRecord(2, 0x123456, [3], 3), srecRecord(6, 1, [], 3), srecRecord(8, 0x123456, [], 3)].join('\n'),
      ),
      'a.s28',
    );
    expect(s28.segments.map((s) => [s.address, [...s.data]])).toEqual([[0x123456, [3]]]);
    expect(s28.meta.counted).toBe(true);
  });
});

describe('large files detected from the whole content', () => {
  it('a DFU-suffixed binary bigger than the sniffed head, named .dfu', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'stm32-hil-big-'));
    const data = new Uint8Array(64 * 1024).map((_, i) => i & 0xff);
    const file = path.join(dir, 'big.dfu');
    writeFileSync(file, withDfuSuffix(data, { vid: 0x0483, pid: 0xdf11, bcdDevice: 0x0200, bcdDFU: 0x0100 }));
    const img = readImage(file);
    expect(img.format).toBe('dfu-suffix');
    expect(Buffer.compare(img.segments[0]!.data, data)).toBe(0);
  });
});
