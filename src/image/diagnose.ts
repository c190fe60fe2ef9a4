// What is wrong with an image for a given part, in words a firmware engineer can act on. `image inspect`
// prints it and the DfuSe flash planner refuses an image with the same diagnosis.
import path from 'node:path';
import type { Part } from '../parts/catalogue.ts';
import { type ImagePlan, type Placement, placeImage } from '../parts/classify.ts';
import { layoutSectors, parseLayout } from '../parts/layout.ts';
import { hex32 } from '../util/hex.ts';
import { type FirmwareImage, ImageError, type Segment, type SegmentSource } from './model.ts';

export interface ImageProblem {
  /** Stable code: E_IMAGE_RAM_DATA, E_IMAGE_OPTION_BYTES, E_IMAGE_SYSTEM_MEMORY, E_IMAGE_OTP, E_IMAGE_PERIPHERAL, E_IMAGE_UNMAPPED, E_IMAGE_EMPTY; W_* for warnings. */
  code: string;
  /** True when a DFU download of this image would fail because of it. */
  failsFlash: boolean;
  message: string;
  /** What to do about it, most direct first. */
  remedies: string[];
  /** Offending address range [start, end). */
  start?: number;
  end?: number;
  /** Where the range falls: 'ram', 'option-bytes', 'system', 'otp', 'peripheral', 'unknown'. */
  where?: Placement['kind'];
  /** Named region (SRAM4, Option bytes, ...). */
  region?: string;
  segment?: string;
  /** Where the bytes came from (file, sections, line, target). */
  source?: SegmentSource;
  /** ELF sections whose bytes lie in the range. */
  sections?: string[];
}

export interface ImageDiagnosis {
  part: Part;
  plan: ImagePlan;
  problems: ImageProblem[];
  /** True when any problem would make a flash fail. */
  failsFlash: boolean;
}

// "Not flash Memory : No erase done" / "failed to download Sector[0]" is what STM32CubeProgrammer prints when
// a DFU download touches SRAM4 (ST community field report on an STM32H747, shared mailbox in RAM_D3).
const WHY_RAM =
  'the ROM bootloader programs only flash over DFU and rejects the download ("Not flash Memory : No erase done", "failed to download Sector[0]")';

/** Sections of `source` whose bytes lie in [start, end), or undefined when the file has no section names. */
function sectionsIn(source: SegmentSource, start: number, end: number): string[] | undefined {
  if (source.sectionSpans?.length) {
    const hit = source.sectionSpans
      .filter((s) => s.address < end && s.address + s.size > start)
      .map((s) => s.name);
    if (hit.length) return hit;
  }
  return source.sections?.length ? source.sections : undefined;
}

function whence(source: SegmentSource, sections: string[] | undefined): string {
  if (sections) return `section${sections.length > 1 ? 's' : ''} ${sections.join(', ')}`;
  if (source.line !== undefined) return `data from ${path.basename(source.file)} line ${source.line}`;
  if (source.target)
    return `DfuSe target ${source.target.alt}${source.target.name ? ` "${source.target.name}"` : ''}`;
  return `data from ${path.basename(source.file)}${source.offset !== undefined ? ` offset ${source.offset}` : ''}`;
}

/** The `image convert ... --flash-only` command line that fixes `image` for `part`. */
export function flashOnlyCommand(image: FirmwareImage, part: Part): string {
  const ext = path.extname(image.file);
  const keep = ['.hex', '.ihex', '.srec', '.s19', '.s28', '.s37', '.dfu', '.bin'].includes(ext.toLowerCase())
    ? ext
    : '.hex';
  const out = `${path.basename(image.file, ext)}-flash${keep}`;
  const base =
    image.meta.baseAssumed === undefined && (image.format === 'bin' || image.format === 'dfu-suffix')
      ? ` --base ${hex32(image.segments[0]?.address ?? 0)}`
      : '';
  return `stm32-hil image convert ${image.file}${base} --part ${part.id} --flash-only -o ${out}`;
}

