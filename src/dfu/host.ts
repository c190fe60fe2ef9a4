import type { FirmwareImage } from '../image/model.ts';
import type { Part } from '../parts/catalogue.ts';
import { hex4 } from '../usb/errors.ts';
import type { UsbDeviceLike } from '../usb/types.ts';
import { type Clock, realClock } from '../util/clock.ts';
import { hex32 } from '../util/hex.ts';
import { DfuDevice, type DfuStats } from './device.ts';
import { Dfuse, type ProgressListener } from './dfuse.ts';
import { DfuError } from './errors.ts';
import { Permissions } from './permissions.ts';
import { type FlashPlan, planFlash } from './plan.ts';
import { DfuTrace } from './trace.ts';
import { compareImage, type VerifyReport, verifyError } from './verify.ts';

export interface HostOptions {
  clock?: Clock;
  /** Alternate setting: number or name prefix. Default: the one named "Internal Flash", else 0. */
  alt?: number | string;
  transferTimeoutMs?: number;
  /** Record a transaction trace (`host.trace`). */
  trace?: boolean;
  /** Names the device in messages, e.g. "0483:df11 at 1-4.2" or "board h743-revV". */
  label?: string;
  /** Catalogue part, when the caller knows it better than the layout string does. */
  part?: Part;
  signal?: AbortSignal;
}

export interface OperationOptions {
  signal?: AbortSignal;
  /** Bound for the whole operation, ms on the host's clock. Default: derived from the part's worst cases. */
  deadlineMs?: number;
  onProgress?: ProgressListener;
}

export interface FlashOptions extends OperationOptions {
  massErase?: boolean;
  permissions?: Permissions;
  verify?: boolean;
  /** Leave DFU mode afterwards (to the flash base, or to this address). */
  leave?: boolean | number;
}

export interface FlashResult {
  plan: FlashPlan;
  verify?: VerifyReport;
  left?: 'left' | 'manifesting';
  stats: DfuStats;
  /** ms on the host's clock. */
  elapsedMs: number;
}

/**
 * The DfuSe host: flash, read, verify, erase and leave on one device given as a `UsbDeviceLike` (node-usb 3
 * for real boards, VirtualBoard.usb for virtual ones). Every operation is bounded by a deadline on the clock,
 * cancellable by an AbortSignal, and leaves the device in dfuIDLE when it fails (CLRSTATUS/ABORT recovery).
 */
export class DfuseHost {
  readonly dfu: DfuDevice;
  readonly dfuse: Dfuse;
  readonly trace: DfuTrace | undefined;
  readonly clock: Clock;
  readonly #part: Part | undefined;

  private constructor(dfu: DfuDevice, part: Part | undefined) {
    this.dfu = dfu;
    this.dfuse = new Dfuse(dfu);
    this.trace = dfu.trace;
    this.clock = dfu.clock;
    this.#part = part;
  }

  static async open(device: UsbDeviceLike, opts: HostOptions = {}): Promise<DfuseHost> {
    const clock = opts.clock ?? realClock;
    const trace = opts.trace ? new DfuTrace(clock) : undefined;
    const dfu = await DfuDevice.open(device, {
      clock,
      alt: opts.alt ?? 0,
      ...(opts.transferTimeoutMs ? { transferTimeoutMs: opts.transferTimeoutMs } : {}),
      ...(trace ? { trace } : {}),
      label: opts.label ?? `${hex4(device.vendorId)}:${hex4(device.productId)}`,
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    if (opts.alt === undefined) {
      const flash = dfu.alternates.find((a) => /internal flash/i.test(a.layout?.name ?? ''));
      if (flash && flash.alt !== dfu.alt) await dfu.selectAlternate(flash.alt);
    }
    return new DfuseHost(dfu, opts.part);
  }

  /** The catalogue part (given, or recognised from the device's layout string). */
  get part(): Part | undefined {
    return this.#part ?? this.dfu.quirks.part;
  }

  get layout(): string {
    return this.dfu.alternate.name;
  }

  async close(): Promise<void> {
    await this.dfu.close();
  }

  /** The flash plan for `image` on this device; throws before anything is sent if it cannot be flashed. */
  plan(image: FirmwareImage, opts: Pick<FlashOptions, 'massErase' | 'permissions'> = {}): FlashPlan {
    return planFlash(image, this.dfu, {
      ...(opts.massErase ? { massErase: true } : {}),
      ...(opts.permissions ? { permissions: opts.permissions } : {}),
      ...(this.part ? { part: this.part } : {}),
    });
  }

  #defaultDeadline(plan?: FlashPlan, readBytes = 0): number {
    const q = this.dfu.quirks;
    const blocks = (n: number) => Math.ceil(n / this.dfu.transferSize);
    let ms = 30_000 + blocks(readBytes) * 1000;
    if (plan) {
      ms += plan.erase.mode === 'mass' ? q.massEraseMaxMs : plan.erase.sectors.length * q.sectorEraseMaxMs;
      ms += blocks(plan.writeBytes) * q.programBlockMaxMs + blocks(plan.imageBytes) * 1000;
    }
    return ms;
  }

  /**
   * Flashes `image`: plan (refusing what cannot be written), erase the touched sectors (or mass erase with
   * permission), write, optionally verify by read-back and leave.
   */
  async flash(image: FirmwareImage, opts: FlashOptions = {}): Promise<FlashResult> {
    const plan = this.plan(image, opts);
    const t0 = this.clock.now();
    const progress = opts.onProgress;
    return this.dfu.run(
      `flash ${image.file}`,
      opts.deadlineMs ?? this.#defaultDeadline(plan),
      opts.signal,
      async () => {
        await this.dfu.ensureIdle();
        // Erase.
        if (plan.erase.mode === 'mass') {
          progress?.({ phase: 'erase', done: 0, total: plan.eraseBytes, address: 0 });
          await this.dfuse.massErase();
          progress?.({ phase: 'erase', done: plan.eraseBytes, total: plan.eraseBytes, address: 0 });
        } else {
          let done = 0;
          for (const s of plan.erase.sectors) {
            progress?.({ phase: 'erase', done, total: plan.eraseBytes, address: s.start });
            await this.dfuse.erasePage(s.start);
            done += s.size;
          }
          progress?.({
            phase: 'erase',
            done,
            total: plan.eraseBytes,
            address: plan.erase.sectors.at(-1)?.start ?? 0,
          });
        }
        // Program.
        let written = 0;
        for (const w of plan.writes) {
          try {
            await this.dfuse.write(w.address, w.data, (address, bytes) => {
              written += bytes;
              progress?.({ phase: 'program', done: written, total: plan.writeBytes, address });
            });
          } catch (e) {
            throw this.#afterMassErase(e, plan);
          }
        }
        const result: FlashResult = { plan, stats: this.dfu.stats, elapsedMs: 0 };
        if (opts.verify) {
          const report = await this.#verify(image, progress);
          result.verify = report;
          if (!report.ok) throw Object.assign(verifyError(image, report), { report });
        }
        if (opts.leave !== undefined && opts.leave !== false) {
          result.left = await this.dfuse.leave(typeof opts.leave === 'number' ? opts.leave : undefined);
        }
        result.elapsedMs = this.clock.now() - t0;
        return result;
      },
    );
  }

  #afterMassErase(e: unknown, plan: FlashPlan): unknown {
    const broken = this.dfu.quirks.massEraseBroken;
    if (
      plan.erase.mode !== 'mass' ||
      !broken ||
      !(e instanceof DfuError) ||
      !/^E_DFU_(PROG|WRITE|CHECK_ERASED)$/.test(e.code)
    )
      return e;
    return new DfuError(e.code, e.message, {
      kind: e.kind,
      details: e.details,
      hint: `the flash was not erased before programming: ${broken}; erase by sectors instead (omit --mass-erase)`,
      cause: e,
    });
  }

