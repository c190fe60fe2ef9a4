import type { RelayConfig } from '../../farm/schema.ts';
import { RELAY_TIMING, type SerialDriverOptions, SerialRelayDriver } from '../driver.ts';
import { hexBytes, RelayError } from '../errors.ts';
import type { ParseResult } from '../pool.ts';

/**
 * A home-made relay controller described in boards.yaml (`protocol: generic`): the bytes or text to send for
 * on, off and status, with `{ch}` standing for the channel (decimal in text, one hex byte in hex) and, in hex,
 * `{sum}` for the low byte of the sum of the bytes before it. The status reply is matched with `statusPattern`
 * (in hex mode against upper-case bytes separated by spaces, `FF 01 01`); its group 1 says on or off.
 */
export type GenericConfig = NonNullable<RelayConfig['generic']>;

export const GENERIC_CHANNELS = { min: 0, max: 31 } as const;

export function encodeGeneric(template: string, encoding: 'hex' | 'text', channel: number): Uint8Array {
  if (encoding === 'text')
    return new Uint8Array(Buffer.from(template.replaceAll('{ch}', String(channel)), 'latin1'));
  const out: number[] = [];
  for (const token of template
    .replaceAll('{ch}', channel.toString(16).padStart(2, '0'))
    .split(/[\s,]+/)
    .filter(Boolean)) {
    if (token === '{sum}') out.push(out.reduce((a, b) => a + b, 0) & 0xff);
    else if (/^(0x)?[0-9a-f]{2}$/i.test(token)) out.push(Number.parseInt(token.replace(/^0x/i, ''), 16));
    else if (/^([0-9a-f]{2})+$/i.test(token))
      for (let i = 0; i < token.length; i += 2) out.push(Number.parseInt(token.slice(i, i + 2), 16));
    else throw new Error(`"${token}" is not a hex byte`);
  }
  return Uint8Array.from(out);
}

export function statusRegex(config: GenericConfig, channel: number): RegExp {
  const source = config.statusPattern ?? (config.encoding === 'hex' ? '' : '\\b(on|off)\\b');
  return new RegExp(
    source.replaceAll(
      '{ch}',
      config.encoding === 'hex' ? channel.toString(16).padStart(2, '0').toUpperCase() : String(channel),
    ),
    'i',
  );
}

const ON = new Set(['on', '1', '01', 'true', 'closed', 'yes']);
const OFF = new Set(['off', '0', '00', 'false', 'open', 'no']);

export function parseGenericStatus(
  bytes: Uint8Array,
  final: boolean,
  re: RegExp,
  encoding: 'hex' | 'text',
): ParseResult<boolean> {
  const text = encoding === 'hex' ? hexBytes(bytes) : Buffer.from(bytes).toString('latin1');
  const m = re.exec(text);
  if (!m) return final ? { garbage: `does not match /${re.source}/` } : { done: false };
  const word = (m[1] ?? '').trim().toLowerCase();
  if (ON.has(word)) return { done: true, value: true };
  if (OFF.has(word)) return { done: true, value: false };
  return { garbage: `group 1 of /${re.source}/ is "${m[1] ?? ''}", not on/off/1/0` };
}

export class GenericDriver extends SerialRelayDriver {
  readonly protocol = 'generic' as const;
  readonly generic: GenericConfig;

  constructor(config: RelayConfig & { port: string }, opts?: SerialDriverOptions) {
    super(config, opts);
    if (!config.generic) {
      throw new RelayError(
        'E_RELAY_CONFIG',
        `relay ${config.port}: protocol generic needs a generic: { on, off } block`,
        { kind: 'input' },
      );
    }
    this.generic = config.generic;
  }

  get canRead(): boolean {
    return this.generic.status !== undefined;
  }

  defaultBaudRate(): number {
    return 9600;
  }

  async set(channel: number, closed: boolean, signal?: AbortSignal): Promise<void> {
    const bytes = encodeGeneric(closed ? this.generic.on : this.generic.off, this.generic.encoding, channel);
    await this.exchange(`switch channel ${channel} ${closed ? 'on' : 'off'}`, signal, (s) => s.write(bytes));
  }

  async read(channel: number, signal?: AbortSignal): Promise<boolean> {
    if (this.generic.status === undefined) {
      throw new RelayError('E_RELAY_NO_READBACK', `${this.label(channel)}: no status command configured`, {
        kind: 'input',
      });
    }
    const query = encodeGeneric(this.generic.status, this.generic.encoding, channel);
    const re = statusRegex(this.generic, channel);
    return this.exchange(`status of channel ${channel}`, signal, async (s, sig) => {
      await s.write(query);
      return s.read((b, final) => parseGenericStatus(b, final, re, this.generic.encoding), {
        what: `${this.label(channel)} status`,
        deadlineMs: this.answerMs,
        idleMs: RELAY_TIMING.generic.replyIdleMs,
        signal: sig,
      });
    });
  }
}
