import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { ByteQueue } from './bytes.ts';
import {
  DEVICE_RECORD_BYTES,
  decodeDevlistReply,
  decodeImportBusid,
  decodeImportReply,
  decodeOpHeader,
  decodeSetup,
  decodeUrbHeader,
  devidOf,
  ECONNRESET,
  EPIPE,
  encodeCmdSubmit,
  encodeCmdUnlink,
  encodeDeviceRecord,
  encodeDevlistReply,
  encodeDevlistRequest,
  encodeImportReply,
  encodeImportRequest,
  encodeRetSubmit,
  encodeRetUnlink,
  encodeSetup,
  ST_NODEV,
  ST_OK,
  URB_HEADER_BYTES,
  type UsbipDevice,
} from './protocol.ts';
import { clientMessages, loadCapture, serverReplies } from './testing.ts';

/** Hex with spaces, '|' and newlines allowed for readability. */
function hex(text: string): Uint8Array {
  return Uint8Array.from(Buffer.from(text.replace(/[\s|]/g, ''), 'hex'));
}
function zeros(n: number): string {
  return '00'.repeat(n);
}
function ascii(s: string, size: number): string {
  return Buffer.from(s).toString('hex') + zeros(size - s.length);
}

const dfuDevice: UsbipDevice = {
  path: '/sys/devices/stm32-hil/virtual/h743-revV-90',
  busid: '1-2',
  busnum: 1,
  devnum: 2,
  speed: 2,
  idVendor: 0x0483,
  idProduct: 0xdf11,
  bcdDevice: 0x0200,
  bDeviceClass: 0,
  bDeviceSubClass: 0,
  bDeviceProtocol: 0,
  bConfigurationValue: 1,
  bNumConfigurations: 1,
  interfaces: [{ bInterfaceClass: 0xfe, bInterfaceSubClass: 0x01, bInterfaceProtocol: 0x02 }],
};

// The device record laid out field by field from usbip_protocol.rst (OP_REP_DEVLIST offsets minus 0x0C).
const dfuRecordHex = [
  ascii('/sys/devices/stm32-hil/virtual/h743-revV-90', 256), // 0x000 path
  ascii('1-2', 32), // 0x100 busid
  '00000001', // 0x120 busnum
  '00000002', // 0x124 devnum
  '00000002', // 0x128 speed (USB_SPEED_FULL)
  '0483 df11 0200', // 0x12C idVendor, idProduct, bcdDevice
  '00 00 00', // 0x132 class, subclass, protocol
  '01 01 01', // 0x135 bConfigurationValue, bNumConfigurations, bNumInterfaces
].join('');

