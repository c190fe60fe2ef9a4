import { afterEach, describe, expect, it } from 'vitest';
import { getPart } from '../parts/catalogue.ts';
import type { VirtualBoard } from './board.ts';
import { DFU_STATE as S, DFU_STATUS as ST } from './dfuse-rom.ts';
import { QUIRK_TABLE, quirksFor } from './quirks.ts';
import { RawDfu, type StatusReply, tempStateFile, testBoard } from './testing.ts';

let board: VirtualBoard | undefined;
afterEach(() => board?.close());

function h743(bootloader: number, extra: Parameters<typeof testBoard>[0] = {}) {
  board = testBoard({ chipRevision: bootloader >= 0xd0 ? 'Y' : 'V', bootloader, ...extra });
  return { board, raw: new RawDfu(board) };
}

const pair = (s: StatusReply) => [s.status, s.state];
const block = (n: number, fill: number) => new Uint8Array(n).fill(fill);

describe('quirk table', () => {
  it('has one row per STM32H74x/75x bootloader version with a summary', () => {
    expect(QUIRK_TABLE.map((r) => r.version)).toEqual([0xd2, 0xd3, 0x90, 0x91, 0x92]);
    const h7 = getPart('stm32h743');
    expect(quirksFor(h7, 0x90).bank2EraseHang).toBe(true);
    expect(quirksFor(h7, 0x92).bank2EraseHang).toBe(false);
    expect(quirksFor(h7, 0x42).summary).toMatch(/not in the quirk table/);
    expect(quirksFor(getPart('stm32f407'), 0x90).bank2EraseHang).toBe(false);
  });
});

