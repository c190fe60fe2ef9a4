import {
  type BoardEvent,
  BoardStateMachine,
  boardControl,
  type DfuPresence,
  usbPresence,
  virtualPresence,
} from '../farm/board-state.ts';
import { type FarmConfig, findBoard } from '../farm/config.ts';
import type { BoardConfig } from '../farm/schema.ts';
import { createVirtualBoard, type VirtualBoard } from '../sim/board.ts';
import { chipStateFile } from '../sim/paths.ts';
import { NodeUsbBackend } from '../usb/discovery.ts';
import { type Clock, realClock, ScaledClock } from '../util/clock.ts';
import type { PortPool } from './pool.ts';
import { type BoardSwitches, createBoardSwitches } from './switch.ts';

/**
 * Everything that switches one board of boards.yaml: its relay lines and its state machine, for a real board
 * (serial relays, DFU presence on real USB) or a virtual one (the simulator in this process).
 */
export interface BoardPower {
  readonly board: BoardConfig;
  readonly switches: BoardSwitches;
  readonly machine: BoardStateMachine;
  /** The simulated board, for a board with a virtual: section. */
  readonly virtual: VirtualBoard | undefined;
  readonly clock: Clock;
  /** Closes the virtual board this call opened (not one passed in). */
  close(): void;
}

export interface BoardPowerOptions {
  pool?: PortPool;
  /** Default: real time for real boards; for virtual boards real time sped up by their timeScale. */
  clock?: Clock;
  /** A virtual board already running in this process (the runner's). */
  virtualBoard?: VirtualBoard;
  /** DFU presence for real boards (default: node-usb). */
  presence?: DfuPresence;
  /** An NRST pulse from elsewhere (the ST-LINK), for real boards without a reset relay. */
  reset?: (signal?: AbortSignal) => Promise<void>;
  onEvent?: (event: BoardEvent) => void;
}

export function openBoardPower(
  config: FarmConfig,
  boardId: string,
  opts: BoardPowerOptions = {},
): BoardPower {
  const board = findBoard(config, boardId);
  const v = board.virtual;
  const timeScale = v ? (v.timeScale ?? config.farm?.timeScale ?? 1) : 1;
  const clock = opts.clock ?? (timeScale === 1 ? realClock : new ScaledClock(timeScale));
  let own: VirtualBoard | undefined;
  let vb = opts.virtualBoard;
  if (v && !vb) {
    own = createVirtualBoard({
      id: board.id,
      part: board.part,
      chipRevision: v.chipRevision,
      bootloader: v.bootloader,
      stateFile: chipStateFile(config, board),
      ...(v.faults ? { faults: v.faults } : {}),
      clock: realClock,
      timeScale,
    });
    vb = own;
  }
  try {
    const switches = createBoardSwitches(board, {
      clock,
      ...(opts.pool ? { pool: opts.pool } : {}),
      ...(config.deadlines?.relayMs ? { answerMs: config.deadlines.relayMs } : {}),
      virtualBoard: (id) => (id === board.id ? vb : undefined),
    });
    const presence = vb
      ? virtualPresence([vb], clock)
      : (opts.presence ?? usbPresence([new NodeUsbBackend()], clock));
    const control = boardControl(board, {
      switches,
      presence,
      ...(vb ? { virtual: vb } : {}),
      ...(opts.reset ? { reset: opts.reset } : {}),
      clock,
    });
    const machine = new BoardStateMachine(control, {
      clock,
      retries: config.retries?.transition ?? 2,
      enumerationMs: config.deadlines?.enumerationMs ?? 5000,
      ...(opts.onEvent ? { onEvent: opts.onEvent } : {}),
    });
    return {
      board,
      switches,
      machine,
      virtual: vb,
      clock,
      close: () => own?.close(),
    };
  } catch (e) {
    own?.close();
    throw e;
  }
}
