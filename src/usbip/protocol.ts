import { HilError } from '../errors.ts';
import type { SetupPacket } from '../usb/types.ts';

/**
 * USB/IP wire format, as pure functions. Source: Linux kernel documentation `Documentation/usb/usbip_protocol.rst`
 * ("USB/IP protocol", sections "Message Format": OP_REQ_DEVLIST, OP_REP_DEVLIST, OP_REQ_IMPORT, OP_REP_IMPORT,
 * usbip_header_basic, USBIP_CMD_SUBMIT, USBIP_RET_SUBMIT, USBIP_CMD_UNLINK, USBIP_RET_UNLINK). All fields are
 * big-endian; the 8 setup bytes inside CMD_SUBMIT are the USB setup packet as on the wire (little-endian
 * words, USB 2.0 section 9.3). Hand-written: no maintained npm package implements the USB/IP server side.
 */

export class UsbipError extends HilError {
  constructor(
    code: string,
    message: string,
    details: Record<string, unknown> = {},
    hint?: string,
    kind: 'device' | 'usage' | 'infra' = 'device',
  ) {
    super(code, message, { kind, details, ...(hint ? { hint } : {}) });
  }
}

/** usbip_protocol.rst "Protocol Version": v1.1.1 is 0x0111 (the usbip tools refuse any other in a reply). */
export const USBIP_VERSION = 0x0111;

export const OP_REQ_DEVLIST = 0x8005;
export const OP_REP_DEVLIST = 0x0005;
export const OP_REQ_IMPORT = 0x8003;
export const OP_REP_IMPORT = 0x0003;

export const USBIP_CMD_SUBMIT = 0x0000_0001;
export const USBIP_CMD_UNLINK = 0x0000_0002;
export const USBIP_RET_SUBMIT = 0x0000_0003;
export const USBIP_RET_UNLINK = 0x0000_0004;

export const USBIP_DIR_OUT = 0;
export const USBIP_DIR_IN = 1;

export const OP_HEADER_BYTES = 8;
export const PATH_BYTES = 256;
export const BUSID_BYTES = 32;
/** path 256 + busid 32 + busnum, devnum, speed (3 x 4) + idVendor, idProduct, bcdDevice (3 x 2) + 6 single bytes. */
export const DEVICE_RECORD_BYTES = 312;
export const INTERFACE_RECORD_BYTES = 4;
/** usbip_header: the 20-byte usbip_header_basic plus 28 command-specific bytes, padded to the same length. */
export const URB_HEADER_BYTES = 48;

/**
 * Operation status codes of the usbip tools (tools/usb/usbip/src/usbip_network.h, ST_*): the documentation only
 * names 0 (OK) and 1 (error); `usbip attach` prints the others as "Device busy (exported)", "Device not found".
 */
export const ST_OK = 0;
export const ST_NA = 1;
export const ST_DEV_BUSY = 2;
export const ST_DEV_ERR = 3;
export const ST_NODEV = 4;
export const ST_ERROR = 5;

/** enum usb_device_speed (include/uapi/linux/usb/ch9.h): the STM32 ROM bootloaders run the OTG FS port. */
export const USB_SPEED_FULL = 2;

/** Linux errno values carried (negated) in RET_SUBMIT/RET_UNLINK status (include/uapi/asm-generic/errno*.h). */
export const ENOENT = 2;
export const ENODEV = 19;
export const EPIPE = 32;
/** The status of a transfer the simulator itself failed on (an internal error, never a device answer). */
export const EPROTO = 71;
export const ECONNRESET = 104;
export const ESHUTDOWN = 108;

/** number_of_packets of a transfer that is not isochronous as usbip_protocol.rst words it (vhci-hcd sends 0). */
export const NOT_ISO = 0xffff_ffff;

export interface UsbipInterface {
  bInterfaceClass: number;
  bInterfaceSubClass: number;
  bInterfaceProtocol: number;
}