describe('USB/IP operation messages (usbip_protocol.rst "Message Format")', () => {
  it('device record is 312 bytes with fields at the documented offsets', () => {
    const rec = encodeDeviceRecord(dfuDevice);
    expect(rec.length).toBe(DEVICE_RECORD_BYTES);
    expect(Buffer.from(rec).toString('hex')).toBe(Buffer.from(hex(dfuRecordHex)).toString('hex'));
  });

  it('OP_REP_DEVLIST: header, count, record, then 4-byte interface records; second device at 0xC + 0x138 + 4', () => {
    const second = { ...dfuDevice, busid: '1-3', devnum: 3, path: 'p', interfaces: [] };
    const bytes = encodeDevlistReply([dfuDevice, second]);
    const expected = hex(`0111 0005 00000000 | 00000002 | ${dfuRecordHex} | fe 01 02 00`);
    expect(Buffer.from(bytes.subarray(0, expected.length)).equals(Buffer.from(expected))).toBe(true);
    // The second record starts right after the first device's single interface record.
    expect(Buffer.from(bytes.subarray(0x0c + 0x138 + 4 + 0x100, 0x0c + 0x138 + 4 + 0x104)).toString()).toBe(
      '1-3\0',
    );
    expect(bytes.length).toBe(12 + 312 + 4 + 312);
    const back = decodeDevlistReply(bytes);
    expect(back.header).toEqual({ version: 0x0111, code: 0x0005, status: 0 });
    expect(back.devices).toEqual([dfuDevice, second]);
  });

  it('OP_REP_DEVLIST with no devices ends after the count', () => {
    expect(Buffer.from(encodeDevlistReply([])).toString('hex')).toBe('01110005' + '00000000' + '00000000');
  });

  it('OP_REQ_IMPORT carries the bus id zero-padded to 32 bytes', () => {
    const req = encodeImportRequest('1-2');
    expect(Buffer.from(req).toString('hex')).toBe(`0111800300000000${ascii('1-2', 32)}`);
    expect(decodeOpHeader(req)).toEqual({ version: 0x0111, code: 0x8003, status: 0 });
    expect(decodeImportBusid(req.subarray(8))).toBe('1-2');
  });

  it('OP_REP_IMPORT: record (without interface records) only on success; the busid sits at 0x108', () => {
    const ok = encodeImportReply(ST_OK, dfuDevice);
    expect(ok.length).toBe(8 + 312);
    expect(Buffer.from(ok).toString('hex')).toBe(
      `0111000300000000${Buffer.from(hex(dfuRecordHex)).toString('hex')}`,
    );
    expect(Buffer.from(ok.subarray(0x108, 0x10b)).toString()).toBe('1-2');
    expect(ok[0x13f]).toBe(1); // bNumInterfaces
    expect(decodeImportReply(ok).device?.idProduct).toBe(0xdf11);
    const refused = encodeImportReply(ST_NODEV, dfuDevice);
    expect(Buffer.from(refused).toString('hex')).toBe('0111000300000004');
    expect(decodeImportReply(refused).device).toBeUndefined();
  });

  it('long paths are cut so the field keeps its terminating zero', () => {
    const rec = encodeDeviceRecord({ ...dfuDevice, path: 'x'.repeat(400) });
    expect(rec[254]).toBe(0x78);
    expect(rec[255]).toBe(0);
  });
});

