import type { RelayConfig } from '../../farm/schema.ts';
import { encodeGeneric } from '../drivers/generic.ts';
import type { VirtualBoardLike } from '../virtual.ts';

/**
 * A simulated relay board: the firmware side of each protocol the drivers speak, written from the same vendor
 * descriptions (see drivers/*.ts for the citations), with faults. It only turns received bytes into reply
 * bytes; pty.ts puts it behind a pseudo-terminal so the real drivers reach it through the real serial bindings.
 */
export type VirtualRelayProtocol = 'lcus-ascii' | 'lcus-bytes' | 'numato' | 'kmtronic' | 'generic';

export interface RelayBoardFaults {
  /** Ignores everything: no switching, no reply (a dead board, a wrong port). */
  dead?: boolean;
  /** Switches, but never sends a byte (a broken TX line). */
  mute?: boolean;
  /** Answers every query with noise. */
  garbage?: boolean;
  /** Channels whose relay does not move (welded contacts): read-back shows the old state. */
  stuck?: number[];
  /** Reports the inverse of every relay's state. */
  lie?: boolean;
  /** LCUS ASCII firmware: the first status after a switch still shows the state before it. */
  staleFirstStatus?: boolean;
}

export interface VirtualRelayBoardOptions {
  protocol: VirtualRelayProtocol;
  /** Relays on the board (default 8 for LCUS/KMTronic, 16 for Numato, 8 for generic). */
  channels?: number;
  /** protocol generic: the commands, as boards.yaml gives them to the driver. */
  generic?: NonNullable<RelayConfig['generic']>;
  /** protocol generic: the status reply for a channel (default `STATE <ch> ON\r\n`). */
  genericReply?: (channel: number, on: boolean) => string;
  faults?: RelayBoardFaults;
}

const NOISE = [0x5a, 0xc3, 0x7e, 0x81, 0x00, 0x3c, 0xf0, 0x11];

export class VirtualRelayBoard {
  readonly protocol: VirtualRelayProtocol;
  readonly channels: number;
  faults: RelayBoardFaults;
  /** Relay states; index = channel as the protocol numbers it (LCUS/KMTronic from 1, Numato from 0). */
  readonly states: boolean[];
  /** Every byte received, in order: what tests compare byte for byte. */
  readonly rx: number[] = [];
  /** Every byte sent. */
  readonly tx: number[] = [];
  /** Decoded commands, e.g. `on 1`, `status`, `read 3`. */
  readonly commands: string[] = [];
  readonly #generic: VirtualRelayBoardOptions['generic'];
  readonly #genericReply: (channel: number, on: boolean) => string;
  readonly #listeners: ((channel: number, closed: boolean) => void)[] = [];
  #buf: number[] = [];
  #staleSnapshot: boolean[] | undefined;

  constructor(opts: VirtualRelayBoardOptions) {
    this.protocol = opts.protocol;
    this.channels = opts.channels ?? (opts.protocol === 'numato' ? 16 : 8);
    this.faults = opts.faults ?? {};
    const first = this.protocol === 'numato' || this.protocol === 'generic' ? 0 : 1;
    this.states = Array.from({ length: this.channels + first }, () => false);
    this.#generic = opts.generic;
    this.#genericReply = opts.genericReply ?? ((ch, on) => `STATE ${ch} ${on ? 'ON' : 'OFF'}\r\n`);
  }

  get firstChannel(): number {
    return this.protocol === 'numato' || this.protocol === 'generic' ? 0 : 1;
  }

  /** Calls `listener` whenever a relay really moves. */
  onSwitch(listener: (channel: number, closed: boolean) => void): void {
    this.#listeners.push(listener);
  }

  /**
   * Wires `channel` to a line of a virtual board: power, BOOT0, or NRST (a reset pulse when released). The
   * relay drives the line from now on, so the board takes the relay's present state at once (an open power
   * relay means an unpowered board).
   */
  wire(channel: number, board: VirtualBoardLike, role: 'power' | 'boot0' | 'reset'): void {
    const closed = this.states[channel] === true;
    if (role === 'power') board.setPower(closed);
    else if (role === 'boot0') board.setBoot0(closed);
    this.onSwitch((ch, closed) => {
      if (ch !== channel) return;
      if (role === 'power') board.setPower(closed);
      else if (role === 'boot0') board.setBoot0(closed);
      else if (!closed) board.reset();
    });
  }

