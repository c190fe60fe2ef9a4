import { DfuseHost } from '../dfu/host.ts';
import { getPart, type Part } from '../parts/catalogue.ts';
import { type BoardPower, openBoardPower } from '../power/board-power.ts';
import { createVirtualBoard, type VirtualBoard } from '../sim/board.ts';
import { chipStateFile } from '../sim/paths.ts';
import { StlinkProgrammer, type StlinkOptions } from '../stlink/programmer.ts';
import { findDevice, NodeUsbBackend, type UsbBackend, VirtualUsbBackend } from '../usb/discovery.ts';
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

  private constructor(farm: FarmConfig, config: BoardConfig, opts: FarmBoardOptions) {
    this.farm = farm;
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
    this.presence = virtual ? virtualPresence([virtual], this.clock) : usbPresence(this.#backends, this.clock);
    // A real board without a reset relay gets its extra reset (bootloader 0x90) from the ST-LINK.
    const stlinkReset =
      !virtual && config.stlink && !config.reset
        ? async (signal?: AbortSignal) => {
            await this.stlink().reset('hard', signal);
          }
        : undefined;
    this.power = openBoardPower(farm, config.id, {
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
    return this.virtual ? { portPath: this.virtual.portPath } : this.config.usb?.path ? { portPath: this.config.usb.path } : { ...(this.config.usb?.serial ? { serial: this.config.usb.serial } : {}) };
  }

  /** The board's DFU device as it is attached now (E_USB_NOT_FOUND listing what is attached otherwise). */
  async dfuDevice(signal?: AbortSignal): Promise<UsbDeviceLike> {
    const sel = this.virtual
      ? { portPath: this.virtual.portPath, text: `board ${this.id} (${this.virtual.portPath})` }
      : this.config.usb?.path
        ? { portPath: this.config.usb.path, text: `board ${this.id} at USB port ${this.config.usb.path}` }
        : {
            ...(this.config.usb?.serial ? { serial: this.config.usb.serial } : {}),
            vendorId: this.config.usb?.vid ?? 0x0483,
            productId: this.config.usb?.pid ?? 0xdf11,
            text: `board ${this.id} (serial ${this.config.usb?.serial ?? '?'})`,
          };
    const entry = await findDevice(this.#backends, sel, { ...(signal ? { signal } : {}), warn: this.#warn });
    return entry.device;
  }

  /** A DfuSe host on the board's bootloader (the board must be in the bootloader: see `bootloader()`). */
  async openDfu(opts: { trace?: boolean; signal?: AbortSignal } = {}): Promise<DfuseHost> {
    const device = await this.dfuDevice(opts.signal);
    return DfuseHost.open(device, {
      clock: this.clock,
      part: this.part,
      label: `board ${this.id}`,
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
