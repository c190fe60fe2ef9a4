import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { FaultsConfig } from '../farm/schema.ts';
import { readImage } from '../image/index.ts';
import { FirmwareImage } from '../image/model.ts';
import { createVirtualBoard, type VirtualBoard } from '../sim/board.ts';
import { RDP_LEVEL1 } from '../sim/chip.ts';
import { findDevice, NodeUsbBackend, parseUsbSelector } from '../usb/discovery.ts';
import { UsbError } from '../usb/errors.ts';
import type { UsbDeviceLike } from '../usb/types.ts';
import { type Clock, realClock, VirtualClock } from '../util/clock.ts';
import { rejection } from '../util/testing.ts';
import { DfuError } from './errors.ts';
import { DfuseHost } from './host.ts';
import { Permissions } from './permissions.ts';
import { DFU_STATE } from './protocol.ts';
import type { DfuTrace, TraceEntry } from './trace.ts';

const FIXTURES = new URL('../../harness/fixtures/firmware/out/', import.meta.url).pathname;

function imageOf(...parts: Array<[number, Uint8Array]>): FirmwareImage {
  const img = new FirmwareImage('bin', 'test.bin');
  for (const [address, data] of parts)
    img.add({ name: `at ${address.toString(16)}`, address, data, source: { file: 'test.bin' } });
  return img;
}

function pattern(n: number, seed = 1): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed * 2654435761;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

/** No GETSTATUS sooner than the bwPollTimeout the previous one asked for (DFU 1.1 section 6.1.2). */
function pollViolations(trace: DfuTrace): string[] {
  const out: string[] = [];
  let waitUntil: number | undefined;
  for (const e of trace.entries) {
    if (e.request !== 'DFU_GETSTATUS') continue;
    if (waitUntil !== undefined && e.start + 1e-6 < waitUntil)
      out.push(`#${e.seq} at ${e.start} ms, asked to wait until ${waitUntil}`);
    waitUntil = e.dfu?.state === 'dfuDNBUSY' ? e.end + (e.dfu.pollTimeoutMs ?? 0) : undefined;
  }
  return out;
}

/** A device the contract runs against: the virtual bootloader, or a real one named by HIL_DFU_DEVICE. */
interface ContractTarget {
  clock: Clock;
  device(): Promise<UsbDeviceLike>;
  /** RAM address the bootloader cannot write (outside its layout). */
  ramAddress: number;
}

/**
 * The DfuSe host contract: what must hold on any ST ROM bootloader. Writes go to the last sector of the
 * flash layout, so a real board keeps its application in sector 0.
 */
