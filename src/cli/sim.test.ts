import { mkdtempSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterEach, describe, expect, it } from 'vitest';
import { tempStateFile, testBoard } from '../sim/testing.ts';
import { decodeDevlistReply, encodeDevlistRequest } from '../usbip/protocol.ts';
import { assignBusIds, isLoopback, parseListen } from '../usbip/server.ts';
import { attachCommand, boardCommand } from './sim.ts';

const BIN = path.resolve(import.meta.dirname, '../../bin/stm32-hil.js');

function farm(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'sim-serve-'));
  const file = path.join(dir, 'boards.yaml');
  writeFileSync(
    file,
    `farm: { stateDir: state, timeScale: 10 }
boards:
  - id: real-one
    part: stm32h743
    usb: { path: "1-4" }
  - id: y-d2
    part: stm32h743
    virtual: { chipRevision: Y, bootloader: 0xD2 }
  - id: v-90
    part: stm32h743
    virtual: { chipRevision: V, bootloader: 0x90 }
`,
  );
  return file;
}

const closers: (() => void)[] = [];
afterEach(() => {
  while (closers.length) closers.pop()!();
});

describe('sim serve helpers', () => {
  it('parses --listen forms and knows loopback addresses', () => {
    expect(parseListen('127.0.0.1:3240')).toEqual({ host: '127.0.0.1', port: 3240 });
    expect(parseListen('[::1]:4000')).toEqual({ host: '::1', port: 4000 });
    expect(parseListen(':3241')).toEqual({ host: '127.0.0.1', port: 3241 });
    expect(parseListen('localhost')).toEqual({ host: 'localhost', port: 3240 });
    expect(() => parseListen('127.0.0.1:99999')).toThrow(/expected HOST:PORT/);
    expect(['127.0.0.1', '127.1.2.3', '::1', 'localhost'].map(isLoopback)).toEqual([true, true, true, true]);
    expect(['0.0.0.0', '192.168.1.10', '::', 'example.org'].map(isLoopback)).toEqual([
      false,
      false,
      false,
      false,
    ]);
  });

  it('bus ids follow the position in boards.yaml, whatever is selected', () => {
    const all = [{ id: 'a' }, { id: 'b' }, { id: 'c' }];
    expect(assignBusIds(all, [{ id: 'c' }, { id: 'a' }]).map((e) => e.busid)).toEqual(['1-3', '1-1']);
  });

  it('prints the usbip line, with --tcp-port off the default port', () => {
    expect(attachCommand('127.0.0.1', 3240, '1-2')).toBe('usbip attach -r 127.0.0.1 -b 1-2');
    expect(attachCommand('127.0.0.1', 4000, '1-2')).toBe('usbip --tcp-port 4000 attach -r 127.0.0.1 -b 1-2');
  });

  it('stdin commands reset, power and set BOOT0 of a served board', async () => {
    const b = testBoard({ id: 'x', stateFile: tempStateFile() });
    closers.push(() => b.close());
    expect(b.mode).toBe('bootloader');
    expect(boardCommand('power x off', [b])).toBe('x: power off (now off)');
    expect(b.usb).toBeUndefined();
    expect(boardCommand('boot0 x low', [b])).toMatch(/BOOT0 low/);
    expect(boardCommand('power x on', [b])).toBe('x: power on (now application)');
    boardCommand('boot0 x high', [b]);
    expect(boardCommand('reset x', [b])).toBe('x: reset (now bootloader)');
    await b.waitForUsb(1000);
    expect(boardCommand('reset nope', [b])).toMatch(/unknown board "nope"/);
    expect(boardCommand('jump x', [b])).toMatch(/unknown command "jump"/);
    expect(boardCommand('   ', [b])).toBe('');
  });
});

