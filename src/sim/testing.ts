import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { SetupPacket } from '../usb/types.ts';
import { VirtualClock } from '../util/clock.ts';
import { createVirtualBoard, type VirtualBoard, type VirtualBoardOptions } from './board.ts';
import { DFU_REQUEST } from './dfuse-rom.ts';
import type { ControlResult } from './types.ts';

/**
 * Raw DFU requests and a throw-away virtual board on a VirtualClock, for the simulator's own tests and for
 * other layers' tests that want to poke the ROM without the DfuSe host.
 */

export function tempStateFile(prefix = 'sim-'): string {
  return path.join(mkdtempSync(path.join(tmpdir(), prefix)), 'chip.bin');
}

export function testBoard(opts: Partial<VirtualBoardOptions> = {}): VirtualBoard & { clock: VirtualClock } {
  const clock = opts.clock instanceof VirtualClock ? opts.clock : new VirtualClock();
  return createVirtualBoard({
    id: 'test',
    part: 'stm32h743',
    chipRevision: 'Y',
    bootloader: 0xd2,
    stateFile: tempStateFile(),
    ...opts,
    clock,
  }) as VirtualBoard & { clock: VirtualClock };
}

export const dfu = {
  dnload: (block: number, length: number): SetupPacket => ({
    bmRequestType: 0x21,
    bRequest: DFU_REQUEST.DNLOAD,
    wValue: block,
    wIndex: 0,
    wLength: length,
  }),
  upload: (block: number, length: number): SetupPacket => ({
    bmRequestType: 0xa1,
    bRequest: DFU_REQUEST.UPLOAD,
    wValue: block,
    wIndex: 0,
    wLength: length,
  }),
  getStatus: (): SetupPacket => ({
    bmRequestType: 0xa1,
    bRequest: DFU_REQUEST.GETSTATUS,
    wValue: 0,
    wIndex: 0,
    wLength: 6,
  }),
  clrStatus: (): SetupPacket => ({
    bmRequestType: 0x21,
    bRequest: DFU_REQUEST.CLRSTATUS,
    wValue: 0,
    wIndex: 0,
    wLength: 0,
  }),
  getState: (): SetupPacket => ({
    bmRequestType: 0xa1,
    bRequest: DFU_REQUEST.GETSTATE,
    wValue: 0,
    wIndex: 0,
    wLength: 1,
  }),
  abort: (): SetupPacket => ({
    bmRequestType: 0x21,
    bRequest: DFU_REQUEST.ABORT,
    wValue: 0,
    wIndex: 0,
    wLength: 0,
  }),
};

export interface StatusReply {
  status: number;
  pollTimeout: number;
  state: number;
}

export function parseStatus(r: ControlResult): StatusReply {
  if (r.status !== 'ok' || !r.data || r.data.length < 6)
    throw new Error(`GETSTATUS failed: ${JSON.stringify(r)}`);
  const d = r.data;
  return { status: d[0]!, pollTimeout: d[1]! | (d[2]! << 8) | (d[3]! << 16), state: d[4]! };
}

/** A small raw DfuSe driver over board.control(), honouring nothing: each call is one request. */
export class RawDfu {
  readonly board: VirtualBoard;
  constructor(board: VirtualBoard) {
    this.board = board;
  }
  async status(): Promise<StatusReply> {
    return parseStatus(await this.board.control(dfu.getStatus()));
  }
  dnload(block: number, data: ArrayLike<number>): Promise<ControlResult> {
    return this.board.control(dfu.dnload(block, data.length), Uint8Array.from(data));
  }
  upload(block: number, length: number): Promise<ControlResult> {
    return this.board.control(dfu.upload(block, length));
  }
  clrStatus(): Promise<ControlResult> {
    return this.board.control(dfu.clrStatus());
  }
  abort(): Promise<ControlResult> {
    return this.board.control(dfu.abort());
  }
  /** Back to dfuIDLE from wherever the last request left the ROM: CLRSTATUS from dfuERROR, else ABORT. */
  async recover(): Promise<void> {
    if ((await this.status()).state === 10) await this.clrStatus();
    else await this.abort();
  }
  /** 0x21 + address, LSB first (AN3156 section 6.2). */
  setAddress(address: number): Promise<ControlResult> {
    return this.dnload(0, [0x21, ...le32(address)]);
  }
  erase(address?: number): Promise<ControlResult> {
    return this.dnload(0, address === undefined ? [0x41] : [0x41, ...le32(address)]);
  }
  /**
   * Sends a command or block and completes it the way a well-behaved host does: GETSTATUS, sleep the
   * reported bwPollTimeout, GETSTATUS again, at most `maxPolls` times. Returns every status seen.
   */
  async run(send: () => Promise<ControlResult>, maxPolls = 20): Promise<StatusReply[]> {
    const r = await send();
    if (r.status !== 'ok') throw new Error(`request failed: ${JSON.stringify(r)}`);
    const seen: StatusReply[] = [];
    for (let i = 0; i < maxPolls; i++) {
      const s = await this.status();
      seen.push(s);
      if (s.state !== 4) return seen;
      await this.board.clock.sleep(s.pollTimeout);
    }
    return seen;
  }
}

export function le32(n: number): number[] {
  return [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff];
}
