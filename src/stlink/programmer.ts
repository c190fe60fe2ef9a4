import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { FarmConfig } from '../farm/config.ts';
import type { BoardConfig } from '../farm/schema.ts';
import { SWD_BOARDS_ENV, swdBoardsOf } from '../sim/swd/boards.ts';
import {
  allowMassErase,
  type ConnectMode,
  connectArgs,
  type EraseTarget,
  eraseArgs,
  listProbesArgs,
  optionBytesDisplayArgs,
  type ResetMode,
  read32Args,
  resetArgs,
  uploadArgs,
  writeArgs,
} from './commands.ts';
import { StlinkError } from './errors.ts';
import { cliFromPath, locateProgrammerCli, type ProgrammerCli, virtualProgrammerCliPath } from './locate.ts';
import {
  type OperationKind,
  type OptionByte,
  type OptionBytesOfInterest,
  optionBytesOfInterest,
  type ProbeInfo,
  type TargetInfo,
} from './parse.ts';
import { checkRun, DEFAULT_CLI_DEADLINE_MS, DEFAULT_GRACE_MS, type RunResult, runProgrammer } from './run.ts';

export { allowMassErase };

export interface StlinkOptions {
  cli: ProgrammerCli;
  /** ST-LINK serial (boards.yaml stlink.serial). */
  serial?: string | undefined;
  freqKHz?: number | undefined;
  connectMode?: ConnectMode;
  resetMode?: ResetMode;
  /** Per run; boards.yaml deadlines.cliMs. */
  deadlineMs?: number;
  graceMs?: number;
  /** Extra environment for the CLI (the stand-in reads STM32_HIL_CONFIG). */
  env?: Record<string, string>;
  /** Board id, for messages and mass-erase permissions. */
  board?: string | undefined;
  /** Called with every completed run, failed or not (test reports attach the CLI output). */
  onRun?: (run: RunResult) => void;
}

export interface Identity {
  probe: ProbeInfo | undefined;
  target: TargetInfo;
  version: string | undefined;
}

/**
 * STM32_Programmer_CLI driven over SWD for one probe/board: every method is one run of the CLI with a deadline
 * and the caller's AbortSignal, its output parsed whole, and a StlinkError with a stable code on failure. The real
 * tool and the stand-in for virtual boards go through exactly this code; only `cli` differs.
 */
export class StlinkProgrammer {
  readonly options: StlinkOptions;

  constructor(options: StlinkOptions) {
    this.options = options;
  }

  /**
   * For a board of boards.yaml: virtual boards get the stand-in (fed the same boards.yaml), real ones the CLI that
   * `locateProgrammerCli` finds (tools.programmerCli, $STM32_PROGRAMMER_CLI, PATH, default install folders).
   */
  static forBoard(
    config: FarmConfig,
    board: BoardConfig,
    extra: Partial<StlinkOptions> = {},
  ): StlinkProgrammer {
    if (!board.stlink) {
      throw new StlinkError(
        'E_STLINK_PROBE_NOT_FOUND',
        `board "${board.id}" has no stlink: { serial } in ${config.file}`,
        {
          details: { board: board.id },
          hint: 'add stlink: { serial: ... } to the board (the serial is what `STM32_Programmer_CLI -l st-link` prints)',
        },
      );
    }
    const cli = board.virtual
      ? cliFromPath(virtualProgrammerCliPath(), 'virtual')
      : locateProgrammerCli({
          configured: config.tools?.programmerCli
            ? path.resolve(config.dir, config.tools.programmerCli)
            : undefined,
        });
    return new StlinkProgrammer({
      cli,
      serial: board.stlink.serial,
      freqKHz: board.stlink.freq,
      deadlineMs: config.deadlines?.cliMs ?? DEFAULT_CLI_DEADLINE_MS,
      board: board.id,
      ...extra,
      // The stand-in gets the farm's virtual boards ready-made, and boards.yaml for anything else.
      ...(board.virtual || extra.env
        ? {
            env: {
              ...(board.virtual
                ? { STM32_HIL_CONFIG: config.file, [SWD_BOARDS_ENV]: JSON.stringify(swdBoardsOf(config)) }
                : {}),
              ...extra.env,
            },
          }
        : {}),
    });
  }

  /** One run with the connection arguments first; checked (throws on any standing error). */
  async run(args: string[], signal?: AbortSignal, opts: { connect?: boolean } = {}): Promise<RunResult> {
    const o = this.options;
    const full = [
      ...(opts.connect === false
        ? []
        : connectArgs({
            serial: o.serial,
            freqKHz: o.freqKHz,
            mode: o.connectMode ?? 'UR',
            reset: o.resetMode ?? 'HWrst',
          })),
      ...args,
    ];
    const run = await runProgrammer(o.cli, full, {
      signal,
      deadlineMs: o.deadlineMs ?? DEFAULT_CLI_DEADLINE_MS,
      graceMs: o.graceMs ?? DEFAULT_GRACE_MS,
      ...(o.env ? { env: o.env } : {}),
    });
    o.onRun?.(run);
    return checkRun(run);
  }

