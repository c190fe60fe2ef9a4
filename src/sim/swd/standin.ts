import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { isHilError, sysCode } from '../../errors.ts';
import type { FirmwareImage } from '../../image/model.ts';
import { type FlashSector, getPart, type Part } from '../../parts/catalogue.ts';
import { hex32 } from '../../util/hex.ts';
import { type OptionBytes, RDP_LEVEL0, RDP_LEVEL2, VirtualChip } from '../chip.ts';
import { encodeOptionBytes } from '../option-bytes.ts';
import { ArgsError, type Command, type ParsedArgs, parseArgs } from './args.ts';
import { SWD_BOARDS_ENV, type SwdBoard, swdBoardsFromEnv, swdBoardsOf } from './boards.ts';
import {
  BAR,
  banner,
  connectModeText,
  deviceName,
  elapsed,
  field,
  fileSize,
  flashSizeText,
  hexShort,
  kv,
  probeFrequency,
  resetModeText,
} from './format.ts';

/**
 * The virtual SWD side: a stand-in for STM32_Programmer_CLI that takes the same arguments, prints what the real
 * tool prints, and acts on the virtual chip the DFU side uses (the chip state file of src/sim/chip.ts), so what
 * DFU wrote SWD reads, and what SWD erases DFU sees erased. It finds its board by `sn=` among the boards of
 * boards.yaml ($STM32_HIL_CONFIG). Faults of this path only: `faults.swdLockedAfterDfu` (seed 003: programming
 * fails with "failed to download  Sector[0]" after the DFU bootloader ran, until a power cycle), an unpowered
 * board ("No STM32 target found", voltage 0), read-out protection level 1 (reads and writes refused).
 */

export interface StandInIo {
  env: NodeJS.ProcessEnv;
  write(text: string): void;
  now?(): number;
}

const PROBE_FW = 'V3J15M7B5S1';
const PROBE_BOARD = 'VIRTUAL-STLINK-V3';

class Failed extends Error {}

interface Session {
  out: (line?: string) => void;
  quiet: boolean;
  board: SwdBoard;
  part: Part;
  chip: VirtualChip;
  now: () => number;
  /** The last write, for -v. */
  lastWrite?: { image: FirmwareImage };
}

function fail(s: Pick<Session, 'out'>, ...lines: string[]): never {
  for (const l of lines) s.out(l);
  throw new Failed(lines[0]);
}

function listProbes(boards: SwdBoard[], out: (l?: string) => void): void {
  out('===== STLink Interface =====');
  out('');
  if (boards.length === 0) {
    out('Error: No debug probe detected.');
    throw new Failed('no probe');
  }
  out('-------- Connected ST-LINK Probes List --------');
  out('');
  boards.forEach((b, i) => {
    out(`ST-Link Probe ${i} :`);
    out(`   ST-LINK SN  : ${b.serial}`);
    out(`   ST-LINK FW  : ${PROBE_FW}`);
    out('   Access Port Number  : 0');
    out(`   Board Name  : ${PROBE_BOARD}`);
  });
  out('-----------------------------------------------');
}

function progress(s: Session, label?: string): void {
  if (label) s.out(label);
  if (!s.quiet) s.out(BAR);
}

/** Bytes as SWD reads them: flash, RAM, the option-bytes area, system memory (with the bootloader version byte). */
function readMemory(s: Session, address: number, length: number): Uint8Array {
  const { chip, part } = s;
  if (chip.isFlash(address, length)) {
    if (chip.rdpLevel !== 0) {
      fail(
        s,
        'Warning: Device is under Read Out Protection',
        'Error: a read Operation failed, please check if any memory protection mechanism is active.',
      );
    }
    return chip.readFlash(address, length);
  }
  const region = part.memories.find((m) => address >= m.start && address + length <= m.start + m.size);
  if (region?.kind === 'ram') return chip.readRam(address, length);
  if (region?.kind === 'option-bytes') {
    const area = encodeOptionBytes(part, chip.options);
    const off = address - part.optionBytes.base;
    const outBytes = new Uint8Array(length);
    outBytes.set(area.subarray(off, off + length));
    return outBytes;
  }
  if (region?.kind === 'system' || region?.kind === 'otp') {
    const bytes = new Uint8Array(length).fill(region.kind === 'otp' ? 0xff : 0);
    const v = part.bootloader.versionAddress;
    if (v !== undefined && v >= address && v < address + length) bytes[v - address] = chip.bootloaderVersion;
    return bytes;
  }
  return fail(
    s,
    `Error: failed to read memory at address ${hex32(address)} (${length} bytes): no memory there`,
  );
}