describe('bootloader 0x90 (rev V): bank 2 erase hang', () => {
  it('reproduces the STM32CubeProgrammer verbose trace, timestamps included (ROM-exact timing)', async () => {
    const { board, raw } = h743(0x90, { blockingGetStatus: true });
    const clock = board.clock;
    const log: [number, number, number][] = [];
    const t0 = clock.now();
    const getStatus = async () => {
      const s = await raw.status();
      log.push([Math.round(clock.now() - t0), s.status, s.state]);
      return s;
    };
    // "Status: 0, State: 9" -> "sending an abort request" -> state 2
    await raw.upload(2, 1024);
    await getStatus();
    await raw.abort();
    await getStatus();
    // "sending a page erase request @: 0x08000000" / "data: 4100000008": the first GETSTATUS comes back when
    // the erase is done (0.9 s; the trace shows 903 ms), the second at once with dfuDNLOAD-IDLE.
    expect(await raw.dnload(0, [0x41, 0x00, 0x00, 0x00, 0x08])).toEqual({ status: 'ok', bytesWritten: 5 });
    await getStatus();
    await getStatus();
    // "sending a page erase request @: 0x08100000" / "data: 4100001008": answered at once (16 ms in the
    // trace), state 4 twice; CubeProgrammer waits 2 s and sends CLRSTATUS.
    const t1 = clock.now();
    await raw.dnload(0, [0x41, 0x00, 0x00, 0x10, 0x08]);
    await getStatus();
    await getStatus();
    await clock.sleep(2000);
    await raw.clrStatus();
    await getStatus();
    await getStatus();
    await raw.clrStatus();
    await getStatus();
    await getStatus();
    expect(log).toEqual([
      [0, 0, 9],
      [0, 0, 2],
      [900, 0, 4],
      [900, 0, 5],
      [900, 0, 4],
      [900, 0, 4],
      [2900, 14, 10],
      [2900, 14, 10],
      [2900, 0, 2],
      [2900, 0, 2],
    ]);
    expect(t1 - t0).toBe(900);
    // Decision (quirks.ts): the erase reached the flash controller, so the sector is erased; the trace's
    // "erasing sector 0008 @: 0x08100000 done" agrees.
    expect(board.chip.readFlash(0x08100000, 16).every((b) => b === 0xff)).toBe(true);
  });

  it('reproduces the dfu-util trace: "Poll timeout 1000 ms" then 0 on bank 1, 1000 ms forever on bank 2', async () => {
    const { raw } = h743(0x90);
    const polls = async (address: number, max: number) => {
      const seen = await raw.run(() => raw.erase(address), max);
      return seen.map((s) => s.pollTimeout);
    };
    expect(await polls(0x080c0000, 50)).toEqual([1000, 0]);
    expect(await polls(0x080e0000, 50)).toEqual([1000, 0]);
    const bank2 = await raw.run(() => raw.erase(0x08100000), 50);
    expect(bank2).toHaveLength(50);
    expect(bank2.every((s) => s.state === S.dfuDNBUSY && s.pollTimeout === 1000 && s.status === ST.OK)).toBe(
      true,
    );
    // 50 polls at 1000 ms each: the device stayed busy for 50 s of clock time and would stay forever.
  });

  it('the default (non-blocking) model shows the same states to a host that honours bwPollTimeout', async () => {
    const { raw } = h743(0x90);
    expect((await raw.run(() => raw.erase(0x08000000))).map(pair)).toEqual([
      [0, S.dfuDNBUSY],
      [0, S.dfuDNLOAD_IDLE],
    ]);
    expect((await raw.run(() => raw.erase(0x08100000), 3)).map(pair)).toEqual([
      [0, S.dfuDNBUSY],
      [0, S.dfuDNBUSY],
      [0, S.dfuDNBUSY],
    ]);
    await raw.clrStatus();
    expect(pair(await raw.status())).toEqual([ST.errUNKNOWN, S.dfuERROR]);
    await raw.abort(); // ABORT does not leave dfuERROR
    expect(pair(await raw.status())).toEqual([ST.errUNKNOWN, S.dfuERROR]);
    await raw.clrStatus();
    expect(pair(await raw.status())).toEqual([ST.OK, S.dfuIDLE]);
  });

  it('after a mass erase, bank 2 programs fine (the dfu-util :force:mass-erase workaround)', async () => {
    const { board, raw } = h743(0x90);
    board.chip.programFlash(0x08100000, block(32, 0));
    expect((await raw.run(() => raw.erase())).at(-1)?.state).toBe(S.dfuDNLOAD_IDLE);
    await raw.run(() => raw.setAddress(0x08100000));
    for (let n = 2; n < 6; n++) {
      expect((await raw.run(() => raw.dnload(n, block(1024, n)))).at(-1)?.state).toBe(S.dfuDNLOAD_IDLE);
    }
    expect(board.chip.readFlash(0x08100000 + 3 * 1024, 4)).toEqual(Uint8Array.of(5, 5, 5, 5));
  });

  it('refuses SRAM1-3 and ITCM (errTARGET), which 0xD2 accepts', async () => {
    for (const [version, expected] of [
      [0x90, ST.errTARGET],
      [0xd2, ST.OK],
    ] as const) {
      const { raw } = h743(version);
      for (const address of [0x30000000, 0x30047ff0, 0x00000100]) {
        expect((await raw.run(() => raw.setAddress(address))).at(-1)?.status).toBe(expected);
        await raw.recover();
        expect((await raw.status()).state).toBe(S.dfuIDLE);
      }
      board?.close();
      board = undefined;
    }
  });

  it('needs an extra reset after power off/on before the bootloader answers (mode "silent")', async () => {
    const { board } = h743(0x90);
    board.setPower(false);
    board.setPower(true);
    expect(board.mode).toBe('silent');
    await expect(board.waitForUsb(5000)).rejects.toThrow(/no answer within 5000 ms/);
    board.reset();
    expect(board.mode).toBe('bootloader');
    const usb = await board.waitForUsb(5000);
    expect(usb.productName).toBe('DFU in FS Mode');
    // 0xD2 answers straight after power-on.
    board.close();
    const y = h743(0xd2).board;
    y.setPower(false);
    y.setPower(true);
    expect(y.mode).toBe('bootloader');
    await y.waitForUsb(5000);
  });

  it('leave does not start an application whose stack pointer is at the end of RAM until a reset', async () => {
    const vector = (sp: number) => {
      const v = new Uint8Array(32).fill(0xff);
      new DataView(v.buffer).setUint32(0, sp, true);
      new DataView(v.buffer).setUint32(4, 0x08000299, true);
      return v;
    };
    const leave = async (version: number, sp: number) => {
      const file = tempStateFile();
      const { board, raw } = h743(version, { stateFile: file });
      board.chip.programFlash(0x08000000, vector(sp));
      await raw.run(() => raw.setAddress(0x08000000));
      await raw.dnload(0, []);
      expect((await raw.status()).state).toBe(S.dfuMANIFEST);
      expect(board.usb).toBeUndefined();
      return board;
    };
    // 0x90, SP at the end of DTCM: the jump faults, nothing answers.
    let b = await leave(0x90, 0x20020000);
    expect(b.mode).toBe('silent');
    b.setBoot0(false);
    b.reset();
    expect(b.mode).toBe('application');
    b.close();
    // 0x90, SP 16 bytes below the end of AXI SRAM: the jump works.
    b = await leave(0x90, 0x24080000 - 16);
    expect(b.mode).toBe('application');
    b.close();
    // 0xD2 and 0x92: no jump issue.
    for (const v of [0xd2, 0x92]) {
      b = await leave(v, 0x20020000);
      expect(b.mode).toBe('application');
      b.close();
    }
    board = undefined;
  });
});