function problemFor(
  image: FirmwareImage,
  part: Part,
  segment: Segment,
  p: Exclude<Placement, { kind: 'flash' }>,
): ImageProblem {
  const sections = sectionsIn(segment.source, p.start, p.end);
  const what = whence(segment.source, sections);
  const size = p.end - p.start;
  const range = `${hex32(p.start)}-${hex32(p.end - 1)}`;
  const convert = `keep only the flash bytes: ${flashOnlyCommand(image, part)}`;
  const base = {
    failsFlash: true,
    start: p.start,
    end: p.end,
    where: p.kind,
    segment: segment.name,
    source: segment.source,
    ...(sections ? { sections } : {}),
  };
  const named = sections ? sections.join(', ') : undefined;
  switch (p.kind) {
    case 'ram': {
      const noload = named
        ? `mark ${named} NOLOAD in the linker script (\`${sections![0]} (NOLOAD) : { ... }\`): it keeps its RAM address but its bytes leave the image; initialise it at run time`
        : `find the output section the linker places at ${hex32(p.start)} (arm-none-eabi-objdump -h firmware.elf) and mark it NOLOAD in the linker script, then rebuild the image`;
      return {
        ...base,
        code: 'E_IMAGE_RAM_DATA',
        region: p.region,
        message: `${what}: ${size} bytes at ${range} are in ${p.region} (RAM) on the ${part.name}, not in flash; ${WHY_RAM}`,
        remedies: [
          noload,
          convert,
          'if the code needs those initial values, give the section a load address in flash (`>RAM AT> FLASH`) and copy it at startup',
        ],
      };
    }
    case 'option-bytes':
      return {
        ...base,
        code: 'E_IMAGE_OPTION_BYTES',
        region: p.region,
        message: `${what}: ${size} bytes at ${range} are option bytes on the ${part.name}; a firmware download to flash cannot write them (they take their own download, after which the chip resets)`,
        remedies: [convert, 'program option bytes on purpose and separately (STM32_Programmer_CLI -ob ...)'],
      };
    case 'system':
      return {
        ...base,
        code: 'E_IMAGE_SYSTEM_MEMORY',
        region: p.region,
        message: `${what}: ${size} bytes at ${range} are in ${p.region} (the ROM bootloader) on the ${part.name}, which cannot be written`,
        remedies: ['fix the linker script: nothing of the firmware belongs in system memory', convert],
      };
    case 'otp':
      return {
        ...base,
        code: 'E_IMAGE_OTP',
        region: p.region,
        message: `${what}: ${size} bytes at ${range} are in the one-time-programmable area (${p.region}) on the ${part.name}; a firmware download must not burn it`,
        remedies: [convert, 'program OTP on purpose and separately (STM32_Programmer_CLI)'],
      };
    case 'peripheral':
      return {
        ...base,
        code: 'E_IMAGE_PERIPHERAL',
        region: p.region,
        message: `${what}: ${size} bytes at ${range} are peripheral registers (${p.region}) on the ${part.name}`,
        remedies: ['fix the linker script or the section attributes', convert],
      };
    default:
      return {
        ...base,
        code: 'E_IMAGE_UNMAPPED',
        message: `${what}: ${size} bytes at ${range} are outside the memory map of the ${part.name}`,
        remedies: [
          `check --part (${part.id}) and the linker script's MEMORY regions`,
          ...(image.format === 'bin' || image.format === 'dfu-suffix'
            ? ['a raw binary needs its load address: give --base ADDR']
            : []),
          convert,
        ],
      };
  }
}