function connect(
  conn: Record<string, string>,
  boards: SwdBoard[],
  io: StandInIo,
  out: (l?: string) => void,
  quiet: boolean,
): Session {
  if (conn.port!.toUpperCase() !== 'SWD') {
    out(`Error: the virtual programmer implements port=SWD only, not port=${conn.port}`);
    throw new Failed('port');
  }
  if (boards.length === 0) {
    out('Error: No debug probe detected.');
    throw new Failed('no probe');
  }
  const sn = conn.sn;
  const board = sn ? boards.find((b) => b.serial.toUpperCase() === sn.toUpperCase()) : boards[0];
  if (!board) {
    out(`Error: No debug probe detected with serial number ${sn}`);
    throw new Failed('sn');
  }
  const part = getPart(board.part);
  const weakBits = new Map((board.weakBits ?? []).map((w) => [w.address, w.mask]));
  const chip = VirtualChip.open(
    board.stateFile,
    { part: board.part, chipRevision: board.chipRevision, bootloader: board.bootloader },
    { weakBits },
  );
  const s: Session = { out, quiet, board, part, chip, now: io.now ?? (() => performance.now()) };
  try {
    printConnection(s, conn);
  } catch (e) {
    chip.close();
    throw e;
  }
  return s;
}

function printConnection(s: Session, conn: Record<string, string>): void {
  const { out, board, part, chip } = s;
  const powered = chip.volatile.powered;
  out(kv('ST-LINK SN', board.serial));
  out(kv('ST-LINK FW', PROBE_FW));
  out(kv('Board', PROBE_BOARD));
  out(kv('Voltage', powered ? '3.30V' : '0.00V'));
  // An unpowered chip, or one at RDP level 2 (debug port disabled for good, RM0433 4.5.3), does not answer on SWD.
  if (!powered || chip.options.rdp === RDP_LEVEL2) {
    fail(
      s,
      'Error: No STM32 target found! If your product embeds Debug Authentication, please perform a discovery using Debug Authentication',
    );
  }
  const freq = probeFrequency(conn.freq !== undefined ? Number(conn.freq) : undefined);
  out(kv('SWD freq', `${freq} KHz`));
  out(kv('Connect mode', connectModeText(conn.mode)));
  out(kv('Reset mode', resetModeText(conn.reset)));
  out(kv('Device ID', hexShort(part.deviceId, 3)));
  out(kv('Revision ID', `Rev ${chip.chipRevision}`));
  out(kv('Device name', deviceName(part)));
  out(kv('Flash size', flashSizeText(chip.flashSize)));
  out(kv('Device type', 'MCU'));
  out(kv('Device CPU', part.cores[0] ?? 'Cortex-M'));
  out(kv('BL Version', hexShort(chip.bootloaderVersion, 2)));
  out('');
}

/** SWD programming refused until a power cycle after the ROM's DFU code ran (seed 003, boards.yaml faults). */
function lockedAfterDfu(s: Session): boolean {
  return Boolean(s.board.swdLockedAfterDfu) && s.chip.volatile.dfuUsedSincePowerOn;
}

function sectorList(sectors: FlashSector[]): string {
  const ids = sectors.map((x) => x.globalIndex);
  return ids.length === 1 ? `sector ${ids[0]}` : `sectors [${ids[0]} ${ids.at(-1)}]`;
}

