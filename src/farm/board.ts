import { DfuseHost } from '../dfu/host.ts';
import { getPart, type Part } from '../parts/catalogue.ts';
import { type BoardPower, openBoardPower } from '../power/board-power.ts';
import { createVirtualBoard, type VirtualBoard } from '../sim/board.ts';
import { chipStateFile } from '../sim/paths.ts';
import type { MemoryReader } from '../stlink/crosscheck.ts';
import { type StlinkOptions, StlinkProgrammer } from '../stlink/programmer.ts';
import {
  findDevice,
  NodeUsbBackend,
  ST_DFU_PID,
  ST_DFU_VID,
  type UsbBackend,
  type UsbDeviceEntry,
  type UsbSelector,
  VirtualUsbBackend,
} from '../usb/discovery.ts';
import type { UsbDeviceLike } from '../usb/types.ts';
import { type Clock, realClock } from '../util/clock.ts';
import {
  type BoardEvent,
  type BoardStateMachine,
  type DfuIdentity,
  type DfuPresence,
  type TransitionResult,
  usbPresence,
  virtualPresence,
} from './board-state.ts';
import type { FarmConfig } from './config.ts';
import { findBoard } from './config.ts';
import type { BoardConfig } from './schema.ts';

/**
 * One board of boards.yaml with everything that acts on it, labgrid-style: the resources (USB identity, relay
 * ports, ST-LINK serial) come from boards.yaml, the drivers (DfuSe host, relays, STM32_Programmer_CLI) are
 * created here, and the strategy (BoardStateMachine) moves the board between off, bootloader and application.
 * A virtual board gets its simulated chip, ROM and relays; a real one the node-usb backend and serial relays.
 */
export interface FarmBoardOptions {
  /** Clock for the virtual board and the waits (tests pass a VirtualClock). */
  clock?: Clock;
  onEvent?: (event: BoardEvent) => void;
  warn?: (line: string) => void;
}

export class FarmBoard {
  readonly farm: FarmConfig;
  readonly config: BoardConfig;
  readonly part: Part;
  readonly clock: Clock;
  readonly virtual: VirtualBoard | undefined;
  readonly strategy: BoardStateMachine;
  /** The board's relay lines and state machine (src/power). */
  readonly power: BoardPower;
  /** Whether this board's DFU device is attached, with bounded waits. */
  readonly presence: DfuPresence;
  readonly #backends: UsbBackend[];
  readonly #warn: (line: string) => void;

