import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FirmwareImage } from '../image/model.ts';
import { createVirtualBoard, type VirtualBoard } from '../sim/board.ts';
import { VirtualClock } from '../util/clock.ts';
import { DfuseHost } from './host.ts';
import { LINKTYPE_USB_LINUX_MMAPPED, traceToPcapng } from './pcapng.ts';
import type { DfuTrace } from './trace.ts';

let dir: string;
let board: VirtualBoard;
let trace: DfuTrace;
let file: string;

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'dfu-pcap-'));
  board = createVirtualBoard({
    id: 'pcap',
    part: 'stm32h743',
    chipRevision: 'V',
    bootloader: 0x90,
    stateFile: path.join(dir, 'chip.bin'),
    clock: new VirtualClock(),
  });
  board.setBoot0(true);
  board.setPower(true);
  if (board.mode === 'silent') board.reset();
  await board.waitForUsb(5000);
  const host = await DfuseHost.open(board.usb!, { clock: board.clock, trace: true });
  const bank1 = new FirmwareImage('bin', 'x.bin');
  bank1.add({
    name: 'a',
    address: 0x0800_0000,
    data: new Uint8Array(1500).fill(0x5a),
    source: { file: 'x.bin' },
  });
  await host.flash(bank1, { verify: true });
  const bank2 = new FirmwareImage('bin', 'y.bin');
  bank2.add({
    name: 'b',
    address: 0x0810_0000,
    data: new Uint8Array(16).fill(0xa5),
    source: { file: 'y.bin' },
  });
  // Bank 2 on 0x90 hangs: the trace then holds busy polls, the CLRSTATUS dance and an error state.
  await expect(host.flash(bank2)).rejects.toMatchObject({ code: 'E_DFU_BUSY_TIMEOUT' });
  await host.close();
  trace = host.trace!;
  file = path.join(dir, 'trace.pcapng');
  writeFileSync(file, traceToPcapng(trace, { busNumber: 1, deviceAddress: 7 }));
});

