import net from 'node:net';
import { sysCode } from '../errors.ts';
import type { SetupPacket, UsbDeviceLike } from '../usb/types.ts';
import { abortReason } from '../util/abort.ts';
import { ByteQueue } from './bytes.ts';
import {
  BUSID_BYTES,
  type CmdSubmit,
  decodeImportBusid,
  decodeOpHeader,
  decodeSetup,
  decodeUrbHeader,
  ECONNRESET,
  EPIPE,
  EPROTO,
  encodeDevlistReply,
  encodeImportReply,
  encodeRetSubmit,
  encodeRetUnlink,
  NOT_ISO,
  OP_HEADER_BYTES,
  OP_REQ_DEVLIST,
  OP_REQ_IMPORT,
  ST_DEV_BUSY,
  ST_NODEV,
  ST_OK,
  URB_HEADER_BYTES,
  USB_SPEED_FULL,
  USBIP_CMD_SUBMIT,
  USBIP_CMD_UNLINK,
  USBIP_DIR_IN,
  USBIP_DIR_OUT,
  type UsbipDevice,
  UsbipError,
} from './protocol.ts';

/** What the server needs of a virtual board (src/sim/board.ts VirtualBoard provides it). */
export type UsbipControlResult =
  | { status: 'ok'; data?: Uint8Array; bytesWritten?: number }
  | { status: 'stall' }
  | { status: 'timeout' }
  | { status: 'disconnected' };

export interface UsbipBoard {
  readonly id: string;
  readonly usb: UsbDeviceLike | undefined;
  control(setup: SetupPacket, dataOut?: Uint8Array, signal?: AbortSignal): Promise<UsbipControlResult>;
  on(event: 'attach' | 'detach', listener: () => void): unknown;
  off(event: 'attach' | 'detach', listener: () => void): unknown;
}

export interface UsbipExport {
  busid: string;
  busnum: number;
  devnum: number;
  board: UsbipBoard;
}

export type UsbipServerEvent =
  | { type: 'devlist'; peer: string; listed: string[] }
  | { type: 'import'; peer: string; busid: string; board: string }
  | {
      type: 'import-refused';
      peer: string;
      busid: string;
      board?: string;
      reason: 'unknown bus id' | 'not enumerated' | 'busy';
    }
  | {
      type: 'released';
      peer: string;
      busid: string;
      board: string;
      reason: 'device left' | 'client closed' | 'protocol error' | 'server closing';
    }
  | { type: 'protocol-error'; peer: string; busid?: string; message: string }
  | { type: 'transfer-error'; peer: string; busid: string; message: string };

export interface UsbipServerOptions {
  /** Boards with their fixed bus ids (see `assignBusIds`). */
  exports: UsbipExport[];
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 3240 (the usbip tools' port); 0 picks a free one. */
  port?: number;
  /** Allow a non-loopback address. USB/IP has no authentication. */
  allowRemote?: boolean;
  onEvent?: (event: UsbipServerEvent) => void;
}

/** The largest OUT data stage a control transfer can carry (wLength is 16 bits, USB 2.0 table 9-2). */
const MAX_CONTROL_OUT = 0xffff;
/** URBs a client may have outstanding (queued or unanswered): a flood beyond it is a protocol error. */
const MAX_OUTSTANDING_URBS = 256;
/** A client that sends half an operation request and goes quiet is dropped after this long. */
const OP_PHASE_IDLE_MS = 10_000;
/** The usbip tools' default TCP port (tools/usb/usbip/src/usbip_network.c, usbip_port). */
export const DEFAULT_USBIP_PORT = 3240;

/** Bus ids "1-1", "1-2", ... by position in boards.yaml, so a board keeps its bus id whatever `--board` selects. */
export function assignBusIds<B extends { id: string }>(
  all: readonly { id: string }[],
  selected: readonly B[],
): { busid: string; busnum: number; devnum: number; board: B }[] {
  return selected.map((board) => {
    const devnum = all.findIndex((b) => b.id === board.id) + 1;
    return { busid: `1-${devnum}`, busnum: 1, devnum, board };
  });
}

export function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  if (net.isIPv4(host)) return host.startsWith('127.');
  if (net.isIPv6(host)) return host === '::1' || /^::ffff:127\./i.test(host);
  return false;
}