function erase(s: Session, cmd: Extract<Command, { kind: 'erase' }>): void {
  const { chip } = s;
  if (cmd.all) {
    s.out('Mass erase ... ');
    s.out('');
    if (lockedAfterDfu(s) || chip.rdpLevel !== 0)
      fail(s, 'Error: Mass erase operation failed.', 'Please verify flash protection');
    chip.massErase();
    s.out('Mass erase command correctly executed.');
    s.out('');
    return;
  }
  const sectors: FlashSector[] = [];
  for (const n of cmd.sectors) {
    const sec = chip.sectors[n];
    if (!sec)
      fail(
        s,
        `Error: Erase operation failed: sector ${n} does not exist (the flash has ${chip.sectors.length} sectors)`,
      );
    sectors.push(sec);
  }
  s.out(`Erasing internal memory ${sectorList(sectors)}`);
  if (lockedAfterDfu(s) || chip.rdpLevel !== 0) fail(s, 'Error: failed to erase memory');
  for (const sec of sectors) chip.eraseSector(sec);
  s.out('Flash memory erased successfully.');
  s.out('');
}

interface FlashRun {
  start: number;
  data: Uint8Array;
}

/** Flash bytes of the image in runs aligned to the flash word, gaps inside a word padded with the erased value. */
function flashRuns(part: Part, chip: VirtualChip, image: FirmwareImage): FlashRun[] {
  const unit = part.flash.programUnit;
  const ranges: Array<{ start: number; end: number }> = [];
  for (const seg of image.segments) {
    if (!chip.isFlash(seg.address, seg.data.length)) continue;
    const start = seg.address - (seg.address % unit);
    const endRaw = seg.address + seg.data.length;
    const end = endRaw + ((unit - (endRaw % unit)) % unit);
    const last = ranges.at(-1);
    if (last && start <= last.end) last.end = Math.max(last.end, end);
    else ranges.push({ start, end });
  }
  return ranges.map((r) => {
    const data = new Uint8Array(r.end - r.start).fill(part.flash.erasedValue);
    for (const seg of image.segments) {
      const from = Math.max(seg.address, r.start);
      const to = Math.min(seg.address + seg.data.length, r.end);
      if (from < to) data.set(seg.data.subarray(from - seg.address, to - seg.address), from - r.start);
    }
    return { start: r.start, data };
  });
}

async function write(s: Session, cmd: Extract<Command, { kind: 'write' }>): Promise<void> {
  const { chip, part } = s;
  const name = path.basename(cmd.file);
  s.out('Memory Programming ...');
  s.out(`Opening and parsing file: ${name}`);
  let image: FirmwareImage;
  try {
    // Loaded on demand: most runs only read, and the image readers cost start-up time on every run.
    const { readImage } = await import('../../image/index.ts');
    image = readImage(cmd.file, cmd.address !== undefined ? { base: cmd.address } : {});
  } catch (e) {
    if (isHilError(e) && e.code === 'E_FILE_NOT_FOUND') fail(s, `Error: File does not exist: ${cmd.file}`);
    fail(s, `Error: Wrong file format: ${cmd.file}: ${e instanceof Error ? e.message : String(e)}`);
  }
  const started = s.now();
  s.out(field('File', name));
  s.out(field('Size', fileSize(image.size)));
  s.out(field('Address', hex32(image.span?.start ?? 0)));
  s.out('');
  s.out('');
  const segments = image.coalesced();
  const erased = new Set<number>();
  segments.forEach((seg, i) => {
    s.out(`Erasing memory corresponding to segment ${i}:`);
    if (!chip.isFlash(seg.address, seg.data.length)) {
      const region = part.memories.find(
        (m) => seg.address >= m.start && seg.address + seg.data.length <= m.start + m.size,
      );
      if (region?.kind !== 'ram') {
        s.out('Download in Progress:');
        fail(s, `Error: failed to download Segment[${i}]`, 'Error: failed to download the File');
      }
      return;
    }
    const sectors = chip.sectors.filter(
      (x) => x.start < seg.address + seg.data.length && x.start + x.size > seg.address,
    );
    s.out(`Erasing internal memory ${sectorList(sectors)}`);
    if (lockedAfterDfu(s)) return;
    if (chip.rdpLevel !== 0) fail(s, 'Error: failed to erase memory', 'Error: failed to download the File');
    for (const sec of sectors) {
      if (!erased.has(sec.globalIndex)) chip.eraseSector(sec);
      erased.add(sec.globalIndex);
    }
  });
  s.out('Download in Progress:');
  if (lockedAfterDfu(s)) {
    const first = chip.sectorAt(segments.find((x) => chip.isFlash(x.address))?.address ?? chip.flashBase)!;
    // Two spaces before "Sector", as the 2.20 CLI prints it (seed 003).
    fail(s, `Error: failed to download  Sector[${first.globalIndex}]`, 'Error: failed to download the File');
  }
  for (const seg of segments) {
    if (!chip.isFlash(seg.address, seg.data.length)) chip.writeRam(seg.address, seg.data);
  }
  for (const run of flashRuns(part, chip, image)) {
    const r = chip.programFlash(run.start, run.data);
    if (!r.ok) {
      const sec = chip.sectorAt(r.address);
      fail(
        s,
        `Error: failed to download  Sector[${sec?.globalIndex ?? 0}]`,
        'Error: failed to download the File',
      );
    }
  }
  if (!s.quiet) s.out(BAR);
  s.out('');
  s.out('File download complete');
  s.out(`Time elapsed during download operation: ${elapsed(s.now() - started)}`);
  s.out('');
  s.lastWrite = { image };
}

