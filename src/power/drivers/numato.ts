import type { RelayConfig } from '../../farm/schema.ts';
import { type SerialDriverOptions, SerialRelayDriver } from '../driver.ts';
import { RelayError } from '../errors.ts';
import type { ParseResult } from '../pool.ts';

/*
 * Numato Lab USB relay modules (USB CDC; the baud rate is ignored). Numato Lab "8 Channel USB Relay Module"
 * documentation, section "Command set": ASCII commands ending in CR — `relay on N`, `relay off N`,
 * `relay read N` (answers `on`/`off`), `relay readall` (answers a hex bitmap, bit N = relay N). The module
 * echoes the command, then `\n\r`, the answer line for reads, and a `>` prompt. Relays 10 to 31 are written as
 * the letters A to V.
 */
export const NUMATO_CHANNELS = { min: 0, max: 31 } as const;

/** `0`..`9`, then `A`..`V` for relays 10 to 31. */
export function numatoIndex(channel: number): string {
  return channel < 10 ? String(channel) : String.fromCharCode(0x41 + channel - 10);
}

export function numatoCommand(text: string): Uint8Array {
  return new Uint8Array(Buffer.from(`${text}\r`, 'latin1'));
}

/**
 * Parses `echo \n\r [answer \n\r] >`. Returns the answer lines. Garbage when the bytes are not the echo of
 * `command` (a module that echoes something else is not the module we think it is).
 */
export function parseNumatoReply(bytes: Uint8Array, command: string): ParseResult<string[]> {
  // A prompt or line ends left over from an earlier exchange may come first.
  const text = Buffer.from(bytes)
    .toString('latin1')
    .replace(/^[\r\n>]+/, '');
  if (text.length === 0) return { done: false };
  const echoed = text.slice(0, command.length);
  if (!command.startsWith(echoed)) return { garbage: `not the echo of "${command}"` };
  if (text.length <= command.length) return { done: false };
  const after = text.slice(command.length);
  if (!/^[\r\n]/.test(after)) return { garbage: `not the echo of "${command}"` };
  const prompt = after.lastIndexOf('>');
  if (prompt < 0)
    return /^[\r\n\x20-\x7e]*$/.test(after) ? { done: false } : { garbage: 'not printable text' };
  if (after.slice(prompt + 1).trim() !== '') return { garbage: 'text after the prompt' };
  const lines = after
    .slice(0, prompt)
    .split(/[\r\n]+/)
    .map((l) => l.trim())
    .filter(Boolean);
  return { done: true, value: lines };
}

export class NumatoDriver extends SerialRelayDriver {
  readonly protocol = 'numato' as const;
  readonly canRead = true;

  constructor(config: RelayConfig & { port: string }, opts?: SerialDriverOptions) {
    super(config, opts);
  }

  defaultBaudRate(): number {
    return 19200;
  }

  /** Sends `command`, returns the answer lines between the echo and the prompt. */
  command(command: string, signal?: AbortSignal): Promise<string[]> {
    return this.exchange(command, signal, async (s, sig) => {
      await s.write(numatoCommand(command));
      return s.read((b) => parseNumatoReply(b, command), {
        what: `${this.label()}: "${command}"`,
        deadlineMs: this.answerMs,
        signal: sig,
      });
    });
  }

  async set(channel: number, closed: boolean, signal?: AbortSignal): Promise<void> {
    const lines = await this.command(`relay ${closed ? 'on' : 'off'} ${numatoIndex(channel)}`, signal);
    if (lines.length) throw this.#garbage(channel, `relay ${closed ? 'on' : 'off'}`, lines);
  }

  async read(channel: number, signal?: AbortSignal): Promise<boolean> {
    const lines = await this.command(`relay read ${numatoIndex(channel)}`, signal);
    const answer = lines.length === 1 ? lines[0]!.toLowerCase() : undefined;
    if (answer !== 'on' && answer !== 'off') throw this.#garbage(channel, 'relay read', lines);
    return answer === 'on';
  }

  async readAll(signal?: AbortSignal): Promise<boolean[]> {
    const lines = await this.command('relay readall', signal);
    const hex = lines.length === 1 ? lines[0]! : '';
    if (!/^[0-9a-f]{1,8}$/i.test(hex)) throw this.#garbage(undefined, 'relay readall', lines);
    const bits = Number.parseInt(hex, 16);
    return Array.from({ length: hex.length * 4 }, (_, i) => ((bits >>> i) & 1) === 1);
  }

  #garbage(channel: number | undefined, command: string, lines: string[]): RelayError {
    return new RelayError(
      'E_RELAY_GARBAGE',
      `${this.label(channel)}: "${command}" answered ${JSON.stringify(lines)}`,
      {
        details: { port: this.port, channel: channel ?? null, command, lines },
      },
    );
  }
}
