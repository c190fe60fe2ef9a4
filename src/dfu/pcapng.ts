import type { DfuTrace, TraceEntry } from './trace.ts';

/**
 * Writes a transaction trace as pcapng (IETF draft-ietf-opsawg-pcapng: Section Header, Interface Description
 * and Enhanced Packet blocks) with link type LINKTYPE_USB_LINUX_MMAPPED (220, tcpdump.org link-layer header
 * types): each packet starts with the 64-byte Linux usbmon binary header (Linux Documentation/usb/usbmon.rst,
 * "struct usbmon_packet"), so Wireshark and tshark decode the control transfers, and the DFU requests once
 * they have seen the configuration descriptor. Each completion carries the host's view (DFU state after the
 * transfer, what it was doing) as a packet comment. Hand-written: no maintained npm library writes usbmon pcapng.
 */

export const LINKTYPE_USB_LINUX_MMAPPED = 220;

const EINPROGRESS = -115;
const EPIPE = -32;
const ENODEV = -19;
const ETIMEDOUT = -110;
const EPROTO = -71;
const URB_DIR_IN = 0x200;

export interface PcapngOptions {
  /** usbmon bus number and device address written into each header. */
  busNumber?: number;
  deviceAddress?: number;
  /** Shown by Wireshark as the capture's application. */
  application?: string;
}

function pad4(n: number): number {
  return (4 - (n % 4)) % 4;
}

class Writer {
  readonly chunks: Buffer[] = [];
  block(type: number, body: Buffer): void {
    const total = 12 + body.length + pad4(body.length);
    const b = Buffer.alloc(total);
    b.writeUInt32LE(type, 0);
    b.writeUInt32LE(total, 4);
    body.copy(b, 8);
    b.writeUInt32LE(total, total - 4);
    this.chunks.push(b);
  }
}

function option(code: number, value: Buffer): Buffer {
  const b = Buffer.alloc(4 + value.length + pad4(value.length));
  b.writeUInt16LE(code, 0);
  b.writeUInt16LE(value.length, 2);
  value.copy(b, 4);
  return b;
}

const END_OF_OPTIONS = Buffer.alloc(4);

/** One usbmon event ('S' submission or 'C' completion) with its data. */
function usbmonPacket(
  e: TraceEntry,
  type: 'S' | 'C',
  tsMicros: bigint,
  opts: Required<Pick<PcapngOptions, 'busNumber' | 'deviceAddress'>>,
): Buffer {
  const isIn = (e.setup.bmRequestType & 0x80) !== 0;
  let data: Uint8Array = new Uint8Array(0);
  let flagData = 0;
  let status = EINPROGRESS;
  let length = e.setup.wLength;
  if (type === 'S') {
    if (isIn)
      flagData = 0x3c; // '<': data comes with the completion
    else if (e.dataOut?.length) data = e.dataOut;
    else flagData = 0x3d; // '=': nothing to capture
  } else {
    status =
      e.outcome === 'ok'
        ? 0
        : e.outcome === 'stall'
          ? EPIPE
          : e.outcome === 'disconnected'
            ? ENODEV
            : e.outcome === 'timeout'
              ? ETIMEDOUT
              : EPROTO;
    if (isIn) {
      data = e.outcome === 'ok' && e.dataIn ? e.dataIn : new Uint8Array(0);
      length = data.length;
      if (!data.length) flagData = 0x3d;
    } else {
      flagData = 0x3e; // '>': data went with the submission
      length = e.outcome === 'ok' ? e.setup.wLength : 0;
    }
  }
  const h = Buffer.alloc(64 + data.length);
  h.writeBigUInt64LE(BigInt(e.seq), 0); // URB id: pairs S with C
  h.writeUInt8(type.charCodeAt(0), 8);
  h.writeUInt8(2, 9); // control transfer
  h.writeUInt8(isIn ? 0x80 : 0x00, 10); // endpoint 0 and direction
  h.writeUInt8(opts.deviceAddress, 11);
  h.writeUInt16LE(opts.busNumber, 12);
  h.writeUInt8(type === 'S' ? 0 : 0x2d, 14); // flag_setup: 0 = setup present, '-' = none
  h.writeUInt8(flagData, 15);
  h.writeBigInt64LE(tsMicros / 1_000_000n, 16);
  h.writeInt32LE(Number(tsMicros % 1_000_000n), 24);
  h.writeInt32LE(status, 28);
  h.writeUInt32LE(length, 32);
  h.writeUInt32LE(data.length, 36);
  if (type === 'S') {
    const s = e.setup;
    h.writeUInt8(s.bmRequestType, 40);
    h.writeUInt8(s.bRequest, 41);
    h.writeUInt16LE(s.wValue, 42);
    h.writeUInt16LE(s.wIndex, 44);
    h.writeUInt16LE(s.wLength, 46);
  }
  h.writeInt32LE(0, 48); // interval
  h.writeInt32LE(0, 52); // start_frame
  h.writeUInt32LE(isIn ? URB_DIR_IN : 0, 56); // xfer_flags
  h.writeUInt32LE(0, 60); // ndesc
  Buffer.from(data.buffer, data.byteOffset, data.byteLength).copy(h, 64);
  return h;
}