  #expect(run: RunResult, kind: OperationKind, what: string): void {
    if (!run.output.operations.some((op) => op.kind === kind && op.outcome === 'ok')) {
      throw new StlinkError(
        'E_STLINK_OUTPUT_UNRECOGNISED',
        `${what}: the CLI exited ${run.exitCode} but its output never says the ${kind} succeeded`,
        {
          details: { command: run.args.join(' '), lines: run.output.lines.filter(Boolean).slice(-12) },
        },
      );
    }
  }

  #identity(run: RunResult): Identity {
    const out = run.output;
    if (!out.target?.deviceId) {
      throw new StlinkError(
        'E_STLINK_OUTPUT_UNRECOGNISED',
        'connected, but the output has no "Device ID" line',
        {
          details: { command: run.args.join(' '), lines: out.lines.filter(Boolean).slice(-12) },
        },
      );
    }
    return { probe: out.probe, target: out.target, version: out.version };
  }

  /** Connects and reports the probe and the target: device ID, revision, flash size, bootloader version. */
  async identify(signal?: AbortSignal): Promise<Identity> {
    return this.#identity(await this.run([], signal));
  }

  /** Probes on this host (an empty list when none is connected). */
  async listProbes(signal?: AbortSignal): Promise<ProbeInfo[]> {
    try {
      const run = await this.run(listProbesArgs(), signal, { connect: false });
      return run.output.probes;
    } catch (e) {
      if (e instanceof StlinkError && e.code === 'E_STLINK_NO_PROBE') return [];
      throw e;
    }
  }

  /** Reads `length` bytes at `address` (through a temporary file, as `-u` writes one). */
  async readMemory(address: number, length: number, signal?: AbortSignal): Promise<Uint8Array> {
    const [data] = await this.readRanges([{ address, length }], signal);
    return data!;
  }

  /** Reads several ranges in one run of the CLI (one `-u` each), in order. */
  async readRanges(
    ranges: ReadonlyArray<{ address: number; length: number }>,
    signal?: AbortSignal,
  ): Promise<Uint8Array[]> {
    if (ranges.length === 0) return [];
    const dir = mkdtempSync(path.join(tmpdir(), 'stm32-hil-swd-'));
    try {
      const files = ranges.map((_, i) => path.join(dir, `read-${i}.bin`));
      const run = await this.run(
        ranges.flatMap((r, i) => uploadArgs(r.address, r.length, files[i]!)),
        signal,
      );
      const reads = run.output.operations.filter((o) => o.kind === 'read' && o.outcome === 'ok').length;
      if (reads < ranges.length) {
        throw new StlinkError(
          'E_STLINK_OUTPUT_UNRECOGNISED',
          `asked for ${ranges.length} reads, the CLI reports ${reads} done`,
          {
            details: { command: run.args.join(' '), lines: run.output.lines.filter(Boolean).slice(-12) },
          },
        );
      }
      return ranges.map((r, i) => {
        let data: Buffer;
        try {
          data = readFileSync(files[i]!);
        } catch (e) {
          throw new StlinkError(
            'E_STLINK_READ_FAILED',
            `the CLI said the read succeeded but wrote no file ${files[i]}`,
            { cause: e, details: { file: files[i] } },
          );
        }
        if (data.length !== r.length) {
          throw new StlinkError(
            'E_STLINK_READ_FAILED',
            `asked for ${r.length} bytes at 0x${r.address.toString(16)}, the CLI wrote ${data.length}`,
            {
              details: { address: r.address, length: r.length, got: data.length },
            },
          );
        }
        return new Uint8Array(data.buffer, data.byteOffset, data.length);
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  /** Reads 32-bit words as the CLI prints them (no file). */
  async read32(address: number, words: number, signal?: AbortSignal): Promise<Uint8Array> {
    const run = await this.run(read32Args(address, words), signal);
    const bytes = new Uint8Array(words * 4);
    let got = 0;
    for (const dump of run.output.memory) {
      const off = dump.address - address;
      if (off < 0 || off >= bytes.length) continue;
      bytes.set(dump.bytes.subarray(0, bytes.length - off), off);
      got += Math.min(dump.bytes.length, bytes.length - off);
    }
    if (got < bytes.length) {
      throw new StlinkError(
        'E_STLINK_OUTPUT_UNRECOGNISED',
        `asked for ${words} words at 0x${address.toString(16)}, the CLI printed ${got / 4}`,
        {
          details: { address, words, got },
        },
      );
    }
    return bytes;
  }

  /** Writes a file and verifies it (-v): a mismatch raises E_STLINK_DATA_MISMATCH with address, expected, actual. */
  async write(
    file: string,
    opts: { address?: number; verify?: boolean } = {},
    signal?: AbortSignal,
  ): Promise<RunResult> {
    const verify = opts.verify ?? true;
    const run = await this.run(writeArgs(file, { address: opts.address, verify }), signal);
    this.#expect(run, 'download', `write of ${file}`);
    if (verify) this.#expect(run, 'verify', `verify of ${file}`);
    return run;
  }

  /** Erases sectors, or everything with a permission from `allowMassErase(board, reason)`. */
  async erase(what: EraseTarget, signal?: AbortSignal): Promise<RunResult> {
    const run = await this.run(eraseArgs(what, this.options.board), signal);
    // The mass-erase success line is stable across CLI versions; the sector-erase one is not, so a clean run
    // (no error line, exit 0, output recognised) is what counts there.
    if ('all' in what) this.#expect(run, 'mass-erase', 'mass erase');
    return run;
  }

  /** `-ob displ`: every option byte as printed, and the ones that matter here (RDP, bank swap, boot addresses). */
  async optionBytes(
    signal?: AbortSignal,
  ): Promise<{ identity: Identity; all: OptionByte[]; ofInterest: OptionBytesOfInterest }> {
    const run = await this.run(optionBytesDisplayArgs(), signal);
    this.#expect(run, 'option-bytes-read', 'option bytes display');
    return {
      identity: this.#identity(run),
      all: run.output.optionBytes,
      ofInterest: optionBytesOfInterest(run.output.optionBytes),
    };
  }

  async reset(kind: 'soft' | 'hard' = 'hard', signal?: AbortSignal): Promise<RunResult> {
    // As for sector erases, the wording of the reset line varies: a clean run is success.
    return this.run(resetArgs(kind), signal);
  }
}