describe('other versions', () => {
  it('0xD2 (rev Y) erases and programs bank 2', async () => {
    const { board, raw } = h743(0xd2);
    board.chip.programFlash(0x08100000, block(32, 0));
    expect((await raw.run(() => raw.erase(0x08100000))).map(pair)).toEqual([
      [0, S.dfuDNBUSY],
      [0, S.dfuDNLOAD_IDLE],
    ]);
    await raw.run(() => raw.setAddress(0x08100000));
    expect((await raw.run(() => raw.dnload(2, block(1024, 0xa5)))).at(-1)?.state).toBe(S.dfuDNLOAD_IDLE);
    expect(board.chip.readFlash(0x08100000, 1)[0]).toBe(0xa5);
  });

  it('0x92 fixed the bank 2 erase', async () => {
    const { raw } = h743(0x92);
    for (const address of [0x08100000, 0x08120000]) {
      expect((await raw.run(() => raw.erase(address))).at(-1)?.state).toBe(S.dfuDNLOAD_IDLE);
    }
  });

  it('0xD3: mass erase reports success and erases nothing; the next write to the old words fails', async () => {
    const { board, raw } = h743(0xd3);
    board.chip.programFlash(0x08000000, block(32, 0x42));
    expect((await raw.run(() => raw.erase())).map(pair)).toEqual([
      [0, S.dfuDNBUSY],
      [0, S.dfuDNLOAD_IDLE],
    ]);
    expect(board.chip.readFlash(0x08000000, 1)[0]).toBe(0x42);
    await raw.run(() => raw.setAddress(0x08000000));
    expect((await raw.run(() => raw.dnload(2, block(32, 0x10)))).at(-1)).toMatchObject({
      state: S.dfuERROR,
      status: ST.errPROG,
    });
    // Sector erase still works on 0xD3.
    await raw.clrStatus();
    expect((await raw.run(() => raw.erase(0x08000000))).at(-1)?.state).toBe(S.dfuDNLOAD_IDLE);
    expect(board.chip.readFlash(0x08000000, 1)[0]).toBe(0xff);
  });

  it('0x91: bank 2 erase reports done at once; a bank 2 command before the bank finished hangs', async () => {
    const { board, raw } = h743(0x91);
    // An impatient host (polls without sleeping): done immediately, then the next erase hangs.
    await raw.erase(0x08100000);
    expect(await raw.status()).toMatchObject({ state: S.dfuDNBUSY, pollTimeout: 1000 });
    expect(await raw.status()).toMatchObject({ state: S.dfuDNLOAD_IDLE });
    await raw.erase(0x08120000);
    for (let i = 0; i < 5; i++) {
      expect((await raw.status()).state).toBe(S.dfuDNBUSY);
      await board.clock.sleep(1000);
    }
    await raw.clrStatus();
    await raw.clrStatus();
    // A host that honours bwPollTimeout (1000 ms >= the 0.9 s erase) never sees the hang.
    for (const address of [0x08140000, 0x08160000]) {
      expect((await raw.run(() => raw.erase(address))).at(-1)?.state).toBe(S.dfuDNLOAD_IDLE);
    }
    await raw.run(() => raw.setAddress(0x08160000));
    expect((await raw.run(() => raw.dnload(2, block(1024, 1)))).at(-1)?.state).toBe(S.dfuDNLOAD_IDLE);
    // Bank 1 is not affected, even right after a bank 2 erase.
    await raw.erase(0x08180000);
    await raw.status();
    expect((await raw.status()).state).toBe(S.dfuDNLOAD_IDLE);
    expect((await raw.run(() => raw.erase(0x08000000))).at(-1)?.state).toBe(S.dfuDNLOAD_IDLE);
  });
});