function enhancedPacket(packet: Buffer, tsMicros: bigint, comment?: string): Buffer {
  // opt_comment (code 1): Wireshark shows it as the packet comment (frame.comment).
  const opts = comment ? Buffer.concat([option(1, Buffer.from(comment)), END_OF_OPTIONS]) : Buffer.alloc(0);
  const body = Buffer.alloc(20 + packet.length + pad4(packet.length) + opts.length);
  body.writeUInt32LE(0, 0); // interface 0
  body.writeUInt32LE(Number(tsMicros >> 32n), 4);
  body.writeUInt32LE(Number(tsMicros & 0xffff_ffffn), 8);
  body.writeUInt32LE(packet.length, 12);
  body.writeUInt32LE(packet.length, 16);
  packet.copy(body, 20);
  opts.copy(body, 20 + packet.length + pad4(packet.length));
  return body;
}

/** The host's view after the transfer: DFU state/status (reported, or inferred with "?") and what it was doing. */
function commentFor(e: TraceEntry): string | undefined {
  const parts: string[] = [];
  if (e.dfu)
    parts.push(`${e.dfu.state}${e.dfu.status ? `/${e.dfu.status}` : ''}${e.dfu.inferred ? '?' : ''}`);
  if (e.note) parts.push(e.note);
  if (e.error) parts.push(e.error);
  return parts.length ? parts.join('; ') : undefined;
}

export function traceToPcapng(trace: DfuTrace, opts: PcapngOptions = {}): Uint8Array {
  const o = { busNumber: opts.busNumber ?? 1, deviceAddress: opts.deviceAddress ?? 1 };
  const w = new Writer();
  // Section Header Block: byte-order magic, version 1.0, section length unknown (-1).
  const shbHead = Buffer.alloc(16);
  shbHead.writeUInt32LE(0x1a2b3c4d, 0);
  shbHead.writeUInt16LE(1, 4);
  shbHead.writeUInt16LE(0, 6);
  shbHead.writeBigInt64LE(-1n, 8);
  w.block(
    0x0a0d0d0a,
    Buffer.concat([shbHead, option(4, Buffer.from(opts.application ?? 'stm32-hil')), END_OF_OPTIONS]),
  );
  // Interface Description Block: link type, snap length, if_name and if_tsresol (10^-6 s).
  const idbHead = Buffer.alloc(8);
  idbHead.writeUInt16LE(LINKTYPE_USB_LINUX_MMAPPED, 0);
  idbHead.writeUInt32LE(0, 4);
  w.block(
    1,
    Buffer.concat([
      idbHead,
      option(2, Buffer.from(`usbmon${o.busNumber}`)),
      option(9, Buffer.from([6])),
      END_OF_OPTIONS,
    ]),
  );
  const base = BigInt(Math.round(trace.epochMs * 1000));
  for (const e of trace.entries) {
    const ts = base + BigInt(Math.round(e.start * 1000));
    const te = base + BigInt(Math.round(Math.max(e.end, e.start) * 1000));
    w.block(6, enhancedPacket(usbmonPacket(e, 'S', ts, o), ts));
    w.block(6, enhancedPacket(usbmonPacket(e, 'C', te, o), te, commentFor(e)));
  }
  return new Uint8Array(Buffer.concat(w.chunks));
}