  async #verify(image: FirmwareImage, progress: ProgressListener | undefined): Promise<VerifyReport> {
    const segments = image.coalesced();
    const total = segments.reduce((n, s) => n + s.data.length, 0);
    const back: Uint8Array[] = [];
    let done = 0;
    progress?.({ phase: 'verify', done, total, address: segments[0]?.address ?? 0 });
    for (const s of segments) {
      back.push(
        await this.dfuse.read(s.address, s.data.length, (address, bytes) => {
          done += bytes;
          progress?.({ phase: 'verify', done, total, address });
        }),
      );
    }
    return compareImage(segments, back, this.dfu.alternate.sectors);
  }

  /** Reads back the image's addresses and compares; the report says where and how they differ. */
  async verify(image: FirmwareImage, opts: OperationOptions = {}): Promise<VerifyReport> {
    return this.dfu.run(
      `verify ${image.file}`,
      opts.deadlineMs ?? this.#defaultDeadline(undefined, image.size),
      opts.signal,
      async () => {
        await this.dfu.ensureIdle();
        return this.#verify(image, opts.onProgress);
      },
    );
  }

  /** Reads `length` bytes at `address` by UPLOAD. */
  async read(address: number, length: number, opts: OperationOptions = {}): Promise<Uint8Array> {
    if (!Number.isInteger(length) || length < 0) {
      throw new DfuError('E_DFU_READ_LENGTH', `cannot read ${length} bytes`, {
        kind: 'usage',
        details: { length },
      });
    }
    return this.dfu.run(
      `read ${length} bytes at ${hex32(address)}`,
      opts.deadlineMs ?? this.#defaultDeadline(undefined, length),
      opts.signal,
      async () => {
        await this.dfu.ensureIdle();
        let done = 0;
        return this.dfuse.read(address, length, (at, bytes) => {
          done += bytes;
          opts.onProgress?.({ phase: 'read', done, total: length, address: at });
        });
      },
    );
  }

  async massErase(permissions: Permissions = Permissions.none(), opts: OperationOptions = {}): Promise<void> {
    permissions.require('mass-erase', 'a mass erase');
    await this.dfu.run(
      'mass erase',
      opts.deadlineMs ?? this.dfu.quirks.massEraseMaxMs + 30_000,
      opts.signal,
      async () => {
        await this.dfu.ensureIdle();
        await this.dfuse.massErase();
      },
    );
  }

  /** Read Unprotect: erases everything, drops RDP to level 0; the device resets and re-enumerates. */
  async readUnprotect(
    permissions: Permissions = Permissions.none(),
    opts: OperationOptions = {},
  ): Promise<void> {
    permissions.require('read-unprotect', 'a read unprotect');
    await this.dfu.run(
      'read unprotect',
      opts.deadlineMs ?? this.dfu.quirks.massEraseMaxMs + 30_000,
      opts.signal,
      async () => {
        await this.dfu.ensureIdle();
        await this.dfuse.readUnprotect();
      },
    );
  }

  async leave(address?: number, opts: OperationOptions = {}): Promise<'left' | 'manifesting'> {
    return this.dfu.run('leave', opts.deadlineMs ?? 30_000, opts.signal, async () => {
      await this.dfu.ensureIdle();
      return this.dfuse.leave(address);
    });
  }

  async getCommands(opts: OperationOptions = {}): Promise<number[]> {
    return this.dfu.run('get commands', opts.deadlineMs ?? 30_000, opts.signal, () =>
      this.dfuse.getCommands(),
    );
  }
}
