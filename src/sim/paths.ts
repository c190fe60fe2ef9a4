import path from 'node:path';
import type { FarmConfig } from '../farm/config.ts';
import type { BoardConfig } from '../farm/schema.ts';

/**
 * Where a virtual board's chip state lives. Every process that reaches the board (the harness, `sim serve`,
 * the ST-LINK stand-in) computes the same path from boards.yaml.
 */
export function chipStateFile(
  config: Pick<FarmConfig, 'dir' | 'stateDir'>,
  board: Pick<BoardConfig, 'id' | 'virtual'>,
): string {
  return board.virtual?.state
    ? path.resolve(config.dir, board.virtual.state)
    : path.join(config.stateDir, 'chips', `${board.id}.bin`);
}

/** The USB port path a virtual board reports (real boards report the kernel's, e.g. "1-4.2"). */
export function virtualPortPath(boardId: string): string {
  return `virtual:${boardId}`;
}
