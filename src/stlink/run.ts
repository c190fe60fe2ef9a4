import { existsSync } from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { sysCode } from '../errors.ts';
import { abortReason, throwIfAborted } from '../util/abort.ts';
import { StlinkError } from './errors.ts';
import type { ProgrammerCli } from './locate.ts';
import { type ProgrammerOutput, parseProgrammerOutput, primaryError } from './parse.ts';

export interface RunOptions {
  signal?: AbortSignal | undefined;
  /** The whole run, from spawn to exit (boards.yaml deadlines.cliMs). */
  deadlineMs?: number;
  /** After SIGTERM (deadline or cancel), SIGKILL follows this much later. */
  graceMs?: number;
  env?: Record<string, string>;
}

export interface RunResult {
  cli: string;
  args: string[];
  exitCode: number;
  stdout: string;
  stderr: string;
  output: ProgrammerOutput;
  durationMs: number;
}

export const DEFAULT_CLI_DEADLINE_MS = 120_000;
export const DEFAULT_GRACE_MS = 2_000;

function tail(text: string, lines = 12): string {
  return text
    .split('\n')
    .filter((l) => l.trim())
    .slice(-lines)
    .join('\n');
}

/** Environment for the real CLI: on Linux it loads its shared libraries from ../lib next to bin/. */
function cliEnv(cli: ProgrammerCli, extra: Record<string, string> | undefined): Record<string, string> {
  const env: Record<string, string> = { ...extra };
  if (!cli.viaNode && process.platform === 'linux') {
    const lib = path.resolve(path.dirname(cli.path), '..', 'lib');
    if (existsSync(lib)) env.LD_LIBRARY_PATH = [lib, process.env.LD_LIBRARY_PATH].filter(Boolean).join(':');
  }
  return env;
}

/**
 * Runs the CLI once under a deadline and the caller's AbortSignal; the process tree is killed on either
 * (SIGTERM, then SIGKILL after the grace period), so no child outlives the call. Returns the parsed output
 * whatever the exit code; `checkRun` turns it into an error. Throws only when the run itself went wrong.
 */
export async function runProgrammer(
  cli: ProgrammerCli,
  args: string[],
  opts: RunOptions = {},
): Promise<RunResult> {
  throwIfAborted(opts.signal);
  // A missing script would otherwise be Node's "Cannot find module" output, not a missing-CLI error.
  if (cli.viaNode && !existsSync(cli.path)) {
    throw new StlinkError('E_STLINK_CLI_NOT_FOUND', `${cli.path}: no such file`, {
      details: { cli: cli.path, args },
    });
  }
  const deadlineMs = opts.deadlineMs ?? DEFAULT_CLI_DEADLINE_MS;
  const file = cli.viaNode ? process.execPath : cli.path;
  const argv = cli.viaNode ? [cli.path, ...args] : args;
  const started = performance.now();
  const result = await execa(file, argv, {
    reject: false,
    timeout: deadlineMs,
    ...(opts.signal ? { cancelSignal: opts.signal } : {}),
    forceKillAfterDelay: opts.graceMs ?? DEFAULT_GRACE_MS,
    killDescendants: true,
    stdin: 'ignore',
    all: true,
    env: cliEnv(cli, opts.env),
    maxBuffer: 64 * 1024 * 1024,
    stripFinalNewline: false,
  });
  const durationMs = Math.round(performance.now() - started);
  const all = typeof result.all === 'string' ? result.all : `${result.stdout}${result.stderr}`;
  const base = { cli: cli.path, args, durationMs };
  if (result.failed && result.exitCode === undefined) {
    if (result.isCanceled) throw abortReason(opts.signal);
    if (result.timedOut) {
      throw new StlinkError(
        'E_STLINK_CLI_DEADLINE',
        `${path.basename(cli.path)} ${args.join(' ')}: no result within ${deadlineMs} ms; killed`,
        {
          details: {
            ...base,
            deadlineMs,
            forcefullyKilled: result.isForcefullyTerminated,
            outputTail: tail(all),
          },
          hint: 'a probe or board that stopped answering; raise deadlines.cliMs in boards.yaml only if the operation is really that long',
        },
      );
    }
    const code = sysCode(result.cause);
    if (code === 'ENOENT') {
      throw new StlinkError('E_STLINK_CLI_NOT_FOUND', `${cli.path}: no such file`, {
        details: base,
        cause: result.cause,
      });
    }
    if (code === 'EACCES' || code === 'ENOEXEC' || code === 'EISDIR' || code === 'EPERM') {
      throw new StlinkError('E_STLINK_CLI_NOT_EXECUTABLE', `${cli.path} cannot be executed (${code})`, {
        details: { ...base, errno: code },
        cause: result.cause,
        hint: 'check its permissions (chmod +x) and that it is the STM32_Programmer_CLI for this OS',
      });
    }
    if (result.signal) {
      throw new StlinkError(
        'E_STLINK_CLI_KILLED',
        `${path.basename(cli.path)} was killed by ${result.signal}`,
        {
          details: { ...base, signal: result.signal, outputTail: tail(all) },
          hint: 'something outside stm32-hil killed it (OOM killer, a user); run again',
        },
      );
    }
    throw new StlinkError(
      'E_STLINK_CLI_FAILED',
      `${path.basename(cli.path)} could not run: ${result.shortMessage}`,
      {
        details: { ...base, errno: code },
        cause: result.cause,
      },
    );
  }
  return {
    ...base,
    exitCode: result.exitCode ?? -1,
    stdout: result.stdout as string,
    stderr: result.stderr as string,
    output: parseProgrammerOutput(all),
  };
}

