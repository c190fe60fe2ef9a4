import { DfuseHost } from '../dfu/index.ts';
import type { FarmConfig } from '../farm/config.ts';
import type { BoardConfig } from '../farm/schema.ts';
import { findPart } from '../parts/catalogue.ts';
import { createVirtualBoard, type VirtualBoard } from '../sim/board.ts';
import { chipStateFile } from '../sim/paths.ts';
import {
  findDevice,
  hex4,
  NodeUsbBackend,
  ST_DFU_PID,
  ST_DFU_VID,
  VirtualUsbBackend,
  waitForDevice,
} from '../usb/index.ts';
import { realClock } from '../util/clock.ts';
import type { MemoryReader } from './crosscheck.ts';

/**
 * The DFU half of a cross-check: reads ranges through the board's ROM bootloader with the DfuSe host (src/dfu).
 * A virtual board is brought into its bootloader the way `stm32-hil dfu` does it (BOOT0 high, power on, the extra
 * reset bootloader 0x90 needs); a real board must already be in DFU mode on its USB port.
 */
export function dfuReaderForBoard(
  config: FarmConfig,
  b: BoardConfig,
  opts: { warn?: (line: string) => void } = {},
): MemoryReader {
  return async (ranges, signal) => {
    let board: VirtualBoard | undefined;
    let host: DfuseHost | undefined;
    try {
      let device: Awaited<ReturnType<typeof findDevice>>;
      if (b.virtual) {
        const v = b.virtual;
        board = createVirtualBoard({
          id: b.id,
          part: b.part,
          chipRevision: v.chipRevision,
          bootloader: v.bootloader,
          stateFile: chipStateFile(config, b),
          ...(v.faults ? { faults: v.faults } : {}),
          clock: realClock,
          timeScale: v.timeScale ?? config.farm?.timeScale ?? 1,
        });
        board.setBoot0(true);
        if (board.mode === 'off') board.setPower(true);
        else if (board.mode === 'application') board.reset();
        // ST AN2606, bootloader 0x90: after power-on the ROM answers only after an additional reset.
        if (board.mode === 'silent') board.reset();
        device = await waitForDevice(
          [new VirtualUsbBackend([board])],
          { portPath: board.portPath, text: `virtual board ${b.id}` },
          {
            timeoutMs: config.deadlines?.enumerationMs ?? 10_000,
            clock: board.clock,
            ...(signal ? { signal } : {}),
          },
        );
      } else {
        const u = b.usb ?? {};
        const vid = u.vid ?? ST_DFU_VID;
        const pid = u.pid ?? ST_DFU_PID;
        device = await findDevice(
          [new NodeUsbBackend()],
          {
            vendorId: vid,
            productId: pid,
            ...(u.path ? { portPath: u.path } : {}),
            ...(u.serial ? { serial: u.serial } : {}),
            text: `${hex4(vid)}:${hex4(pid)}${u.path ? `@${u.path}` : ''} (board ${b.id})`,
          },
          { ...(opts.warn ? { warn: opts.warn } : {}) },
        );
      }
      const part = findPart(b.part);
      host = await DfuseHost.open(device.device, {
        clock: board?.clock ?? realClock,
        label: `board ${b.id}`,
        ...(part ? { part } : {}),
        ...(config.deadlines?.transferMs ? { transferTimeoutMs: config.deadlines.transferMs } : {}),
        ...(signal ? { signal } : {}),
      });
      const out: Uint8Array[] = [];
      for (const r of ranges) {
        out.push(
          await host.read(r.address, r.length, {
            ...(signal ? { signal } : {}),
            ...(config.deadlines?.operationMs ? { deadlineMs: config.deadlines.operationMs } : {}),
          }),
        );
      }
      return out;
    } finally {
      await host?.close().catch(() => undefined);
      board?.close();
    }
  };
}