function verify(s: Session): void {
  if (!s.lastWrite) fail(s, 'Error: Wrong command: -v must follow a write command');
  s.out('');
  s.out('Verifying ...');
  s.out('');
  progress(s, 'Read progress:');
  s.out('');
  for (const seg of s.lastWrite.image.segments) {
    if (!s.chip.isFlash(seg.address, seg.data.length)) continue;
    const back = readMemory(s, seg.address, seg.data.length);
    for (let i = 0; i < back.length; i++) {
      if (back[i] !== seg.data[i]) {
        const b = (n: number) => `0x${n.toString(16).toUpperCase().padStart(2, '0')}`;
        // "(byte = READ instead of EXPECTED)", two spaces after "address", as in seed 004.
        fail(
          s,
          `Error: Data mismatch found at address  ${hex32(seg.address + i)} (byte = ${b(back[i]!)} instead of ${b(seg.data[i]!)})`,
          '',
          'Error: Download verification failed',
        );
      }
    }
  }
  s.out('Download verified successfully');
  s.out('');
}

function upload(s: Session, cmd: Extract<Command, { kind: 'upload' }>): void {
  const started = s.now();
  s.out('UPLOADING ...');
  s.out('');
  s.out(field('Size', `${cmd.size} Bytes`));
  s.out(field('Address', `0x${cmd.address.toString(16)}`));
  s.out('');
  const bytes = readMemory(s, cmd.address, cmd.size);
  progress(s, 'Read progress:');
  try {
    writeFileSync(cmd.file, bytes);
  } catch (e) {
    fail(s, `Error: failed to write the file ${cmd.file} (${sysCode(e) ?? String(e)})`);
  }
  s.out('');
  s.out('Data read successfully');
  s.out(`Time elapsed during the read operation is: ${elapsed(s.now() - started)}`);
  s.out('');
}