describe('USB/IP URB headers (48 bytes, big-endian)', () => {
  // Captured on the wire, from the EXAMPLE section of usbip_protocol.rst (an interrupt IN/OUT exchange).
  const cmdIntrIn = hex(
    '00000001 00000d05 0001000f 00000001 00000001 00000200 00000040 ffffffff 00000000 00000004 00000000 00000000',
  );
  const cmdIntrOut = hex(
    `00000001 00000d06 0001000f 00000000 00000001 00000000 00000040 ffffffff 00000000 00000004 00000000 00000000
     ffffffff860008a784ce5ae212376300000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000`,
  );
  const retIntrIn = hex(
    `00000003 00000d05 00000000 00000000 00000000 00000000 00000040 ffffffff 00000000 00000000 00000000 00000000
     ffffffff860011a784ce5ae2123763612891b1020100000400000000000000000000000000000000000000000000000000000000000000000000000000000000`,
  );

  it('decodes the documented CMD_SUBMIT capture', () => {
    const h = decodeUrbHeader(cmdIntrIn);
    expect(h).toMatchObject({
      command: 1,
      seqnum: 0xd05,
      devid: 0x0001000f,
      direction: 1,
      ep: 1,
      transferFlags: 0x200,
      transferBufferLength: 0x40,
      startFrame: 0xffffffff,
      numberOfPackets: 0,
      interval: 4,
    });
    expect(devidOf(1, 15)).toBe(0x0001000f);
  });

  it('re-encodes the documented CMD_SUBMIT OUT capture byte for byte, payload after the header', () => {
    const h = decodeUrbHeader(cmdIntrOut);
    if (h.command !== 1) throw new Error('not a submit');
    const again = encodeCmdSubmit(h, cmdIntrOut.subarray(URB_HEADER_BYTES));
    expect(Buffer.from(again).equals(Buffer.from(cmdIntrOut))).toBe(true);
  });

  it('encodes the documented RET_SUBMIT capture byte for byte (devid, direction and ep are 0 from a server)', () => {
    const bytes = encodeRetSubmit(
      {
        seqnum: 0xd05,
        status: 0,
        actualLength: 0x40,
        startFrame: 0xffffffff,
        numberOfPackets: 0,
        errorCount: 0,
      },
      retIntrIn.subarray(48),
    );
    expect(Buffer.from(bytes).equals(Buffer.from(retIntrIn))).toBe(true);
  });

  it('RET_SUBMIT of a stall carries -EPIPE as a signed big-endian status and no data', () => {
    const bytes = encodeRetSubmit({ seqnum: 7, status: -EPIPE, actualLength: 0 });
    expect(Buffer.from(bytes).toString('hex')).toBe(
      `00000003 00000007 00000000 00000000 00000000 ffffffe0 00000000 00000000 00000000 00000000 ${zeros(8)}`.replace(
        / /g,
        '',
      ),
    );
    expect(decodeUrbHeader(bytes)).toMatchObject({
      command: 3,
      seqnum: 7,
      status: -32,
      actualLength: 0,
      numberOfPackets: 0,
    });
    const echoed = encodeRetSubmit({ seqnum: 7, status: 0, actualLength: 0, numberOfPackets: 0xffffffff });
    expect(Buffer.from(echoed.subarray(0x20, 0x24)).toString('hex')).toBe('ffffffff');
  });

  it('CMD_UNLINK names the seqnum to unlink at 0x14; RET_UNLINK answers -ECONNRESET', () => {
    const cmd = encodeCmdUnlink({ seqnum: 0x11, devid: 0x00010002, unlinkSeqnum: 0x10 });
    expect(Buffer.from(cmd).toString('hex')).toBe(
      `00000002 00000011 00010002 00000000 00000000 00000010 ${zeros(24)}`.replace(/ /g, ''),
    );
    expect(decodeUrbHeader(cmd)).toMatchObject({ command: 2, seqnum: 0x11, unlinkSeqnum: 0x10 });
    const ret = encodeRetUnlink({ seqnum: 0x11, status: -ECONNRESET });
    expect(Buffer.from(ret).toString('hex')).toBe(
      `00000004 00000011 00000000 00000000 00000000 ffffff98 ${zeros(24)}`.replace(/ /g, ''),
    );
  });

  it('the setup packet inside CMD_SUBMIT is little-endian (GET_DESCRIPTOR device, wLength 64)', () => {
    const setup = hex('80 06 0001 0000 4000');
    expect(decodeSetup(setup)).toEqual({
      bmRequestType: 0x80,
      bRequest: 6,
      wValue: 0x0100,
      wIndex: 0,
      wLength: 64,
    });
    expect(
      Buffer.from(
        encodeSetup({ bmRequestType: 0x21, bRequest: 1, wValue: 2, wIndex: 0, wLength: 0x800 }),
      ).toString('hex'),
    ).toBe('2101020000000008');
    const cmd = encodeCmdSubmit({
      seqnum: 1,
      devid: 0x00010001,
      direction: 1,
      ep: 0,
      transferFlags: 0,
      transferBufferLength: 64,
      startFrame: 0,
      numberOfPackets: 0,
      interval: 0,
      setup,
    });
    expect(Buffer.from(cmd.subarray(0x28, 0x30)).toString('hex')).toBe('8006000100004000');
  });

  it('an unknown command is an error naming it; a short header is an error', () => {
    const bad = new Uint8Array(48);
    bad[3] = 9;
    expect(() => decodeUrbHeader(bad)).toThrow(/unknown USB\/IP command 0x00000009/);
    expect(() => decodeUrbHeader(new Uint8Array(47))).toThrow(/47 bytes, 48 needed/);
  });
});

