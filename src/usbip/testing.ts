import { readFileSync } from 'node:fs';
import {
  DEVICE_RECORD_BYTES,
  decodeOpHeader,
  decodeUrbHeader,
  OP_HEADER_BYTES,
  URB_HEADER_BYTES,
  type UrbHeader,
} from './protocol.ts';

/**
 * Real USB/IP traffic for the framing and server tests: Linux 6.1's vhci-hcd, usbip and dfu-util against
 * `stm32-hil sim serve` with harness/e2e/capture.yaml, recorded by harness/e2e/capture.ts. Each TCP connection
 * is kept as the two byte sequences its sides sent.
 */
export interface CapturedStream {
  client: Uint8Array;
  server: Uint8Array;
}

export function loadCapture(): CapturedStream[] {
  const raw = JSON.parse(
    readFileSync(new URL('./fixtures/linux-6.1-vhci.json', import.meta.url), 'utf8'),
  ) as {
    streams: { client: string; server: string }[];
  };
  return raw.streams.map((s) => ({
    client: Uint8Array.from(Buffer.from(s.client, 'hex')),
    server: Uint8Array.from(Buffer.from(s.server, 'hex')),
  }));
}

/** What a client sent, as messages: the operation request, then URB headers each with its OUT data. */
export function clientMessages(bytes: Uint8Array): Uint8Array[] {
  const first = decodeOpHeader(bytes).code === 0x8003 ? OP_HEADER_BYTES + 32 : OP_HEADER_BYTES;
  const out = [bytes.subarray(0, first)];
  let at = first;
  while (at < bytes.length) {
    const h = decodeUrbHeader(bytes.subarray(at, at + URB_HEADER_BYTES));
    const size = URB_HEADER_BYTES + (h.command === 1 && h.direction === 0 ? h.transferBufferLength : 0);
    out.push(bytes.subarray(at, at + size));
    at += size;
  }
  return out;
}

/**
 * The URB replies of an import session's server side (after OP_REP_IMPORT), each with its data; `commands`
 * (the client's) tell which RET_SUBMITs carry IN data. Throws if the bytes do not split exactly.
 */
export function serverReplies(
  bytes: Uint8Array,
  commands: UrbHeader[],
): { header: UrbHeader; data: Uint8Array }[] {
  const dirIn = new Set(commands.filter((c) => c.command === 1 && c.direction === 1).map((c) => c.seqnum));
  const out: { header: UrbHeader; data: Uint8Array }[] = [];
  let at = OP_HEADER_BYTES + DEVICE_RECORD_BYTES;
  while (at < bytes.length) {
    const header = decodeUrbHeader(bytes.subarray(at, at + URB_HEADER_BYTES));
    at += URB_HEADER_BYTES;
    const n = header.command === 3 && dirIn.has(header.seqnum) ? header.actualLength : 0;
    out.push({ header, data: bytes.subarray(at, at + n) });
    at += n;
  }
  if (at !== bytes.length) throw new Error(`server bytes end ${at - bytes.length} bytes past the last reply`);
  return out;
}
