import type { RelayConfig } from '../../farm/schema.ts';
import { RELAY_TIMING, type SerialDriverOptions, SerialRelayDriver } from '../driver.ts';
import { RelayError } from '../errors.ts';
import type { ParseResult } from '../pool.ts';

/*
 * KMTronic USB relays. KMTronic "USB Relay Test software" command list (info.kmtronic.com): 9600 8N1;
 * FF <ch> 01 on, FF <ch> 00 off (no reply). One and two relay boards: FF <ch> 03 asks one relay, answered
 * FF <ch> <state>. Four and eight relay boards: FF 09 00 asks all, answered one byte per relay (00 off, 01 on),
 * the first byte for relay 1.
 */
export const KMTRONIC_CHANNELS = { min: 1, max: 8 } as const;
export const KMTRONIC_STATUS_ALL = Uint8Array.of(0xff, 0x09, 0x00);

export function kmtronicFrame(channel: number, on: boolean): Uint8Array {
  return Uint8Array.of(0xff, channel, on ? 0x01 : 0x00);
}

export function kmtronicStatusOne(channel: number): Uint8Array {
  return Uint8Array.of(0xff, channel, 0x03);
}

/** Reply to FF ch 03: FF ch state. */
export function parseKmtronicOne(bytes: Uint8Array, channel: number): ParseResult<boolean> {
  if (bytes[0] !== 0xff) return { garbage: 'expected FF first' };
  if (bytes.length >= 2 && bytes[1] !== channel)
    return { garbage: `reply for channel ${bytes[1]}, asked ${channel}` };
  if (bytes.length < 3) return { done: false };
  if (bytes.length > 3 || (bytes[2] !== 0 && bytes[2] !== 1)) return { garbage: 'expected FF ch 00|01' };
  return { done: true, value: bytes[2] === 1 };
}

/** Reply to FF 09 00: one byte per relay. */
export function parseKmtronicAll(
  bytes: Uint8Array,
  final: boolean,
  channels?: number,
): ParseResult<boolean[]> {
  if (!bytes.every((b) => b === 0 || b === 1)) return { garbage: 'status bytes other than 00/01' };
  if (channels !== undefined && bytes.length > channels)
    return { garbage: `more than ${channels} status bytes` };
  if ((channels !== undefined && bytes.length === channels) || final)
    return { done: true, value: Array.from(bytes, (b) => b === 1) };
  return { done: false };
}

export class KmtronicDriver extends SerialRelayDriver {
  readonly protocol = 'kmtronic' as const;
  readonly canRead = true;

  constructor(config: RelayConfig & { port: string }, opts?: SerialDriverOptions) {
    super(config, opts);
  }

  defaultBaudRate(): number {
    return 9600;
  }

  /** One and two relay boards only answer the per-relay query. */
  get #perRelayQuery(): boolean {
    return this.config.channels !== undefined && this.config.channels <= 2;
  }

  async set(channel: number, closed: boolean, signal?: AbortSignal): Promise<void> {
    await this.exchange(`switch channel ${channel} ${closed ? 'on' : 'off'}`, signal, (s) =>
      s.write(kmtronicFrame(channel, closed)),
    );
  }

  async read(channel: number, signal?: AbortSignal): Promise<boolean> {
    if (this.#perRelayQuery) {
      return this.exchange(`status of channel ${channel}`, signal, async (s, sig) => {
        await s.write(kmtronicStatusOne(channel));
        return s.read((b) => parseKmtronicOne(b, channel), {
          what: `${this.label(channel)} status (FF ${channel} 03)`,
          deadlineMs: this.answerMs,
          signal: sig,
        });
      });
    }
    const all = await this.readAll(signal);
    const state = all[channel];
    if (state === undefined) {
      throw new RelayError(
        'E_RELAY_GARBAGE',
        `${this.label(channel)}: the status reply has ${all.length - 1} relays, no channel ${channel}`,
        {
          details: { port: this.port, channel },
        },
      );
    }
    return state;
  }

  async readAll(signal?: AbortSignal): Promise<(boolean | undefined)[]> {
    if (this.#perRelayQuery) {
      const out: (boolean | undefined)[] = [undefined];
      for (let ch = 1; ch <= this.config.channels!; ch++) out.push(await this.read(ch, signal));
      return out;
    }
    const states = await this.exchange('status', signal, async (s, sig) => {
      await s.write(KMTRONIC_STATUS_ALL);
      return s.read((b, final) => parseKmtronicAll(b, final, this.config.channels), {
        what: `${this.label()} status (FF 09 00)`,
        deadlineMs: this.answerMs,
        idleMs: RELAY_TIMING.kmtronic.replyIdleMs,
        signal: sig,
      });
    });
    return [undefined, ...states];
  }
}
