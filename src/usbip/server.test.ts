import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { FaultsConfig } from '../farm/schema.ts';
import { VirtualChip } from '../sim/chip.ts';
import { dfu, tempStateFile, testBoard } from '../sim/testing.ts';
import type { SetupPacket } from '../usb/types.ts';
import type { VirtualClock } from '../util/clock.ts';
import { ByteQueue } from './bytes.ts';
import {
  decodeDevlistReply,
  decodeImportReply,
  decodeUrbHeader,
  devidOf,
  ECONNRESET,
  EPIPE,
  encodeCmdSubmit,
  encodeCmdUnlink,
  encodeDevlistRequest,
  encodeImportRequest,
  encodeOpHeader,
  encodeSetup,
  NOT_ISO,
  type RetSubmit,
  type RetUnlink,
  ST_DEV_BUSY,
  ST_NODEV,
  ST_OK,
  URB_HEADER_BYTES,
  USBIP_DIR_IN,
  USBIP_DIR_OUT,
} from './protocol.ts';
import { type UsbipBoard, UsbipServer, type UsbipServerEvent } from './server.ts';
import { clientMessages, loadCapture } from './testing.ts';

/** A USB/IP client on a raw socket, speaking through the framing functions (tested against the spec separately). */
class RawClient {
  readonly socket: net.Socket;
  readonly #in = new ByteQueue();
  #wake: (() => void) | undefined;
  ended = false;
  #seq = 0;
  devid = 0;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (b: Buffer) => {
      this.#in.push(new Uint8Array(b));
      this.#wake?.();
    });
    socket.on('close', () => {
      this.ended = true;
      this.#wake?.();
    });
    socket.on('error', () => {});
  }

  static connect(port: number): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1', () => resolve(new RawClient(s)));
      s.once('error', reject);
    });
  }

  send(bytes: Uint8Array): void {
    this.socket.write(bytes);
  }

  /** Exactly `n` bytes, or an error if the server closes first or nothing comes within `ms`. */
  async read(n: number, ms = 2000): Promise<Uint8Array> {
    const deadline = Date.now() + ms;
    for (;;) {
      const got = this.#in.take(n);
      if (got) return got;
      if (this.ended) throw new Error(`connection closed with ${this.#in.length} of ${n} bytes`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${n} bytes (have ${this.#in.length})`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.#wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
  }

  /** Resolves true when the server closed the connection within `ms`. */
  async closedWithin(ms: number): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (!this.ended && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    return this.ended;
  }

  get buffered(): number {
    return this.#in.length;
  }

  async import(busid: string): Promise<{ status: number; busnum?: number; devnum?: number }> {
    this.send(encodeImportRequest(busid));
    const head = await this.read(8);
    const status = new DataView(head.buffer, head.byteOffset).getUint32(4);
    if (status !== ST_OK) return { status };
    const reply = decodeImportReply(new Uint8Array([...head, ...(await this.read(312))]));
    this.devid = devidOf(reply.device!.busnum, reply.device!.devnum);
    return { status, busnum: reply.device!.busnum, devnum: reply.device!.devnum };
  }

  submit(
    setup: SetupPacket,
    data?: Uint8Array,
    opts: { transferBufferLength?: number; seqnum?: number; numberOfPackets?: number } = {},
  ): number {
    const seqnum = opts.seqnum ?? ++this.#seq;
    const dirIn = (setup.bmRequestType & 0x80) !== 0;
    this.send(
      encodeCmdSubmit(
        {
          seqnum,
          devid: this.devid,
          direction: dirIn ? USBIP_DIR_IN : USBIP_DIR_OUT,
          ep: 0,
          transferFlags: 0,
          transferBufferLength: opts.transferBufferLength ?? setup.wLength,
          startFrame: 0,
          numberOfPackets: opts.numberOfPackets ?? 0,
          interval: 0,
          setup: encodeSetup(setup),
        },
        data,
      ),
    );
    return seqnum;
  }

  async reply(): Promise<{ header: RetSubmit | RetUnlink; data: Uint8Array }> {
    const header = decodeUrbHeader(await this.read(URB_HEADER_BYTES));
    if (header.command !== 3 && header.command !== 4) throw new Error(`unexpected command ${header.command}`);
    // RET_SUBMIT of an IN transfer carries actual_length bytes (the client knows the direction from its seqnum).
    const data =
      header.command === 3 && header.actualLength > 0 && this.#inSeqnums.has(header.seqnum)
        ? await this.read(header.actualLength)
        : new Uint8Array(0);
    return { header, data };
  }

  readonly #inSeqnums = new Set<number>();
  async control(setup: SetupPacket, data?: Uint8Array, opts: { transferBufferLength?: number } = {}) {
    const seqnum = this.submit(setup, data, opts);
    if (setup.bmRequestType & 0x80) this.#inSeqnums.add(seqnum);
    const r = await this.reply();
    expect(r.header.seqnum).toBe(seqnum);
    return r as { header: RetSubmit; data: Uint8Array };
  }

  trackIn(seqnum: number): void {
    this.#inSeqnums.add(seqnum);
  }

  close(): void {
    this.socket.destroy();
  }
}

const getDescriptor = (type: number, index: number, wLength: number, langid = 0): SetupPacket => ({
  bmRequestType: 0x80,
  bRequest: 6,
  wValue: (type << 8) | index,
  wIndex: langid,
  wLength,
});

interface Fixture {
  server: UsbipServer;
  boards: (UsbipBoard & ReturnType<typeof testBoard>)[];
  events: UsbipServerEvent[];
  port: number;
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function serve(
  boards: { bootloader?: number; faults?: FaultsConfig; chipRevision?: string; stateFile?: string }[],
): Promise<Fixture> {
  const made = boards.map((b, i) =>
    testBoard({
      id: `b${i + 1}`,
      ...(b.bootloader !== undefined ? { bootloader: b.bootloader } : {}),
      ...(b.chipRevision ? { chipRevision: b.chipRevision } : {}),
      ...(b.faults ? { faults: b.faults } : {}),
      ...(b.stateFile ? { stateFile: b.stateFile } : {}),
    }),
  );
  const events: UsbipServerEvent[] = [];
  const server = await UsbipServer.listen({
    exports: made.map((board, i) => ({ busid: `1-${i + 1}`, busnum: 1, devnum: i + 1, board })),
    port: 0,
    onEvent: (e) => events.push(e),
  });
  cleanups.push(async () => {
    await server.close();
    for (const b of made) b.close();
  });
  return { server, boards: made, events, port: server.address.port };
}

async function connect(f: Fixture): Promise<RawClient> {
  const c = await RawClient.connect(f.port);
  cleanups.push(() => c.close());
  return c;
}

async function devlist(f: Fixture): Promise<string[]> {
  const c = await connect(f);
  c.send(encodeDevlistRequest());
  expect(await c.closedWithin(2000)).toBe(true);
  const all = await c.read(c.buffered);
  return decodeDevlistReply(all).devices.map((d) => d.busid);
}

async function waitFor(what: string, cond: () => boolean | Promise<boolean>, ms = 2000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('USB/IP server: import, descriptors and DFU requests through the virtual bootloader', () => {
  it('lists the enumerated boards with their USB identity and DFU interface', async () => {
    const f = await serve([{}, { bootloader: 0x90, chipRevision: 'V' }]);
    const c = await connect(f);
    c.send(encodeDevlistRequest());
    expect(await c.closedWithin(2000)).toBe(true);
    const { header, devices } = decodeDevlistReply(await c.read(c.buffered));
    expect(header).toEqual({ version: 0x0111, code: 0x0005, status: 0 });
    expect(
      devices.map((d) => [d.busid, d.busnum, d.devnum, d.idVendor, d.idProduct, d.bcdDevice, d.speed]),
    ).toEqual([
      ['1-1', 1, 1, 0x0483, 0xdf11, 0x0200, 2],
      ['1-2', 1, 2, 0x0483, 0xdf11, 0x0200, 2],
    ]);
    expect(devices[0]!.interfaces).toEqual([
      { bInterfaceClass: 0xfe, bInterfaceSubClass: 1, bInterfaceProtocol: 2 },
    ]);
    expect(devices[0]!.bConfigurationValue).toBe(1);
    expect(devices[1]!.path).toContain('b2');
  });

  it('imports a board, serves its descriptors and answers DFU GETSTATUS', async () => {
    const f = await serve([{}]);
    const c = await connect(f);
    expect(await c.import('1-1')).toEqual({ status: ST_OK, busnum: 1, devnum: 1 });
    expect(f.events).toContainEqual(expect.objectContaining({ type: 'import', busid: '1-1', board: 'b1' }));

    // What Linux asks first: 64 bytes of the 18-byte device descriptor.
    const dev = await c.control(getDescriptor(1, 0, 64));
    expect(dev.header.status).toBe(0);
    expect(dev.header.actualLength).toBe(18);
    expect(Buffer.from(dev.data.subarray(8, 14)).toString('hex')).toBe('830411df0002'); // VID, PID, bcdDevice LE

    const head = await c.control(getDescriptor(2, 0, 9));
    const total = head.data[2]! | (head.data[3]! << 8);
    const cfg = await c.control(getDescriptor(2, 0, total));
    expect(cfg.data.length).toBe(total);
    expect(cfg.data[14]).toBe(0xfe); // first interface: DFU class

    const alt0 = await c.control(getDescriptor(3, 4, 255, 0x0409));
    expect(Buffer.from(alt0.data.subarray(2)).toString('utf16le')).toBe(
      '@Internal Flash   /0x08000000/16*128Kg',
    );

    expect(
      (await c.control({ bmRequestType: 0, bRequest: 9, wValue: 1, wIndex: 0, wLength: 0 })).header.status,
    ).toBe(0);
    const status = await c.control(dfu.getStatus());
    expect(status.header.status).toBe(0);
    expect(Array.from(status.data)).toEqual([0, 0, 0, 0, 2, 0]); // OK, poll 0, dfuIDLE
  });

  it('never returns more than asked: wLength and the URB buffer both cap the data, and the stream stays in step', async () => {
    const f = await serve([{}]);
    const c = await connect(f);
    await c.import('1-1');
    const more = await c.control(getDescriptor(2, 0, 255));
    expect(more.header.actualLength).toBe(more.data.length);
    expect(more.data.length).toBeLessThan(255);
    const shortBuffer = await c.control(getDescriptor(1, 0, 18), undefined, { transferBufferLength: 8 });
    expect(shortBuffer.header.actualLength).toBe(8);
    expect(shortBuffer.data.length).toBe(8);
    // The next reply parses cleanly: no stray bytes were sent after the capped data.
    const again = await c.control(getDescriptor(1, 0, 18));
    expect(again.data[0]).toBe(18);
    expect(c.buffered).toBe(0);
  });

  it('stalls what the ROM stalls with -EPIPE (device qualifier of a full-speed device)', async () => {
    const f = await serve([{}]);
    const c = await connect(f);
    await c.import('1-1');
    const r = await c.control(getDescriptor(6, 0, 10));
    expect(r.header.status).toBe(-EPIPE);
    expect(r.header.actualLength).toBe(0);
    expect(r.header.numberOfPackets).toBe(0); // echoed from the CMD_SUBMIT, as the kernel's stub does
    expect((await c.control(getDescriptor(1, 0, 18))).header.status).toBe(0);
    // A client that follows the documentation's 0xffffffff for non-ISO gets it back.
    const seq = c.submit(getDescriptor(1, 0, 18), undefined, { numberOfPackets: NOT_ISO });
    c.trackIn(seq);
    expect((await c.reply()).header).toMatchObject({
      seqnum: seq,
      status: 0,
      actualLength: 18,
      numberOfPackets: NOT_ISO,
    });
  });

  it('refuses an unknown bus id and a second import of a board in use', async () => {
    const f = await serve([{}]);
    const a = await connect(f);
    expect((await a.import('9-9')).status).toBe(ST_NODEV);
    expect(await a.closedWithin(1000)).toBe(true);
    const b = await connect(f);
    expect((await b.import('1-1')).status).toBe(ST_OK);
    const c = await connect(f);
    expect((await c.import('1-1')).status).toBe(ST_DEV_BUSY);
    b.close();
    await waitFor('board released', () => !f.server.importedBy.has('1-1'));
    const d = await connect(f);
    expect((await d.import('1-1')).status).toBe(ST_OK);
  });

  it('writes through USB/IP land in the chip state file that other processes read', async () => {
    const stateFile = tempStateFile();
    const f = await serve([{ stateFile }]);
    const clock = f.boards[0]!.clock as VirtualClock;
    const c = await connect(f);
    await c.import('1-1');
    await c.control({ bmRequestType: 0, bRequest: 9, wValue: 1, wIndex: 0, wLength: 0 });
    const run = async (setup: SetupPacket, data?: Uint8Array) => {
      expect((await c.control(setup, data)).header.status).toBe(0);
      for (let i = 0; i < 100; i++) {
        const st = (await c.control(dfu.getStatus())).data;
        clock.advance(st[1]! | (st[2]! << 8) | (st[3]! << 16));
        if (st[4] !== 4 && st[4] !== 3) return st;
      }
      throw new Error('still busy');
    };
    expect((await run(dfu.dnload(0, 5), Uint8Array.of(0x41, 0, 0, 0, 8)))[0]).toBe(0); // erase sector 0
    expect((await run(dfu.dnload(0, 5), Uint8Array.of(0x21, 0, 0, 0, 8)))[0]).toBe(0); // pointer
    const payload = Uint8Array.from({ length: 1024 }, (_, i) => (i * 7) & 0xff);
    const after = await run(dfu.dnload(2, payload.length), payload);
    expect([after[0], after[4]]).toEqual([0, 5]); // OK, dfuDNLOAD-IDLE
    const other = VirtualChip.open(stateFile, { part: 'stm32h743', chipRevision: 'Y', bootloader: 0xd2 });
    try {
      expect(Buffer.from(other.readFlash(0x0800_0000, 1024)).equals(Buffer.from(payload))).toBe(true);
    } finally {
      other.close();
    }
  });
});

describe('USB/IP server: leave, disconnect, unlink', () => {
  it('a DFU leave answers its GETSTATUS, then ends the connection; the board is no longer listed', async () => {
    const f = await serve([{}, {}]);
    const c = await connect(f);
    await c.import('1-1');
    await c.control({ bmRequestType: 0, bRequest: 9, wValue: 1, wIndex: 0, wLength: 0 });
    expect((await c.control(dfu.dnload(0, 0))).header.status).toBe(0);
    const st = await c.control(dfu.getStatus());
    expect(st.header.status).toBe(0);
    expect(st.data[4]).toBe(7); // dfuMANIFEST: the answer reached the client before the FIN
    expect(await c.closedWithin(2000)).toBe(true);
    expect(f.events).toContainEqual(
      expect.objectContaining({ type: 'released', busid: '1-1', reason: 'device left' }),
    );
    expect(await devlist(f)).toEqual(['1-2']);
  });

  it('a device that disconnects and re-enumerates ends the connection and can be imported again', async () => {
    const f = await serve([{ faults: { seed: 1, disconnectAtTransfer: 2 } }]);
    const c = await connect(f);
    await c.import('1-1');
    await c.control({ bmRequestType: 0, bRequest: 9, wValue: 1, wIndex: 0, wLength: 0 });
    expect((await c.control(dfu.getStatus())).header.status).toBe(0);
    c.submit(dfu.getStatus()); // transfer 2: the device drops off the bus, no answer
    expect(await c.closedWithin(2000)).toBe(true);
    await waitFor('re-enumerated', async () => (await devlist(f)).includes('1-1'));
    const d = await connect(f);
    expect((await d.import('1-1')).status).toBe(ST_OK);
    expect((await d.control(getDescriptor(1, 0, 18))).header.status).toBe(0);
  });

  it('a power cycle ends the connection; the board is listed again once it has enumerated', async () => {
    const f = await serve([{}]);
    const c = await connect(f);
    await c.import('1-1');
    f.boards[0]!.setPower(false);
    expect(await c.closedWithin(2000)).toBe(true);
    expect(f.events).toContainEqual(
      expect.objectContaining({ type: 'released', busid: '1-1', reason: 'device left' }),
    );
    expect(await devlist(f)).toEqual([]);
    const refused = await connect(f);
    expect((await refused.import('1-1')).status).toBe(ST_NODEV);
    f.boards[0]!.setPower(true); // BOOT0 is high: the ROM enumerates again
    await waitFor('enumerated again', async () => (await devlist(f)).includes('1-1'));
    const d = await connect(f);
    expect((await d.import('1-1')).status).toBe(ST_OK);
  });

  it('an unanswered transfer waits for CMD_UNLINK, which answers -ECONNRESET and no RET_SUBMIT', async () => {
    const f = await serve([{ faults: { seed: 1, stopAnsweringAtTransfer: 2 } }]);
    const c = await connect(f);
    await c.import('1-1');
    await c.control({ bmRequestType: 0, bRequest: 9, wValue: 1, wIndex: 0, wLength: 0 });
    // Unlinking something that already completed answers status 0.
    const done = await c.control(dfu.getStatus());
    c.send(encodeCmdUnlink({ seqnum: 100, devid: c.devid, unlinkSeqnum: done.header.seqnum }));
    expect((await c.reply()).header).toMatchObject({ command: 4, seqnum: 100, status: 0 });
    const hung = c.submit(dfu.getStatus()); // transfer 2: the device stops answering
    c.trackIn(hung);
    await new Promise((r) => setTimeout(r, 50));
    expect(c.buffered).toBe(0);
    c.send(encodeCmdUnlink({ seqnum: 101, devid: c.devid, unlinkSeqnum: hung }));
    expect((await c.reply()).header).toMatchObject({ command: 4, seqnum: 101, status: -ECONNRESET });
    await new Promise((r) => setTimeout(r, 20));
    expect(c.buffered).toBe(0); // no late RET_SUBMIT for the unlinked URB
    expect(c.ended).toBe(false);
  });
});

describe('USB/IP server: bad input never takes it down', () => {
  async function stillServes(f: Fixture, busid: string): Promise<void> {
    expect(await devlist(f)).toContain(busid);
    const c = await connect(f);
    expect((await c.import(busid)).status).toBe(ST_OK);
    expect((await c.control(getDescriptor(1, 0, 18))).data[0]).toBe(18);
    c.close();
    await waitFor('released', () => !f.server.importedBy.has(busid));
  }

  it('a truncated operation header, then the client leaves', async () => {
    const f = await serve([{}, {}]);
    const c = await connect(f);
    c.send(encodeOpHeader(0x8003).subarray(0, 5));
    c.close();
    await stillServes(f, '1-2');
  });

  it('a truncated URB header from an importer releases its board only', async () => {
    const f = await serve([{}, {}]);
    const a = await connect(f);
    await a.import('1-1');
    const b = await connect(f);
    await b.import('1-2');
    const cmd = encodeCmdSubmit({
      seqnum: 1,
      devid: a.devid,
      direction: USBIP_DIR_IN,
      ep: 0,
      transferFlags: 0,
      transferBufferLength: 18,
      startFrame: 0,
      numberOfPackets: 0,
      interval: 0,
      setup: encodeSetup(getDescriptor(1, 0, 18)),
    });
    a.send(cmd.subarray(0, 20));
    a.close();
    await waitFor('1-1 released', () => !f.server.importedBy.has('1-1'));
    // The other importer is undisturbed.
    expect((await b.control(getDescriptor(1, 0, 18))).data[0]).toBe(18);
    b.close();
    await stillServes(f, '1-1');
  });

  it('an unknown operation code and an unknown URB command drop that connection', async () => {
    const f = await serve([{}]);
    const a = await connect(f);
    a.send(encodeOpHeader(0x8077));
    expect(await a.closedWithin(1000)).toBe(true);
    expect(f.events).toContainEqual(
      expect.objectContaining({
        type: 'protocol-error',
        message: expect.stringMatching(/unknown USB\/IP operation 0x8077/),
      }),
    );
    const b = await connect(f);
    await b.import('1-1');
    const junk = new Uint8Array(48);
    junk[3] = 0x42;
    b.send(junk);
    expect(await b.closedWithin(1000)).toBe(true);
    expect(f.events).toContainEqual(
      expect.objectContaining({
        type: 'protocol-error',
        busid: '1-1',
        message: expect.stringMatching(/unknown USB\/IP command 0x00000042/),
      }),
    );
    await stillServes(f, '1-1');
  });

  it('a client that disconnects mid-transfer (OUT data cut short, or a transfer pending)', async () => {
    const f = await serve([{}, { faults: { seed: 1, stopAnsweringAtTransfer: 1 } }]);
    const a = await connect(f);
    await a.import('1-1');
    await a.control({ bmRequestType: 0, bRequest: 9, wValue: 1, wIndex: 0, wLength: 0 });
    const full = encodeCmdSubmit(
      {
        seqnum: 9,
        devid: a.devid,
        direction: USBIP_DIR_OUT,
        ep: 0,
        transferFlags: 0,
        transferBufferLength: 1024,
        startFrame: 0,
        numberOfPackets: 0,
        interval: 0,
        setup: encodeSetup(dfu.dnload(2, 1024)),
      },
      new Uint8Array(1024),
    );
    a.send(full.subarray(0, URB_HEADER_BYTES + 100));
    await new Promise((r) => setTimeout(r, 20));
    a.close();
    const b = await connect(f);
    await b.import('1-2');
    await b.control({ bmRequestType: 0, bRequest: 9, wValue: 1, wIndex: 0, wLength: 0 });
    b.submit(dfu.getStatus()); // never answered
    await new Promise((r) => setTimeout(r, 20));
    b.close();
    await waitFor('both released', () => f.server.importedBy.size === 0);
    await stillServes(f, '1-1');
  });

  it('an OUT length no control transfer can have, and a submit for another devid, drop the connection', async () => {
    const f = await serve([{}]);
    const a = await connect(f);
    await a.import('1-1');
    a.send(
      encodeCmdSubmit({
        seqnum: 1,
        devid: a.devid,
        direction: USBIP_DIR_OUT,
        ep: 0,
        transferFlags: 0,
        transferBufferLength: 0x7fff_ffff,
        startFrame: 0,
        numberOfPackets: 0,
        interval: 0,
        setup: encodeSetup(dfu.dnload(2, 0xffff)),
      }),
    );
    expect(await a.closedWithin(1000)).toBe(true);
    const b = await connect(f);
    await b.import('1-1');
    b.devid = 0x00020005;
    b.submit(getDescriptor(1, 0, 18));
    expect(await b.closedWithin(1000)).toBe(true);
    await stillServes(f, '1-1');
  });
});

describe('USB/IP server: a flood of URBs', () => {
  it('more outstanding URBs than any driver keeps drops the connection, not the server', async () => {
    const f = await serve([{ faults: { seed: 1, stopAnsweringAtTransfer: 1 } }]);
    const c = await connect(f);
    await c.import('1-1');
    await c.control({ bmRequestType: 0, bRequest: 9, wValue: 1, wIndex: 0, wLength: 0 });
    for (let i = 0; i < 300; i++) c.submit(dfu.getStatus()); // none is ever answered
    expect(await c.closedWithin(2000)).toBe(true);
    expect(f.events).toContainEqual(
      expect.objectContaining({
        type: 'protocol-error',
        message: expect.stringMatching(/more than 256 URBs outstanding/),
      }),
    );
    expect(await devlist(f)).toEqual(['1-1']);
  });
});

describe('USB/IP server: where it listens', () => {
  it('refuses a non-loopback address unless allowed, and says USB/IP has no authentication', async () => {
    await expect(UsbipServer.listen({ exports: [], host: '0.0.0.0', port: 0 })).rejects.toMatchObject({
      code: 'E_USBIP_REMOTE',
      message: expect.stringMatching(/no authentication/),
      hint: expect.stringMatching(/--allow-remote/),
    });
    const s = await UsbipServer.listen({ exports: [], host: '0.0.0.0', port: 0, allowRemote: true });
    expect(s.address.host).toBe('0.0.0.0');
    await s.close();
  });

  it('a port in use is an infrastructure error with a hint', async () => {
    const a = await UsbipServer.listen({ exports: [], port: 0 });
    try {
      await expect(UsbipServer.listen({ exports: [], port: a.address.port })).rejects.toMatchObject({
        code: 'E_USBIP_LISTEN',
        kind: 'infra',
      });
    } finally {
      await a.close();
    }
  });
});

describe('USB/IP server: replaying what Linux 6.1 sent (harness/e2e/capture.ts)', () => {
  /** capture.yaml's boards, on fresh chips. */
  async function captureFarm(): Promise<Fixture> {
    const made = [
      testBoard({ id: 'h743-revY-d2' }),
      testBoard({ id: 'h743-hung', faults: { seed: 1, stopAnsweringAtTransfer: 1 } }),
    ];
    const server = await UsbipServer.listen({
      exports: made.map((board, i) => ({ busid: `1-${i + 1}`, busnum: 1, devnum: i + 1, board })),
      port: 0,
    });
    cleanups.push(async () => {
      await server.close();
      for (const b of made) b.close();
    });
    return { server, boards: made, events: [], port: server.address.port };
  }

  it('answers every captured request with the very bytes the kernel received then', async () => {
    const f = await captureFarm();
    for (const [i, stream] of loadCapture().entries()) {
      const c = await connect(f);
      // One message at a time, waiting for its answer (if any) and for the server to go quiet, as the kernel
      // waited for its answers: the order of replies and unlink answers then matches.
      for (const msg of clientMessages(stream.client)) {
        const before = c.buffered;
        c.send(msg);
        await waitFor('an answer', () => c.buffered !== before || c.ended, 1500).catch(() => {});
        let last = -1;
        while (c.buffered !== last && !c.ended) {
          last = c.buffered;
          await new Promise((r) => setTimeout(r, 25));
        }
      }
      await new Promise((r) => setTimeout(r, 50));
      const got = c.buffered ? await c.read(c.buffered) : new Uint8Array(0);
      expect(
        Buffer.from(got).toString('hex'),
        `stream ${i} (re-capture with harness/e2e/capture.ts if the device model changed on purpose)`,
      ).toBe(Buffer.from(stream.server).toString('hex'));
      c.close();
      await waitFor('released', () => f.server.importedBy.size === 0);
    }
  });
});
