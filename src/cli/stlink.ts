import { readFileSync } from 'node:fs';
import { FileError, HilError, sysCode, UsageError } from '../errors.ts';
import { dfuReaderForBoard } from '../farm/board.ts';
import { findBoard } from '../farm/config.ts';
import { readImage } from '../image/index.ts';
import { getPart } from '../parts/catalogue.ts';
import { crossCheckImage } from '../stlink/crosscheck.ts';
import { describeIdentity, identifyBoard } from '../stlink/identify.ts';
import { StlinkProgrammer } from '../stlink/programmer.ts';
import { describeTriage, triageLog } from '../triage/triage.ts';
import { hex32, parseNumber } from '../util/hex.ts';
import { withLease } from './board.ts';
import type { RegisterCommands } from './context.ts';

function parseBase(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = parseNumber(text);
  if (n === undefined || n > 0xffff_ffff)
    throw new UsageError(`--base ${text}: not a 32-bit address (0x08000000 or decimal)`);
  return n;
}

/**
 * `crosscheck`, `board identify` and `triage`: the SWD side (STM32_Programmer_CLI, or its stand-in for virtual
 * boards) and the reading of pasted logs.
 */
export const registerStlinkCommands: RegisterCommands = (program, ctx) => {
  program
    .command('crosscheck <file>')
    .description(
      "read the image's flash ranges over USB DFU and over SWD and compare image, DFU and SWD three ways",
    )
    .requiredOption('--board <id>', 'board from boards.yaml (needs usb: or virtual:, and stlink: { serial })')
    .option('--base <addr>', 'load address of a raw binary (default 0x08000000)')
    .option('--no-dfu', 'skip the DFU readback (image against SWD only)')
    .option('--no-swd', 'skip the SWD readback (image against DFU only)')
    .addHelpText(
      'after',
      '\nExit code 0 when all agree, 1 when they disagree (the verdict says which side is wrong), 3 when a readback could not run.',
    )
    .action(async (file: string, o: { board: string; base?: string; dfu: boolean; swd: boolean }) => {
      const config = ctx.config();
      const board = findBoard(config, o.board);
      const part = getPart(board.part);
      const base = parseBase(o.base);
      const image = readImage(file, base === undefined ? {} : { base });
      if (!o.dfu && !o.swd) throw new UsageError('--no-dfu and --no-swd leave nothing to compare');
      const prog = o.swd ? StlinkProgrammer.forBoard(config, board) : undefined;
      const report = await withLease(ctx, board.id, 'crosscheck', () =>
        crossCheckImage(
          image,
          part,
          {
            dfu: o.dfu ? dfuReaderForBoard(config, board, { warn: ctx.warn }) : undefined,
            swd: prog ? (ranges, signal) => prog.readRanges(ranges, signal) : undefined,
          },
          ctx.signal,
        ),
      );
      const human = () => {
        const lines = [`${file} on board ${board.id}: ${report.message}`];
        lines.push(
          `  compared ${report.bytes} bytes in ${report.ranges.length} range${report.ranges.length === 1 ? '' : 's'} (${report.sources.join(', ')})`,
        );
        for (const p of report.pairs) {
          lines.push(
            `  ${`${p.a} vs ${p.b}`.padEnd(13)} ${p.differingBytes === 0 ? 'agree' : `${p.differingBytes} bytes differ, first at ${hex32(p.first!.address)} (${p.a} 0x${p.first!.a.toString(16).padStart(2, '0')}, ${p.b} 0x${p.first!.b.toString(16).padStart(2, '0')})`}`,
          );
        }
        for (const s of report.skipped)
          lines.push(`  not compared: ${s.name} at ${hex32(s.address)} (${s.length} bytes outside flash)`);
        for (const [s, e] of Object.entries(report.sourceErrors))
          lines.push(`  ${s.toUpperCase()} readback failed: ${e.code} ${e.message}`);
        return lines.join('\n');
      };
      if (report.verdict === 'agree') {
        ctx.result(report, human);
        return;
      }
      if (!ctx.json) ctx.result(report, human);
      throw new HilError('E_CROSSCHECK_DISAGREE', `${report.verdict}: ${report.message}`, {
        kind: 'check',
        details: { ...report },
        hint:
          report.verdict === 'flash-wrong'
            ? 'check VCAP/decoupling and the banking option bytes: `stm32-hil board identify --board ' +
              board.id +
              '`'
            : undefined,
      });
    });

  const boardCmd = program.command('board').description('what a board is, as seen over SWD');
  boardCmd
    .command('identify')
    .description(
      'device ID, revision, bootloader version, flash size and option bytes over SWD, checked against boards.yaml',
    )
    .requiredOption('--board <id>', 'board from boards.yaml (needs stlink: { serial })')
    .option('--strict', 'exit 1 when the board is not what boards.yaml says (default: a warning)')
    .action(async (o: { board: string; strict?: boolean }) => {
      const config = ctx.config();
      const board = findBoard(config, o.board);
      const r = await withLease(ctx, board.id, 'board identify', () =>
        identifyBoard(board, StlinkProgrammer.forBoard(config, board), ctx.signal),
      );
      ctx.result(r, () => describeIdentity(r));
      for (const m of r.mismatches) ctx.warn(`board ${board.id}: ${m.message}`);
      for (const n of r.notes) ctx.warn(`board ${board.id}: ${n}`);
      if (o.strict && r.mismatches.length) {
        throw new HilError(
          'E_BOARD_MISMATCH',
          `board ${board.id} is not what ${config.file} says: ${r.mismatches.map((m) => m.field).join(', ')}`,
          {
            kind: 'check',
            details: { mismatches: r.mismatches },
          },
        );
      }
    });

  program
    .command('triage <logfile>')
    .description(
      'read a STM32CubeProgrammer (GUI or CLI) or dfu-util log and say what went wrong and what to do',
    )
    .addHelpText(
      'after',
      '\nExit code 0 whenever the log could be read, with or without findings (see "known" in --json); 2 when the file does not exist, 3 when it cannot be read.',
    )
    .action((logfile: string) => {
      let text: string;
      try {
        text = readFileSync(logfile, 'utf8');
      } catch (e) {
        throw new FileError(sysCode(e) === 'ENOENT' ? 'E_FILE_NOT_FOUND' : 'E_FILE_READ', logfile, e);
      }
      const r = triageLog(text, logfile);
      ctx.result(r, () => describeTriage(r));
    });
};