  private constructor(farm: FarmConfig, given: BoardConfig, opts: FarmBoardOptions) {
    // A virtual board always has a supply and a BOOT0 line: its virtual relays, whether boards.yaml names them.
    const config: BoardConfig = given.virtual
      ? {
          ...given,
          power: given.power ?? { protocol: 'virtual', channel: 1 },
          boot0: given.boot0 ?? { protocol: 'virtual', channel: 2 },
        }
      : given;
    this.farm =
      config === given ? farm : { ...farm, boards: farm.boards.map((b) => (b.id === given.id ? config : b)) };
    this.config = config;
    this.part = getPart(config.part);
    // One clock for the DfuSe host and the strategy: the simulator scales its own timing (timeScale), so the
    // host must not scale the poll timeouts it is told a second time.
    this.clock = opts.clock ?? realClock;
    this.#warn = opts.warn ?? (() => {});
    let virtual: VirtualBoard | undefined;
    if (config.virtual) {
      virtual = createVirtualBoard({
        id: config.id,
        part: config.part,
        chipRevision: config.virtual.chipRevision,
        bootloader: config.virtual.bootloader,
        stateFile: chipStateFile(farm, config),
        ...(config.virtual.faults ? { faults: config.virtual.faults } : {}),
        clock: this.clock,
        timeScale: config.virtual.timeScale ?? farm.farm?.timeScale ?? 1,
      });
    }
    this.virtual = virtual;
    this.#backends = virtual ? [new VirtualUsbBackend([virtual])] : [new NodeUsbBackend()];
    this.presence = virtual
      ? virtualPresence([virtual], this.clock)
      : usbPresence(this.#backends, this.clock);
    // A real board without a reset relay gets its extra reset (bootloader 0x90) from the ST-LINK.
    const stlinkReset =
      !virtual && config.stlink && !config.reset
        ? async (signal?: AbortSignal) => {
            await this.stlink().reset('hard', signal);
          }
        : undefined;
    this.power = openBoardPower(this.farm, config.id, {
      clock: this.clock,
      presence: this.presence,
      ...(virtual ? { virtualBoard: virtual } : {}),
      ...(stlinkReset ? { reset: stlinkReset } : {}),
      ...(opts.onEvent ? { onEvent: opts.onEvent } : {}),
    });
    this.strategy = this.power.machine;
  }

  static open(farm: FarmConfig, board: string | BoardConfig, opts: FarmBoardOptions = {}): FarmBoard {
    return new FarmBoard(farm, typeof board === 'string' ? findBoard(farm, board) : board, opts);
  }

  get id(): string {
    return this.config.id;
  }

  /** BOOT0 high and a power cycle until this board's DFU device enumerates (bounded, retried, latched broken). */
  bootloader(signal?: AbortSignal): Promise<TransitionResult> {
    return this.strategy.to('bootloader', signal);
  }

  application(signal?: AbortSignal): Promise<TransitionResult> {
    return this.strategy.to('application', signal);
  }

  off(signal?: AbortSignal): Promise<TransitionResult> {
    return this.strategy.to('off', signal);
  }

  /** The DFU identity the strategy waits for (port path, or serial). */
  get dfuIdentity(): DfuIdentity {
    return this.virtual
      ? { portPath: this.virtual.portPath }
      : this.config.usb?.path
        ? { portPath: this.config.usb.path }
        : { ...(this.config.usb?.serial ? { serial: this.config.usb.serial } : {}) };
  }

  /** The board's DFU device as it is attached now (E_USB_NOT_FOUND listing what is attached otherwise). */
  async dfuEntry(signal?: AbortSignal): Promise<UsbDeviceEntry> {
    const sel: UsbSelector = this.virtual
      ? { portPath: this.virtual.portPath, text: `board ${this.id} (${this.virtual.portPath})` }
      : {
          vendorId: this.config.usb?.vid ?? ST_DFU_VID,
          productId: this.config.usb?.pid ?? ST_DFU_PID,
          ...(this.config.usb?.path ? { portPath: this.config.usb.path } : {}),
          ...(this.config.usb?.serial ? { serial: this.config.usb.serial } : {}),
          text: `board ${this.id} (${this.config.usb?.path ? `USB port ${this.config.usb.path}` : `serial ${this.config.usb?.serial ?? '?'}`})`,
        };
    return findDevice(this.#backends, sel, { ...(signal ? { signal } : {}), warn: this.#warn });
  }

  async dfuDevice(signal?: AbortSignal): Promise<UsbDeviceLike> {
    return (await this.dfuEntry(signal)).device;
  }

  /**
   * The board in its ROM bootloader, as a command line user expects: the DFU device when it is attached already,
   * else BOOT0 high and a power cycle through the board's relays (with the extra reset 0x90 needs).
   */
  async ensureBootloader(signal?: AbortSignal): Promise<UsbDeviceEntry> {
    if (!(await this.presence.present(this.dfuIdentity, signal))) {
      if (!this.config.power) return this.dfuEntry(signal);
      await this.bootloader(signal);
    }
    return this.dfuEntry(signal);
  }

  /** A DfuSe host on the board's bootloader (the board must be in the bootloader: see `ensureBootloader()`). */
  async openDfu(
    opts: { trace?: boolean; signal?: AbortSignal; alt?: number | string; entry?: UsbDeviceEntry } = {},
  ): Promise<DfuseHost> {
    const device = opts.entry?.device ?? (await this.dfuDevice(opts.signal));
    return DfuseHost.open(device, {
      clock: this.clock,
      part: this.part,
      label: `board ${this.id}`,
      ...(opts.alt !== undefined ? { alt: opts.alt } : {}),
      ...(opts.trace ? { trace: true } : {}),
      ...(this.farm.deadlines?.transferMs ? { transferTimeoutMs: this.farm.deadlines.transferMs } : {}),
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
  }

  /** STM32_Programmer_CLI over SWD for this board (the stand-in for a virtual board). */
  stlink(extra: Partial<StlinkOptions> = {}): StlinkProgrammer {
    return StlinkProgrammer.forBoard(this.farm, this.config, {
      ...extra,
      ...(this.farm.deadlines?.cliMs ? { deadlineMs: this.farm.deadlines.cliMs } : {}),
      env: { STM32_HIL_CONFIG: this.farm.file },
    });
  }

  close(): void {
    this.power.close();
    this.virtual?.close();
  }
}

/**
 * The DFU half of a cross-check: reads ranges through the board's ROM bootloader with the DfuSe host, bringing the
 * board into its bootloader first (through its relays; BOOT0 high, power cycle, the 0x90 extra reset).
 */
export function dfuReaderForBoard(
  farm: FarmConfig,
  board: BoardConfig,
  opts: FarmBoardOptions = {},
): MemoryReader {
  return async (ranges, signal) => {
    const fb = FarmBoard.open(farm, board, opts);
    try {
      const entry = await fb.ensureBootloader(signal);
      const host = await fb.openDfu({ entry, ...(signal ? { signal } : {}) });
      try {
        const out: Uint8Array[] = [];
        for (const r of ranges) {
          out.push(
            await host.read(r.address, r.length, {
              ...(signal ? { signal } : {}),
              ...(farm.deadlines?.operationMs ? { deadlineMs: farm.deadlines.operationMs } : {}),
            }),
          );
        }
        return out;
      } finally {
        await host.close().catch(() => undefined);
      }
    } finally {
      fb.close();
    }
  };
}
