import { Command, CommanderError, Option } from 'commander';
import { HilError, isHilError } from '../errors.ts';
import { type CliContext, createContext, type RegisterCommands } from './context.ts';
import { registerDfuCommands } from './dfu.ts';
import { registerImageCommands } from './image.ts';
import { registerPowerCommands } from './power.ts';
import { registerResultsCommands } from './results.ts';
import { registerRunCommands } from './run.ts';
import { registerSimCommands } from './sim.ts';
import { registerStlinkCommands } from './stlink.ts';

// One line per command group; each group lives in its own file.
const groups: RegisterCommands[] = [
  registerImageCommands,
  registerResultsCommands,
  registerSimCommands,
  registerDfuCommands,
  registerPowerCommands,
  registerStlinkCommands,
  registerRunCommands,
];

export function buildProgram(ctx: CliContext): Command {
  const program = new Command('stm32-hil')
    .description(
      'Hardware-in-the-loop harness for STM32 board farms: DfuSe flashing, SWD cross-checks, relays, nightly suites.',
    )
    .version('0.1.0')
    .addOption(
      new Option('--config <file>', 'boards.yaml to use (default ./boards.yaml or $STM32_HIL_CONFIG)'),
    )
    .option('--json', 'machine-readable output on stdout')
    .option('--debug', 'print stack traces and internal detail')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  program.configureOutput({ writeOut: (s) => ctx.stdout.write(s), writeErr: (s) => ctx.stderr.write(s) });
  for (const register of groups) register(program, ctx);
  for (const cmd of program.commands) cmd.exitOverride();
  return program;
}

/** Runs the CLI; returns the process exit code (0 ok, 1 failed check, 2 usage/input, 3 device/tool/infra). */
export async function main(argv: string[], io?: Pick<CliContext, 'stdout' | 'stderr'>): Promise<number> {
  const controller = new AbortController();
  const onSignal = (sig: NodeJS.Signals) =>
    controller.abort(new HilError('E_CANCELLED', `interrupted by ${sig}`, { kind: 'infra' }));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  let program: Command | undefined;
  const ctx = createContext(() => program?.opts() ?? {}, controller.signal, io?.stdout, io?.stderr);
  program = buildProgram(ctx);
  const debug = argv.includes('--debug');
  // Commands report a failed check through process.exitCode; start each invocation clean.
  process.exitCode = undefined;
  try {
    await program.parseAsync(argv, { from: 'user' });
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (e) {
    return reportError(e, ctx, debug);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

export function reportError(
  e: unknown,
  ctx: Pick<CliContext, 'stderr' | 'stdout' | 'json'>,
  debug: boolean,
): number {
  if (e instanceof CommanderError) {
    // Help and version are successes; commander already printed its own usage message.
    if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help')
      return 0;
    return 2;
  }
  if (isHilError(e)) {
    if (ctx.json) ctx.stdout.write(`${JSON.stringify(e.toJSON(), null, 2)}\n`);
    ctx.stderr.write(`stm32-hil: error ${e.code}: ${e.message}\n`);
    if (e.hint) ctx.stderr.write(`  hint: ${e.hint}\n`);
    if (debug)
      ctx.stderr.write(
        `${e.stack}\n${e.cause ? `cause: ${String((e.cause as Error).stack ?? e.cause)}\n` : ''}`,
      );
    return e.exitCode;
  }
  const err = e instanceof Error ? e : new Error(String(e));
  ctx.stderr.write(`stm32-hil: internal error E_INTERNAL: ${err.message}\n`);
  ctx.stderr.write(
    debug ? `${err.stack}\n` : '  (run again with --debug for the stack trace, and please report it)\n',
  );
  return 3;
}