const HINTS: Partial<Record<string, string>> = {
  E_STLINK_NO_TARGET:
    'is the board powered (see the Voltage line) and SWDIO/SWCLK/GND/NRST wired? Try a lower freq= or a power cycle',
  E_STLINK_NO_PROBE: 'plug in the ST-LINK; on Linux check the udev rules (lsusb shows 0483:374x)',
  E_STLINK_PROBE_NOT_FOUND: 'check stlink.serial in boards.yaml against `STM32_Programmer_CLI -l st-link`',
  E_STLINK_USB_COMM: 'replug the probe or use another USB port/hub; update the ST-LINK firmware',
  E_STLINK_DATA_MISMATCH:
    'run `stm32-hil crosscheck` to see whether flash or a readback path is wrong, then check VCAP and option bytes',
  E_STLINK_DOWNLOAD_FAILED:
    'if the board used the USB DFU bootloader since power-on, power-cycle it (not only reset) and retry',
  E_STLINK_RDP_ACTIVE: 'read-out protection is set: `stm32-hil board identify` shows the RDP level',
  E_STLINK_NOT_FLASH:
    'the image has data outside flash: list its segments and drop or NOLOAD the RAM sections',
};

/**
 * Turns a run into success or the error that explains its failure, reading the output and only then the exit
 * code: an `Error:` line fails the run even with exit code 0; a non-zero exit with no error line is
 * E_STLINK_CLI_FAILED; output that is not the tool's is E_STLINK_OUTPUT_UNRECOGNISED.
 */
export function checkRun(run: RunResult): RunResult {
  const out = run.output;
  const err = primaryError(out);
  const all = `${run.stdout}${run.stderr}`;
  const where = `${path.basename(run.cli)} ${run.args.join(' ')}`;
  if (err) {
    const extra = out.errors.filter((e) => e !== err && !e.recovered).map((e) => e.text);
    throw new StlinkError(
      err.code,
      `${err.text.replace(/^Error:\s*/i, '')} (line ${err.line} of the output)`,
      {
        details: {
          ...err.details,
          line: err.line,
          text: err.text,
          ...(extra.length ? { otherErrors: extra } : {}),
          exitCode: run.exitCode,
          ...(run.exitCode === 0 ? { exitedZeroWithError: true } : {}),
          probe: out.probe,
          target: out.target,
          command: where,
          outputTail: tail(all),
        },
        ...(HINTS[err.code] ? { hint: HINTS[err.code] } : {}),
      },
    );
  }
  if (!out.recognised) {
    throw new StlinkError(
      'E_STLINK_OUTPUT_UNRECOGNISED',
      `${where}: the output is not STM32_Programmer_CLI's (exit code ${run.exitCode})`,
      {
        details: { command: where, exitCode: run.exitCode, outputTail: tail(all) },
        hint: 'check which program tools.programmerCli / STM32_PROGRAMMER_CLI points at',
      },
    );
  }
  if (run.exitCode !== 0) {
    throw new StlinkError(
      'E_STLINK_CLI_FAILED',
      `${where}: exit code ${run.exitCode} without an error line`,
      {
        details: { command: where, exitCode: run.exitCode, outputTail: tail(all) },
      },
    );
  }
  const failed = out.operations.find((o) => o.outcome === 'failed' && o.kind !== 'connect');
  if (failed) {
    throw new StlinkError('E_STLINK_ERROR', `${where}: ${failed.kind} failed (line ${failed.line})`, {
      details: { command: where, operation: failed, outputTail: tail(all) },
    });
  }
  return run;
}