describe('ByteQueue', () => {
  it('reassembles messages split across chunks and leaves the rest', () => {
    const q = new ByteQueue();
    q.push(Uint8Array.of(1, 2));
    expect(q.take(3)).toBeUndefined();
    q.push(Uint8Array.of(3, 4, 5));
    expect(q.peek(3)).toEqual(Uint8Array.of(1, 2, 3));
    expect(q.take(3)).toEqual(Uint8Array.of(1, 2, 3));
    expect(q.length).toBe(2);
    expect(q.take(2)).toEqual(Uint8Array.of(4, 5));
    expect(q.length).toBe(0);
  });
});

/** Wireshark's USB/IP dissector (tshark), an independent reading of the same wire format. */
async function dissect(exchange: ['client' | 'server', Uint8Array][], fields: string[]): Promise<string[][]> {
  const dir = mkdtempSync(path.join(tmpdir(), 'usbip-pcap-'));
  // text2pcap -D: "I" frames go 127.0.0.1:40000 -> 127.0.0.2:3240 (client to server), "O" frames the other way.
  const text = exchange
    .map(([who, bytes]) => {
      const hexText = Buffer.from(bytes).toString('hex');
      const lines = [who === 'client' ? 'I' : 'O'];
      for (let i = 0; i < hexText.length; i += 32) {
        lines.push(
          `${(i / 2).toString(16).padStart(6, '0')} ${hexText.slice(i, i + 32).replace(/(..)/g, '$1 ')}`,
        );
      }
      return lines.join('\n');
    })
    .join('\n');
  writeFileSync(path.join(dir, 'in.txt'), `${text}\n`);
  await execa(
    'text2pcap',
    ['-q', '-D', '-4', '127.0.0.1,127.0.0.2', '-T', '40000,3240', 'in.txt', 'out.pcap'],
    { cwd: dir },
  );
  const r = await execa(
    'tshark',
    [
      '-r',
      'out.pcap',
      '-d',
      'tcp.port==3240,usbip',
      '-T',
      'fields',
      '-E',
      'separator=|',
      ...fields.flatMap((f) => ['-e', f]),
    ],
    {
      cwd: dir,
    },
  );
  return r.stdout
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => l.split('|'));
}

async function haveTshark(): Promise<boolean> {
  try {
    await execa('tshark', ['-v']);
    await execa('text2pcap', ['-v']);
    return true;
  } catch {
    return false;
  }
}