/** Every reason the image cannot be flashed to `part` as it is, plus warnings. */
export function diagnoseImage(image: FirmwareImage, part: Part): ImageDiagnosis {
  const plan = placeImage(part, image);
  const problems: ImageProblem[] = [];
  if (image.segments.length === 0) {
    problems.push({
      code: 'E_IMAGE_EMPTY',
      failsFlash: true,
      message: `${image.file}: the image holds no data`,
      remedies: ['check the build: the linker produced no loadable sections'],
    });
  }
  image.segments.forEach((segment, i) => {
    for (const p of plan.segments[i]!.placements)
      if (p.kind !== 'flash') problems.push(problemFor(image, part, segment, p));
  });
  if (image.format === 'srec' && image.meta.terminated === false && image.meta.counted === false) {
    problems.push({
      code: 'W_SREC_UNTERMINATED',
      failsFlash: false,
      message: `${image.file}: no S5/S6 count and no S7-S9 termination record: a file cut short at a line end would go unnoticed`,
      remedies: [
        'produce S-records with a count record (srec_cat writes S5 by default; objcopy writes S7-S9)',
      ],
    });
  }
  return { part, plan, problems, failsFlash: problems.some((p) => p.failsFlash) };
}

/** The image without anything outside `part`'s flash banks, and what was dropped (as problems). */
export function flashOnly(
  image: FirmwareImage,
  part: Part,
): { image: FirmwareImage; dropped: ImageProblem[] } {
  const d = diagnoseImage(image, part);
  const flash = d.plan.segments.flatMap((s) => s.placements.filter((p) => p.kind === 'flash'));
  const kept = image.filter((address, length) =>
    flash.filter((p) => p.start < address + length && p.end > address),
  );
  return { image: kept, dropped: d.problems.filter((p) => p.start !== undefined) };
}

/** The error a flash planner raises for an image it must refuse (undefined when the image is fine). */
export function unflashableError(diagnosis: ImageDiagnosis): ImageError | undefined {
  const blocking = diagnosis.problems.filter((p) => p.failsFlash);
  const first = blocking[0];
  if (!first) return undefined;
  const more =
    blocking.length > 1 ? ` (and ${blocking.length - 1} more problem${blocking.length > 2 ? 's' : ''})` : '';
  return new ImageError(
    first.code,
    `${first.message}${more}`,
    { part: diagnosis.part.id, problems: blocking },
    first.remedies.join('; or '),
  );
}

/** A DfuSe writer's target choice for `part`: the alternate setting whose layout covers the segment. */
export function dfuTargetsFor(part: Part): (segment: Segment) => { alt: number; name: string } {
  const alts = part.bootloader.alternates.map((a) => {
    const layout = parseLayout(a.name);
    return { alt: a.alt, name: layout.name, sectors: layoutSectors(layout) };
  });
  const fallback = alts[0] ?? { alt: 0, name: 'Internal Flash' };
  return (segment) => {
    if (segment.source.target) return segment.source.target;
    const hit = alts.find((a) =>
      a.sectors.some((s) => segment.address >= s.start && segment.address < s.start + s.size),
    );
    return hit ? { alt: hit.alt, name: hit.name } : { alt: fallback.alt, name: fallback.name };
  };
}

/** `bank 1 sectors 0-2, bank 2 sector 0` */
export function describeSectors(plan: {
  sectors: ReadonlyArray<{ bank: number; index: number }>;
  banks: readonly number[];
}): string {
  if (plan.sectors.length === 0) return 'no flash sector';
  return plan.banks
    .map((bank) => {
      const idx = plan.sectors.filter((s) => s.bank === bank).map((s) => s.index);
      const ranges: string[] = [];
      for (let i = 0; i < idx.length; ) {
        let j = i;
        while (j + 1 < idx.length && idx[j + 1] === idx[j]! + 1) j++;
        ranges.push(i === j ? `${idx[i]}` : `${idx[i]}-${idx[j]}`);
        i = j + 1;
      }
      return `bank ${bank} sector${idx.length > 1 ? 's' : ''} ${ranges.join(',')}`;
    })
    .join(', ');
}