  #valid(ch: number): boolean {
    return ch >= this.firstChannel && ch < this.firstChannel + this.channels;
  }

  #switch(ch: number, closed: boolean): void {
    this.commands.push(`${closed ? 'on' : 'off'} ${ch}`);
    if (!this.#valid(ch) || this.faults.stuck?.includes(ch)) return;
    if (this.states[ch] === closed) return;
    this.#staleSnapshot ??= [...this.states];
    this.states[ch] = closed;
    for (const l of this.#listeners) l(ch, closed);
  }

  /** States as the board reports them (faults applied). */
  #reported(): boolean[] {
    let s = this.states;
    if (this.protocol === 'lcus-ascii' && this.faults.staleFirstStatus && this.#staleSnapshot)
      s = this.#staleSnapshot;
    this.#staleSnapshot = undefined;
    return this.faults.lie ? s.map((v) => !v) : s;
  }

  #reply(bytes: number[] | string): number[] {
    const out = typeof bytes === 'string' ? Array.from(Buffer.from(bytes, 'latin1')) : bytes;
    if (this.faults.mute) return [];
    if (this.faults.garbage) return out.map((_, i) => NOISE[i % NOISE.length]!);
    return out;
  }

  /** Takes received bytes, returns the bytes the board sends back. */
  feed(chunk: Uint8Array): Uint8Array {
    this.rx.push(...chunk);
    if (this.faults.dead) return new Uint8Array(0);
    this.#buf.push(...chunk);
    const out: number[] = [];
    switch (this.protocol) {
      case 'lcus-ascii':
      case 'lcus-bytes':
        this.#lcus(out);
        break;
      case 'numato':
        this.#numato(out);
        break;
      case 'kmtronic':
        this.#kmtronic(out);
        break;
      case 'generic':
        this.#genericFeed(out);
        break;
    }
    this.tx.push(...out);
    return Uint8Array.from(out);
  }

  // LCUS: A0 ch op sum switches; FF asks the status (ASCII lines or a byte per channel, by firmware).
  #lcus(out: number[]): void {
    const b = this.#buf;
    while (b.length) {
      if (b[0] === 0xff) {
        b.shift();
        this.commands.push('status');
        const states = this.#reported();
        const chans = Array.from({ length: this.channels }, (_, i) => i + 1);
        out.push(
          ...this.#reply(
            this.protocol === 'lcus-ascii'
              ? chans.map((ch) => `CH${ch}: ${states[ch] ? 'ON' : 'OFF'}\r\n`).join('')
              : chans.map((ch) => (states[ch] ? 1 : 0)),
          ),
        );
        continue;
      }
      if (b[0] !== 0xa0) {
        b.shift();
        continue;
      }
      if (b.length < 4) return;
      const [, ch, op, sum] = b.splice(0, 4) as [number, number, number, number];
      if (((0xa0 + ch + op) & 0xff) !== sum || (op !== 0 && op !== 1)) {
        this.commands.push('bad frame');
        continue;
      }
      this.#switch(ch, op === 1);
    }
  }

  // Numato: "relay on|off|read N", "relay readall", ended by CR; echo, "\n\r", answer line, ">" prompt.
  #numato(out: number[]): void {
    for (;;) {
      const cr = this.#buf.indexOf(0x0d);
      if (cr < 0) return;
      const line = Buffer.from(this.#buf.splice(0, cr + 1).slice(0, -1)).toString('latin1');
      const m = /^relay (on|off|read) ([0-9A-V])$/.exec(line.trim());
      let answer: string | undefined;
      if (m) {
        const ch = /[0-9]/.test(m[2]!) ? Number(m[2]) : m[2]!.charCodeAt(0) - 0x41 + 10;
        if (m[1] === 'read') {
          this.commands.push(`read ${ch}`);
          if (this.#valid(ch)) answer = this.#reported()[ch] ? 'on' : 'off';
        } else this.#switch(ch, m[1] === 'on');
      } else if (line.trim() === 'relay readall') {
        this.commands.push('readall');
        const states = this.#reported();
        let bits = 0;
        for (let ch = 0; ch < this.channels; ch++) if (states[ch]) bits |= 1 << ch;
        answer = (bits >>> 0)
          .toString(16)
          .toUpperCase()
          .padStart(this.channels <= 8 ? 2 : this.channels <= 16 ? 4 : 8, '0');
      } else this.commands.push(`unknown ${JSON.stringify(line)}`);
      out.push(...this.#reply(`${line}\n\r${answer === undefined ? '' : `${answer}\n\r`}>`));
    }
  }

  // KMTronic: FF ch 01 / FF ch 00 switch; FF ch 03 asks one relay (1-2 relay boards); FF 09 00 asks all (4-8).
  #kmtronic(out: number[]): void {
    const b = this.#buf;
    while (b.length) {
      if (b[0] !== 0xff) {
        b.shift();
        continue;
      }
      if (b.length < 3) return;
      const [, ch, op] = b.splice(0, 3) as [number, number, number];
      if (ch === 0x09 && op === 0x00 && this.channels >= 4) {
        this.commands.push('status');
        const states = this.#reported();
        out.push(...this.#reply(Array.from({ length: this.channels }, (_, i) => (states[i + 1] ? 1 : 0))));
      } else if (op === 0x03 && this.channels <= 2) {
        this.commands.push(`read ${ch}`);
        if (this.#valid(ch)) out.push(...this.#reply([0xff, ch, this.#reported()[ch] ? 1 : 0]));
      } else if (op === 0x00 || op === 0x01) this.#switch(ch, op === 1);
      else this.commands.push('bad frame');
    }
  }

  // Generic: whatever boards.yaml says the on/off/status commands are, per channel.
  #genericFeed(out: number[]): void {
    const g = this.#generic;
    if (!g) return;
    const b = this.#buf;
    const table: { bytes: Uint8Array; ch: number; what: 'on' | 'off' | 'status' }[] = [];
    for (let ch = this.firstChannel; ch < this.firstChannel + this.channels; ch++) {
      table.push({ bytes: encodeGeneric(g.on, g.encoding, ch), ch, what: 'on' });
      table.push({ bytes: encodeGeneric(g.off, g.encoding, ch), ch, what: 'off' });
      if (g.status) table.push({ bytes: encodeGeneric(g.status, g.encoding, ch), ch, what: 'status' });
    }
    while (b.length) {
      const hit = table.find((t) => t.bytes.length <= b.length && t.bytes.every((x, i) => b[i] === x));
      if (hit) {
        b.splice(0, hit.bytes.length);
        if (hit.what === 'status') {
          this.commands.push(`read ${hit.ch}`);
          out.push(...this.#reply(this.#genericReply(hit.ch, this.#reported()[hit.ch]!)));
        } else this.#switch(hit.ch, hit.what === 'on');
        continue;
      }
      // Keep a prefix of some command for the next chunk; drop a byte that starts none.
      if (table.some((t) => t.bytes.length > b.length && b.every((x, i) => t.bytes[i] === x))) return;
      b.shift();
    }
  }
}