describe.skipIf(!(await haveTshark()))(
  "cross-check with Wireshark's USB/IP dissector (needs tshark and text2pcap: Debian tshark)",
  () => {
    // A real device descriptor, so the USB dissector behind the USB/IP one accepts the data stage.
    const deviceDescriptor = hex('12 01 0002 00 00 00 40 8304 11df 0002 01 02 03 01');

    it('reads our OP_REP_DEVLIST and OP_REP_IMPORT fields where we put them', async () => {
      const second = { ...dfuDevice, busid: '1-5', devnum: 5, idProduct: 0xdf11, bcdDevice: 0x2200 };
      const list = await dissect(
        [
          ['client', encodeDevlistRequest()],
          ['server', encodeDevlistReply([dfuDevice, second])],
        ],
        [
          'usbip.operation',
          'usbip.number_of_devices',
          'usbip.busid',
          'usbip.bcdDevice',
          'usbip.dev_num',
          'usbip.speed',
          'usbip.bInterfaceClass',
          'usbip.system_path',
        ],
      );
      expect(list[0]![0]).toBe('0x8005');
      expect(list[1]).toEqual([
        '0x0005',
        '2',
        '1-2,1-5',
        '0x0200,0x2200',
        '0x00000002,0x00000005',
        '2,2',
        '0xfe,0xfe',
        `${dfuDevice.path},${dfuDevice.path}`,
      ]);
      const imp = await dissect(
        [
          ['client', encodeImportRequest('1-2')],
          ['server', encodeImportReply(ST_OK, dfuDevice)],
        ],
        [
          'usbip.operation',
          'usbip.busid',
          'usbip.idVendor',
          'usbip.idProduct',
          'usbip.bus_num',
          'usbip.bNumInterfaces',
          'usbip.bConfigurationValue',
        ],
      );
      expect(imp).toEqual([
        ['0x8003', '1-2', '', '', '', '', ''],
        ['0x0003', '1-2', '0x0483', '0xdf11', '0x00000001', '1', '1'],
      ]);
    });

    it('reads our CMD_SUBMIT/RET_SUBMIT (IN and OUT) and CMD_UNLINK/RET_UNLINK fields where we put them', async () => {
      const submit = (
        seqnum: number,
        direction: number,
        setup: Uint8Array,
        length: number,
        data?: Uint8Array,
      ) =>
        encodeCmdSubmit(
          {
            seqnum,
            devid: 0x00010002,
            direction,
            ep: 0,
            transferFlags: 0x200,
            transferBufferLength: length,
            startFrame: 0,
            numberOfPackets: 0,
            interval: 0,
            setup,
          },
          data,
        );
      const rows = await dissect(
        [
          ['client', submit(5, 1, hex('80 06 0001 0000 1200'), 18)],
          ['server', encodeRetSubmit({ seqnum: 5, status: 0, actualLength: 18 }, deviceDescriptor)],
          ['client', submit(6, 0, hex('21 01 0000 0000 0500'), 5, hex('21 00 00 00 08'))],
          ['server', encodeRetSubmit({ seqnum: 6, status: 0, actualLength: 5 })],
          ['client', submit(7, 1, hex('a1 03 0000 0000 0600'), 6)],
          ['client', encodeCmdUnlink({ seqnum: 8, devid: 0x00010002, unlinkSeqnum: 7 })],
          ['server', encodeRetUnlink({ seqnum: 8, status: -ECONNRESET })],
          ['client', submit(9, 1, hex('80 06 0006 0000 0a00'), 10)],
          ['server', encodeRetSubmit({ seqnum: 9, status: -EPIPE, actualLength: 0 })],
        ],
        [
          'tcp.srcport',
          'usbip.sequence_no',
          'usbip.transfer_buffer_length',
          'usbip.actual_length',
          'usbip.status',
          'usbip.setup',
          'usbip.transfer_flags',
        ],
      );
      // Wireshark sizes a RET_SUBMIT from the matching CMD_SUBMIT's direction: a wrong length would desynchronise
      // every row after the first.
      expect(rows).toEqual([
        ['40000', '5', '18', '', '', '8006000100001200', '0x00000200'],
        ['3240', '5', '', '18', '0', '0000000000000000', ''],
        ['40000', '6', '5', '', '', '2101000000000500', '0x00000200'],
        ['3240', '6', '', '5', '0', '0000000000000000', ''],
        ['40000', '7', '6', '', '', 'a103000000000600', '0x00000200'],
        ['40000', '8,7', '', '', '', '', ''],
        ['3240', '8', '', '', '-104', '', ''],
        ['40000', '9', '10', '', '', '8006000600000a00', '0x00000200'],
        ['3240', '9', '', '0', '-32', '0000000000000000', ''],
      ]);
    });
  },
);