function readWords(s: Session, cmd: Extract<Command, { kind: 'read' }>): void {
  const bytes = readMemory(s, cmd.address, cmd.size);
  const width = cmd.width / 8;
  const perLine = 16;
  s.out(`Reading ${cmd.width}-bit memory content`);
  s.out(field('Size', `${cmd.size} Bytes`));
  s.out(field('Address', hex32(cmd.address)));
  s.out('');
  progress(s, 'Read progress:');
  s.out('');
  s.out('Data read successfully');
  s.out('');
  for (let off = 0; off < bytes.length; off += perLine) {
    const words: string[] = [];
    for (let w = off; w < Math.min(off + perLine, bytes.length); w += width) {
      let v = 0;
      for (let b = width - 1; b >= 0; b--) v = v * 256 + (bytes[w + b] ?? 0);
      words.push(
        v
          .toString(16)
          .toUpperCase()
          .padStart(width * 2, '0'),
      );
    }
    s.out(`${hex32(cmd.address + off)} : ${words.join(' ')}`);
  }
  s.out('');
}

function rdpText(rdp: number): string {
  if (rdp === RDP_LEVEL0) return `${hexShort(rdp, 2)} (Level 0, no protection)`;
  if (rdp === RDP_LEVEL2) return `${hexShort(rdp, 2)} (Level 2, chip protection)`;
  return `${hexShort(rdp, 2)} (Level 1, read protection of memories)`;
}

function obDisplay(s: Session): void {
  const { part } = s;
  const o = s.chip.options;
  s.out('UPLOADING OPTION BYTES DATA ...');
  s.out('');
  s.out(field('Bank', '0x00'));
  s.out(field('Address', `0x${part.optionBytes.base.toString(16)}`));
  s.out(field('Size', `${encodeOptionBytes(part, o).length} Bytes`));
  s.out('');
  progress(s);
  s.out('');
  const ob = (name: string, value: string) => s.out(`     ${name.padEnd(13)}: ${value}`);
  s.out('OPTION BYTES BANK: 0');
  s.out('');
  s.out('   Read Out Protection:');
  s.out('');
  ob('RDP', rdpText(o.rdp));
  s.out('');
  s.out('   User Configuration:');
  s.out('');
  if (part.family === 'STM32H7') {
    ob('IWDG1_SW', '0x1 (Independent watchdog is controlled by software)');
    ob(
      'SWAP_BANK',
      o.swapBank
        ? '0x1 (After boot loading, user sectors are swapped)'
        : '0x0 (After boot loading, no swap for user sectors)',
    );
    s.out('');
    s.out('OPTION BYTES BANK: 1');
    s.out('');
    s.out('   Boot address Option Bytes:');
    s.out('');
    ob('BOOT_CM7_ADD0', `${hexShort(o.bootAdd0)}  (${hexShort(o.bootAdd0 * 0x10000)})`);
    ob('BOOT_CM7_ADD1', `${hexShort(o.bootAdd1)}  (${hexShort(o.bootAdd1 * 0x10000)})`);
  } else {
    ob('WDG_SW', '0x1 (Software watchdog)');
  }
  s.out('');
  s.out('   Write Protection:');
  s.out('');
  for (const sec of s.chip.sectors.slice(0, Math.min(s.chip.sectors.length, 16))) {
    const wp = o.writeProtected.includes(sec.globalIndex);
    ob(
      `nWRP${sec.globalIndex}`,
      wp
        ? '0x0 (Write protection active on this sector)'
        : '0x1 (Write protection not active on this sector)',
    );
  }
  s.out('');
}

function obWrite(s: Session, cmd: Extract<Command, { kind: 'ob-write' }>): void {
  const change: Partial<OptionBytes> = {};
  for (const [name, value] of Object.entries(cmd.values)) {
    if (name === 'RDP') change.rdp = value;
    else if (name === 'SWAP_BANK' && s.part.family === 'STM32H7') change.swapBank = value !== 0;
    else if ((name === 'BOOT_CM7_ADD0' || name === 'BOOT_ADD0') && s.part.family === 'STM32H7')
      change.bootAdd0 = value;
    else if ((name === 'BOOT_CM7_ADD1' || name === 'BOOT_ADD1') && s.part.family === 'STM32H7')
      change.bootAdd1 = value;
    else fail(s, `Error: unknown Option Byte "${name}" for ${s.part.name}`);
  }
  s.out('PROGRAMMING OPTION BYTES AREA ...');
  s.out(field('Bank', '0x00'));
  s.out(field('Address', `0x${s.part.optionBytes.base.toString(16)}`));
  s.out('');
  if (change.rdp === RDP_LEVEL2)
    fail(
      s,
      'Error: Option Byte Programming failed: RDP level 2 is irreversible and the virtual chip refuses it',
    );
  s.chip.setOptions(change);
  s.out('OPTION BYTE PROGRAMMING VERIFICATION:');
  s.out('');
  s.out('Option Bytes successfully programmed');
  s.out('');
}

