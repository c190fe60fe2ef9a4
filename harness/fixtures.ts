import * as allure from 'allure-js-commons';
import { test as base, inject, type RunnerTestCase } from 'vitest';
import type { DfuProgress } from '../src/dfu/dfuse.ts';
import type { DfuseHost } from '../src/dfu/host.ts';
import { traceToPcapng } from '../src/dfu/pcapng.ts';
import { mismatchLine, type VerifyReport } from '../src/dfu/verify.ts';
import { isHilError } from '../src/errors.ts';
import { FarmBoard } from '../src/farm/board.ts';
import type { TransitionResult } from '../src/farm/board-state.ts';
import { type FarmConfig, loadConfig } from '../src/farm/config.ts';
import type { BoardConfig } from '../src/farm/schema.ts';
import { type FlashSector, flashSectors, type Part } from '../src/parts/catalogue.ts';
import type { StlinkProgrammer } from '../src/stlink/programmer.ts';
import { hex8 } from '../src/util/hex.ts';
import type { HilTaskMeta } from './meta.ts';

/**
 * What a HIL test gets: its board (state control, measurements, details), a DfuSe host on the board's ROM
 * bootloader, and STM32_Programmer_CLI over SWD. The same fixtures drive a virtual board or a real one.
 */
export class HilBoard {
  readonly fb: FarmBoard;
  readonly #meta: HilTaskMeta;

  constructor(fb: FarmBoard, meta: HilTaskMeta) {
    this.fb = fb;
    this.#meta = meta;
  }

  get id(): string {
    return this.fb.id;
  }
  get config(): BoardConfig {
    return this.fb.config;
  }
  get farm(): FarmConfig {
    return this.fb.farm;
  }
  get part(): Part {
    return this.fb.part;
  }
  get sectors(): FlashSector[] {
    return flashSectors(this.fb.part);
  }

  /** A measurement to store and trend (`erase_ms`, `enumeration_ms`, `throughput_kib_s`). */
  measure(name: string, value: number, unit: string): void {
    this.#meta.measurements ??= [];
    this.#meta.measurements.push({ name, value: Math.round(value * 1000) / 1000, unit });
  }

  /** Facts for the results store and the report (kept with the outcome, pass or fail). */
  detail(facts: Record<string, unknown>): void {
    this.#meta.details = { ...this.#meta.details, ...facts };
  }

  /** A named step in the Allure report. */
  step<T>(name: string, fn: () => Promise<T>): Promise<T> {
    return Promise.resolve(allure.step(name, fn));
  }

  /**
   * A progress listener for DfuseHost operations: each phase (erase, program, verify) becomes an Allure step with
   * its size and duration, and a measurement named after the operation (`<name>_erase_ms`, `<name>_program_ms`,
   * ...): a timing series compares like with like, so each flash of a different shape has its own name.
   */
  phases(name: string): { onProgress: (e: DfuProgress) => void } {
    let current: { phase: DfuProgress['phase']; start: number; total: number } | undefined;
    const close = () => {
      if (!current) return;
      const ms = this.fb.clock.now() - current.start;
      this.measure(`${name}_${current.phase}_ms`, ms, 'ms');
      void allure.logStep(`${current.phase} ${current.total} bytes (${Math.round(ms)} ms)`);
      current = undefined;
    };
    return {
      onProgress: (e) => {
        if (current?.phase !== e.phase) {
          close();
          current = { phase: e.phase, start: this.fb.clock.now(), total: e.total };
        }
        if (e.done >= e.total) close();
      },
    };
  }

  #recordTransition(r: TransitionResult): { enumerationMs: number; extraReset: boolean } {
    for (const m of r.measurements) this.measure(m.name, m.value, m.unit);
    const enumeration = r.measurements.find((m) => m.name === 'enumeration_ms');
    if (r.extraReset?.needed) this.detail({ extraReset: r.extraReset });
    return { enumerationMs: enumeration?.value ?? r.ms, extraReset: r.extraReset?.needed ?? false };
  }

  /** BOOT0 high and a power cycle until the DFU device enumerates; returns the power-on to enumeration time. */
  async enterBootloader(signal?: AbortSignal): Promise<{ enumerationMs: number; extraReset: boolean }> {
    return this.#recordTransition(await this.step('enter the bootloader', () => this.fb.bootloader(signal)));
  }

  async enterApplication(signal?: AbortSignal): Promise<void> {
    this.#recordTransition(await this.step('start the application', () => this.fb.application(signal)));
  }

  async powerOff(signal?: AbortSignal): Promise<void> {
    await this.step('power off', () => this.fb.off(signal));
  }

  usbPresent(): Promise<boolean> {
    return this.fb.presence.present(this.fb.dfuIdentity);
  }

  /** Waits (bounded) for the DFU device to go away; fails if it is still there at the deadline. */
  async waitVanished(deadlineMs = 2000): Promise<void> {
    if (!(await this.fb.presence.gone(this.fb.dfuIdentity, { deadlineMs }))) {
      throw new Error(`the DFU device of board ${this.id} was still attached after ${deadlineMs} ms`);
    }
  }

  /** Lets a board that just left the bootloader run for a while (a device that comes back shows by then). */
  async settle(ms = 500): Promise<void> {
    await this.fb.clock.sleep(ms);
  }

  /** What a virtual board is doing ('application', 'silent', ...); 'unknown' on a real board. */
  mode(): string {
    return this.fb.virtual?.mode ?? 'unknown';
  }

  openDfu(): Promise<DfuseHost> {
    return this.fb.openDfu({ trace: true });
  }
}

