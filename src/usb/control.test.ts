import { createRequire } from 'node:module';
import { beforeAll, describe, expect, it } from 'vitest';
import { DfuDevice } from '../dfu/device.ts';
import { classifyUsbFailure, type TransferRecord, UsbAdapter } from './control.ts';
import { UDEV_RULE_LINE, UsbError } from './errors.ts';
import type { UsbDeviceLike } from './types.ts';

const GETSTATUS = { requestType: 'class', recipient: 'interface', request: 3, value: 0, index: 0 } as const;
const CLRSTATUS = { requestType: 'class', recipient: 'interface', request: 4, value: 0, index: 0 } as const;

/** What node-usb 3's native layer (napi-rs over nusb) rejects with: `napi::Error::from_reason`, code GenericFailure. */
function napiError(message: string): Error {
  return Object.assign(new Error(message), { code: 'GenericFailure' });
}

type NativeIn = (setup: unknown, timeout: number, length: number) => Promise<Uint8Array | null>;
type NativeOut = (setup: unknown, timeout: number, data: Uint8Array) => Promise<number>;

let UsbDeviceProto: object;

beforeAll(async () => {
  // Loading the package installs its WebUSB wrappers (controlTransferIn/Out) on the native UsbDevice prototype.
  await import('usb');
  const require = createRequire(import.meta.url);
  UsbDeviceProto = (require('usb/index.js') as { UsbDevice: { prototype: object } }).UsbDevice.prototype;
});

/**
 * A device that runs node-usb 3's own JavaScript (node_modules/usb/dist/index.js: controlTransferIn/Out) over a
 * fake native layer, so the adapter meets exactly what node-usb 3 does with each native outcome.
 */
function nodeUsb3Device(native: { in?: NativeIn; out?: NativeOut }): UsbDeviceLike & { timeouts: number[] } {
  const timeouts: number[] = [];
  const d = Object.create(UsbDeviceProto) as UsbDeviceLike & { timeouts: number[] };
  Object.defineProperties(d, {
    timeouts: { value: timeouts },
    vendorId: { value: 0x0483 },
    productId: { value: 0xdf11 },
    nativeControlTransferIn: {
      value: (s: unknown, t: number, l: number) => {
        timeouts.push(t);
        return native.in ? native.in(s, t, l) : Promise.resolve(new Uint8Array(l));
      },
    },
    nativeControlTransferOut: {
      value: (s: unknown, t: number, data: Uint8Array) => {
        timeouts.push(t);
        return native.out ? native.out(s, t, data) : Promise.resolve(data.length);
      },
    },
  });
  return d;
}

describe('UsbAdapter over node-usb 3 (its own WebUSB wrapper, fake native layer)', () => {
  it('turns the rejection node-usb 3 gives for a STALL into a stall result, for IN and OUT', async () => {
    const dev = nodeUsb3Device({
      in: () => Promise.reject(napiError('controlTransferIn error: endpoint stalled')),
      out: () => Promise.reject(napiError('controlTransferOut error: endpoint stalled')),
    });
    const records: TransferRecord[] = [];
    const a = new UsbAdapter(dev, { onTransfer: (r) => records.push(r) });
    await expect(a.controlIn(GETSTATUS, 6)).resolves.toEqual({ status: 'stall' });
    await expect(a.controlOut(CLRSTATUS)).resolves.toEqual({ status: 'stall' });
    expect(records.map((r) => r.outcome)).toEqual(['stall', 'stall']);
    expect(records[0]!.setup).toEqual({ bmRequestType: 0xa1, bRequest: 3, wValue: 0, wIndex: 0, wLength: 6 });
    expect(records[1]!.setup.bmRequestType).toBe(0x21);
  });

  it('maps a vanished device to E_USB_DISCONNECTED', async () => {
    const dev = nodeUsb3Device({
      in: () => Promise.reject(napiError('controlTransferIn error: device disconnected')),
    });
    const err = await new UsbAdapter(dev).controlIn(GETSTATUS, 6).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UsbError);
    expect((err as UsbError).code).toBe('E_USB_DISCONNECTED');
    expect((err as UsbError).kind).toBe('device');
  });

  it('maps a timeout (nusb reports ETIMEDOUT as a cancelled transfer) to E_USB_TIMEOUT and passes the timeout', async () => {
    const dev = nodeUsb3Device({
      out: () => Promise.reject(napiError('controlTransferOut error: transfer was cancelled')),
    });
    const a = new UsbAdapter(dev, { timeoutMs: 250 });
    const err = await a.controlOut(CLRSTATUS).catch((e: unknown) => e);
    expect((err as UsbError).code).toBe('E_USB_TIMEOUT');
    expect(dev.timeouts).toEqual([250]);
  });

  it('never hands node-usb 3 an undefined buffer (its wrapper reads data.buffer): zero-length OUT works', async () => {
    let got: Uint8Array | undefined;
    const dev = nodeUsb3Device({
      out: (_s, _t, data) => {
        got = data;
        return Promise.resolve(data.length);
      },
    });
    await expect(new UsbAdapter(dev).controlOut(CLRSTATUS)).resolves.toEqual({
      status: 'ok',
      bytesWritten: 0,
    });
    expect(got).toBeInstanceOf(Uint8Array);
    expect(got!.length).toBe(0);
    // The wrapper itself does fail on undefined: the case the adapter exists for.
    await expect(dev.controlTransferOut(CLRSTATUS)).rejects.toThrow(/buffer/);
  });

  it('returns IN data as a copied Uint8Array of the bytes received', async () => {
    const dev = nodeUsb3Device({ in: () => Promise.resolve(Uint8Array.of(0, 1, 0, 0, 5, 0)) });
    const r = await new UsbAdapter(dev).controlIn(GETSTATUS, 6);
    expect(r.status === 'ok' && [...r.data]).toEqual([0, 1, 0, 0, 5, 0]);
  });

  it('keeps other failures as E_USB_TRANSFER with the library text', async () => {
    const dev = nodeUsb3Device({
      in: () => Promise.reject(napiError('controlTransferIn error: hardware fault or protocol violation')),
    });
    const err = (await new UsbAdapter(dev).controlIn(GETSTATUS, 6).catch((e: unknown) => e)) as UsbError;
    expect(err.code).toBe('E_USB_TRANSFER');
    expect(err.details.library).toMatch(/hardware fault/);
  });

  it('rejects at once with the signal reason when the operation is aborted mid-transfer', async () => {
    const dev = nodeUsb3Device({ in: () => new Promise(() => {}) });
    const ctl = new AbortController();
    const p = new UsbAdapter(dev).controlIn(GETSTATUS, 6, { signal: ctl.signal });
    const reason = new Error('stop');
    ctl.abort(reason);
    await expect(p).rejects.toBe(reason);
  });
});