describe('stm32-hil sim serve (the command)', () => {
  it('prints the bus id mapping and attach lines, serves USB/IP, and stops cleanly on SIGTERM', async () => {
    const config = farm();
    const proc = execa(
      process.execPath,
      [BIN, '--config', config, 'sim', 'serve', '--listen', '127.0.0.1:0', '--json'],
      { reject: false },
    );
    closers.push(() => proc.kill('SIGKILL'));
    let text = '';
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no mapping printed: ${text}`)), 20_000);
      proc.stdout!.on('data', (c: Buffer) => {
        text += c.toString();
        if (text.trimEnd().endsWith('}')) {
          clearTimeout(t);
          resolve();
        }
      });
    });
    const printed = JSON.parse(text) as {
      listen: { port: number };
      boards: { busid: string; board: string; attach: string }[];
    };
    // The real board is not served; the virtual ones keep their boards.yaml positions.
    expect(printed.boards.map((b) => [b.busid, b.board])).toEqual([
      ['1-2', 'y-d2'],
      ['1-3', 'v-90'],
    ]);
    expect(printed.boards[0]!.attach).toBe(
      `usbip --tcp-port ${printed.listen.port} attach -r 127.0.0.1 -b 1-2`,
    );
    const reply = await new Promise<Buffer>((resolve, reject) => {
      const chunks: Buffer[] = [];
      const s = net.connect(printed.listen.port, '127.0.0.1', () => s.write(encodeDevlistRequest()));
      s.on('data', (c: Buffer) => chunks.push(c));
      s.on('end', () => resolve(Buffer.concat(chunks)));
      s.on('error', reject);
    });
    expect(decodeDevlistReply(new Uint8Array(reply)).devices.map((d) => [d.busid, d.path])).toEqual([
      ['1-2', '/sys/devices/stm32-hil/virtual/y-d2'],
      ['1-3', '/sys/devices/stm32-hil/virtual/v-90'],
    ]);
    proc.kill('SIGTERM');
    const r = await proc;
    expect(r.exitCode).toBe(0);
    expect(r.stderr).toMatch(/USB\/IP server stopped/);
  });

  it('human output names the timing model and the usbip commands', async () => {
    const proc = execa(
      process.execPath,
      [BIN, '--config', farm(), 'sim', 'serve', '--board', 'v-90', '--listen', '127.0.0.1:0'],
      { reject: false },
    );
    closers.push(() => proc.kill('SIGKILL'));
    let text = '';
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no listing: ${text}`)), 20_000);
      proc.stdout!.on('data', (c: Buffer) => {
        text += c.toString();
        if (/list: usbip/.test(text)) {
          clearTimeout(t);
          resolve();
        }
      });
    });
    expect(text).toMatch(/\(loopback only\): 1 virtual board/);
    expect(text).toMatch(/10x faster than real hardware/);
    expect(text).toMatch(/1-3\s+v-90\s+stm32h743\s+V\s+0x90/);
    expect(text).toMatch(/usbip --tcp-port \d+ attach -r 127\.0\.0\.1 -b 1-3 {4}# v-90/);
    proc.kill('SIGTERM');
    expect((await proc).exitCode).toBe(0);
  });

  it('refuses a non-loopback address without --allow-remote (exit 2), and warns about authentication with it', async () => {
    const refused = await execa(
      process.execPath,
      [BIN, '--config', farm(), 'sim', 'serve', '--listen', '0.0.0.0:0'],
      { reject: false },
    );
    expect(refused.exitCode).toBe(2);
    expect(refused.stderr).toMatch(
      /E_USBIP_REMOTE: refusing to serve USB\/IP on 0\.0\.0\.0: USB\/IP has no authentication/,
    );
    expect(refused.stderr).toMatch(/--allow-remote/);

    const proc = execa(
      process.execPath,
      [BIN, '--config', farm(), 'sim', 'serve', '--listen', '0.0.0.0:0', '--allow-remote'],
      { reject: false },
    );
    closers.push(() => proc.kill('SIGKILL'));
    let err = '';
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no warning: ${err}`)), 20_000);
      proc.stderr!.on('data', (c: Buffer) => {
        err += c.toString();
        if (/serving until/.test(err)) {
          clearTimeout(t);
          resolve();
        }
      });
    });
    expect(err).toMatch(
      /warning: USB\/IP has no authentication: anyone who can reach 0\.0\.0\.0:\d+ can attach these boards/,
    );
    proc.kill('SIGTERM');
    expect((await proc).exitCode).toBe(0);
  });

  it('a real board named with --board is a configuration error (exit 2)', async () => {
    const r = await execa(
      process.execPath,
      [BIN, '--config', farm(), 'sim', 'serve', '--board', 'real-one', '--listen', '127.0.0.1:0'],
      { reject: false },
    );
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/E_SIM_NOT_VIRTUAL: board "real-one" is a real board/);
  });
});