function suiteName(task: RunnerTestCase): string {
  let s = task.suite;
  let name = '';
  while (s) {
    if (s.name) name = s.name;
    s = s.suite;
  }
  return name;
}

interface WorkerFixtures {
  farmBoard: FarmBoard;
}

interface TestFixtures {
  board: HilBoard;
  dfu: DfuseHost;
  swd: StlinkProgrammer;
}

export const hilTest = base.extend<{ $test: TestFixtures; $worker: WorkerFixtures }>({
  farmBoard: [
    // biome-ignore lint/correctness/noEmptyPattern: vitest reads the fixture's dependencies from this pattern.
    async ({}, use) => {
      const config = loadConfig(inject('configFile'));
      const fb = FarmBoard.open(config, inject('board'));
      await use(fb);
      fb.close();
    },
    { scope: 'worker' },
  ],

  board: async ({ farmBoard, task, skip, onTestFailed }, use) => {
    const broken = farmBoard.strategy.broken;
    if (broken) skip(`board ${farmBoard.id} is latched broken: ${broken.message}`);
    const meta: HilTaskMeta = { board: farmBoard.id, suite: suiteName(task) };
    task.meta.hil = meta;
    const c = farmBoard.config;
    const bootloader = c.virtual?.bootloader ?? c.expect?.bootloader;
    // allure-vitest sets its own suite labels from the file and describe; the report groups by these two instead.
    await allure.label('hilSuite', meta.suite);
    await allure.label('board', farmBoard.id);
    await allure.label('part', farmBoard.part.name);
    await allure.label('chipRevision', c.virtual?.chipRevision ?? c.expect?.chipRevision ?? '?');
    await allure.label('bootloader', bootloader === undefined ? '?' : hex8(bootloader));
    await allure.label('host', c.host ?? (c.virtual ? 'virtual' : 'local'));
    await allure.parameter('board', farmBoard.id);
    // The error's code and kind decide how the store files the outcome: an infrastructure error (relay,
    // enumeration, a board latched broken) is 'broken', never a failed test of the chip.
    onTestFailed(({ task: failed }) => {
      const err = failed.result?.errors?.[0] as { code?: string; kind?: string } | undefined;
      if (err?.code) meta.errorCode = err.code;
      if (err?.kind) meta.errorKind = err.kind;
    });
    await use(new HilBoard(farmBoard, meta));
  },

  dfu: async ({ board, onTestFailed }, use) => {
    if (board.fb.strategy.state !== 'bootloader') await board.enterBootloader();
    let host: DfuseHost;
    try {
      host = await board.openDfu();
    } catch (e) {
      // The device was there a moment ago: a fresh power cycle is the recovery a person would try.
      if (!isHilError(e)) throw e;
      await board.enterBootloader();
      host = await board.openDfu();
    }
    onTestFailed(async () => {
      if (host.trace)
        await allure.attachment(
          'usb-trace.pcapng',
          Buffer.from(traceToPcapng(host.trace)),
          'application/vnd.tcpdump.pcap',
        );
    });
    try {
      await use(host);
    } finally {
      await host.close().catch(() => {});
    }
  },

  swd: async ({ board, onTestFailed }, use) => {
    // SWD needs a powered target; a board that is off (or in an unknown state) goes to the bootloader first.
    if (board.fb.strategy.state === 'off' || board.fb.strategy.state === 'unknown')
      await board.enterBootloader();
    const outputs: string[] = [];
    const swd = board.fb.stlink({
      onRun: (r) => outputs.push(`$ STM32_Programmer_CLI ${r.args.join(' ')}\n${r.stdout}${r.stderr}`),
    });
    onTestFailed(async () => {
      if (outputs.length)
        await allure.attachment('STM32_Programmer_CLI output', outputs.join('\n\n'), 'text/plain');
    });
    await use(swd);
  },
});

/** One line for an assertion message: "ok" or CubeProgrammer's mismatch line with count and sectors. */
export function verifyText(report: VerifyReport | undefined): string {
  if (!report) return 'not verified';
  if (report.ok) return `ok (${report.bytes} bytes)`;
  const first = report.first ? mismatchLine(report.first) : 'mismatch';
  // The dump goes into the Allure report beside the failure, as the trace and the CLI output do.
  if (report.dump) void allure.attachment('verify mismatch dump', `${first}\n\n${report.dump}`, 'text/plain');
  return `${first}; ${report.mismatches} byte(s) differ in sector(s) ${report.sectors.map((s) => s.index).join(', ')}\n${report.dump ?? ''}`;
}
