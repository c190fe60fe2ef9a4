import type { TransferRecord } from '../usb/control.ts';
import type { SetupPacket } from '../usb/types.ts';
import type { Clock } from '../util/clock.ts';
import { DFU_REQUEST_NAMES } from './protocol.ts';

/**
 * One control transfer in the transaction trace (times in ms on the host's clock since the trace started), with
 * what the host knew of the DFU state after it.
 */
export interface TraceEntry extends TransferRecord {
  /** "DFU_GETSTATUS", "GET_DESCRIPTOR(CONFIGURATION)", ... */
  request: string;
  /** What the host was doing: "erase 0x08100000", "block 7 @ 0x08001400". */
  note?: string;
  /** DFU state and status after the transfer: reported by the device (GETSTATUS/GETSTATE) or inferred. */
  dfu?: { state: string; status?: string; pollTimeoutMs?: number; inferred: boolean };
}

const STD_REQUESTS: Record<number, string> = {
  0: 'GET_STATUS',
  1: 'CLEAR_FEATURE',
  3: 'SET_FEATURE',
  5: 'SET_ADDRESS',
  6: 'GET_DESCRIPTOR',
  8: 'GET_CONFIGURATION',
  9: 'SET_CONFIGURATION',
  10: 'GET_INTERFACE',
  11: 'SET_INTERFACE',
};
const DESC_TYPES: Record<number, string> = {
  1: 'DEVICE',
  2: 'CONFIGURATION',
  3: 'STRING',
  33: 'DFU_FUNCTIONAL',
};

/** Human name of a control request (USB 2.0 table 9-4 for standard ones, DFU 1.1 table 3.2 for class ones). */
export function requestName(s: SetupPacket): string {
  const type = (s.bmRequestType >> 5) & 3;
  if (type === 1 && (s.bmRequestType & 0x1f) === 1)
    return DFU_REQUEST_NAMES[s.bRequest] ?? `CLASS_${s.bRequest}`;
  if (type === 0) {
    const name = STD_REQUESTS[s.bRequest] ?? `STD_${s.bRequest}`;
    if (s.bRequest === 6)
      return `${name}(${DESC_TYPES[s.wValue >> 8] ?? `type ${s.wValue >> 8}`} ${s.wValue & 0xff})`;
    return name;
  }
  return `REQ_${s.bmRequestType.toString(16)}_${s.bRequest}`;
}

/** The transaction trace of one host session: every control transfer, in order. */
export class DfuTrace {
  readonly entries: TraceEntry[] = [];
  /** Wall-clock time (ms since the epoch) at which the trace started, for pcapng timestamps. */
  readonly epochMs: number;
  readonly #clockStart: number;

  constructor(clock: Clock, epochMs: number = Date.now()) {
    this.#clockStart = clock.now();
    this.epochMs = epochMs;
  }

  add(rec: TransferRecord, extra: Pick<TraceEntry, 'note' | 'dfu'> = {}): TraceEntry {
    const e: TraceEntry = {
      ...rec,
      start: rec.start - this.#clockStart,
      end: rec.end - this.#clockStart,
      request: requestName(rec.setup),
      ...extra,
    };
    this.entries.push(e);
    return e;
  }

  /** Entries whose request name is `name` (e.g. "DFU_CLRSTATUS"). */
  named(name: string): TraceEntry[] {
    return this.entries.filter((e) => e.request === name);
  }

  toText(): string {
    return this.entries
      .map((e) => {
        const s = e.setup;
        const setup = [s.bmRequestType, s.bRequest, s.wValue, s.wIndex, s.wLength]
          .map((v, i) => v.toString(16).padStart(i < 2 ? 2 : 4, '0'))
          .join(' ');
        const data = e.dataOut ?? e.dataIn;
        const bytes = data?.length
          ? ` [${Buffer.from(data.subarray(0, 16)).toString('hex')}${data.length > 16 ? '...' : ''}]`
          : '';
        const dfu = e.dfu
          ? ` -> ${e.dfu.state}${e.dfu.status ? `/${e.dfu.status}` : ''}${e.dfu.inferred ? '?' : ''}`
          : '';
        const poll = e.dfu?.pollTimeoutMs ? ` poll ${e.dfu.pollTimeoutMs} ms` : '';
        return `${e.start.toFixed(3).padStart(10)} ms  ${e.request.padEnd(28)} ${setup}  ${e.outcome}${bytes}${dfu}${poll}${e.note ? `  (${e.note})` : ''}`;
      })
      .join('\n');
  }
}
