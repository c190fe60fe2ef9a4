import { afterEach, describe, expect, it } from 'vitest';
import type { FaultsConfig } from '../farm/schema.ts';
import type { VirtualBoard } from './board.ts';
import { DFU_STATE as S, DFU_STATUS as ST } from './dfuse-rom.ts';
import { SeededRandom } from './faults.ts';
import { dfu, RawDfu, testBoard } from './testing.ts';
import { ENUMERATION_MS } from './timing.ts';

let board: VirtualBoard | undefined;
afterEach(() => board?.close());

function withFaults(faults: Partial<FaultsConfig>) {
  board = testBoard({ faults: { seed: 1, ...faults } });
  return { board, raw: new RawDfu(board) };
}

describe('seeded fault injection', () => {
  it('SeededRandom repeats its sequence for a seed and differs between seeds', () => {
    const seq = (seed: number) =>
      Array.from(
        { length: 5 },
        (
          (r) => () =>
            r.next()
        )(new SeededRandom(seed)),
      );
    expect(seq(7)).toEqual(seq(7));
    expect(seq(7)).not.toEqual(seq(8));
    expect(seq(7).every((x) => x >= 0 && x < 1)).toBe(true);
  });

  it('sectorWriteFailure: a download block fails with errWRITE, reproducibly by seed', async () => {
    const failing = async (seed: number) => {
      board?.close();
      board = testBoard({ faults: { seed, sectorWriteFailure: 0.3 } });
      const raw = new RawDfu(board);
      const failed: number[] = [];
      for (let sector = 0; sector < 16; sector++) {
        await raw.run(() => raw.setAddress(0x08000000 + sector * 0x20000));
        const last = (await raw.run(() => raw.dnload(2, new Uint8Array(1024).fill(sector)))).at(-1)!;
        if (last.state === S.dfuERROR) {
          expect(last.status).toBe(ST.errWRITE);
          expect(board.rom.lastError?.message).toMatch(new RegExp(`sector ${sector}\\b`));
          // Nothing was written.
          expect(board.chip.readFlash(0x08000000 + sector * 0x20000, 1)[0]).toBe(0xff);
          failed.push(sector);
        }
        await raw.recover();
      }
      return failed;
    };
    const seven = await failing(7);
    expect(seven.length).toBeGreaterThan(0);
    expect(seven.length).toBeLessThan(16);
    expect(await failing(7)).toEqual(seven);
    expect(await failing(8)).not.toEqual(seven);
  });

  it('draws once per sector entered, so the rest of a sector that passed passes too', async () => {
    // With p = 0.9 a draw per block would fail nine more blocks almost surely; one draw per sector fails none.
    for (let seed = 1; seed < 200; seed++) {
      board?.close();
      const { raw } = withFaults({ seed, sectorWriteFailure: 0.9 });
      await raw.run(() => raw.setAddress(0x08000000));
      if ((await raw.run(() => raw.dnload(2, new Uint8Array(1024).fill(1)))).at(-1)?.state === S.dfuERROR)
        continue;
      for (let n = 3; n < 12; n++) {
        expect((await raw.run(() => raw.dnload(n, new Uint8Array(1024).fill(1)))).at(-1)?.state).toBe(
          S.dfuDNLOAD_IDLE,
        );
      }
      // The next sector draws again.
      await raw.abort();
      await raw.run(() => raw.setAddress(0x08020000));
      const states: number[] = [];
      for (let i = 0; i < 20; i++) {
        const last = (await raw.run(() => raw.dnload(2, new Uint8Array(32).fill(2)))).at(-1)!;
        states.push(last.state);
        if (last.state !== S.dfuERROR) break;
        await raw.recover();
        await raw.run(() => raw.setAddress(0x08020000));
      }
      expect(states).toContain(S.dfuERROR);
      return;
    }
    throw new Error('no seed below 200 passed the first block');
  });

  it('weak bits read back wrong after programming (seed 004: 0x00 instead of 0x08 at 0x08000002)', async () => {
    const { raw } = withFaults({ weakBits: [{ address: 0x08000002, mask: 0x08 }] });
    await raw.run(() => raw.setAddress(0x08000000));
    expect((await raw.run(() => raw.dnload(2, new Uint8Array(32).fill(0x08)))).at(-1)?.state).toBe(
      S.dfuDNLOAD_IDLE,
    );
    await raw.abort();
    expect(await raw.upload(2, 4)).toEqual({ status: 'ok', data: Uint8Array.of(0x08, 0x08, 0x00, 0x08) });
  });

  it('stallAtTransfer stalls the Nth DFU request only, without changing the DFU state', async () => {
    const { board, raw } = withFaults({ stallAtTransfer: 2 });
    await board.control({ bmRequestType: 0x80, bRequest: 6, wValue: 0x0100, wIndex: 0, wLength: 18 }); // not counted
    expect((await raw.setAddress(0x08000000)).status).toBe('ok'); // 1
    expect((await board.control(dfu.getStatus())).status).toBe('stall'); // 2
    expect(board.rom.state).toBe(S.dfuDNLOAD_SYNC);
    expect(await raw.status()).toMatchObject({ state: S.dfuDNBUSY }); // 3
  });

  it('stopAnsweringAtTransfer: from the Nth DFU request on, every request times out until a reset', async () => {
    const { board, raw } = withFaults({ stopAnsweringAtTransfer: 2 });
    expect((await raw.setAddress(0x08000000)).status).toBe('ok');
    expect(await board.control(dfu.getStatus())).toEqual({ status: 'timeout' });
    expect(
      await board.control({ bmRequestType: 0x80, bRequest: 6, wValue: 0x0100, wIndex: 0, wLength: 18 }),
    ).toEqual({
      status: 'timeout',
    });
    board.reset();
    await board.waitForUsb(5000);
    expect((await raw.status()).state).toBe(S.dfuIDLE); // transfer 1 after the new attach
  });

  it('disconnectAtTransfer: the device vanishes during the Nth request and enumerates again (once)', async () => {
    const { board, raw } = withFaults({ disconnectAtTransfer: 2 });
    const events: string[] = [];
    board.on('detach', () => events.push('detach')).on('attach', () => events.push('attach'));
    const before = board.usb;
    await raw.setAddress(0x08020000);
    expect(await board.control(dfu.getStatus())).toEqual({ status: 'disconnected' });
    expect(events).toEqual(['detach']);
    const after = await board.waitForUsb(5000);
    expect(after).not.toBe(before);
    expect(events).toEqual(['detach', 'attach']);
    expect(board.rom.pointer).toBe(0x08000000); // the interface started again
    await raw.setAddress(0x08020000);
    expect((await raw.status()).state).toBe(S.dfuDNBUSY); // transfer 2 of this attach: no second disconnect
  });

  it('enumerationDelayMs adds to the enumeration time after power-on; neverEnumerates never does', async () => {
    const { board } = withFaults({ enumerationDelayMs: 500 });
    board.setPower(false);
    const t0 = board.clock.now();
    board.setPower(true);
    expect(board.usb).toBeUndefined();
    expect(board.mode).toBe('bootloader');
    const attachedAt = await new Promise<number>((resolve) =>
      board.on('attach', () => resolve(board.clock.now() - t0)),
    );
    expect(attachedAt).toBe(ENUMERATION_MS + 500);
    board.close();
    const dead = withFaults({ neverEnumerates: true }).board;
    expect(dead.mode).toBe('bootloader');
    expect(dead.usb).toBeUndefined();
    await expect(dead.waitForUsb(2000)).rejects.toThrow(/enumerate/);
  });
});
