import { createHash } from 'node:crypto';
import { renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { FileError, UsageError } from '../errors.ts';
import {
  baseNote,
  describeSectors,
  dfuTargetsFor,
  diagnoseImage,
  type FirmwareImage,
  FORMAT_NAMES,
  flashOnly,
  type ImageDiagnosis,
  ImageError,
  type ImageProblem,
  outputFormat,
  readImage,
  type SegmentSource,
  segmentEnd,
  writeImage,
} from '../image/index.ts';
import { getPart, type Part } from '../parts/catalogue.ts';
import { describePlacement } from '../parts/classify.ts';
import { hex32, parseNumber } from '../util/hex.ts';
import type { CliContext, RegisterCommands } from './context.ts';

function parseAddress(text: string | undefined, option: string): number | undefined {
  if (text === undefined) return undefined;
  const n = parseNumber(text);
  if (n === undefined || n > 0xffff_ffff)
    throw new UsageError(`${option} ${text}: not a 32-bit address (write 0x08000000 or a decimal number)`);
  return n;
}

function parseByte(text: string | undefined, option: string): number | undefined {
  if (text === undefined) return undefined;
  const n = parseNumber(text);
  if (n === undefined || n > 0xff) throw new UsageError(`${option} ${text}: not a byte value (0x00 to 0xFF)`);
  return n;
}

interface SegmentReport {
  name: string;
  address: number;
  end: number;
  size: number;
  range: string;
  sha256: string;
  sections?: string[];
  source: SegmentSource;
}

export interface InspectReport {
  file: string;
  format: string;
  formatName: string;
  entry: number | null;
  size: number;
  segments: SegmentReport[];
  meta: Record<string, unknown>;
  part: null | {
    id: string;
    name: string;
    banks: number[];
    sectors: Array<{ bank: number; index: number; globalIndex: number; start: number; size: number }>;
    placements: string[];
  };
  problems: ImageProblem[];
  /** null when no part was given to check against. */
  flashable: boolean | null;
}

export function inspectReport(image: FirmwareImage, diagnosis: ImageDiagnosis | undefined): InspectReport {
  return {
    file: image.file,
    format: image.format,
    formatName: FORMAT_NAMES[image.format],
    entry: image.entry ?? null,
    size: image.size,
    segments: image.segments.map((s) => ({
      name: s.name,
      address: s.address,
      end: segmentEnd(s),
      size: s.data.length,
      range: `${hex32(s.address)}-${hex32(segmentEnd(s) - 1)}`,
      sha256: createHash('sha256').update(s.data).digest('hex'),
      ...(s.source.sections ? { sections: s.source.sections } : {}),
      source: s.source,
    })),
    meta: image.meta,
    part: diagnosis
      ? {
          id: diagnosis.part.id,
          name: diagnosis.part.name,
          banks: diagnosis.plan.banks,
          sectors: diagnosis.plan.sectors.map(({ bank, index, globalIndex, start, size }) => ({
            bank,
            index,
            globalIndex,
            start,
            size,
          })),
          placements: diagnosis.plan.segments.flatMap((s) => s.placements.map(describePlacement)),
        }
      : null,
    problems: diagnosis?.problems ?? [],
    flashable: diagnosis ? !diagnosis.failsFlash : null,
  };
}

function relocated(meta: Record<string, unknown>): Array<{ paddr: number; vaddr: number }> {
  return Array.isArray(meta.relocated) ? (meta.relocated as Array<{ paddr: number; vaddr: number }>) : [];
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

function formatProblems(problems: readonly ImageProblem[]): string[] {
  const lines: string[] = [];
  for (const p of problems) {
    lines.push(`${p.failsFlash ? 'problem' : 'warning'} ${p.code}: ${p.message}`);
    for (const [i, r] of p.remedies.entries()) lines.push(`  ${i === 0 ? 'fix:' : 'or: '} ${r}`);
  }
  return lines;
}

export function formatInspect(r: InspectReport): string {
  const lines = [
    `${r.file}: ${r.formatName}, ${plural(r.segments.length, 'segment')}, ${r.size} bytes${r.entry !== null ? `, entry ${hex32(r.entry)}` : ''}`,
  ];
  const width = Math.max(...r.segments.map((s) => String(s.size).length), 1);
  for (const s of r.segments) {
    const from = s.sections
      ? s.sections.join(', ')
      : s.source.line !== undefined
        ? `line ${s.source.line}`
        : s.name;
    const moved = relocated(r.meta).find((m) => m.paddr === s.address);
    lines.push(
      `  ${s.range}  ${String(s.size).padStart(width)} B  ${from}${moved ? ` (run address ${hex32(moved.vaddr)})` : ''}`,
    );
    lines.push(`      sha256 ${s.sha256}`);
  }
  if (r.part) {
    lines.push(`${r.part.name}: ${r.part.sectors.length ? describeSectors(r.part) : 'no flash sector'}`);
    for (const p of r.part.placements) lines.push(`  ${p}`);
    lines.push(...formatProblems(r.problems));
    const blocking = r.problems.filter((p) => p.failsFlash).length;
    lines.push(
      blocking
        ? `result: ${plural(blocking, 'problem')} would make a DFU download fail`
        : 'result: ready to flash',
    );
  } else {
    lines.push('placement not checked: give --part (for example --part stm32h743)');
  }
  return lines.join('\n');
}

function warnBase(ctx: CliContext, image: FirmwareImage, base: number | undefined): void {
  const note = baseNote(image);
  if (note) ctx.warn(note);
  if (base !== undefined && image.format !== 'bin' && image.format !== 'dfu-suffix') {
    ctx.warn(
      `--base applies to raw binaries only; ${FORMAT_NAMES[image.format]} files carry their own addresses`,
    );
  }
}

function describeDropped(p: ImageProblem): string {
  const what = p.sections
    ? `section ${p.sections.join(', ')}`
    : p.source?.line !== undefined
      ? `line ${p.source.line}`
      : (p.segment ?? '');
  return `${(p.end ?? 0) - (p.start ?? 0)} bytes at ${hex32(p.start ?? 0)}-${hex32((p.end ?? 1) - 1)} (${what}, ${p.region ?? 'not in the memory map'})`;
}

function writeOutput(file: string, data: Uint8Array): void {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  try {
    writeFileSync(tmp, data);
    renameSync(tmp, file);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw new FileError('E_FILE_WRITE', file, e);
  }
}

export const registerImageCommands: RegisterCommands = (program, ctx) => {
  const image = program
    .command('image')
    .description('inspect and convert firmware images (ELF, Intel HEX, S-record, raw binary, DfuSe)');

  image
    .command('inspect')
    .summary('format, segments, flash sectors touched, and what would make a DFU download fail')
    .description(
      'show format, segments (address, size, SHA-256, sections) and, with --part, the flash banks and sectors the image touches and anything that would make a DFU download fail.\nExit 0: fine; 1: the image would fail a flash; 2: bad input.',
    )
    .argument('<file>', 'image file; the format is detected from its content')
    .option(
      '--part <part>',
      'check placement against this part (stm32h743, stm32h747, stm32f407, stm32u073, ...)',
    )
    .option('--base <addr>', 'load address of a raw binary (default 0x08000000)')
    .action((file: string, opts: { part?: string; base?: string }) => {
      const base = parseAddress(opts.base, '--base');
      const part = opts.part === undefined ? undefined : getPart(opts.part);
      const img = readImage(file, base === undefined ? {} : { base });
      warnBase(ctx, img, base);
      const diagnosis = part ? diagnoseImage(img, part) : undefined;
      const report = inspectReport(img, diagnosis);
      ctx.result(report, () => formatInspect(report));
      if (diagnosis?.failsFlash) process.exitCode = 1;
    });

  image
    .command('convert')
    .summary('convert to hex, srec, bin or dfu; --flash-only keeps only flash bytes')
    .description(
      'convert an image to Intel HEX, S-record, raw binary or DfuSe; with --part and --flash-only, keep only the bytes in flash',
    )
    .argument('<file>', 'image file; the format is detected from its content')
    .requiredOption('-o, --output <file>', 'output file')
    .option('--to <format>', 'hex, srec, bin or dfu (default: from the output extension)')
    .option(
      '--part <part>',
      'the part the image is for (needed by --flash-only; sets the DfuSe targets and USB IDs)',
    )
    .option('--flash-only', "drop everything outside the part's flash (RAM sections, option bytes, ...)")
    .option('--base <addr>', 'load address of a raw binary input (default 0x08000000)')
    .option('--fill <byte>', 'gap fill of a raw binary output (default 0xFF, erased flash)')
    .action(
      (
        file: string,
        opts: {
          output: string;
          to?: string;
          part?: string;
          flashOnly?: boolean;
          base?: string;
          fill?: string;
        },
      ) => {
        const format = outputFormat(opts.output, opts.to);
        const base = parseAddress(opts.base, '--base');
        const fill = parseByte(opts.fill, '--fill');
        if (opts.flashOnly && opts.part === undefined)
          throw new UsageError("--flash-only needs --part P: which part's flash to keep");
        const part: Part | undefined = opts.part === undefined ? undefined : getPart(opts.part);
        let img = readImage(file, base === undefined ? {} : { base });
        warnBase(ctx, img, base);
        let dropped: ImageProblem[] = [];
        if (opts.flashOnly && part) ({ image: img, dropped } = flashOnly(img, part));
        if (img.segments.length === 0) {
          throw new ImageError(
            'E_IMAGE_EMPTY',
            `${file}: nothing left to write${dropped.length ? ` after dropping ${dropped.length} range(s) outside flash` : ''}`,
            {
              file,
            },
          );
        }
        const { data, base: first } = writeImage(img, format, {
          bin: { fill: fill ?? part?.flash.erasedValue ?? 0xff },
          dfu: part
            ? { vid: part.bootloader.vid, pid: part.bootloader.pid, targetFor: dfuTargetsFor(part) }
            : {},
        });
        writeOutput(opts.output, data);
        const result = {
          input: file,
          output: opts.output,
          format,
          bytes: data.length,
          size: img.size,
          segments: img.segments.map((s) => ({
            address: s.address,
            size: s.data.length,
            range: `${hex32(s.address)}-${hex32(segmentEnd(s) - 1)}`,
          })),
          ...(first !== undefined ? { base: first } : {}),
          dropped: dropped.map((p) => ({
            code: p.code,
            start: p.start,
            end: p.end,
            region: p.region,
            sections: p.sections,
            source: p.source,
          })),
        };
        ctx.result(result, () =>
          [
            `wrote ${opts.output}: ${format}, ${plural(img.segments.length, 'segment')}, ${img.size} bytes of data${first !== undefined ? `, first byte at ${hex32(first)}` : ''}`,
            ...dropped.map((p) => `  dropped ${describeDropped(p)}`),
          ].join('\n'),
        );
      },
    );
};