function dfuseContract(name: string, make: () => Promise<ContractTarget>): void {
  describe(name, () => {
    let host: DfuseHost | undefined;
    afterEach(async () => {
      await host?.close();
      host = undefined;
    });
    async function open(): Promise<{ host: DfuseHost; t: ContractTarget; scratch: number; size: number }> {
      const t = await make();
      host = await DfuseHost.open(await t.device(), { clock: t.clock, trace: true });
      const last = host.dfu.alternate.sectors.at(-1)!;
      return { host, t, scratch: last.start, size: last.size };
    }

    it('reads the DFU functional descriptor (GET_DESCRIPTOR) and the flash layout', async () => {
      const { host } = await open();
      const f = host.dfu.functional;
      expect(f.dfuVersion).toBe(0x011a);
      expect(f.canDownload && f.canUpload).toBe(true);
      expect(f.transferSize).toBeGreaterThanOrEqual(64);
      expect(host.dfu.alternate.layout?.name).toMatch(/Internal Flash/);
      expect(host.trace!.entries.some((e) => e.request === 'GET_DESCRIPTOR(CONFIGURATION 0)')).toBe(true);
    });

    it('lists the DfuSe commands (Get Commands)', async () => {
      const { host } = await open();
      const cmds = await host.getCommands();
      expect(cmds).toEqual(expect.arrayContaining([0x21, 0x41]));
    });

    it('writes, reads back and verifies; polls no sooner than bwPollTimeout; 3 transfers per data block', async () => {
      const { host, scratch } = await open();
      const data = pattern(2 * host.dfu.transferSize + 100);
      const r = await host.flash(imageOf([scratch, data]), { verify: true });
      expect(r.verify?.ok).toBe(true);
      expect(r.plan.erase.mode === 'sectors' && r.plan.erase.sectors.map((s) => s.start)).toEqual([scratch]);
      expect(await host.read(scratch, data.length)).toEqual(data);
      const trace = host.trace!;
      expect(pollViolations(trace)).toEqual([]);
      const blocks = trace.entries.filter((e) => e.request === 'DFU_DNLOAD' && e.setup.wValue >= 2);
      expect(blocks).toHaveLength(3);
      for (const b of blocks) {
        const i = trace.entries.indexOf(b);
        const next = trace.entries.slice(i + 1, i + 4).map((e) => e.request);
        // DNLOAD, GETSTATUS (dfuDNBUSY + poll timeout), GETSTATUS (dfuDNLOAD-IDLE), then the next request.
        expect(next.slice(0, 2)).toEqual(['DFU_GETSTATUS', 'DFU_GETSTATUS']);
        expect(next[2]).not.toBe('DFU_GETSTATUS');
      }
    });

    it('reports a verify mismatch at the exact address and bytes', async () => {
      const { host, scratch } = await open();
      const data = pattern(600, 3);
      await host.flash(imageOf([scratch, data]));
      const other = data.slice();
      other[0x123] = data[0x123]! ^ 0xff;
      const report = await host.verify(imageOf([scratch, other]));
      expect(report.ok).toBe(false);
      expect(report.mismatches).toBe(1);
      expect(report.first).toEqual({ address: scratch + 0x123, expected: other[0x123], actual: data[0x123] });
      expect(report.sectors.map((s) => s.start)).toEqual([scratch]);
    });

    it('refuses an image with bytes outside the writable layout before sending anything', async () => {
      const { host, t, scratch } = await open();
      const before = host.trace!.entries.length;
      const err = await rejection(host.flash(imageOf([scratch, pattern(64)], [t.ramAddress, pattern(64)])));
      expect(err).toBeInstanceOf(DfuError);
      expect((err as DfuError).code).toBe('E_DFU_PLAN_OUTSIDE');
      expect((err as DfuError).kind).toBe('input');
      expect(host.trace!.entries.length).toBe(before);
    });

    it('turns an address the device refuses into E_DFU_TARGET and leaves it usable', async () => {
      const { host, scratch } = await open();
      const err = await rejection(host.read(0xfff0_0000, 16));
      expect((err as DfuError).code).toBe('E_DFU_TARGET');
      expect((err as DfuError).details).toMatchObject({
        address: 0xfff0_0000,
        state: 'dfuERROR',
        status: 'errTARGET',
      });
      await expect(host.read(scratch, 16)).resolves.toHaveLength(16);
    });

    it('recovers from a stale dfuUPLOAD-IDLE with ABORT and from dfuERROR with CLRSTATUS', async () => {
      const { host, scratch } = await open();
      const dfu = host.dfu;
      // Leave the device mid-upload, as a crashed tool would.
      await host.dfuse.setAddress(scratch);
      await dfu.abort();
      expect(await dfu.upload(2, 16)).toBeInstanceOf(Uint8Array);
      await host.read(scratch, 16);
      expect(
        host.trace!.entries.some((e) => e.request === 'DFU_ABORT' && e.note?.startsWith('abort stale')),
      ).toBe(true);
      // UPLOAD block 1 is reserved (AN3156): the device stalls and enters dfuERROR.
      expect(await dfu.upload(1, 16)).toBe('stall');
      await host.read(scratch, 16);
      expect(
        host.trace!.entries.some((e) => e.request === 'DFU_CLRSTATUS' && e.note?.startsWith('clear')),
      ).toBe(true);
      expect((await dfu.getStatus()).state).toBe(DFU_STATE.dfuIDLE);
    });
  });
}

// ------------------------------------------------------------------------------------------------------------
// Virtual bootloader (VirtualBoard on a VirtualClock)