/** The exported device as OP_REP_DEVLIST and OP_REP_IMPORT describe it. */
export interface UsbipDevice {
  path: string;
  busid: string;
  busnum: number;
  devnum: number;
  speed: number;
  idVendor: number;
  idProduct: number;
  bcdDevice: number;
  bDeviceClass: number;
  bDeviceSubClass: number;
  bDeviceProtocol: number;
  bConfigurationValue: number;
  bNumConfigurations: number;
  /** One entry per interface (bNumInterfaces); only OP_REP_DEVLIST carries them. */
  interfaces: UsbipInterface[];
}

export interface OpHeader {
  version: number;
  code: number;
  status: number;
}

export interface CmdSubmit {
  command: typeof USBIP_CMD_SUBMIT;
  seqnum: number;
  devid: number;
  direction: number;
  ep: number;
  transferFlags: number;
  transferBufferLength: number;
  startFrame: number;
  numberOfPackets: number;
  interval: number;
  setup: Uint8Array;
}

export interface CmdUnlink {
  command: typeof USBIP_CMD_UNLINK;
  seqnum: number;
  devid: number;
  direction: number;
  ep: number;
  unlinkSeqnum: number;
}

export interface RetSubmit {
  command: typeof USBIP_RET_SUBMIT;
  seqnum: number;
  devid: number;
  direction: number;
  ep: number;
  status: number;
  actualLength: number;
  startFrame: number;
  numberOfPackets: number;
  errorCount: number;
}

export interface RetUnlink {
  command: typeof USBIP_RET_UNLINK;
  seqnum: number;
  devid: number;
  direction: number;
  ep: number;
  status: number;
}

export type UrbHeader = CmdSubmit | CmdUnlink | RetSubmit | RetUnlink;