/** `HOST:PORT`, `[V6]:PORT`, `HOST` or `:PORT`. */
export function parseListen(text: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*))(?::(\d+))?$/.exec(text.trim());
  const port = m?.[3] === undefined ? DEFAULT_USBIP_PORT : Number(m[3]);
  if (!m || port > 65535) {
    throw new UsbipError(
      'E_USBIP_LISTEN_SYNTAX',
      `--listen ${text}: expected HOST:PORT, e.g. 127.0.0.1:3240`,
      { listen: text },
      undefined,
      'usage',
    );
  }
  return { host: m[1] ?? (m[2] || '127.0.0.1'), port };
}

/** The device record of a board as it is enumerated now (OP_REP_DEVLIST / OP_REP_IMPORT). */
export function deviceRecord(exp: UsbipExport, usb: UsbDeviceLike): UsbipDevice {
  const config = usb.configuration ?? usb.configurations[0];
  const extra = usb as Partial<Pick<USBDevice, 'deviceClass' | 'deviceSubclass' | 'deviceProtocol'>>;
  return {
    path: `/sys/devices/stm32-hil/virtual/${exp.board.id}`,
    busid: exp.busid,
    busnum: exp.busnum,
    devnum: exp.devnum,
    speed: USB_SPEED_FULL,
    idVendor: usb.vendorId,
    idProduct: usb.productId,
    bcdDevice:
      ((usb.deviceVersionMajor & 0xff) << 8) |
      ((usb.deviceVersionMinor & 0xf) << 4) |
      (usb.deviceVersionSubminor & 0xf),
    bDeviceClass: extra.deviceClass ?? 0,
    bDeviceSubClass: extra.deviceSubclass ?? 0,
    bDeviceProtocol: extra.deviceProtocol ?? 0,
    bConfigurationValue: usb.configuration?.configurationValue ?? 0,
    bNumConfigurations: usb.configurations.length,
    interfaces: (config?.interfaces ?? []).map((i) => {
      const alt = i.alternate ?? i.alternates[0];
      return {
        bInterfaceClass: alt?.interfaceClass ?? 0,
        bInterfaceSubClass: alt?.interfaceSubclass ?? 0,
        bInterfaceProtocol: alt?.interfaceProtocol ?? 0,
      };
    }),
  };
}

interface Urb {
  header: CmdSubmit;
  data: Uint8Array;
  controller?: AbortController;
  unlinked?: boolean;
}

/**
 * Serves virtual boards over USB/IP (kernel documentation usb/usbip_protocol): OP_REQ_DEVLIST, OP_REQ_IMPORT,
 * then CMD_SUBMIT/CMD_UNLINK on endpoint 0, handed to the board's `control()`. A board is imported by at most
 * one connection; when the board leaves the bus (DFU leave, reset, power off) that connection ends, as a
 * real device's would, and the board can be imported again once it is back. Every client failure ends that
 * client's connection only.
 */
export class UsbipServer {
  readonly exports: readonly UsbipExport[];
  readonly #server: net.Server;
  readonly #sessions = new Set<Session>();
  readonly #imported = new Map<string, Session>();
  readonly #onEvent: (event: UsbipServerEvent) => void;

  private constructor(server: net.Server, opts: UsbipServerOptions) {
    this.#server = server;
    this.exports = opts.exports;
    this.#onEvent = opts.onEvent ?? (() => {});
  }

