import { afterEach, describe, expect, it } from 'vitest';
import type { VirtualBoard } from './board.ts';
import { DFU_STATE as S } from './dfuse-rom.ts';
import { testBoard } from './testing.ts';

let board: VirtualBoard | undefined;
afterEach(() => board?.close());

const iface = (request: number, value = 0) => ({
  requestType: 'class' as const,
  recipient: 'interface' as const,
  request,
  value,
  index: 0,
});

async function opened(opts: Parameters<typeof testBoard>[0] = {}) {
  board = testBoard(opts);
  const usb = board.usb!;
  await usb.open();
  if (!usb.configuration) await usb.selectConfiguration(1);
  await usb.claimInterface(0);
  return { board, usb };
}

describe('WebUSB façade (UsbDeviceLike) of the virtual ROM', () => {
  it('reports identity, configuration and layout strings as interface names, like node-usb 3', async () => {
    const { usb } = await opened();
    expect(usb).toMatchObject({
      vendorId: 0x0483,
      productId: 0xdf11,
      deviceVersionMajor: 2,
      deviceVersionMinor: 0,
      deviceVersionSubminor: 0,
      manufacturerName: 'STMicroelectronics',
      productName: 'DFU in FS Mode',
      serialNumber: '200364500000',
      portPath: 'virtual:test',
      opened: true,
    });
    const alts = usb.configuration!.interfaces[0]!.alternates;
    expect(
      alts.map((a) => [
        a.alternateSetting,
        a.interfaceClass,
        a.interfaceSubclass,
        a.interfaceProtocol,
        a.interfaceName,
      ]),
    ).toEqual([
      [0, 0xfe, 1, 2, '@Internal Flash   /0x08000000/16*128Kg'],
      [1, 0xfe, 1, 2, '@Option Bytes   /0x5200201C/01*128 e'],
    ]);
    expect(usb.configuration!.interfaces[0]!.claimed).toBe(true);
  });

  it('runs DFU requests: GETSTATUS as a DataView, DNLOAD bytesWritten, selectAlternateInterface', async () => {
    const { board, usb } = await opened();
    const out = await usb.controlTransferOut(iface(1, 0), Uint8Array.of(0x21, 0, 0, 0x10, 0x08));
    expect(out).toEqual({ status: 'ok', bytesWritten: 5 });
    const st = await usb.controlTransferIn(iface(3), 6);
    expect(st.status).toBe('ok');
    expect(st.data!.getUint8(4)).toBe(S.dfuDNBUSY);
    await usb.controlTransferIn(iface(3), 6);
    expect(board.rom.pointer).toBe(0x08100000);
    await usb.selectAlternateInterface(0, 1);
    expect(board.rom.alternate).toBe(1);
    expect(usb.configuration!.interfaces[0]!.alternate.alternateSetting).toBe(1);
    await expect(usb.selectAlternateInterface(0, 5)).rejects.toMatchObject({ name: 'NotFoundError' });
  });

  it('returns a stall as {status: "stall"} (W3C), not a rejection', async () => {
    const { usb } = await opened();
    expect(await usb.controlTransferIn(iface(2, 1), 16)).toEqual({ status: 'stall' });
    expect(await usb.controlTransferOut(iface(1, 2), new Uint8Array(4096))).toEqual({
      status: 'stall',
      bytesWritten: 0,
    });
  });

  it('rejects with NetworkError once the device has gone, and a new object appears after re-enumeration', async () => {
    const { board, usb } = await opened();
    board.reset();
    expect(usb.opened).toBe(false);
    await expect(usb.controlTransferIn(iface(3), 6)).rejects.toMatchObject({ name: 'NetworkError' });
    await expect(usb.open()).rejects.toMatchObject({ name: 'NetworkError' });
    const again = await board.waitForUsb(5000);
    expect(again).not.toBe(usb);
  });

  it('rejects with TimeoutError after the transfer timeout when the device stops answering', async () => {
    const { board, usb } = await opened({ faults: { seed: 1, stopAnsweringAtTransfer: 1 } });
    const t0 = board.clock.now();
    await expect(usb.controlTransferIn(iface(3), 6, 2500)).rejects.toMatchObject({ name: 'TimeoutError' });
    expect(board.clock.now() - t0).toBe(2500);
    await expect(usb.controlTransferIn(iface(3), 6)).rejects.toMatchObject({ name: 'TimeoutError' });
    expect(board.clock.now() - t0).toBe(3500); // node-usb 3's default: 1000 ms
  });

  it('needs open() and claimInterface() like WebUSB does', async () => {
    board = testBoard();
    const usb = board.usb!;
    await expect(usb.controlTransferIn(iface(3), 6)).rejects.toMatchObject({ name: 'InvalidStateError' });
    await usb.open();
    await expect(usb.selectAlternateInterface(0, 1)).rejects.toMatchObject({ name: 'InvalidStateError' });
  });

  it('shows the rev V bank 2 hang and the SRAM4 refusal through the façade', async () => {
    const { usb } = await opened({ bootloader: 0x90, chipRevision: 'V' });
    const status = async () => {
      const r = await usb.controlTransferIn(iface(3), 6);
      return [r.data!.getUint8(0), r.data!.getUint8(4), r.data!.getUint32(0, true) >>> 8];
    };
    await usb.controlTransferOut(iface(1, 0), Uint8Array.of(0x41, 0, 0, 0x10, 0x08));
    expect(await status()).toEqual([0, S.dfuDNBUSY, 1000]);
    expect(await status()).toEqual([0, S.dfuDNBUSY, 1000]);
    await usb.controlTransferOut(iface(4));
    expect(await status()).toEqual([14, S.dfuERROR, 0]);
    await usb.controlTransferOut(iface(4));
    expect(await status()).toEqual([0, S.dfuIDLE, 0]);
    await usb.controlTransferOut(iface(1, 0), Uint8Array.of(0x21, 0, 0, 0, 0x38));
    await status();
    expect(await status()).toEqual([1, S.dfuERROR, 0]); // errTARGET
  });

  it('reset() restarts the DFU interface in dfuIDLE on the same attachment', async () => {
    const { board, usb } = await opened();
    await usb.controlTransferOut(iface(1, 0), Uint8Array.of(0x41, 0, 0, 0, 0x08));
    await usb.controlTransferIn(iface(3), 6);
    expect(board.rom.state).toBe(S.dfuDNBUSY);
    await usb.reset();
    expect(board.rom.state).toBe(S.dfuIDLE);
    expect(board.usb).toBe(usb);
  });
});