describe('captured from Linux 6.1 (vhci-hcd, usbip 2.0, dfu-util 0.11)', () => {
  const [list, session, hung] = loadCapture();

  it('usbip list: OP_REQ_DEVLIST and our reply as the tool received it', () => {
    expect(Buffer.from(list!.client).toString('hex')).toBe('0111800500000000');
    const { devices } = decodeDevlistReply(list!.server);
    expect(devices.map((d) => [d.busid, d.idVendor, d.idProduct, d.speed, d.interfaces.length])).toEqual([
      ['1-1', 0x0483, 0xdf11, 2, 1],
      ['1-2', 0x0483, 0xdf11, 2, 1],
    ]);
  });

  it("the kernel's CMD_SUBMITs: devid from the import, ep 0, sequence numbers counting up, number_of_packets 0", () => {
    const msgs = clientMessages(session!.client);
    expect(decodeImportBusid(msgs[0]!.subarray(8))).toBe('1-1');
    const urbs = msgs.slice(1).map((m) => decodeUrbHeader(m));
    const submits = urbs.filter((u) => u.command === 1);
    expect(submits.length).toBe(urbs.length);
    expect(new Set(submits.map((s) => s.devid))).toEqual(new Set([devidOf(1, 1)]));
    expect(submits.every((s) => s.ep === 0 && s.numberOfPackets === 0)).toBe(true);
    expect(submits.map((s) => s.seqnum)).toEqual(submits.map((_, i) => submits[0]!.seqnum + i));
    // Linux asks for 64 bytes of the device descriptor first; IN transfers carry URB_DIR_IN (0x200).
    expect(decodeSetup(submits[0]!.setup)).toEqual({
      bmRequestType: 0x80,
      bRequest: 6,
      wValue: 0x0100,
      wIndex: 0,
      wLength: 64,
    });
    for (const s of submits) {
      const setup = decodeSetup(s.setup);
      expect(s.direction).toBe(setup.bmRequestType & 0x80 ? 1 : 0);
      expect(s.transferBufferLength).toBe(setup.wLength);
      expect(s.transferFlags).toBe(setup.bmRequestType & 0x80 ? 0x200 : 0);
    }
  });

  it('our replies in that session: one RET_SUBMIT per CMD_SUBMIT, in order, never longer than asked', () => {
    const submits = clientMessages(session!.client)
      .slice(1)
      .map((m) => decodeUrbHeader(m));
    expect(decodeImportReply(session!.server.subarray(0, 8 + 312)).device).toMatchObject({
      busid: '1-1',
      busnum: 1,
      devnum: 1,
      idProduct: 0xdf11,
    });
    const replies = serverReplies(session!.server, submits);
    expect(replies.map((r) => r.header.seqnum)).toEqual(submits.map((s) => s.seqnum));
    for (const [i, r] of replies.entries()) {
      const cmd = submits[i]!;
      if (r.header.command !== 3 || cmd.command !== 1) throw new Error('expected RET_SUBMIT for CMD_SUBMIT');
      expect([r.header.devid, r.header.direction, r.header.ep]).toEqual([0, 0, 0]);
      expect(r.header.actualLength).toBeLessThanOrEqual(cmd.transferBufferLength);
    }
    // The three DEVICE_QUALIFIER requests of a full-speed device stall (-EPIPE), as on real hardware.
    const qualifier = replies.filter(
      (_, i) =>
        submits[i]!.command === 1 &&
        decodeSetup((submits[i] as { setup: Uint8Array }).setup).wValue === 0x0600,
    );
    expect(qualifier.map((r) => (r.header as { status: number }).status)).toEqual([-EPIPE, -EPIPE, -EPIPE]);
  });

  it('a URB the device never answered: the kernel unlinks it after the timeout, we answer -ECONNRESET and no RET_SUBMIT', () => {
    const urbs = clientMessages(hung!.client)
      .slice(1)
      .map((m) => decodeUrbHeader(m));
    const unlink = urbs.at(-1)!;
    if (unlink.command !== 2) throw new Error('expected CMD_UNLINK last');
    expect(urbs.find((u) => u.seqnum === unlink.unlinkSeqnum)?.command).toBe(1);
    const replies = serverReplies(hung!.server, urbs);
    expect(replies.at(-1)!.header).toMatchObject({ command: 4, seqnum: unlink.seqnum, status: -ECONNRESET });
    expect(replies.filter((r) => r.header.seqnum === unlink.unlinkSeqnum)).toEqual([]);
    expect(replies.length).toBe(urbs.length - 1);
  });
});
