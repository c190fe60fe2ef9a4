import type { BoardConfig } from '../farm/schema.ts';
import { flashRange, getPart } from '../parts/catalogue.ts';
import { hex8, hex32 } from '../util/hex.ts';
import type { OptionBytesOfInterest, ProbeInfo, TargetInfo } from './parse.ts';
import type { StlinkProgrammer } from './programmer.ts';

export interface IdentifyMismatch {
  field: 'deviceId' | 'chipRevision' | 'bootloader' | 'flashSize';
  expected: string | number;
  actual: string | number | undefined;
  message: string;
}

export interface BoardIdentity {
  board: string;
  part: string;
  probe: ProbeInfo | undefined;
  cliVersion: string | undefined;
  target: TargetInfo;
  optionBytes: OptionBytesOfInterest;
  expected: { deviceId: number; flashSize: number; chipRevision?: string; bootloader?: number };
  /** What differs from boards.yaml (expect:) and the part catalogue. */
  mismatches: IdentifyMismatch[];
  /** Option-byte settings worth a warning on a farm board (read protection, swapped banks, unusual boot address). */
  notes: string[];
}

/** Compares what SWD reported with boards.yaml `expect:` and the catalogue entry of the board's part. Pure. */
export function compareIdentity(
  board: Pick<BoardConfig, 'id' | 'part' | 'expect'>,
  target: TargetInfo,
  ob: OptionBytesOfInterest,
): Pick<BoardIdentity, 'expected' | 'mismatches' | 'notes'> {
  const part = getPart(board.part);
  const range = flashRange(part);
  const expected: BoardIdentity['expected'] = {
    deviceId: part.deviceId,
    flashSize: range.end - range.start,
    ...(board.expect?.chipRevision ? { chipRevision: board.expect.chipRevision } : {}),
    ...(board.expect?.bootloader !== undefined ? { bootloader: board.expect.bootloader } : {}),
  };
  const mismatches: IdentifyMismatch[] = [];
  const id = (n: number | undefined) => (n === undefined ? 'none' : `0x${n.toString(16).toUpperCase()}`);
  if (target.deviceId !== expected.deviceId) {
    mismatches.push({
      field: 'deviceId',
      expected: expected.deviceId,
      actual: target.deviceId,
      message: `device ID ${id(target.deviceId)} is not a ${part.name} (${id(part.deviceId)}): wrong part in boards.yaml, or stlink.serial names another board's probe`,
    });
  }
  if (expected.chipRevision && target.revision?.toUpperCase() !== expected.chipRevision.toUpperCase()) {
    mismatches.push({
      field: 'chipRevision',
      expected: expected.chipRevision,
      actual: target.revision,
      message: `chip revision ${target.revision ?? 'unknown'}, boards.yaml expects ${expected.chipRevision}`,
    });
  }
  if (expected.bootloader !== undefined && target.bootloaderVersion !== expected.bootloader) {
    mismatches.push({
      field: 'bootloader',
      expected: expected.bootloader,
      actual: target.bootloaderVersion,
      message: `bootloader ${target.bootloaderVersion === undefined ? 'unknown' : hex8(target.bootloaderVersion)}, boards.yaml expects ${hex8(expected.bootloader)}: results of this board will be filed under the wrong bootloader`,
    });
  }
  if (target.flashSize !== undefined && target.flashSize !== expected.flashSize) {
    mismatches.push({
      field: 'flashSize',
      expected: expected.flashSize,
      actual: target.flashSize,
      message: `flash size ${target.flashSize / 1024} KiB, a ${part.name} in the catalogue has ${expected.flashSize / 1024} KiB (a smaller variant of the part?)`,
    });
  }
  const notes: string[] = [];
  if (ob.rdpLevel !== undefined && ob.rdpLevel !== 0) {
    notes.push(
      `read-out protection level ${ob.rdpLevel}: DFU and SWD reads of flash fail until it is lifted (which mass-erases)`,
    );
  }
  if (ob.swapBank)
    notes.push(
      'flash banks are swapped (SWAP_BANK=1): bank 2 is mapped at 0x08000000, so images land in the other bank',
    );
  if (ob.bootAddress0 !== undefined && ob.bootAddress0 !== range.start) {
    notes.push(
      `BOOT0-low boot address is ${hex32(ob.bootAddress0)}, not the start of flash ${hex32(range.start)}`,
    );
  }
  return { expected, mismatches, notes };
}

/** `board identify`: connects over SWD, reads the option bytes, compares with boards.yaml. */
export async function identifyBoard(
  board: BoardConfig,
  prog: StlinkProgrammer,
  signal?: AbortSignal,
): Promise<BoardIdentity> {
  const ob = await prog.optionBytes(signal);
  const target = ob.identity.target;
  return {
    board: board.id,
    part: board.part,
    probe: ob.identity.probe,
    cliVersion: ob.identity.version,
    target,
    optionBytes: ob.ofInterest,
    ...compareIdentity(board, target, ob.ofInterest),
  };
}

export function describeIdentity(r: BoardIdentity): string {
  const t = r.target;
  const o = r.optionBytes;
  const rows: Array<[string, string]> = [
    [
      'device ID',
      `${t.deviceId === undefined ? 'unknown' : `0x${t.deviceId.toString(16).toUpperCase()}`}${t.deviceName ? ` (${t.deviceName})` : ''}`,
    ],
    ['revision', t.revision ?? 'unknown'],
    ['bootloader', t.bootloaderVersion === undefined ? 'unknown' : hex8(t.bootloaderVersion)],
    ['flash size', t.flashSize === undefined ? (t.flashSizeText ?? 'unknown') : `${t.flashSize / 1024} KiB`],
    ['CPU', t.cpu ?? 'unknown'],
    ['RDP level', o.rdpLevel === undefined ? (o.rdpRaw ?? 'unknown') : `${o.rdpLevel} (${o.rdpRaw})`],
    ['bank swap', o.swapBank === undefined ? 'n/a' : o.swapBank ? 'yes' : 'no'],
    [
      'boot address',
      o.bootAddress0 === undefined
        ? 'n/a'
        : `${hex32(o.bootAddress0)} (BOOT0 low), ${o.bootAddress1 === undefined ? '?' : hex32(o.bootAddress1)} (BOOT0 high)`,
    ],
  ];
  const head = `board ${r.board} (${r.part}) over ST-LINK ${r.probe?.serial ?? '?'}${r.probe?.voltage !== undefined ? `, target at ${r.probe.voltage} V` : ''}`;
  const verdict =
    r.mismatches.length === 0
      ? 'matches boards.yaml'
      : `${r.mismatches.length} mismatch${r.mismatches.length > 1 ? 'es' : ''} with boards.yaml`;
  return [head, ...rows.map(([k, v]) => `  ${k.padEnd(13)} ${v}`), `  ${verdict}`].join('\n');
}