const dirs: string[] = [];
const boards: VirtualBoard[] = [];
afterEach(() => {
  for (const b of boards.splice(0)) b.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function virtualBoard(
  bootloader: number,
  opts: { faults?: FaultsConfig; chipRevision?: string; part?: string } = {},
): Promise<VirtualBoard> {
  const dir = mkdtempSync(path.join(tmpdir(), 'dfu-contract-'));
  dirs.push(dir);
  const board = createVirtualBoard({
    id: `b${bootloader.toString(16)}`,
    part: opts.part ?? 'stm32h743',
    chipRevision: opts.chipRevision ?? (bootloader >= 0xd0 ? 'Y' : 'V'),
    bootloader,
    stateFile: path.join(dir, 'chip.bin'),
    clock: new VirtualClock(),
    ...(opts.faults ? { faults: opts.faults } : {}),
  });
  boards.push(board);
  board.setBoot0(true);
  board.setPower(true);
  if (board.mode === 'silent') board.reset();
  await board.waitForUsb(5000);
  return board;
}

async function openVirtual(board: VirtualBoard, trace = true): Promise<DfuseHost> {
  return DfuseHost.open(board.usb!, { clock: board.clock, trace });
}

dfuseContract('DfuSe host contract: virtual STM32H743 bootloader 0xD2', async () => {
  const board = await virtualBoard(0xd2);
  return { clock: board.clock, device: async () => board.usb!, ramAddress: 0x3800_0000 };
});

const realSpec = process.env.HIL_DFU_DEVICE;
describe.skipIf(!realSpec)(
  'DfuSe host contract on a real device (set HIL_DFU_DEVICE=VID:PID@PORTPATH, e.g. 0483:df11@1-4.2; erases and writes the last flash sector)',
  () => {
    dfuseContract(`real device ${realSpec ?? '(not set)'}`, async () => {
      const entry = await findDevice([new NodeUsbBackend()], parseUsbSelector(realSpec!));
      return { clock: realClock, device: async () => entry.device, ramAddress: 0x3800_0000 };
    });
  },
);

describe('virtual bootloader scenarios (ST AN2606 limitations, field reports, injected faults)', () => {
  it('0xD2 (rev Y): flashes bank 1 and bank 2 and verifies, erasing only the sectors touched', async () => {
    const board = await virtualBoard(0xd2);
    const host = await openVirtual(board);
    const image = readImage(`${FIXTURES}bank2.elf`);
    const r = await host.flash(image, { verify: true });
    expect(r.verify?.ok).toBe(true);
    expect(r.plan.erase.mode === 'sectors' && r.plan.erase.sectors.map((s) => s.start)).toEqual([
      0x0800_0000, 0x0810_0000,
    ]);
    expect(host.trace!.named('DFU_CLRSTATUS')).toEqual([]);
    await host.close();
  });

  it('0x90 (rev V): bank 2 page erase hangs; the host gives up within its bound and recovers with CLRSTATUS twice', async () => {
    const board = await virtualBoard(0x90);
    const host = await openVirtual(board);
    const bound = host.dfu.quirks.sectorEraseMaxMs;
    const t0 = board.clock.now();
    const err = (await rejection(host.flash(readImage(`${FIXTURES}bank2.elf`)))) as DfuError;
    const took = board.clock.now() - t0;
    expect(err).toBeInstanceOf(DfuError);
    expect(err.code).toBe('E_DFU_BUSY_TIMEOUT');
    expect(err.details).toMatchObject({ address: 0x0810_0000, state: 'dfuDNBUSY', recovered: true });
    expect(err.hint).toMatch(/mass erase/);
    // Bank 1 erase (1 s poll timeout) + the bank 2 bound + the recovery transfers; never the dfu-util forever.
    expect(took).toBeLessThan(1000 + bound + 100);
    // The CubeProgrammer trace: CLRSTATUS -> errUNKNOWN/dfuERROR, CLRSTATUS -> dfuIDLE.
    const e = host.trace!.entries;
    const firstClr = e.findIndex((x) => x.request === 'DFU_CLRSTATUS');
    const tail = e
      .slice(firstClr)
      .map(
        (x: TraceEntry) =>
          `${x.request}${x.request === 'DFU_GETSTATUS' ? ` ${x.dfu?.state}/${x.dfu?.status}` : ''}`,
      );
    expect(tail).toEqual([
      'DFU_CLRSTATUS',
      'DFU_GETSTATUS dfuERROR/errUNKNOWN',
      'DFU_CLRSTATUS',
      'DFU_GETSTATUS dfuIDLE/OK',
    ]);
    const busyPolls = e.filter(
      (x) =>
        x.request === 'DFU_GETSTATUS' &&
        x.dfu?.state === 'dfuDNBUSY' &&
        x.start >= e[firstClr - 1]!.start - bound,
    );
    expect(busyPolls.length).toBeLessThanOrEqual(Math.ceil(bound / 1000) + 2);
    expect(board.rom.state).toBe(DFU_STATE.dfuIDLE);
    await host.close();
  });

  it('0x90 (rev V): the mass-erase workaround flashes bank 2; without permission it is refused', async () => {
    const board = await virtualBoard(0x90);
    const host = await openVirtual(board);
    const image = readImage(`${FIXTURES}bank2.elf`);
    const refused = (await rejection(host.flash(image, { massErase: true }))) as DfuError;
    expect(refused.code).toBe('E_DFU_PERMISSION');
    expect(refused.kind).toBe('usage');
    expect(host.trace!.named('DFU_DNLOAD')).toEqual([]);
    const r = await host.flash(image, {
      massErase: true,
      permissions: Permissions.none().allowMassErase(),
      verify: true,
    });
    expect(r.verify?.ok).toBe(true);
    const erases = host
      .trace!.named('DFU_DNLOAD')
      .filter((x) => x.setup.wValue === 0 && x.dataOut?.[0] === 0x41);
    expect(erases.map((x) => x.dataOut!.length)).toEqual([1]);
    await host.close();
  });

  it('refuses the SRAM4 image (seed 002) before any erase, with the image diagnosis', async () => {
    const board = await virtualBoard(0xd2);
    const before = board.chip.readFlash(0x0800_0000, 16);
    const host = await openVirtual(board);
    const err = (await rejection(host.flash(readImage(`${FIXTURES}sram4.elf`)))) as DfuError;
    expect(err.code).toBe('E_DFU_PLAN_OUTSIDE');
    expect(err.message).toMatch(/SRAM4/);
    expect(err.message).toMatch(/\.shared/);
    expect(err.details.imageCode).toBe('E_IMAGE_RAM_DATA');
    expect(host.trace!.named('DFU_DNLOAD')).toEqual([]);
    expect(board.chip.readFlash(0x0800_0000, 16)).toEqual(before);
    await host.close();
  });

  it('RDP level 1: an UPLOAD is refused with errVENDOR; read unprotect needs permission, erases and re-enumerates', async () => {
    const board = await virtualBoard(0xd2);
    board.chip.programFlash(0x0800_0000, pattern(32));
    board.chip.setOptions({ rdp: RDP_LEVEL1 });
    const host = await openVirtual(board);
    const err = (await rejection(host.read(0x0800_0000, 64))) as DfuError;
    expect(err.code).toBe('E_DFU_READ_PROTECTED');
    expect(err.details).toMatchObject({ address: 0x0800_0000, status: 'errVENDOR' });
    expect(((await rejection(host.readUnprotect())) as DfuError).code).toBe('E_DFU_PERMISSION');
    await host.readUnprotect(Permissions.none().allowReadUnprotect());
    await host.close();
    await board.waitForUsb(5000);
    const again = await openVirtual(board);
    expect([...(await again.read(0x0800_0000, 32))]).toEqual(new Array(32).fill(0xff));
    expect(board.chip.rdpLevel).toBe(0);
    await again.close();
  });

  it('a seeded sector write failure fails as "failed to download Sector[N]", the same way for the same seed', async () => {
    const image = imageOf([0x0800_0000, pattern(4 * 128 * 1024)]);
    const run = async () => {
      const board = await virtualBoard(0xd2, { faults: { seed: 7, sectorWriteFailure: 0.5 } });
      const host = await openVirtual(board);
      const err = (await rejection(host.flash(image))) as DfuError;
      const state = board.rom.state;
      await host.close();
      return { err, state };
    };
    const a = await run();
    const b = await run();
    expect(a.err.code).toBe('E_DFU_WRITE');
    expect(a.err.message).toMatch(/^failed to download Sector\[\d\]/);
    expect(a.err.details).toMatchObject({ status: 'errWRITE' });
    expect(b.err.details.address).toBe(a.err.details.address);
    expect(a.state).toBe(DFU_STATE.dfuIDLE);
  });

  it('weak bits: verify reports the exact address and bytes, as STM32CubeProgrammer does (seed 004)', async () => {
    const board = await virtualBoard(0x90, {
      faults: { seed: 1, weakBits: [{ address: 0x0800_0002, mask: 0x08 }] },
    });
    const host = await openVirtual(board);
    const vector = Uint8Array.of(0x00, 0x00, 0x08, 0x20, 0x99, 0x02, 0x00, 0x08, ...pattern(56));
    const err = (await rejection(
      host.flash(imageOf([0x0800_0000, vector]), { verify: true }),
    )) as DfuError & {
      report: { dump: string };
    };
    expect(err.code).toBe('E_DFU_VERIFY_MISMATCH');
    expect(err.kind).toBe('check');
    expect(err.message).toContain('Data mismatch found at address 0x08000002 (byte = 0x00 instead of 0x08)');
    expect(err.details).toMatchObject({ address: 0x0800_0002, expected: 0x08, actual: 0x00, mismatches: 1 });
    expect(err.report.dump).toMatch(/0x08000000 {2}00 00 00 20/);
    await host.close();
  });

  it('leave: the device vanishes after the zero-length DNLOAD and that is success', async () => {
    const board = await virtualBoard(0xd2);
    const host = await openVirtual(board);
    const vector = Uint8Array.of(0x00, 0x00, 0x02, 0x20, 0x99, 0x02, 0x00, 0x08);
    const r = await host.flash(imageOf([0x0800_0000, vector]), { leave: true });
    expect(['left', 'manifesting']).toContain(r.left);
    expect(board.usb).toBeUndefined();
    expect(board.mode).toBe('application');
    await host.close();
  });

  it('0xD3: a mass erase that does nothing shows as a programming error with the bootloader named', async () => {
    const board = await virtualBoard(0xd3);
    const host = await openVirtual(board);
    const image = imageOf([0x0800_0000, pattern(256)]);
    await host.flash(image);
    const err = (await rejection(
      host.flash(image, { massErase: true, permissions: Permissions.none().allowMassErase() }),
    )) as DfuError;
    expect(err.code).toBe('E_DFU_PROG');
    expect(err.hint).toMatch(/0xD3/);
    await host.close();
  });

  it('a device that disconnects mid-transfer is E_USB_DISCONNECTED; one that stops answering is E_USB_TIMEOUT', async () => {
    const gone = await virtualBoard(0xd2, { faults: { seed: 1, disconnectAtTransfer: 4 } });
    let host = await openVirtual(gone);
    const e1 = await rejection(host.read(0x0800_0000, 4096));
    expect(e1).toBeInstanceOf(UsbError);
    expect((e1 as UsbError).code).toBe('E_USB_DISCONNECTED');
    await host.close();
    const mute = await virtualBoard(0xd2, { faults: { seed: 1, stopAnsweringAtTransfer: 3 } });
    host = await DfuseHost.open(mute.usb!, { clock: mute.clock, transferTimeoutMs: 250 });
    const t0 = mute.clock.now();
    const e2 = await rejection(host.read(0x0800_0000, 4096));
    expect((e2 as UsbError).code).toBe('E_USB_TIMEOUT');
    // Transfer 3 is the GETSTATUS that executes Set Address: it may take the command's bound (2 s), no more.
    expect(mute.clock.now() - t0).toBeLessThanOrEqual(2000 + 250);
    await host.close();
  });

  it('a stalled request is explained with GETSTATUS and the next operation recovers', async () => {
    const board = await virtualBoard(0xd2, { faults: { seed: 1, stallAtTransfer: 2 } });
    const host = await openVirtual(board);
    const err = (await rejection(host.read(0x0800_0000, 16))) as DfuError;
    expect(err).toBeInstanceOf(DfuError);
    expect(err.code).toMatch(/^E_DFU_/);
    await expect(host.read(0x0800_0000, 16)).resolves.toHaveLength(16);
    await host.close();
  });

  it('honours an AbortSignal and the operation deadline (on the clock)', async () => {
    const board = await virtualBoard(0xd2);
    const host = await openVirtual(board);
    const image = imageOf([0x0800_0000, pattern(1024)], [0x0810_0000, pattern(1024)]);
    const ctl = new AbortController();
    const reason = new Error('operator pressed ^C');
    const p = host.flash(image, {
      signal: ctl.signal,
      onProgress: (e) => {
        if (e.phase === 'erase' && e.done > 0) ctl.abort(reason);
      },
    });
    expect(await rejection(p)).toBe(reason);
    const late = await rejection(host.flash(image, { deadlineMs: 1500 }));
    expect((late as { code: string }).code).toBe('E_DEADLINE');
    await host.close();
  });
});
