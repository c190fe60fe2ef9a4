import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { VirtualClock } from '../util/clock.ts';
import { createVirtualBoard, type VirtualBoard } from './board.ts';
import { DFU_STATE as S } from './dfuse-rom.ts';
import { dfu, RawDfu, tempStateFile, testBoard } from './testing.ts';

const boards: VirtualBoard[] = [];
afterEach(() => {
  for (const b of boards.splice(0)) b.close();
});
function make(opts: Parameters<typeof testBoard>[0] = {}) {
  const b = testBoard(opts);
  boards.push(b);
  return b;
}

describe('VirtualBoard power, BOOT0 and reset', () => {
  it('a fresh chip is powered with BOOT0 high: the bootloader is already enumerated', () => {
    const b = make();
    expect(b.mode).toBe('bootloader');
    expect(b.usb?.portPath).toBe('virtual:test');
    expect(b.portPath).toBe('virtual:test');
  });

  it('power off detaches; power on boots by BOOT0 after the enumeration delay', async () => {
    const b = make();
    const events: string[] = [];
    b.on('attach', () => events.push('attach')).on('detach', () => events.push('detach'));
    b.setPower(false);
    expect([b.mode, b.usb, events]).toEqual(['off', undefined, ['detach']]);
    expect(await b.control(dfu.getStatus())).toEqual({ status: 'disconnected' });
    b.setBoot0(false);
    b.setPower(true);
    expect(b.mode).toBe('application');
    await b.clock.sleep(1000);
    expect(b.usb).toBeUndefined();
    b.setBoot0(true);
    expect(b.mode).toBe('application'); // BOOT0 is sampled at reset
    b.reset();
    expect(b.mode).toBe('bootloader');
    await b.waitForUsb(1000);
    expect(events).toEqual(['detach', 'attach']);
  });

  it('a reset while enumerating cancels the pending attach and starts over', async () => {
    const b = make();
    b.reset();
    b.setPower(false);
    await b.clock.sleep(2000);
    expect(b.usb).toBeUndefined();
    expect(b.mode).toBe('off');
  });

  it('keeps volatile flags in the chip: DFU use since power-on, power cycles, resets', async () => {
    const b = make();
    expect(b.chip.volatile.dfuUsedSincePowerOn).toBe(false);
    await b.control({ bmRequestType: 0x80, bRequest: 6, wValue: 0x0100, wIndex: 0, wLength: 18 });
    expect(b.chip.volatile.dfuUsedSincePowerOn).toBe(false); // enumeration alone does not count
    await b.control(dfu.getStatus());
    expect(b.chip.volatile.dfuUsedSincePowerOn).toBe(true);
    b.reset();
    expect(b.chip.volatile).toMatchObject({ dfuUsedSincePowerOn: true, resetsSincePowerOn: 2 });
    const cycles = b.chip.volatile.powerCycles;
    b.setPower(false);
    b.setPower(true);
    expect(b.chip.volatile).toMatchObject({
      dfuUsedSincePowerOn: false,
      powerCycles: cycles + 1,
      resetsSincePowerOn: 0,
    });
  });

  it('a board opened on a powered-off chip state is off', () => {
    const file = tempStateFile();
    const a = make({ stateFile: file });
    a.setPower(false);
    a.close();
    const b = make({ stateFile: file });
    expect(b.mode).toBe('off');
    expect(b.usb).toBeUndefined();
  });

  it('what one process flashes over DFU, another process reads from the chip state', async () => {
    const file = tempStateFile();
    const b = make({ stateFile: file });
    const raw = new RawDfu(b);
    await raw.run(() => raw.erase(0x08100000));
    await raw.run(() => raw.setAddress(0x08100000));
    await raw.run(() =>
      raw.dnload(
        2,
        Uint8Array.from({ length: 64 }, (_, i) => i ^ 0x5a),
      ),
    );
    const node = path.resolve('node_modules/.bin/node');
    const script = `
      import { createVirtualBoard } from ${JSON.stringify(path.resolve('src/sim/board.ts'))};
      const b = createVirtualBoard({ id: 'other', part: 'stm32h743', chipRevision: 'Y', bootloader: 0xd2, stateFile: ${JSON.stringify(file)} });
      const set = Uint8Array.of(0x21, 0x10, 0x00, 0x10, 0x08);
      const st = { bmRequestType: 0xa1, bRequest: 3, wValue: 0, wIndex: 0, wLength: 6 };
      await b.control({ bmRequestType: 0x21, bRequest: 1, wValue: 0, wIndex: 0, wLength: 5 }, set);
      await b.control(st); await b.control(st);
      await b.control({ bmRequestType: 0x21, bRequest: 6, wValue: 0, wIndex: 0, wLength: 0 });
      const r = await b.control({ bmRequestType: 0xa1, bRequest: 2, wValue: 2, wIndex: 0, wLength: 4 });
      console.log(Buffer.from(r.data).toString('hex'));
      b.close();`;
    const out = execFileSync(node, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    // Pointer 0x08100010: bytes 16..19 of the block.
    expect(out.trim()).toBe([16, 17, 18, 19].map((i) => (i ^ 0x5a).toString(16).padStart(2, '0')).join(''));
  });

  it('close() drops pending enumerations and refuses further use', async () => {
    const clock = new VirtualClock();
    const b = createVirtualBoard({
      id: 'c',
      part: 'stm32h743',
      chipRevision: 'Y',
      bootloader: 0xd2,
      stateFile: tempStateFile(),
      clock,
    });
    let attached = 0;
    b.on('attach', () => attached++);
    b.reset();
    b.close();
    await clock.sleep(1000);
    expect(attached).toBe(0);
    expect(await b.control(dfu.getStatus())).toEqual({ status: 'disconnected' });
    expect(() => b.reset()).toThrow(/closed/);
  });

  it('honours an aborted signal on control()', async () => {
    const b = make();
    const ctl = new AbortController();
    ctl.abort(new Error('stop'));
    await expect(b.control(dfu.getStatus(), undefined, ctl.signal)).rejects.toThrow('stop');
    expect(b.rom.state).toBe(S.dfuIDLE);
  });
});
