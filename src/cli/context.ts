import type { Command } from 'commander';
import { configPath, type FarmConfig, loadConfig } from '../farm/config.ts';

/** What every command handler gets: global options, output helpers and the run's cancellation. */
export interface CliContext {
  readonly json: boolean;
  readonly debug: boolean;
  /** Aborts on SIGINT/SIGTERM; pass it down to every operation. */
  readonly signal: AbortSignal;
  readonly stdout: NodeJS.WritableStream & { isTTY?: boolean };
  readonly stderr: NodeJS.WritableStream & { isTTY?: boolean };
  /** Path of boards.yaml (--config, STM32_HIL_CONFIG or ./boards.yaml). */
  configFile(): string;
  /** Loads and validates boards.yaml once. */
  config(): FarmConfig;
  /** Whether a boards.yaml was named (--config or STM32_HIL_CONFIG) rather than the default ./boards.yaml. */
  configNamed(): boolean;
  /** Prints `human` (a string or a function producing one) or, with --json, `data` as JSON. */
  result(data: unknown, human: string | (() => string)): void;
  /** A line for a person on stderr (warnings, progress in plain mode); suppressed by nothing. */
  info(line: string): void;
  warn(line: string): void;
}

export type RegisterCommands = (program: Command, ctx: CliContext) => void;

export function createContext(
  opts: () => { json?: boolean; debug?: boolean; config?: string },
  signal: AbortSignal,
  stdout: CliContext['stdout'] = process.stdout,
  stderr: CliContext['stderr'] = process.stderr,
): CliContext {
  let cached: FarmConfig | undefined;
  return {
    get json() {
      return Boolean(opts().json);
    },
    get debug() {
      return Boolean(opts().debug);
    },
    signal,
    stdout,
    stderr,
    configFile: () => configPath(opts().config),
    config() {
      cached ??= loadConfig(configPath(opts().config));
      return cached;
    },
    configNamed: () => opts().config !== undefined || process.env.STM32_HIL_CONFIG !== undefined,
    result(data, human) {
      if (opts().json) stdout.write(`${JSON.stringify(data, jsonReplacer, 2)}\n`);
      else stdout.write(`${typeof human === 'function' ? human() : human}\n`);
    },
    info: (line) => stderr.write(`${line}\n`),
    warn: (line) => stderr.write(`warning: ${line}\n`),
  };
}

/** Uint8Array as hex, bigint as string: JSON that scripts can read. */
export function jsonReplacer(_key: string, value: unknown): unknown {
  if (value instanceof Uint8Array) return Buffer.from(value).toString('hex');
  if (typeof value === 'bigint') return value.toString();
  return value;
}