describe('UsbAdapter over the W3C form (browsers, the virtual bootloader)', () => {
  function w3c(result: () => Promise<USBInTransferResult>): UsbDeviceLike {
    return { vendorId: 0x0483, productId: 0xdf11, controlTransferIn: result } as unknown as UsbDeviceLike;
  }
  it('passes {status: "stall"} through as a stall', async () => {
    await expect(
      new UsbAdapter(w3c(async () => ({ status: 'stall' }))).controlIn(GETSTATUS, 6),
    ).resolves.toEqual({ status: 'stall' });
  });
  it('maps DOMException NetworkError and TimeoutError', async () => {
    const gone = new UsbAdapter(w3c(() => Promise.reject(new DOMException('gone', 'NetworkError'))));
    await expect(gone.controlIn(GETSTATUS, 6)).rejects.toMatchObject({ code: 'E_USB_DISCONNECTED' });
    const slow = new UsbAdapter(w3c(() => Promise.reject(new DOMException('slow', 'TimeoutError'))));
    await expect(slow.controlIn(GETSTATUS, 6)).rejects.toMatchObject({ code: 'E_USB_TIMEOUT' });
  });
  it('reports babble as a transfer error, not as data', async () => {
    const a = new UsbAdapter(w3c(async () => ({ status: 'babble' })));
    await expect(a.controlIn(GETSTATUS, 6)).rejects.toMatchObject({ code: 'E_USB_TRANSFER' });
  });
});

describe('classifyUsbFailure', () => {
  it.each([
    ['controlTransferIn error: endpoint stalled', 'stall'],
    ['LIBUSB_ERROR_PIPE', 'stall'],
    ['controlTransferOut error: device disconnected', 'disconnected'],
    ['LIBUSB_ERROR_NO_DEVICE', 'disconnected'],
    ['controlTransferIn error: transfer was cancelled', 'timeout'],
    ['LIBUSB_ERROR_TIMEOUT', 'timeout'],
    ['open error: failed to open device: Permission denied (errno 13)', 'permission'],
    ['LIBUSB_ERROR_ACCESS', 'permission'],
    ['getDevices error: /sys/bus/usb/devices/ not found (errno 2)', 'no-subsystem'],
    ['controlTransferIn error: invalid state', 'other'],
  ])('%s -> %s', (message, kind) => {
    expect(classifyUsbFailure(napiError(message))).toBe(kind);
  });
});

describe('opening a device the OS refuses', () => {
  it('is E_USB_PERMISSION naming the udev rule that grants access', async () => {
    const dev = {
      vendorId: 0x0483,
      productId: 0xdf11,
      opened: false,
      open: () =>
        Promise.reject(napiError('open error: failed to open device: Permission denied (errno 13)')),
    } as unknown as UsbDeviceLike;
    const err = (await DfuDevice.open(dev).catch((e: unknown) => e)) as UsbError;
    expect(err.code).toBe('E_USB_PERMISSION');
    expect(err.hint).toContain(UDEV_RULE_LINE);
    expect(err.hint).toContain('/etc/udev/rules.d/');
  });
});
