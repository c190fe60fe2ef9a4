import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { listFromSysfs, onPath } from './list.ts';

const ROOT = new URL('../../', import.meta.url).pathname;

function runNode(source: string): { status: number | null; stdout: string; stderr: string } {
  const dir = mkdtempSync(path.join(tmpdir(), 'list-'));
  const file = path.join(dir, 'main.ts');
  writeFileSync(file, source.replaceAll('@root/', ROOT));
  const r = spawnSync(process.execPath, [file], { encoding: 'utf8', timeout: 20_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('listing serial ports', () => {
  it.skipIf(onPath('udevadm'))(
    'SerialPort.list() fails on a host without udevadm: it ends an unguarded process, and lists nothing',
    () => {
      const unguarded = runNode(
        `import { createRequire } from 'node:module';
       const { SerialPort } = createRequire('@root/package.json')('serialport');
       const ports = await SerialPort.list();
       console.log('listed', ports.length);`,
      );
      expect(unguarded.status).not.toBe(0);
      expect(unguarded.stdout).toBe('');
      expect(unguarded.stderr).toMatch(/spawn udevadm ENOENT/);
      // Guarded, bindings-cpp 13 rejects with the spawn error: the process lives, but there is no list.
      const guarded = runNode(
        `import { createRequire } from 'node:module';
       const { SerialPort } = createRequire('@root/package.json')('serialport');
       try { await SerialPort.list(); console.log('listed'); } catch (e) { console.log('rejected:', e.code); }`,
      );
      expect(guarded.status).toBe(0);
      expect(guarded.stdout.trim()).toBe('rejected: ENOENT');
    },
  );

  it('lists this host without crashing, even when SerialPort.list() is preferred', () => {
    const r = runNode(
      `import { listSerialPorts } from '@root/src/power/list.ts';
       const a = await listSerialPorts();
       const b = await listSerialPorts({ preferSerialport: true });
       console.log(JSON.stringify({ a: a.map((p) => p.path), b: b.map((p) => p.path), source: b[0]?.source ?? null }));`,
    );
    expect(r.stderr).not.toMatch(/udevadm/);
    expect(r.status).toBe(0);
    const out = JSON.parse(r.stdout) as { a: string[]; b: string[]; source: string | null };
    expect(out.b).toEqual(out.a);
    if (!onPath('udevadm') && out.a.length) expect(out.source).toBe('sysfs');
  });

  it('reads ports, drivers and USB identities from sysfs and /dev/serial/by-id', async () => {
    const root = mkdtempSync(path.join(tmpdir(), 'sysfs-'));
    const classTty = path.join(root, 'sys/class/tty');
    const dev = path.join(root, 'dev');
    mkdirSync(classTty, { recursive: true });
    mkdirSync(path.join(dev, 'serial/by-id'), { recursive: true });
    const drivers = path.join(root, 'sys/bus/drivers');
    for (const d of ['ch341-uart', 'cdc_acm', 'serial8250'])
      mkdirSync(path.join(drivers, d), { recursive: true });
    const usbDevice = (dir: string, attrs: Record<string, string>) => {
      mkdirSync(dir, { recursive: true });
      for (const [k, v] of Object.entries(attrs)) writeFileSync(path.join(dir, k), `${v}\n`);
    };
    const tty = (name: string, deviceDir: string | undefined, driver?: string, type?: string) => {
      const t = path.join(classTty, name);
      mkdirSync(t);
      if (type) writeFileSync(path.join(t, 'type'), `${type}\n`);
      if (!deviceDir) return;
      mkdirSync(deviceDir, { recursive: true });
      symlinkSync(deviceDir, path.join(t, 'device'));
      if (driver) symlinkSync(path.join(drivers, driver), path.join(deviceDir, 'driver'));
    };
    const usb = path.join(root, 'sys/devices/pci0000:00/usb1');
    usbDevice(path.join(usb, '1-4/1-4.2'), { idVendor: '1a86', idProduct: '7523', product: 'USB Serial' });
    tty('ttyUSB0', path.join(usb, '1-4/1-4.2/1-4.2:1.0/ttyUSB0'), 'ch341-uart');
    usbDevice(path.join(usb, '1-3'), {
      idVendor: '2a19',
      idProduct: '0c05',
      manufacturer: 'Numato Systems Pvt. Ltd.',
      serial: 'NL0001',
    });
    tty('ttyACM0', path.join(usb, '1-3/1-3:1.0'), 'cdc_acm');
    tty('ttyS0', path.join(root, 'sys/devices/platform/serial8250/ttyS0'), 'serial8250', '0');
    tty('ttyS1', path.join(root, 'sys/devices/pnp0/00:01'), 'serial8250', '4');
    tty('tty0', undefined);
    symlinkSync('../../ttyUSB0', path.join(dev, 'serial/by-id/usb-1a86_USB_Serial-if00-port0'));

    const ports = await listFromSysfs({ sysClassTty: classTty, devDir: dev });
    expect(ports.map((p) => p.path)).toEqual([
      path.join(dev, 'ttyACM0'),
      path.join(dev, 'ttyS1'),
      path.join(dev, 'ttyUSB0'),
    ]);
    expect(ports[2]).toEqual({
      path: path.join(dev, 'ttyUSB0'),
      byId: [path.join(dev, 'serial/by-id/usb-1a86_USB_Serial-if00-port0')],
      driver: 'ch341-uart',
      vendorId: '1a86',
      productId: '7523',
      product: 'USB Serial',
      usbPath: '1-4.2',
      hint: 'CH340 (LCUS relay boards use it)',
      source: 'sysfs',
    });
    expect(ports[0]).toMatchObject({
      driver: 'cdc_acm',
      manufacturer: 'Numato Systems Pvt. Ltd.',
      serialNumber: 'NL0001',
      usbPath: '1-3',
    });
    expect(ports[1]).toMatchObject({ driver: 'serial8250', byId: [] });
    expect(ports[1]!.usbPath).toBeUndefined();
  });
});