afterAll(() => {
  board?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('traceToPcapng', () => {
  it('writes a section header, a usbmon (220) interface and two packets (submit, complete) per transfer', () => {
    const b = Buffer.from(traceToPcapng(trace, { deviceAddress: 7 }));
    expect(b.readUInt32LE(0)).toBe(0x0a0d0d0a);
    expect(b.readUInt32LE(8)).toBe(0x1a2b3c4d);
    let off = b.readUInt32LE(4);
    expect(b.readUInt32LE(off)).toBe(1);
    expect(b.readUInt16LE(off + 8)).toBe(LINKTYPE_USB_LINUX_MMAPPED);
    off += b.readUInt32LE(off + 4);
    const kinds: string[] = [];
    while (off < b.length) {
      expect(b.readUInt32LE(off)).toBe(6);
      const len = b.readUInt32LE(off + 4);
      expect(b.readUInt32LE(off + len - 4)).toBe(len);
      const pkt = off + 28;
      kinds.push(String.fromCharCode(b[pkt + 8]!));
      expect(b[pkt + 11]).toBe(7);
      off += len;
    }
    expect(kinds.length).toBe(trace.entries.length * 2);
    expect(kinds.slice(0, 4)).toEqual(['S', 'C', 'S', 'C']);
  });
});

const tshark = spawnSync('tshark', ['--version'], { encoding: 'utf8' }).status === 0;

describe.skipIf(!tshark)(
  'the pcapng trace in tshark (Debian package tshark; skipped when it is not installed)',
  () => {
    // Wireshark before 4.2 registers USB DFU for Decode As only; newer versions find it by interface class.
    const decode = ['-d', 'usb.device==0x00010007,usbdfu'];
    const columns = [
      'frame.time_relative',
      'usb.urb_type',
      'usbdfu.command',
      'usbdfu.block_number',
      'usbdfu.state',
      'usbdfu.status',
      'usbdfu.poll_timeout',
      'usbdfu.descriptor.wTransferSize',
      'usbdfu.descriptor.bcdDFUVersion',
      'frame.comment',
    ] as const;
    type Row = Record<(typeof columns)[number], string>;
    let rows: Row[] = [];
    let verbose = '';

    beforeAll(() => {
      const r = spawnSync(
        'tshark',
        ['-r', file, ...decode, '-T', 'fields', ...columns.flatMap((c) => ['-e', c])],
        { encoding: 'utf8' },
      );
      expect(r.status, r.stderr).toBe(0);
      rows = r.stdout
        .split('\n')
        .filter(Boolean)
        .map((line) => Object.fromEntries(line.split('\t').map((v, i) => [columns[i], v])) as Row);
      const v = spawnSync('tshark', ['-r', file, ...decode, '-V'], { encoding: 'utf8', maxBuffer: 64 << 20 });
      expect(v.status, v.stderr).toBe(0);
      verbose = v.stdout;
    }, 30_000);

    it('has one frame per usbmon event', () => {
      expect(rows.length).toBe(trace.entries.length * 2);
    });

    it('decodes the DFU functional descriptor from the configuration descriptor', () => {
      expect(rows.find((r) => r['usbdfu.descriptor.wTransferSize'])).toMatchObject({
        'usbdfu.descriptor.wTransferSize': '1024',
        'usbdfu.descriptor.bcdDFUVersion': '0x011a',
      });
    });

    it('decodes DFU requests, GETSTATUS answers (state, status, poll timeout) and download block numbers', () => {
      const submits = rows.filter((r) => r['usb.urb_type'] === "'S'" && r['usbdfu.command']);
      expect(new Set(submits.map((r) => Number(r['usbdfu.command'])))).toEqual(new Set([1, 2, 3, 4, 6]));
      const statuses = rows
        .filter((r) => r['usbdfu.state'])
        .map((r) => [r['usbdfu.state'], r['usbdfu.status'], r['usbdfu.poll_timeout']]);
      // The hang: busy with a 1000 ms poll timeout, then errUNKNOWN in dfuERROR after CLRSTATUS, then dfuIDLE.
      expect(statuses).toContainEqual(['4', '0x00', '1000']);
      expect(statuses).toContainEqual(['10', '0x0e', '0']);
      expect(statuses.at(-1)).toEqual(['2', '0x00', '0']);
      const dnloads = submits
        .filter((r) => r['usbdfu.command'] === '1')
        .map((r) => Number(r['usbdfu.block_number']));
      expect(dnloads.length).toBe(trace.named('DFU_DNLOAD').length);
      expect(dnloads).toContain(0);
      expect(dnloads).toContain(2);
    });

    it('keeps the timing: the GETSTATUS after a busy answer comes bwPollTimeout later', () => {
      const polls = rows
        .filter((r) => r['usb.urb_type'] === "'S'" && r['usbdfu.command'] === '3')
        .map((r) => Number(r['frame.time_relative']));
      expect(polls.some((t, i) => i > 0 && Math.abs(t - polls[i - 1]! - 1.0) < 0.001)).toBe(true);
    });

    it("carries the host's view as packet comments: the state after each transfer and what it was doing", () => {
      const comments = rows.map((r) => r['frame.comment']).filter(Boolean);
      expect(comments).toContain('dfuDNLOAD-SYNC?; erase sector 8');
      expect(comments).toContain('dfuERROR/errUNKNOWN');
      expect(comments.some((c) => /^dfuIDLE\?; recover$/.test(c))).toBe(true);
    });

    it('dissects the whole file verbosely as USB DFU', () => {
      expect(verbose).toContain('USB Device Firmware Upgrade');
      expect(verbose).toContain('State: dfuDownloadBusy (4)');
      expect(verbose).toContain('idProduct: STM Device in DFU Mode (0xdf11)');
    });
  },
);
