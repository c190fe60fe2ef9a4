import { afterEach, describe, expect, it } from 'vitest';
import type { VirtualBoard } from './board.ts';
import { testBoard } from './testing.ts';

const hex = (r: Awaited<ReturnType<VirtualBoard['control']>>) =>
  r.status === 'ok' && r.data ? Buffer.from(r.data).toString('hex') : r.status;
const getDescriptor = (board: VirtualBoard, type: number, index: number, wLength: number, rt = 0x80) =>
  board.control({
    bmRequestType: rt,
    bRequest: 6,
    wValue: (type << 8) | index,
    wIndex: type === 3 ? 0x0409 : 0,
    wLength,
  });

let board: VirtualBoard | undefined;
afterEach(() => board?.close());

describe('ROM bootloader descriptors (STM32H743, USB 2.0 chapter 9, DFU 1.1 section 4)', () => {
  it('device descriptor: VID 0483, PID DF11, bcdDevice 0x0200, strings 1-3, one configuration', async () => {
    board = testBoard();
    expect(hex(await getDescriptor(board, 1, 0, 18))).toBe('1201000200000040830411df000201020301');
  });

  it('never returns more than wLength (the 8-byte first read of enumeration, a 9-byte config header)', async () => {
    board = testBoard();
    expect(hex(await getDescriptor(board, 1, 0, 8))).toBe('1201000200000040');
    expect(hex(await getDescriptor(board, 2, 0, 9))).toBe('090224000101 00c032'.replace(' ', ''));
    expect(hex(await getDescriptor(board, 3, 2, 4))).toBe('1e034400');
  });

  it('configuration: one DFU interface, one alternate per layout string, then the functional descriptor', async () => {
    board = testBoard();
    expect(hex(await getDescriptor(board, 2, 0, 255))).toBe(
      [
        '090224000101' + '00c032',
        '090400000' + '0fe010204', // alt 0: class FE, subclass 1, protocol 2, iInterface 4
        '090400010' + '0fe010205', // alt 1, iInterface 5
        '09210bff00' + '00041a01', // bmAttributes 0x0B, wDetachTimeOut 255, wTransferSize 1024, bcdDFU 0x011A
      ].join(''),
    );
  });

  it('F4 bootloader: wTransferSize 2048, bcdDevice 0x2200, four alternates', async () => {
    board = testBoard({ part: 'stm32f407', chipRevision: 'Y', bootloader: 0x90 });
    const cfg = await getDescriptor(board, 2, 0, 255);
    expect(cfg.status === 'ok' && cfg.data!.length).toBe(9 + 4 * 9 + 9);
    expect(hex(cfg).slice(-18)).toBe('09210bff000008' + '1a01');
    expect(hex(await getDescriptor(board, 1, 0, 18)).slice(24, 28)).toBe('0022');
  });

  it('strings: LANGID 0x0409, manufacturer, "DFU in FS Mode", serial 200364500000, layout strings', async () => {
    board = testBoard();
    expect(hex(await getDescriptor(board, 3, 0, 255))).toBe('04030904');
    const text = async (i: number) => {
      const r = await getDescriptor(board!, 3, i, 255);
      if (r.status !== 'ok' || !r.data) throw new Error(r.status);
      expect(r.data[0]).toBe(r.data.length);
      expect(r.data[1]).toBe(3);
      return Buffer.from(r.data.subarray(2)).toString('utf16le');
    };
    expect(await text(1)).toBe('STMicroelectronics');
    expect(await text(2)).toBe('DFU in FS Mode');
    expect(await text(3)).toBe('200364500000');
    expect(await text(4)).toBe('@Internal Flash   /0x08000000/16*128Kg');
    expect(await text(5)).toBe('@Option Bytes   /0x5200201C/01*128 e');
    expect((await getDescriptor(board, 3, 6, 255)).status).toBe('stall');
  });

  it('stalls descriptors a full-speed device does not have (device qualifier, other-speed, BOS)', async () => {
    board = testBoard();
    for (const type of [6, 7, 15]) expect((await getDescriptor(board, type, 0, 10)).status).toBe('stall');
  });

  it('serves the DFU functional descriptor to an interface GET_DESCRIPTOR only', async () => {
    board = testBoard();
    expect(hex(await getDescriptor(board, 0x21, 0, 9, 0x81))).toBe('09210bff0000041a01');
    expect((await getDescriptor(board, 0x21, 0, 9, 0x80)).status).toBe('stall');
  });
});

describe('standard requests (USB 2.0 section 9.4)', () => {
  const std = (
    b: VirtualBoard,
    bmRequestType: number,
    bRequest: number,
    wValue = 0,
    wIndex = 0,
    wLength = 0,
  ) => b.control({ bmRequestType, bRequest, wValue, wIndex, wLength });

  it('GET_STATUS: self-powered device; interface and endpoint 0 zero; other endpoints stall', async () => {
    board = testBoard();
    expect(hex(await std(board, 0x80, 0, 0, 0, 2))).toBe('0100');
    expect(hex(await std(board, 0x81, 0, 0, 0, 2))).toBe('0000');
    expect(hex(await std(board, 0x82, 0, 0, 0x80, 2))).toBe('0000');
    expect((await std(board, 0x82, 0, 0, 0x81, 2)).status).toBe('stall');
  });

  it('configuration and alternate setting: GET/SET_CONFIGURATION, GET/SET_INTERFACE', async () => {
    board = testBoard();
    expect(hex(await std(board, 0x80, 8, 0, 0, 1))).toBe('01');
    expect(hex(await std(board, 0x81, 10, 0, 0, 1))).toBe('00');
    expect((await std(board, 0x01, 11, 1, 0)).status).toBe('ok');
    expect(hex(await std(board, 0x81, 10, 0, 0, 1))).toBe('01');
    expect((await std(board, 0x01, 11, 2, 0)).status).toBe('stall');
    expect((await std(board, 0x00, 9, 2)).status).toBe('stall');
    // Unconfigured: DFU requests and SET_INTERFACE stall.
    expect((await std(board, 0x00, 9, 0)).status).toBe('ok');
    expect(hex(await std(board, 0x80, 8, 0, 0, 1))).toBe('00');
    expect(
      (await board.control({ bmRequestType: 0xa1, bRequest: 3, wValue: 0, wIndex: 0, wLength: 6 })).status,
    ).toBe('stall');
    expect((await std(board, 0x01, 11, 0, 0)).status).toBe('stall');
  });

  it('stalls unknown standard and vendor requests', async () => {
    board = testBoard();
    expect((await std(board, 0x80, 12, 0, 0, 2)).status).toBe('stall');
    expect((await std(board, 0xc0, 1, 0, 0, 4)).status).toBe('stall');
    expect((await std(board, 0x00, 3, 2)).status).toBe('stall'); // TEST_MODE is a high-speed feature
  });
});