function view(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function need(bytes: Uint8Array, length: number, what: string): void {
  if (bytes.length < length) {
    throw new UsbipError('E_USBIP_TRUNCATED', `${what}: ${bytes.length} bytes, ${length} needed`, {
      length: bytes.length,
      needed: length,
    });
  }
}

/** A NUL-terminated string in a fixed field; the rest is zero. Longer strings are cut to leave room for the NUL. */
function putString(out: Uint8Array, offset: number, size: number, text: string): void {
  const encoded = new TextEncoder().encode(text).subarray(0, size - 1);
  out.set(encoded, offset);
}

function getString(bytes: Uint8Array, offset: number, size: number): string {
  const field = bytes.subarray(offset, offset + size);
  const end = field.indexOf(0);
  return new TextDecoder().decode(end < 0 ? field : field.subarray(0, end));
}

export function encodeOpHeader(code: number, status = 0, version = USBIP_VERSION): Uint8Array {
  const out = new Uint8Array(OP_HEADER_BYTES);
  const v = view(out);
  v.setUint16(0, version);
  v.setUint16(2, code);
  v.setUint32(4, status);
  return out;
}

export function decodeOpHeader(bytes: Uint8Array): OpHeader {
  need(bytes, OP_HEADER_BYTES, 'USB/IP operation header');
  const v = view(bytes);
  return { version: v.getUint16(0), code: v.getUint16(2), status: v.getUint32(4) };
}

/** The 312-byte device record shared by OP_REP_DEVLIST (offset 0x0C) and OP_REP_IMPORT (offset 0x08). */
export function encodeDeviceRecord(d: UsbipDevice): Uint8Array {
  const out = new Uint8Array(DEVICE_RECORD_BYTES);
  const v = view(out);
  putString(out, 0, PATH_BYTES, d.path);
  putString(out, 0x100, BUSID_BYTES, d.busid);
  v.setUint32(0x120, d.busnum);
  v.setUint32(0x124, d.devnum);
  v.setUint32(0x128, d.speed);
  v.setUint16(0x12c, d.idVendor);
  v.setUint16(0x12e, d.idProduct);
  v.setUint16(0x130, d.bcdDevice);
  out[0x132] = d.bDeviceClass;
  out[0x133] = d.bDeviceSubClass;
  out[0x134] = d.bDeviceProtocol;
  out[0x135] = d.bConfigurationValue;
  out[0x136] = d.bNumConfigurations;
  out[0x137] = d.interfaces.length;
  return out;
}

export function decodeDeviceRecord(bytes: Uint8Array): UsbipDevice {
  need(bytes, DEVICE_RECORD_BYTES, 'USB/IP device record');
  const v = view(bytes);
  return {
    path: getString(bytes, 0, PATH_BYTES),
    busid: getString(bytes, 0x100, BUSID_BYTES),
    busnum: v.getUint32(0x120),
    devnum: v.getUint32(0x124),
    speed: v.getUint32(0x128),
    idVendor: v.getUint16(0x12c),
    idProduct: v.getUint16(0x12e),
    bcdDevice: v.getUint16(0x130),
    bDeviceClass: bytes[0x132]!,
    bDeviceSubClass: bytes[0x133]!,
    bDeviceProtocol: bytes[0x134]!,
    bConfigurationValue: bytes[0x135]!,
    bNumConfigurations: bytes[0x136]!,
    // bNumInterfaces is at 0x137; the interface records follow only in OP_REP_DEVLIST.
    interfaces: Array.from({ length: bytes[0x137]! }, () => ({
      bInterfaceClass: 0,
      bInterfaceSubClass: 0,
      bInterfaceProtocol: 0,
    })),
  };
}

export function encodeDevlistRequest(): Uint8Array {
  return encodeOpHeader(OP_REQ_DEVLIST);
}

/** OP_REP_DEVLIST: header, device count, then per device its record and one 4-byte record per interface. */
export function encodeDevlistReply(devices: readonly UsbipDevice[]): Uint8Array {
  const size =
    OP_HEADER_BYTES +
    4 +
    devices.reduce((n, d) => n + DEVICE_RECORD_BYTES + INTERFACE_RECORD_BYTES * d.interfaces.length, 0);
  const out = new Uint8Array(size);
  out.set(encodeOpHeader(OP_REP_DEVLIST, ST_OK), 0);
  view(out).setUint32(8, devices.length);
  let at = 12;
  for (const d of devices) {
    out.set(encodeDeviceRecord(d), at);
    at += DEVICE_RECORD_BYTES;
    for (const i of d.interfaces) {
      out[at] = i.bInterfaceClass;
      out[at + 1] = i.bInterfaceSubClass;
      out[at + 2] = i.bInterfaceProtocol;
      out[at + 3] = 0; // padding
      at += INTERFACE_RECORD_BYTES;
    }
  }
  return out;
}

export function decodeDevlistReply(bytes: Uint8Array): { header: OpHeader; devices: UsbipDevice[] } {
  const header = decodeOpHeader(bytes);
  need(bytes, 12, 'OP_REP_DEVLIST');
  const count = view(bytes).getUint32(8);
  const devices: UsbipDevice[] = [];
  let at = 12;
  for (let n = 0; n < count; n++) {
    need(bytes, at + DEVICE_RECORD_BYTES, 'OP_REP_DEVLIST device record');
    const d = decodeDeviceRecord(bytes.subarray(at));
    at += DEVICE_RECORD_BYTES;
    need(bytes, at + INTERFACE_RECORD_BYTES * d.interfaces.length, 'OP_REP_DEVLIST interface records');
    d.interfaces = d.interfaces.map(() => {
      const i = {
        bInterfaceClass: bytes[at]!,
        bInterfaceSubClass: bytes[at + 1]!,
        bInterfaceProtocol: bytes[at + 2]!,
      };
      at += INTERFACE_RECORD_BYTES;
      return i;
    });
    devices.push(d);
  }
  return { header, devices };
}

export function encodeImportRequest(busid: string): Uint8Array {
  const out = new Uint8Array(OP_HEADER_BYTES + BUSID_BYTES);
  out.set(encodeOpHeader(OP_REQ_IMPORT), 0);
  putString(out, OP_HEADER_BYTES, BUSID_BYTES, busid);
  return out;
}

/** The bus id of an OP_REQ_IMPORT body (the 32 bytes after the operation header). */
export function decodeImportBusid(body: Uint8Array): string {
  need(body, BUSID_BYTES, 'OP_REQ_IMPORT bus id');
  return getString(body, 0, BUSID_BYTES);
}

/** OP_REP_IMPORT: the header, then the device record only when the status is OK. */
export function encodeImportReply(status: number, device?: UsbipDevice): Uint8Array {
  const header = encodeOpHeader(OP_REP_IMPORT, status);
  if (status !== ST_OK || !device) return header;
  const out = new Uint8Array(OP_HEADER_BYTES + DEVICE_RECORD_BYTES);
  out.set(header, 0);
  out.set(encodeDeviceRecord(device), OP_HEADER_BYTES);
  return out;
}

export function decodeImportReply(bytes: Uint8Array): { header: OpHeader; device?: UsbipDevice } {
  const header = decodeOpHeader(bytes);
  if (header.status !== ST_OK) return { header };
  need(bytes, OP_HEADER_BYTES + DEVICE_RECORD_BYTES, 'OP_REP_IMPORT');
  return { header, device: decodeDeviceRecord(bytes.subarray(OP_HEADER_BYTES)) };
}

/** devid of the URB headers a client sends: (busnum << 16) | devnum (usbip_header_basic). */
export function devidOf(busnum: number, devnum: number): number {
  return ((busnum << 16) | (devnum & 0xffff)) >>> 0;
}

function encodeBasic(
  out: Uint8Array,
  h: { command: number; seqnum: number; devid: number; direction: number; ep: number },
): DataView {
  const v = view(out);
  v.setUint32(0, h.command);
  v.setUint32(4, h.seqnum >>> 0);
  v.setUint32(8, h.devid >>> 0);
  v.setUint32(12, h.direction);
  v.setUint32(16, h.ep);
  return v;
}

/** CMD_SUBMIT header followed, for an OUT transfer, by its transfer buffer. */
export function encodeCmdSubmit(h: Omit<CmdSubmit, 'command'>, data?: Uint8Array): Uint8Array {
  const payload = h.direction === USBIP_DIR_OUT && data ? data : new Uint8Array(0);
  const out = new Uint8Array(URB_HEADER_BYTES + payload.length);
  const v = encodeBasic(out, { ...h, command: USBIP_CMD_SUBMIT });
  v.setUint32(0x14, h.transferFlags >>> 0);
  v.setUint32(0x18, h.transferBufferLength >>> 0);
  v.setUint32(0x1c, h.startFrame >>> 0);
  v.setUint32(0x20, h.numberOfPackets >>> 0);
  v.setUint32(0x24, h.interval >>> 0);
  out.set(h.setup.subarray(0, 8), 0x28);
  out.set(payload, URB_HEADER_BYTES);
  return out;
}

export function encodeCmdUnlink(
  h: Omit<CmdUnlink, 'command' | 'direction' | 'ep'> & { direction?: number; ep?: number },
): Uint8Array {
  const out = new Uint8Array(URB_HEADER_BYTES);
  const v = encodeBasic(out, { direction: 0, ep: 0, ...h, command: USBIP_CMD_UNLINK });
  v.setUint32(0x14, h.unlinkSeqnum >>> 0);
  return out;
}

/**
 * RET_SUBMIT header followed, for an IN transfer, by the data. A server sets devid, direction and ep to 0
 * (usbip_header_basic: "for server this shall be 0"); status is 0 or a negative errno. number_of_packets:
 * the kernel's own server (drivers/usb/usbip/stub_tx.c) sends back the value the client's CMD_SUBMIT carried,
 * which vhci-hcd sets to 0 for a control transfer; servers should echo it (Wireshark's dissector reads
 * 0xffffffff as that many ISO descriptors).
 */
export function encodeRetSubmit(
  h: {
    seqnum: number;
    status: number;
    actualLength: number;
    startFrame?: number;
    numberOfPackets?: number;
    errorCount?: number;
  },
  data?: Uint8Array,
): Uint8Array {
  const payload = data ?? new Uint8Array(0);
  const out = new Uint8Array(URB_HEADER_BYTES + payload.length);
  const v = encodeBasic(out, { command: USBIP_RET_SUBMIT, seqnum: h.seqnum, devid: 0, direction: 0, ep: 0 });
  v.setInt32(0x14, h.status);
  v.setUint32(0x18, h.actualLength >>> 0);
  v.setUint32(0x1c, (h.startFrame ?? 0) >>> 0);
  v.setUint32(0x20, (h.numberOfPackets ?? 0) >>> 0);
  v.setUint32(0x24, (h.errorCount ?? 0) >>> 0);
  out.set(payload, URB_HEADER_BYTES);
  return out;
}

/** RET_UNLINK: status -ECONNRESET when the URB was unlinked, 0 when it had already completed. */
export function encodeRetUnlink(h: { seqnum: number; status: number }): Uint8Array {
  const out = new Uint8Array(URB_HEADER_BYTES);
  const v = encodeBasic(out, { command: USBIP_RET_UNLINK, seqnum: h.seqnum, devid: 0, direction: 0, ep: 0 });
  v.setInt32(0x14, h.status);
  return out;
}

/** Decodes a 48-byte URB header; throws E_USBIP_COMMAND for a command number USB/IP does not define. */
export function decodeUrbHeader(bytes: Uint8Array): UrbHeader {
  need(bytes, URB_HEADER_BYTES, 'USB/IP URB header');
  const v = view(bytes);
  const basic = {
    seqnum: v.getUint32(4),
    devid: v.getUint32(8),
    direction: v.getUint32(12),
    ep: v.getUint32(16),
  };
  const command = v.getUint32(0);
  switch (command) {
    case USBIP_CMD_SUBMIT:
      return {
        command,
        ...basic,
        transferFlags: v.getUint32(0x14),
        transferBufferLength: v.getUint32(0x18),
        startFrame: v.getUint32(0x1c),
        numberOfPackets: v.getUint32(0x20),
        interval: v.getUint32(0x24),
        setup: bytes.slice(0x28, 0x30),
      };
    case USBIP_CMD_UNLINK:
      return { command, ...basic, unlinkSeqnum: v.getUint32(0x14) };
    case USBIP_RET_SUBMIT:
      return {
        command,
        ...basic,
        status: v.getInt32(0x14),
        actualLength: v.getUint32(0x18),
        startFrame: v.getUint32(0x1c),
        numberOfPackets: v.getUint32(0x20),
        errorCount: v.getUint32(0x24),
      };
    case USBIP_RET_UNLINK:
      return { command, ...basic, status: v.getInt32(0x14) };
    default:
      throw new UsbipError(
        'E_USBIP_COMMAND',
        `unknown USB/IP command 0x${command.toString(16).padStart(8, '0')}`,
        { command },
      );
  }
}

/** The setup packet inside CMD_SUBMIT (USB 2.0 section 9.3, table 9-2: words little-endian). */
export function decodeSetup(bytes: Uint8Array): SetupPacket {
  need(bytes, 8, 'USB setup packet');
  const v = view(bytes);
  return {
    bmRequestType: bytes[0]!,
    bRequest: bytes[1]!,
    wValue: v.getUint16(2, true),
    wIndex: v.getUint16(4, true),
    wLength: v.getUint16(6, true),
  };
}

export function encodeSetup(s: SetupPacket): Uint8Array {
  const out = new Uint8Array(8);
  const v = view(out);
  out[0] = s.bmRequestType;
  out[1] = s.bRequest;
  v.setUint16(2, s.wValue, true);
  v.setUint16(4, s.wIndex, true);
  v.setUint16(6, s.wLength, true);
  return out;
}
