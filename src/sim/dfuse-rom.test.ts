import { afterEach, describe, expect, it } from 'vitest';
import type { VirtualBoard } from './board.ts';
import { RDP_LEVEL1 } from './chip.ts';
import { DFU_STATE as S, DFU_STATUS as ST } from './dfuse-rom.ts';
import { dfu, RawDfu, testBoard } from './testing.ts';

let board: VirtualBoard | undefined;
afterEach(() => board?.close());

function setup(opts: Parameters<typeof testBoard>[0] = {}) {
  board = testBoard(opts);
  return { board, raw: new RawDfu(board) };
}

const block = (n: number, fill: number) => new Uint8Array(n).fill(fill);

describe('DfuSe state machine (DFU 1.1 + AN3156)', () => {
  it('starts in dfuIDLE; GETSTATE reports the state without changing it', async () => {
    const { board, raw } = setup();
    const r = await board.control(dfu.getState());
    expect(r).toEqual({ status: 'ok', data: Uint8Array.of(S.dfuIDLE) });
    expect(await raw.status()).toEqual({ status: ST.OK, pollTimeout: 0, state: S.dfuIDLE });
  });

  it('a command executes on GETSTATUS: dfuDNLOAD-SYNC -> dfuDNBUSY (bwPollTimeout) -> dfuDNLOAD-IDLE', async () => {
    const { board, raw } = setup();
    expect(await raw.setAddress(0x08020000)).toEqual({ status: 'ok', bytesWritten: 5 });
    expect((await board.control(dfu.getState())).status === 'ok' && board.rom.state).toBe(S.dfuDNLOAD_SYNC);
    expect(board.rom.pointer).toBe(0x08000000); // not executed yet
    expect(await raw.status()).toMatchObject({ state: S.dfuDNBUSY, status: ST.OK });
    expect(board.rom.pointer).toBe(0x08020000);
    expect(await raw.status()).toMatchObject({ state: S.dfuDNLOAD_IDLE, status: ST.OK, pollTimeout: 0 });
  });

  it('sector erase: 1000 ms bwPollTimeout, busy for the 0.9 s erase on the clock, sector reads 0xFF', async () => {
    const { board, raw } = setup();
    board.chip.programFlash(0x08020000, block(32, 0x11));
    await raw.erase(0x08020000);
    const t0 = board.clock.now();
    expect(await raw.status()).toEqual({ status: ST.OK, pollTimeout: 1000, state: S.dfuDNBUSY });
    // A GETSTATUS before the busy time elapsed answers busy again, with the time left.
    await board.clock.sleep(400);
    expect(await raw.status()).toEqual({ status: ST.OK, pollTimeout: 500, state: S.dfuDNBUSY });
    await board.clock.sleep(499);
    expect((await raw.status()).state).toBe(S.dfuDNBUSY);
    await board.clock.sleep(1);
    expect(board.clock.now() - t0).toBe(900);
    expect(await raw.status()).toEqual({ status: ST.OK, pollTimeout: 0, state: S.dfuDNLOAD_IDLE });
    expect(board.chip.readFlash(0x08020000, 32).every((b) => b === 0xff)).toBe(true);
  });

  it('timeScale divides busy time and reported bwPollTimeout', async () => {
    const { board, raw } = setup({ timeScale: 10 });
    const seen = await raw.run(() => raw.erase(0x08000000));
    expect(seen.map((s) => [s.state, s.pollTimeout])).toEqual([
      [S.dfuDNBUSY, 100],
      [S.dfuDNLOAD_IDLE, 0],
    ]);
    expect(board.clock.now()).toBe(100);
  });

  it('mass erase (0x41 alone) erases both banks and reports the mass erase time', async () => {
    const { board, raw } = setup();
    board.chip.programFlash(0x08000000, block(32, 1));
    board.chip.programFlash(0x081e0000, block(32, 2));
    const seen = await raw.run(() => raw.erase());
    expect(seen[0]).toEqual({ status: ST.OK, pollTimeout: 3000, state: S.dfuDNBUSY });
    expect(seen.at(-1)?.state).toBe(S.dfuDNLOAD_IDLE);
    expect(board.chip.readFlash(0x08000000, 1)[0]).toBe(0xff);
    expect(board.chip.readFlash(0x081e0000, 1)[0]).toBe(0xff);
  });

  it('writes block n at pointer + (n - 2) * wTransferSize and programs flash-word time', async () => {
    const { board, raw } = setup();
    await raw.run(() => raw.setAddress(0x08040000));
    const seen = await raw.run(() => raw.dnload(3, block(1024, 0x5a)));
    expect(seen[0]).toEqual({ status: ST.OK, pollTimeout: 1, state: S.dfuDNBUSY }); // 32 words x 16 us
    expect(seen.at(-1)?.state).toBe(S.dfuDNLOAD_IDLE);
    expect(board.chip.readFlash(0x08040000 + 1024, 1024).every((b) => b === 0x5a)).toBe(true);
    expect(board.chip.readFlash(0x08040000, 1)[0]).toBe(0xff);
  });

  it('UPLOAD block 0 lists the commands; block n reads pointer + (n - 2) * wTransferSize', async () => {
    const { board, raw } = setup();
    expect(await raw.upload(0, 4)).toEqual({ status: 'ok', data: Uint8Array.of(0x00, 0x21, 0x41, 0x92) });
    board.chip.programFlash(
      0x08000400,
      Uint8Array.from({ length: 32 }, (_, i) => i),
    );
    const r = await raw.upload(3, 16);
    expect(r).toEqual({ status: 'ok', data: Uint8Array.from({ length: 16 }, (_, i) => i) });
    expect(board.rom.state).toBe(S.dfuUPLOAD_IDLE);
    // A zero-length UPLOAD ends the upload.
    await raw.upload(2, 0);
    expect(board.rom.state).toBe(S.dfuIDLE);
  });

  it('the CubeProgrammer opening: UPLOAD leaves dfuUPLOAD-IDLE, ABORT returns to dfuIDLE', async () => {
    const { raw } = setup();
    await raw.upload(2, 1024);
    expect((await raw.status()).state).toBe(S.dfuUPLOAD_IDLE);
    await raw.abort();
    expect((await raw.status()).state).toBe(S.dfuIDLE);
  });

  it('requests in the wrong state stall and enter dfuERROR (errSTALLEDPKT)', async () => {
    const { raw } = setup();
    await raw.run(() => raw.setAddress(0x08000000));
    // UPLOAD in dfuDNLOAD-IDLE
    expect((await raw.upload(2, 64)).status).toBe('stall');
    expect(await raw.status()).toEqual({ status: ST.errSTALLEDPKT, pollTimeout: 0, state: S.dfuERROR });
    await raw.clrStatus();
    expect((await raw.status()).state).toBe(S.dfuIDLE);
    // DNLOAD in dfuUPLOAD-IDLE
    await raw.upload(2, 64);
    expect((await raw.dnload(2, block(64, 0))).status).toBe('stall');
    expect((await raw.status()).state).toBe(S.dfuERROR);
    await raw.clrStatus();
    // DNLOAD longer than wTransferSize, UPLOAD block 1, unknown command
    expect((await raw.dnload(2, block(2048, 0))).status).toBe('stall');
    await raw.clrStatus();
    expect((await raw.upload(1, 16)).status).toBe('stall');
    await raw.clrStatus();
    expect((await raw.dnload(0, [0x55, 1, 2])).status).toBe('stall');
    expect((await raw.status()).status).toBe(ST.errSTALLEDPKT);
  });

  it('CLRSTATUS outside dfuERROR gives dfuERROR/errUNKNOWN (ST middleware); in dfuERROR it returns to dfuIDLE', async () => {
    const { raw } = setup();
    await raw.clrStatus();
    expect(await raw.status()).toEqual({ status: ST.errUNKNOWN, pollTimeout: 0, state: S.dfuERROR });
    await raw.clrStatus();
    expect(await raw.status()).toEqual({ status: ST.OK, pollTimeout: 0, state: S.dfuIDLE });
  });

  it('ABORT is ignored in dfuDNBUSY (it does not cut an erase short)', async () => {
    const { raw } = setup();
    await raw.erase(0x08000000);
    await raw.status();
    await raw.abort();
    expect((await raw.status()).state).toBe(S.dfuDNBUSY);
  });

  it('SRAM4 (0x38000000) is refused: set address -> dfuERROR/errTARGET ("Not flash Memory" in CubeProgrammer)', async () => {
    const { board, raw } = setup();
    const seen = await raw.run(() => raw.setAddress(0x38000000));
    expect(seen.map((s) => [s.state, s.status])).toEqual([
      [S.dfuDNBUSY, ST.OK],
      [S.dfuERROR, ST.errTARGET],
    ]);
    expect(board.rom.lastError).toMatchObject({
      address: 0x38000000,
      message: expect.stringMatching(/SRAM4/),
    });
    expect(board.rom.pointer).toBe(0x08000000);
  });

  it('addresses outside the selected alternate fail with errTARGET (flash write on the option-bytes alternate)', async () => {
    const { board, raw } = setup();
    await board.control({ bmRequestType: 0x01, bRequest: 11, wValue: 1, wIndex: 0, wLength: 0 });
    await raw.run(() => raw.setAddress(0x08000000));
    const seen = await raw.run(() => raw.dnload(2, block(32, 0)));
    expect(seen.at(-1)).toMatchObject({ state: S.dfuERROR, status: ST.errTARGET });
    await raw.clrStatus();
    expect(await raw.upload(2, 16)).toEqual({ status: 'stall' });
    expect((await raw.status()).status).toBe(ST.errTARGET);
    await raw.clrStatus();
    expect((await raw.run(() => raw.erase(0x5200201c))).at(-1)?.status).toBe(ST.errTARGET);
  });

  it('RAM the bootloader reaches is writable and readable on alt 0; its own RAM is refused', async () => {
    const { board, raw } = setup();
    await raw.run(() => raw.setAddress(0x24040000));
    expect((await raw.run(() => raw.dnload(2, [1, 2, 3, 4]))).at(-1)?.state).toBe(S.dfuDNLOAD_IDLE);
    await raw.abort();
    expect(await raw.upload(2, 4)).toEqual({ status: 'ok', data: Uint8Array.of(1, 2, 3, 4) });
    await raw.abort();
    expect((await raw.run(() => raw.setAddress(0x24001000))).at(-1)?.status).toBe(ST.errTARGET);
    expect(board.rom.lastError?.message).toMatch(/used by the bootloader/);
  });

  it('a second write to a programmed H7 flash word fails with errPROG at that word', async () => {
    const { board, raw } = setup();
    await raw.run(() => raw.setAddress(0x08000000));
    expect((await raw.run(() => raw.dnload(2, block(64, 0x12)))).at(-1)?.state).toBe(S.dfuDNLOAD_IDLE);
    const again = await raw.run(() => raw.dnload(2, block(64, 0x34)));
    expect(again.at(-1)).toMatchObject({ state: S.dfuERROR, status: ST.errPROG });
    expect(board.rom.lastError?.address).toBe(0x08000000);
    expect(board.chip.readFlash(0x08000000, 1)[0]).toBe(0x12);
  });

  it('RDP level 1: UPLOAD of flash stalls with errVENDOR, erase too; read unprotect mass-erases to level 0', async () => {
    const { board, raw } = setup();
    board.chip.programFlash(0x08000000, block(32, 0x77));
    board.chip.setOptions({ rdp: RDP_LEVEL1 });
    expect(await raw.upload(2, 64)).toEqual({ status: 'stall' });
    expect(await raw.status()).toMatchObject({ state: S.dfuERROR, status: ST.errVENDOR });
    await raw.clrStatus();
    expect((await raw.run(() => raw.erase(0x08000000))).at(-1)?.status).toBe(ST.errVENDOR);
    await raw.clrStatus();
    // Set Address Pointer is still allowed under RDP (AN2662 figure 58).
    expect((await raw.run(() => raw.setAddress(0x08000000))).at(-1)?.state).toBe(S.dfuDNLOAD_IDLE);
    // Read unprotect: DNBUSY with the mass erase time, then the device resets and re-enumerates.
    const events: string[] = [];
    board.on('detach', () => events.push('detach')).on('attach', () => events.push('attach'));
    await raw.dnload(0, [0x92]);
    expect(await raw.status()).toMatchObject({ state: S.dfuDNBUSY, pollTimeout: 3000 });
    expect(events).toEqual(['detach']);
    expect((await board.control(dfu.getStatus())).status).toBe('disconnected');
    await board.waitForUsb(10_000);
    expect(events).toEqual(['detach', 'attach']);
    expect(board.chip.rdpLevel).toBe(0);
    expect(board.chip.readFlash(0x08000000, 1)[0]).toBe(0xff);
    expect(await raw.status()).toMatchObject({ state: S.dfuIDLE, status: ST.OK });
  });

  it('option bytes alternate: reads FLASH_OPTSR (RDP 0xAA) and a write resets the device with new options', async () => {
    const { board, raw } = setup();
    await board.control({ bmRequestType: 0x01, bRequest: 11, wValue: 1, wIndex: 0, wLength: 0 });
    await raw.run(() => raw.setAddress(0x5200201c));
    await raw.abort();
    const r = await raw.upload(2, 308);
    if (r.status !== 'ok' || !r.data) throw new Error('upload failed');
    expect(r.data.length).toBe(308);
    const view = new DataView(r.data.buffer, r.data.byteOffset);
    expect((view.getUint32(0, true) >>> 8) & 0xff).toBe(0xaa);
    expect(view.getUint32(0x24, true)).toBe(0x1ff00800); // BOOT_CURR: BOOT_ADD1 0x1FF0, BOOT_ADD0 0x0800
    await raw.abort();
    // Protect sector 3 through WPSN_PRG1R and write the block back.
    const image = new Uint8Array(r.data);
    new DataView(image.buffer).setUint32(0x20, 0xf7, true);
    await raw.dnload(2, image);
    expect((await raw.status()).state).toBe(S.dfuDNBUSY);
    expect(board.usb).toBeUndefined();
    await board.waitForUsb(10_000);
    expect(board.chip.options.writeProtected).toEqual([3]);
  });

  it('option bytes: writing RDP 0xBB sets level 1 after the reset; level 2 (0xCC) is refused', async () => {
    const { board, raw } = setup();
    const writeOptsr = async (rdp: number) => {
      await board.control({ bmRequestType: 0x01, bRequest: 11, wValue: 1, wIndex: 0, wLength: 0 });
      await raw.run(() => raw.setAddress(0x52002020)); // FLASH_OPTSR_PRG
      const word = new Uint8Array(4);
      new DataView(word.buffer).setUint32(0, 0x000300f0 | (rdp << 8), true);
      await raw.dnload(2, word);
      return raw.status();
    };
    expect((await writeOptsr(0xbb)).state).toBe(S.dfuDNBUSY);
    await board.waitForUsb(10_000);
    expect(board.chip.rdpLevel).toBe(1);
    expect((await writeOptsr(0xcc)).state).toBe(S.dfuDNBUSY);
    expect(await raw.status()).toMatchObject({ state: S.dfuERROR, status: ST.errVENDOR });
    expect(board.chip.rdpLevel).toBe(1);
  });

  it('leave: zero-length DNLOAD -> dfuMANIFEST, then the device detaches and the application runs', async () => {
    const { board, raw } = setup();
    const sp = Uint8Array.of(0x00, 0x00, 0x02, 0x20, 0x99, 0x02, 0x00, 0x08); // SP 0x20020000 (DTCM end)
    board.chip.programFlash(0x08000000, new Uint8Array([...sp, ...new Array(24).fill(0xff)]));
    await raw.run(() => raw.setAddress(0x08000000));
    await raw.dnload(0, []);
    expect(board.rom.state).toBe(S.dfuMANIFEST_SYNC);
    expect(await raw.status()).toMatchObject({ state: S.dfuMANIFEST });
    expect(board.usb).toBeUndefined();
    expect(board.mode).toBe('application');
    expect((await raw.board.control(dfu.getStatus())).status).toBe('disconnected');
  });

  it('DETACH re-enumerates the same bootloader (ST middleware with bitWillDetach)', async () => {
    const { board } = setup();
    const first = board.usb;
    await board.control({ bmRequestType: 0x21, bRequest: 0, wValue: 1000, wIndex: 0, wLength: 0 });
    expect(board.usb).toBeUndefined();
    const again = await board.waitForUsb(10_000);
    expect(again).not.toBe(first);
    expect(board.mode).toBe('bootloader');
  });

  it('reads the bootloader version byte from system memory (AN2606: 0x1FF1E7FE)', async () => {
    const { raw } = setup({ bootloader: 0x92, chipRevision: 'V' });
    await raw.run(() => raw.setAddress(0x1ff1e7fe));
    await raw.abort();
    expect(await raw.upload(2, 2)).toEqual({ status: 'ok', data: Uint8Array.of(0x92, 0x00) });
  });
});