async function execute(s: Session, cmd: Command): Promise<void> {
  switch (cmd.kind) {
    case 'erase':
      return erase(s, cmd);
    case 'write':
      return write(s, cmd);
    case 'verify':
      return verify(s);
    case 'upload':
      return upload(s, cmd);
    case 'read':
      return readWords(s, cmd);
    case 'ob-display':
      return obDisplay(s);
    case 'ob-write':
      return obWrite(s, cmd);
    case 'reset':
      s.out('MCU Reset');
      s.out('');
      s.out(cmd.hard ? 'Hardware reset is performed' : 'Software reset is performed');
      s.out('');
      return;
    case 'start':
      s.out('RUNNING Program ... ');
      s.out(field('Address', hex32(cmd.address ?? s.chip.flashBase)));
      s.out('Start operation achieved successfully');
      return;
    case 'list':
      return;
  }
}

/** The virtual boards: from the harness ($STM32_HIL_SWD_BOARDS), else from boards.yaml ($STM32_HIL_CONFIG). */
async function loadBoards(env: NodeJS.ProcessEnv): Promise<SwdBoard[]> {
  const given = swdBoardsFromEnv(env[SWD_BOARDS_ENV]);
  if (typeof given === 'string') throw new Error(given);
  if (given) return given;
  const file = env.STM32_HIL_CONFIG;
  if (!file) return [];
  // Loaded only here: zod and yaml cost most of this process's start-up.
  const { loadConfig } = await import('../../farm/config.ts');
  return swdBoardsOf(loadConfig(path.resolve(file)));
}

/** Runs one invocation; returns the exit code the real tool would (0 success, 1 any failure). */
export async function runStandIn(argv: readonly string[], io: StandInIo): Promise<number> {
  const out = (line = '') => io.write(`${line}\n`);
  let args: ParsedArgs;
  for (const l of banner()) out(l);
  try {
    args = parseArgs(argv);
  } catch (e) {
    if (e instanceof ArgsError) {
      out(`Error: Wrong command: ${e.message}`);
      return 1;
    }
    throw e;
  }
  if (args.version) {
    out(
      `STM32CubeProgrammer version: ${banner()[1]!
        .trim()
        .replace(/^STM32CubeProgrammer v/, '')} (virtual, stm32-hil)`,
    );
    return 0;
  }
  let session: Session | undefined;
  try {
    let boards: SwdBoard[];
    try {
      boards = await loadBoards(io.env);
    } catch (e) {
      out(`Error: No debug probe detected. (virtual farm: ${e instanceof Error ? e.message : String(e)})`);
      return 1;
    }
    const list = args.commands.find((c) => c.kind === 'list');
    if (list) {
      listProbes(boards, out);
      return 0;
    }
    if (!args.connect) {
      if (args.help || args.commands.length === 0) {
        out(
          'Usage: STM32_Programmer_CLI -c port=SWD [sn=SERIAL] [freq=KHZ] [mode=UR] [reset=HWrst] COMMANDS',
        );
        return args.help ? 0 : 1;
      }
      out('Error: Wrong command: a connection (-c port=SWD ...) must come before the commands');
      return 1;
    }
    session = connect(args.connect, boards, io, out, args.quiet);
    for (const cmd of args.commands) await execute(session, cmd);
    return 0;
  } catch (e) {
    if (e instanceof Failed) return 1;
    const msg = e instanceof Error ? e.message : String(e);
    out(`Error: ${msg}`);
    return 1;
  } finally {
    session?.chip.close();
  }
}
