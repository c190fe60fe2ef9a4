import { hex32 } from '../util/hex.ts';
import { StlinkError } from './errors.ts';

/**
 * Argument builders for STM32_Programmer_CLI (ST UM2237, "STM32CubeProgrammer command line interface":
 * -c/--connect, -l/--list, -u/--upload, -r32, -w/--write, -v/--verify, -e/--erase, -ob, -rst, -hardRst).
 * Each connect parameter is its own argv word, as a shell would split `-c port=SWD sn=... freq=...`.
 */

export type ConnectMode = 'UR' | 'HOTPLUG' | 'NORMAL';
export type ResetMode = 'HWrst' | 'SWrst' | 'Crst';

export interface ConnectOptions {
  /** ST-LINK serial number (sn=); without it the tool takes the first probe. */
  serial?: string | undefined;
  /** SWD clock in kHz (freq=); the probe rounds down to a clock it supports. */
  freqKHz?: number | undefined;
  /** UR: connect under reset (NRST held), what works whatever the application does to the SWD pins. */
  mode?: ConnectMode;
  reset?: ResetMode;
}

export function connectArgs(opts: ConnectOptions = {}): string[] {
  const args = ['-c', 'port=SWD'];
  if (opts.serial) args.push(`sn=${opts.serial}`);
  args.push(`mode=${opts.mode ?? 'UR'}`, `reset=${opts.reset ?? 'HWrst'}`);
  if (opts.freqKHz !== undefined) args.push(`freq=${Math.round(opts.freqKHz)}`);
  return args;
}

export function listProbesArgs(): string[] {
  return ['-l', 'st-link'];
}

/** Reads `length` bytes at `address` into `file` (binary). */
export function uploadArgs(address: number, length: number, file: string): string[] {
  if (!Number.isInteger(length) || length <= 0)
    throw new RangeError(`read length must be a positive integer, not ${length}`);
  return ['-u', hex32(address), String(length), file];
}

/** Prints `words` 32-bit words at `address` (the size argument is in bytes). */
export function read32Args(address: number, words: number): string[] {
  if (!Number.isInteger(words) || words <= 0)
    throw new RangeError(`word count must be a positive integer, not ${words}`);
  return ['-r32', hex32(address), String(words * 4)];
}

/** Writes a file (ELF, HEX, S-record carry their addresses; a .bin needs one) and verifies it. */
export function writeArgs(
  file: string,
  opts: { address?: number | undefined; verify?: boolean } = {},
): string[] {
  const args = ['-w', file];
  if (opts.address !== undefined) args.push(hex32(opts.address));
  if (opts.verify ?? true) args.push('-v');
  return args;
}

const MASS_ERASE = Symbol('mass-erase-permission');

/**
 * Written consent for a mass erase: it wipes both banks of every board it touches, so callers must say who
 * asked for it and why. Create it with `allowMassErase`; nothing else satisfies the type.
 */
export interface MassErasePermission {
  readonly [MASS_ERASE]: true;
  readonly board: string;
  readonly reason: string;
}

export function allowMassErase(board: string, reason: string): MassErasePermission {
  if (!reason.trim())
    throw new StlinkError('E_STLINK_MASS_ERASE_NOT_PERMITTED', 'a mass erase needs a reason');
  return Object.freeze({ [MASS_ERASE]: true as const, board, reason });
}

export function isMassErasePermission(p: unknown): p is MassErasePermission {
  return typeof p === 'object' && p !== null && (p as Record<symbol, unknown>)[MASS_ERASE] === true;
}

export type EraseTarget = { sectors: readonly number[] } | { all: MassErasePermission };

/** `-e 0 1 2` for sectors (global numbers as CubeProgrammer counts them), `-e all` with a permission only. */
export function eraseArgs(what: EraseTarget, board?: string): string[] {
  if ('all' in what) {
    if (!isMassErasePermission(what.all)) {
      throw new StlinkError(
        'E_STLINK_MASS_ERASE_NOT_PERMITTED',
        'mass erase requested without a permission from allowMassErase()',
      );
    }
    if (board !== undefined && what.all.board !== board) {
      throw new StlinkError(
        'E_STLINK_MASS_ERASE_NOT_PERMITTED',
        `the mass erase permission is for board "${what.all.board}", not "${board}"`,
        { details: { permittedBoard: what.all.board, board } },
      );
    }
    return ['-e', 'all'];
  }
  if (what.sectors.length === 0) throw new RangeError('no sectors to erase');
  for (const s of what.sectors)
    if (!Number.isInteger(s) || s < 0) throw new RangeError(`bad sector number ${s}`);
  return ['-e', ...[...new Set(what.sectors)].sort((a, b) => a - b).map(String)];
}

export function optionBytesDisplayArgs(): string[] {
  return ['-ob', 'displ'];
}

/** `-rst`: software system reset through the core; `-hardRst`: the probe pulses NRST. */
export function resetArgs(kind: 'soft' | 'hard'): string[] {
  return [kind === 'hard' ? '-hardRst' : '-rst'];
}