  static async listen(opts: UsbipServerOptions): Promise<UsbipServer> {
    const host = opts.host ?? '127.0.0.1';
    const port = opts.port ?? DEFAULT_USBIP_PORT;
    if (!isLoopback(host) && !opts.allowRemote) {
      throw new UsbipError(
        'E_USBIP_REMOTE',
        `refusing to serve USB/IP on ${host}: USB/IP has no authentication, anyone who reaches ${host}:${port} can flash these boards`,
        { host, port },
        'listen on 127.0.0.1 (the default), or pass --allow-remote on a network you trust',
        'usage',
      );
    }
    const server = net.createServer();
    const self = new UsbipServer(server, opts);
    server.on('connection', (socket) => self.#accept(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', (e) =>
        reject(
          new UsbipError(
            'E_USBIP_LISTEN',
            `cannot listen on ${host}:${port}: ${(e as Error).message}`,
            { host, port, errno: sysCode(e) },
            sysCode(e) === 'EADDRINUSE'
              ? `another usbipd or sim serve uses port ${port}; pick another with --listen ${host}:PORT`
              : undefined,
            'infra',
          ),
        ),
      );
      server.listen(port, host, () => resolve());
    });
    server.on('error', () => {}); // accept errors after listening do not stop the server
    return self;
  }

  get address(): { host: string; port: number } {
    const a = this.#server.address() as net.AddressInfo;
    return { host: a.address, port: a.port };
  }

  /** Ends every connection and stops listening. */
  async close(): Promise<void> {
    for (const s of this.#sessions) s.end('server closing');
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  /** Bus id -> peer of the client that has the board imported now. */
  get importedBy(): ReadonlyMap<string, string> {
    return new Map([...this.#imported].map(([busid, s]) => [busid, s.peer]));
  }

  #accept(socket: net.Socket): void {
    const session = new Session(socket, this);
    this.#sessions.add(session);
    socket.once('close', () => this.#sessions.delete(session));
  }

  /** @internal */
  emit(event: UsbipServerEvent): void {
    try {
      this.#onEvent(event);
    } catch {
      // a failing logger must not take the server down
    }
  }

  /** @internal OP_REQ_IMPORT: claims a board for `session`, or says why not. */
  claim(busid: string, session: Session): { status: number; exp?: UsbipExport; device?: UsbipDevice } {
    const exp = this.exports.find((e) => e.busid === busid);
    if (!exp) {
      this.emit({ type: 'import-refused', peer: session.peer, busid, reason: 'unknown bus id' });
      return { status: ST_NODEV };
    }
    const usb = exp.board.usb;
    if (!usb) {
      this.emit({
        type: 'import-refused',
        peer: session.peer,
        busid,
        board: exp.board.id,
        reason: 'not enumerated',
      });
      return { status: ST_NODEV };
    }
    if (this.#imported.has(busid)) {
      this.emit({ type: 'import-refused', peer: session.peer, busid, board: exp.board.id, reason: 'busy' });
      return { status: ST_DEV_BUSY };
    }
    this.#imported.set(busid, session);
    this.emit({ type: 'import', peer: session.peer, busid, board: exp.board.id });
    return { status: ST_OK, exp, device: deviceRecord(exp, usb) };
  }

  /** @internal */
  release(busid: string, session: Session): void {
    if (this.#imported.get(busid) === session) this.#imported.delete(busid);
  }

  /** @internal OP_REP_DEVLIST lists the boards that are on the bus now. */
  devlist(): UsbipDevice[] {
    return this.exports.flatMap((e) => {
      const usb = e.board.usb;
      return usb ? [deviceRecord(e, usb)] : [];
    });
  }
}

class Session {
  readonly peer: string;
  readonly #socket: net.Socket;
  readonly #server: UsbipServer;
  readonly #in = new ByteQueue();
  #phase: 'op' | 'urb' | 'closed' = 'op';
  #exp: UsbipExport | undefined;
  #devid = 0;
  readonly #queue: Urb[] = [];
  #current: Urb | undefined;
  /** URBs the device never answered (a board that stopped answering): they wait for an UNLINK. */
  readonly #parked = new Map<number, Urb>();
  #pumping = false;
  #leaving = false;
  readonly #idle: NodeJS.Timeout;
  readonly #onDetach = () => this.#deviceLeft();

  constructor(socket: net.Socket, server: UsbipServer) {
    this.#socket = socket;
    this.#server = server;
    this.peer = `${socket.remoteAddress}:${socket.remotePort}`;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.#receive(chunk));
    socket.on('error', () => {}); // ECONNRESET and friends: 'close' follows
    socket.on('close', () => this.#closed());
    this.#idle = setTimeout(() => {
      if (this.#phase === 'op') this.#protocolError(`no complete request within ${OP_PHASE_IDLE_MS} ms`);
    }, OP_PHASE_IDLE_MS);
    this.#idle.unref();
  }

  end(reason: 'device left' | 'client closed' | 'protocol error' | 'server closing'): void {
    if (this.#phase === 'closed') return;
    const wasImported = this.#phase === 'urb';
    this.#phase = 'closed';
    clearTimeout(this.#idle);
    this.#abortAll();
    if (wasImported && this.#exp) {
      this.#exp.board.off('detach', this.#onDetach);
      this.#server.release(this.#exp.busid, this);
      this.#server.emit({
        type: 'released',
        peer: this.peer,
        busid: this.#exp.busid,
        board: this.#exp.board.id,
        reason,
      });
    }
    // end() lets replies already written reach the client (the answer to a leave's GETSTATUS) before the FIN.
    this.#socket.end();
    setTimeout(() => this.#socket.destroy(), 2000).unref();
  }

  #closed(): void {
    this.end('client closed');
  }

  #abortAll(): void {
    this.#queue.length = 0;
    this.#parked.clear();
    const cur = this.#current;
    if (cur) {
      cur.unlinked = true;
      cur.controller?.abort(new UsbipError('E_USBIP_GONE', 'USB/IP connection ended'));
    }
  }

  #protocolError(message: string): void {
    this.#server.emit({
      type: 'protocol-error',
      peer: this.peer,
      ...(this.#exp ? { busid: this.#exp.busid } : {}),
      message,
    });
    this.#in.clear();
    this.end('protocol error');
    this.#socket.destroy();
  }

  /** A STALL on the pipe: RET_SUBMIT with -EPIPE and no data, as the host controller reports it. */
  #stall(h: Urb['header']): void {
    this.#write(
      encodeRetSubmit({
        seqnum: h.seqnum,
        status: -EPIPE,
        actualLength: 0,
        numberOfPackets: h.numberOfPackets,
      }),
    );
  }

  #write(bytes: Uint8Array): void {
    if (this.#phase === 'closed' || !this.#socket.writable) return;
    this.#socket.write(bytes);
  }

  #receive(chunk: Uint8Array): void {
    if (this.#phase === 'closed') return;
    this.#in.push(chunk);
    try {
      // #step() returns false when it needs more bytes or the session closed.
      while (this.#step()) {
        // keep parsing whole messages
      }
    } catch (e) {
      this.#protocolError(e instanceof Error ? e.message : String(e));
    }
  }

  /** Handles one complete message if there is one; false when more bytes are needed. */
  #step(): boolean {
    if (this.#phase === 'closed') return false;
    if (this.#phase === 'op') {
      const head = this.#in.peek(OP_HEADER_BYTES);
      if (!head) return false;
      const op = decodeOpHeader(head);
      if (op.code === OP_REQ_DEVLIST) {
        this.#in.take(OP_HEADER_BYTES);
        const devices = this.#server.devlist();
        this.#server.emit({ type: 'devlist', peer: this.peer, listed: devices.map((d) => d.busid) });
        clearTimeout(this.#idle);
        this.#socket.end(encodeDevlistReply(devices));
        this.#phase = 'closed';
        return false;
      }
      if (op.code === OP_REQ_IMPORT) {
        const msg = this.#in.take(OP_HEADER_BYTES + BUSID_BYTES);
        if (!msg) return false;
        this.#import(decodeImportBusid(msg.subarray(OP_HEADER_BYTES)));
        return true;
      }
      throw new UsbipError(
        'E_USBIP_OP',
        `unknown USB/IP operation 0x${op.code.toString(16).padStart(4, '0')} (version 0x${op.version.toString(16)})`,
      );
    }
    if (this.#phase !== 'urb') return false;
    const head = this.#in.peek(URB_HEADER_BYTES);
    if (!head) return false;
    const h = decodeUrbHeader(head);
    if (h.command === USBIP_CMD_UNLINK) {
      this.#in.take(URB_HEADER_BYTES);
      this.#unlink(h.seqnum, h.unlinkSeqnum);
      return true;
    }
    if (h.command !== USBIP_CMD_SUBMIT)
      throw new UsbipError('E_USBIP_COMMAND', `a client sent a server reply (command ${h.command})`);
    if (h.devid !== this.#devid) {
      throw new UsbipError(
        'E_USBIP_DEVID',
        `CMD_SUBMIT for devid 0x${h.devid.toString(16)}, imported 0x${this.#devid.toString(16)}`,
      );
    }
    if (h.numberOfPackets !== 0 && h.numberOfPackets !== NOT_ISO)
      throw new UsbipError('E_USBIP_ISO', 'isochronous transfers are not supported');
    const outLength = h.direction === USBIP_DIR_OUT ? h.transferBufferLength : 0;
    if (outLength > MAX_CONTROL_OUT)
      throw new UsbipError('E_USBIP_LENGTH', `OUT transfer of ${outLength} bytes on a control endpoint`);
    const msg = this.#in.take(URB_HEADER_BYTES + outLength);
    if (!msg) return false;
    if (this.#queue.length + this.#parked.size >= MAX_OUTSTANDING_URBS) {
      throw new UsbipError(
        'E_USBIP_FLOOD',
        `more than ${MAX_OUTSTANDING_URBS} URBs outstanding on endpoint 0`,
      );
    }
    this.#queue.push({ header: h, data: msg.subarray(URB_HEADER_BYTES) });
    void this.#pump();
    return true;
  }

  #import(busid: string): void {
    const claim = this.#server.claim(busid, this);
    clearTimeout(this.#idle);
    if (claim.status !== ST_OK || !claim.exp || !claim.device) {
      this.#phase = 'closed';
      this.#socket.end(encodeImportReply(claim.status));
      return;
    }
    this.#exp = claim.exp;
    this.#devid = ((claim.device.busnum << 16) | claim.device.devnum) >>> 0;
    this.#phase = 'urb';
    this.#exp.board.on('detach', this.#onDetach);
    this.#write(encodeImportReply(ST_OK, claim.device));
  }

  #deviceLeft(): void {
    // Let the transfer in progress send its answer first (the GETSTATUS that executes a leave gets one).
    this.#leaving = true;
    if (!this.#current) this.end('device left');
  }

  #unlink(seqnum: number, target: number): void {
    let status = 0; // usbip_protocol.rst: 0 when the URB had already completed
    const queued = this.#queue.findIndex((u) => u.header.seqnum === target);
    if (queued >= 0) {
      this.#queue.splice(queued, 1);
      status = -ECONNRESET;
    } else if (this.#current?.header.seqnum === target) {
      this.#current.unlinked = true;
      this.#current.controller?.abort(
        new UsbipError('E_USBIP_UNLINKED', `URB ${target} unlinked by the client`),
      );
      status = -ECONNRESET;
    } else if (this.#parked.delete(target)) {
      status = -ECONNRESET;
    }
    this.#write(encodeRetUnlink({ seqnum, status }));
  }

  async #pump(): Promise<void> {
    if (this.#pumping) return;
    this.#pumping = true;
    try {
      while (this.#phase === 'urb' && !this.#leaving) {
        const urb = this.#queue.shift();
        if (!urb) break;
        this.#current = urb;
        await this.#execute(urb);
        this.#current = undefined;
      }
    } finally {
      this.#pumping = false;
      this.#current = undefined;
      if (this.#leaving) this.end('device left');
    }
  }

  async #execute(urb: Urb): Promise<void> {
    const exp = this.#exp!;
    const h = urb.header;
    if (h.ep !== 0) {
      // The DFU bootloader has endpoint 0 only; the kernel would not submit elsewhere, a broken client might.
      this.#stall(h);
      return;
    }
    const setup = decodeSetup(h.setup);
    const deviceToHost = (setup.bmRequestType & 0x80) !== 0;
    // Never more than the URB's buffer or wLength: the kernel drops the device if actual_length exceeds its buffer.
    const limit = Math.min(setup.wLength, h.transferBufferLength);
    const dataOut = deviceToHost ? undefined : urb.data.subarray(0, limit);
    urb.controller = new AbortController();
    const signal = urb.controller.signal;
    let result: UsbipControlResult | 'unlinked';
    try {
      result = await Promise.race([
        exp.board.control(setup, dataOut, signal),
        new Promise<'unlinked'>((resolve) => {
          if (signal.aborted) resolve('unlinked');
          signal.addEventListener('abort', () => resolve('unlinked'), { once: true });
        }),
      ]);
    } catch (e) {
      if (urb.unlinked) return;
      const message = e instanceof Error ? e.message : String(abortReason(signal));
      this.#server.emit({ type: 'transfer-error', peer: this.peer, busid: exp.busid, message });
      this.#write(
        encodeRetSubmit({
          seqnum: h.seqnum,
          status: -EPROTO,
          actualLength: 0,
          numberOfPackets: h.numberOfPackets,
        }),
      );
      return;
    }
    if (result === 'unlinked' || urb.unlinked) return;
    switch (result.status) {
      case 'ok': {
        if (deviceToHost && h.direction === USBIP_DIR_IN) {
          const data = (result.data ?? new Uint8Array(0)).subarray(0, limit);
          this.#write(
            encodeRetSubmit(
              { seqnum: h.seqnum, status: 0, actualLength: data.length, numberOfPackets: h.numberOfPackets },
              data,
            ),
          );
        } else {
          const written = Math.min(result.bytesWritten ?? dataOut?.length ?? 0, limit);
          this.#write(
            encodeRetSubmit({
              seqnum: h.seqnum,
              status: 0,
              actualLength: deviceToHost ? 0 : written,
              numberOfPackets: h.numberOfPackets,
            }),
          );
        }
        return;
      }
      case 'stall':
        this.#stall(h);
        return;
      case 'timeout':
        // No answer on the bus: the client's own timeout unlinks the URB.
        this.#parked.set(h.seqnum, urb);
        return;
      case 'disconnected':
        this.#leaving = true;
        return;
    }
  }
}
