import { describe, expect, it } from 'vitest';
import { codeForStatus } from './errors.ts';
import {
  describeStatus,
  parseConfigurationDescriptor,
  parseFunctionalDescriptor,
  parseStatus,
  parseStringDescriptor,
  stateName,
  statusName,
} from './protocol.ts';
import { quirksFor } from './quirks.ts';

// The STM32H743 ROM's configuration descriptor: configuration, two DFU-mode alternates, functional descriptor.
const H743_CONFIG = Uint8Array.from([
  0x09, 0x02, 0x24, 0x00, 0x01, 0x01, 0x00, 0xc0, 0x32, 0x09, 0x04, 0x00, 0x00, 0x00, 0xfe, 0x01, 0x02, 0x04,
  0x09, 0x04, 0x00, 0x01, 0x00, 0xfe, 0x01, 0x02, 0x05, 0x09, 0x21, 0x0b, 0xff, 0x00, 0x00, 0x04, 0x1a, 0x01,
]);

describe('DFU protocol parsing', () => {
  it('parses GETSTATUS with a 24-bit little-endian poll timeout', () => {
    expect(parseStatus(Uint8Array.of(0x00, 0xe8, 0x03, 0x00, 0x04, 0x00))).toEqual({
      status: 0,
      pollTimeoutMs: 1000,
      state: 4,
      iString: 0,
    });
    expect(parseStatus(Uint8Array.of(0x0e, 0x01, 0x02, 0x03, 0x0a, 0x00))?.pollTimeoutMs).toBe(0x030201);
    expect(parseStatus(Uint8Array.of(0, 0, 0, 0, 2))).toBeUndefined();
  });

  it('names states and statuses as DFU 1.1 does', () => {
    expect(stateName(4)).toBe('dfuDNBUSY');
    expect(stateName(9)).toBe('dfuUPLOAD-IDLE');
    expect(statusName(14)).toBe('errUNKNOWN');
    expect(statusName(11)).toBe('errVENDOR');
    expect(describeStatus({ state: 10, status: 14 })).toBe('dfuERROR/errUNKNOWN');
    expect(stateName(42)).toBe('state 42');
  });

  it('derives stable error codes from statuses', () => {
    expect(codeForStatus(1)).toBe('E_DFU_TARGET');
    expect(codeForStatus(3)).toBe('E_DFU_WRITE');
    expect(codeForStatus(5)).toBe('E_DFU_CHECK_ERASED');
    expect(codeForStatus(0)).toBe('E_DFU_STATUS');
  });

  it('walks a configuration descriptor to the DFU interfaces and the functional descriptor', () => {
    const c = parseConfigurationDescriptor(H743_CONFIG)!;
    expect(c.configurationValue).toBe(1);
    expect(c.dfuInterfaces.map((i) => [i.alternateSetting, i.iInterface, i.interfaceProtocol])).toEqual([
      [0, 4, 2],
      [1, 5, 2],
    ]);
    expect(c.functional).toMatchObject({
      attributes: 0x0b,
      detachTimeoutMs: 255,
      transferSize: 1024,
      dfuVersion: 0x011a,
    });
    expect(c.functional).toMatchObject({
      canDownload: true,
      canUpload: true,
      manifestationTolerant: false,
      willDetach: true,
    });
  });

  it('stops at a zero-length descriptor instead of looping', () => {
    const broken = H743_CONFIG.slice();
    broken[9] = 0;
    expect(parseConfigurationDescriptor(broken)?.dfuInterfaces).toEqual([]);
  });

  it('reads a 7-byte DFU 1.0 functional descriptor as version 1.0', () => {
    expect(parseFunctionalDescriptor(Uint8Array.of(7, 0x21, 0x03, 0xff, 0, 0x00, 0x08))).toMatchObject({
      transferSize: 2048,
      dfuVersion: 0x0100,
    });
  });

  it('decodes UTF-16LE string descriptors', () => {
    const s = '@Internal Flash   /0x08000000/16*128Kg';
    const d = Uint8Array.from([2 + 2 * s.length, 3, ...Buffer.from(s, 'utf16le')]);
    expect(parseStringDescriptor(d)).toBe(s);
  });
});

describe('quirks table', () => {
  it('recognises the H74x ROM by its layout and bounds its erases by the datasheet maximum', () => {
    const q = quirksFor({
      vendorId: 0x0483,
      productId: 0xdf11,
      layout: '@Internal Flash   /0x08000000/16*128Kg',
      transferSize: 1024,
    });
    expect(q.part?.id).toBe('stm32h743');
    expect(q.sectorEraseMaxMs).toBe(2200 + 500);
    expect(q.clrStatusFaultsOutsideError).toBe(true);
    expect(q.eraseHang?.from).toBe(0x0810_0000);
  });
  it('keeps conservative bounds for an unknown device', () => {
    const q = quirksFor({ vendorId: 0x1234, productId: 0x5678, transferSize: 64 });
    expect(q.part).toBeUndefined();
    expect(q.eraseHang).toBeUndefined();
    expect(q.sectorEraseMaxMs).toBe(10_000);
  });
  it('an F4 layout gets F4 timing', () => {
    const q = quirksFor({
      vendorId: 0x0483,
      productId: 0xdf11,
      layout: '@Internal Flash  /0x08000000/04*016Kg,01*064Kg,07*128Kg',
      transferSize: 2048,
    });
    expect(q.part?.id).toBe('stm32f407');
    expect(q.eraseHang).toBeUndefined();
  });
});
