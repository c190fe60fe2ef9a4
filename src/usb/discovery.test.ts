import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createVirtualBoard, type VirtualBoard } from '../sim/board.ts';
import { VirtualClock } from '../util/clock.ts';
import {
  findDevice,
  NodeUsbBackend,
  parseUsbSelector,
  portPathOf,
  type UsbBackend,
  type UsbDeviceEntry,
  VirtualUsbBackend,
  waitForDevice,
  waitForGone,
} from './discovery.ts';
import { UDEV_RULE_LINE, UsbError } from './errors.ts';
import type { UsbDeviceLike } from './types.ts';

describe('parseUsbSelector', () => {
  it('reads VID:PID, VID:PID:SERIAL, VID:PID@PATH and @PATH', () => {
    expect(parseUsbSelector('0483:df11')).toMatchObject({ vendorId: 0x0483, productId: 0xdf11 });
    expect(parseUsbSelector('0483:DF11:200364500000')).toMatchObject({
      productId: 0xdf11,
      serial: '200364500000',
    });
    expect(parseUsbSelector('0x0483:0xdf11@1-4.2')).toMatchObject({ vendorId: 0x0483, portPath: '1-4.2' });
    expect(parseUsbSelector('@virtual:h743')).toMatchObject({ portPath: 'virtual:h743' });
    expect(parseUsbSelector('@virtual:h743').vendorId).toBeUndefined();
  });
  it('refuses malformed selectors as usage errors', () => {
    for (const bad of ['', '0483', 'zz:df11', '0483:df11@', '12345:df11', '0483:df11:']) {
      expect(() => parseUsbSelector(bad), bad).toThrow(
        expect.objectContaining({ code: 'E_USB_SELECTOR', kind: 'usage' }),
      );
    }
  });
});

describe('portPathOf', () => {
  it('builds the kernel port path from node-usb 3 bus ("001", zero-padded) and port chain', () => {
    expect(portPathOf('001', [4, 2])).toBe('1-4.2');
    expect(portPathOf('003', [1])).toBe('3-1');
  });
});

function fake(entries: Array<Partial<UsbDeviceEntry>>): UsbBackend {
  return {
    name: 'fake',
    list: async () =>
      entries.map((e, i) => ({
        device: {} as UsbDeviceLike,
        vendorId: 0x0483,
        productId: 0xdf11,
        bcdDevice: 0x0200,
        serial: '200364500000',
        manufacturer: 'STMicroelectronics',
        product: 'DFU in FS Mode',
        portPath: `1-${i + 1}`,
        backend: 'fake',
        ...e,
      })),
  };
}

describe('findDevice', () => {
  it('finds a board by port path and warns that the serial is shared (every H74x reports 200364500000)', async () => {
    const warnings: string[] = [];
    const e = await findDevice([fake([{}, {}])], parseUsbSelector('0483:df11@1-2'), {
      warn: (w) => warnings.push(w),
    });
    expect(e.portPath).toBe('1-2');
    expect(warnings.join('\n')).toMatch(
      /2 attached devices report the same serial 200364500000 \(1-1, 1-2\)/,
    );
  });
  it('refuses an ambiguous serial and lists what it found when nothing matches', async () => {
    await expect(
      findDevice([fake([{}, {}])], parseUsbSelector('0483:df11:200364500000')),
    ).rejects.toMatchObject({ code: 'E_USB_AMBIGUOUS' });
    const err = (await findDevice(
      [fake([{ vendorId: 0x1a86, productId: 0x7523, serial: undefined }])],
      parseUsbSelector('0483:df11'),
    ).catch((e: unknown) => e)) as UsbError;
    expect(err.code).toBe('E_USB_NOT_FOUND');
    expect(err.hint).toMatch(/1a86:7523 "DFU in FS Mode" at 1-1/);
  });
});

describe.skipIf(existsSync('/sys/bus/usb/devices'))(
  'node-usb on a host without a USB subsystem (this container)',
  () => {
    it("is E_USB_NO_SUBSYSTEM with a hint, not node-usb's raw error", async () => {
      const err = (await new NodeUsbBackend().list().catch((e: unknown) => e)) as UsbError;
      expect(err).toBeInstanceOf(UsbError);
      expect(err.code).toBe('E_USB_NO_SUBSYSTEM');
      expect(err.message).toMatch(/no USB subsystem/);
      expect(err.hint).toMatch(/virtual boards/);
    });
  },
);

describe('permission hint', () => {
  it('names the udev rule line for the ST bootloader', () => {
    expect(UDEV_RULE_LINE).toBe(
      'SUBSYSTEM=="usb", ATTRS{idVendor}=="0483", ATTRS{idProduct}=="df11", MODE="0664", GROUP="plugdev"',
    );
  });
});

describe('virtual boards are found like real devices, and waited for on the clock', () => {
  let dir: string;
  let board: VirtualBoard | undefined;
  afterEach(() => {
    board?.close();
    rmSync(dir, { recursive: true, force: true });
  });
  it('waits for enumeration after power-on and for the device to vanish after power-off', async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'usb-disc-'));
    const clock = new VirtualClock();
    board = createVirtualBoard({
      id: 'w1',
      part: 'stm32h743',
      chipRevision: 'Y',
      bootloader: 0xd2,
      stateFile: path.join(dir, 'c.bin'),
      clock,
    });
    board.setPower(false);
    const backends = [new VirtualUsbBackend([board])];
    const sel = parseUsbSelector('0483:df11@virtual:w1');
    await expect(waitForDevice(backends, sel, { timeoutMs: 300, clock })).rejects.toMatchObject({
      code: 'E_USB_WAIT_TIMEOUT',
    });
    board.setBoot0(true);
    board.setPower(true);
    const t0 = clock.now();
    const e = await waitForDevice(backends, sel, { timeoutMs: 5000, clock });
    expect(e).toMatchObject({
      portPath: 'virtual:w1',
      serial: '200364500000',
      backend: 'virtual',
      bcdDevice: 0x0200,
    });
    expect(clock.now() - t0).toBeGreaterThan(0);
    board.setPower(false);
    await waitForGone(backends, sel, { timeoutMs: 1000, clock });
  });
});
