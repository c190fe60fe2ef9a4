import type { FarmConfig } from '../../farm/config.ts';
import { chipStateFile } from '../paths.ts';

/**
 * What the SWD stand-in needs to know of a virtual board. The harness hands the list over in an environment
 * variable (validated boards.yaml, state files resolved) so that each run of the stand-in, one per SWD operation,
 * skips loading and validating boards.yaml again; run by hand it reads $STM32_HIL_CONFIG instead.
 */
export interface SwdBoard {
  id: string;
  /** ST-LINK serial (boards.yaml stlink.serial). */
  serial: string;
  part: string;
  chipRevision: string;
  bootloader: number;
  stateFile: string;
  swdLockedAfterDfu?: boolean;
  weakBits?: Array<{ address: number; mask: number }>;
}

export const SWD_BOARDS_ENV = 'STM32_HIL_SWD_BOARDS';

/** The virtual boards of a farm that have a (virtual) ST-LINK, in boards.yaml order. */
export function swdBoardsOf(config: FarmConfig): SwdBoard[] {
  return config.boards
    .filter((b) => b.virtual && b.stlink)
    .map((b) => {
      const v = b.virtual!;
      return {
        id: b.id,
        serial: b.stlink!.serial,
        part: b.part,
        chipRevision: v.chipRevision,
        bootloader: v.bootloader,
        stateFile: chipStateFile(config, b),
        ...(v.faults?.swdLockedAfterDfu ? { swdLockedAfterDfu: true } : {}),
        ...(v.faults?.weakBits?.length
          ? { weakBits: v.faults.weakBits.map((w) => ({ address: w.address, mask: w.mask })) }
          : {}),
      };
    });
}

/** Reads the list from the environment variable; undefined when it is absent, an error text when it is broken. */
export function swdBoardsFromEnv(text: string | undefined): SwdBoard[] | string | undefined {
  if (text === undefined || text === '') return undefined;
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    return `${SWD_BOARDS_ENV} is not JSON: ${(e as Error).message}`;
  }
  const ok = (b: unknown): b is SwdBoard => {
    const x = b as Record<string, unknown>;
    return (
      typeof x === 'object' &&
      x !== null &&
      ['id', 'serial', 'part', 'chipRevision', 'stateFile'].every((k) => typeof x[k] === 'string') &&
      typeof x.bootloader === 'number'
    );
  };
  if (!Array.isArray(data) || !data.every(ok))
    return `${SWD_BOARDS_ENV} does not list boards as {id, serial, part, chipRevision, bootloader, stateFile}`;
  return data;
}
