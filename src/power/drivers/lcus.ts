import type { RelayConfig } from '../../farm/schema.ts';
import { RELAY_TIMING, type SerialDriverOptions, SerialRelayDriver } from '../driver.ts';
import { RelayError } from '../errors.ts';
import type { ParseResult } from '../pool.ts';

/*
 * LCUS-1/2/4/8 USB relays (CH340, 1a86:7523). LC Technology "LC USB switch communication protocol" (product
 * notes of the LCUS series): 9600 8N1; a frame is A0 <channel> <op> <check>, op 0x00 off, 0x01 on,
 * check = (0xA0 + channel + op) & 0xFF, e.g. channel 1 on = A0 01 01 A2, off = A0 01 00 A1. No reply.
 * Status query: the single byte 0xFF. Depending on the firmware the board answers ASCII lines `CH1: ON` /
 * `CH2: OFF` (the first answer after a switch can still show the old state, so read twice on a mismatch), or one
 * byte per channel (00 off, 01 on).
 */
export const LCUS_START = 0xa0;
export const LCUS_STATUS_QUERY = 0xff;
export const LCUS_CHANNELS = { min: 1, max: 8 } as const;

export function lcusFrame(channel: number, on: boolean): Uint8Array {
  const op = on ? 0x01 : 0x00;
  return Uint8Array.of(LCUS_START, channel, op, (LCUS_START + channel + op) & 0xff);
}

export interface LcusStatus {
  format: 'ascii' | 'bytes';
  /** Index = channel number (1-based; index 0 unused). */
  states: (boolean | undefined)[];
}

const LINE = /CH\s*(\d+)\s*:\s*(ON|OFF)\b/gi;
// What may follow complete lines while the reply is still arriving: a prefix of one more line.
const PARTIAL_LINE = /^\s*(C(H(\s*\d*(\s*(:(\s*(O(N|F(F)?)?)?)?)?)?)?)?)?$/i;

/** Parses the reply to 0xFF; `channels` (when known) says how many entries complete it. */
export function parseLcusStatus(
  bytes: Uint8Array,
  final: boolean,
  channels?: number,
): ParseResult<LcusStatus> {
  const first = bytes[0]!;
  if (first === 0x00 || first === 0x01) {
    if (!bytes.every((b) => b === 0 || b === 1)) return { garbage: 'status bytes other than 00/01' };
    if (channels !== undefined && bytes.length > channels)
      return { garbage: `more than ${channels} status bytes` };
    if ((channels !== undefined && bytes.length === channels) || final) {
      return {
        done: true,
        value: { format: 'bytes', states: [undefined, ...Array.from(bytes, (b) => b === 1)] },
      };
    }
    return { done: false };
  }
  const text = Buffer.from(bytes).toString('latin1');
  const states: (boolean | undefined)[] = [];
  let end = 0;
  let count = 0;
  for (const m of text.matchAll(LINE)) {
    if (text.slice(end, m.index).trim() !== '') return { garbage: 'not an LCUS status line' };
    states[Number(m[1])] = m[2]!.toUpperCase() === 'ON';
    end = m.index + m[0].length;
    count++;
  }
  const rest = text.slice(end);
  if (!PARTIAL_LINE.test(rest))
    return { garbage: count ? 'not an LCUS status line' : 'neither ASCII lines nor status bytes' };
  const complete = channels !== undefined ? count >= channels : false;
  if (complete || (final && count > 0)) return { done: true, value: { format: 'ascii', states } };
  return { done: false };
}

export class LcusDriver extends SerialRelayDriver {
  readonly protocol = 'lcus' as const;
  readonly canRead = true;

  constructor(config: RelayConfig & { port: string }, opts?: SerialDriverOptions) {
    super(config, opts);
  }

  defaultBaudRate(): number {
    return 9600;
  }

  async set(channel: number, closed: boolean, signal?: AbortSignal): Promise<void> {
    await this.exchange(`switch channel ${channel} ${closed ? 'on' : 'off'}`, signal, (s) =>
      s.write(lcusFrame(channel, closed)),
    );
  }

  status(signal?: AbortSignal): Promise<LcusStatus> {
    return this.exchange('status', signal, async (s, sig) => {
      await s.write(Uint8Array.of(LCUS_STATUS_QUERY));
      return s.read((b, final) => parseLcusStatus(b, final, this.config.channels), {
        what: `${this.label()} status (FF)`,
        deadlineMs: this.answerMs,
        idleMs: RELAY_TIMING.lcus.replyIdleMs,
        signal: sig,
      });
    });
  }

  async read(channel: number, signal?: AbortSignal): Promise<boolean> {
    const status = await this.status(signal);
    const state = status.states[channel];
    if (state === undefined) {
      throw new RelayError(
        'E_RELAY_GARBAGE',
        `${this.label(channel)}: the status reply has no channel ${channel}`,
        {
          details: { port: this.port, channel, states: status.states },
          hint: 'is `channel` right for this board (LCUS-1 has one channel, LCUS-2 two, ...)?',
        },
      );
    }
    return state;
  }

  async readAll(signal?: AbortSignal): Promise<(boolean | undefined)[]> {
    return (await this.status(signal)).states;
  }
}
