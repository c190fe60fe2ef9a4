import type { FarmConfig } from '../farm/config.ts';
import { ConfigError, findBoard } from '../farm/config.ts';
import type { BoardConfig } from '../farm/schema.ts';
import { createVirtualBoard, type VirtualBoard } from '../sim/board.ts';
import { chipStateFile } from '../sim/paths.ts';
import type { Clock } from '../util/clock.ts';
import { assignBusIds, UsbipServer, type UsbipServerEvent } from './server.ts';

/** A virtual board served over USB/IP, with what `sim serve` prints about it. */
export interface ServedBoard {
  busid: string;
  busnum: number;
  devnum: number;
  board: VirtualBoard;
  config: BoardConfig;
  timeScale: number;
}

export interface VirtualFarmServer {
  server: UsbipServer;
  boards: ServedBoard[];
  close(): Promise<void>;
}

/** The virtual boards `ids` names (all virtual boards of boards.yaml when empty), in boards.yaml order. */
export function selectVirtualBoards(config: FarmConfig, ids: readonly string[] = []): BoardConfig[] {
  const picked = ids.length ? ids.map((id) => findBoard(config, id)) : config.boards.filter((b) => b.virtual);
  for (const b of picked) {
    if (!b.virtual) {
      throw new ConfigError(
        'E_SIM_NOT_VIRTUAL',
        `board "${b.id}" is a real board (no virtual: section); sim serve serves virtual boards`,
        {
          board: b.id,
        },
      );
    }
  }
  if (!picked.length)
    throw new ConfigError('E_SIM_NO_VIRTUAL', `${config.file} has no virtual boards to serve`, {
      file: config.file,
    });
  return config.boards.filter((b) => picked.includes(b));
}

/**
 * Creates the virtual boards (each on its chip state file, so what is written over USB/IP is what the ST-LINK
 * stand-in and the harness read) and serves them over USB/IP.
 */
export async function serveVirtualFarm(opts: {
  config: FarmConfig;
  boardIds?: readonly string[];
  host?: string;
  port?: number;
  allowRemote?: boolean;
  clock?: Clock;
  onEvent?: (event: UsbipServerEvent) => void;
}): Promise<VirtualFarmServer> {
  const { config } = opts;
  const selected = selectVirtualBoards(config, opts.boardIds);
  const boards: ServedBoard[] = [];
  try {
    for (const { busid, busnum, devnum, board: b } of assignBusIds(config.boards, selected)) {
      const v = b.virtual!;
      const timeScale = v.timeScale ?? config.farm?.timeScale ?? 1;
      const board = createVirtualBoard({
        id: b.id,
        part: b.part,
        chipRevision: v.chipRevision,
        bootloader: v.bootloader,
        stateFile: chipStateFile(config, b),
        ...(v.faults ? { faults: v.faults } : {}),
        ...(opts.clock ? { clock: opts.clock } : {}),
        timeScale,
      });
      boards.push({ busid, busnum, devnum, board, config: b, timeScale });
    }
    const server = await UsbipServer.listen({
      exports: boards.map((s) => ({ busid: s.busid, busnum: s.busnum, devnum: s.devnum, board: s.board })),
      ...(opts.host !== undefined ? { host: opts.host } : {}),
      ...(opts.port !== undefined ? { port: opts.port } : {}),
      ...(opts.allowRemote ? { allowRemote: true } : {}),
      ...(opts.onEvent ? { onEvent: opts.onEvent } : {}),
    });
    return {
      server,
      boards,
      async close() {
        await server.close();
        for (const s of boards) s.board.close();
      },
    };
  } catch (e) {
    for (const s of boards) s.board.close();
    throw e;
  }
}
