import { diagnoseImage } from '../image/diagnose.ts';
import type { FirmwareImage } from '../image/model.ts';
import type { Part } from '../parts/catalogue.ts';
import { classifyRange, describePlacement } from '../parts/classify.ts';
import type { LayoutSector } from '../parts/layout.ts';
import { hex32 } from '../util/hex.ts';
import type { DfuAlternate } from './device.ts';
import { DfuError } from './errors.ts';
import { Permissions } from './permissions.ts';

/** One DNLOAD run: contiguous bytes written from one Set Address Pointer. */
export interface WriteRun {
  address: number;
  data: Uint8Array;
}

export interface FlashPlan {
  alt: number;
  /** The layout string of the alternate setting written. */
  layout: string;
  erase: { mode: 'sectors'; sectors: LayoutSector[] } | { mode: 'mass' };
  writes: WriteRun[];
  /** Bytes the image holds. */
  imageBytes: number;
  /** Bytes sent (image bytes plus 0xFF padding to whole flash words). */
  writeBytes: number;
  /** Bytes of flash the erase step clears (sector mode), or the whole layout (mass). */
  eraseBytes: number;
}

export interface PlanOptions {
  massErase?: boolean;
  permissions?: Permissions;
  /** Catalogue part: flash word size for padding and names for what lies outside flash. */
  part?: Part;
}

interface Stretch {
  start: number;
  end: number;
  segment: string;
}

/** Parts of [start, end) not covered by any sector in `sectors` (sorted). */
function uncovered(start: number, end: number, sectors: readonly LayoutSector[]): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  let cursor = start;
  for (const s of sectors) {
    const sEnd = s.start + s.size;
    if (sEnd <= cursor) continue;
    if (s.start >= end) break;
    if (s.start > cursor) out.push([cursor, Math.min(s.start, end)]);
    cursor = Math.max(cursor, sEnd);
    if (cursor >= end) break;
  }
  if (cursor < end) out.push([cursor, end]);
  return out;
}

function segmentLabel(seg: FirmwareImage['segments'][number]): string {
  const sections = seg.source.sections?.length ? ` (section ${seg.source.sections.join(',')})` : '';
  return `"${seg.name}"${sections}`;
}

/**
 * What a flash will do, decided before anything is sent: which sectors to erase (only those the image touches,
 * or one mass erase) and the DNLOAD runs. Images with bytes outside the writable memory the device reports in
 * its own layout string are refused here (E_DFU_PLAN_OUTSIDE), so nothing is erased for an image that cannot
 * be written (the SRAM4 case: STM32CubeProgrammer erases sector 0 first, then fails).
 */
export function planFlash(
  image: FirmwareImage,
  target: { alternates: readonly DfuAlternate[]; alt: number },
  opts: PlanOptions = {},
): FlashPlan {
  const alt = target.alternates.find((a) => a.alt === target.alt);
  if (!alt?.layout) {
    throw new DfuError(
      'E_DFU_DESCRIPTOR',
      `alternate setting ${target.alt} has no DfuSe memory layout ("${alt?.name ?? ''}")`,
      {
        details: { alt: target.alt, name: alt?.name },
      },
    );
  }
  if (image.segments.length === 0) {
    throw new DfuError('E_DFU_PLAN_EMPTY', `${image.file}: the image holds no bytes`, {
      kind: 'input',
      details: { file: image.file },
    });
  }
  const sectors = [...alt.sectors].sort((a, b) => a.start - b.start);
  const writable = sectors.filter((s) => s.writable);

  // 1. Refuse bytes outside writable memory, naming each stretch.
  const outside: Stretch[] = [];
  for (const seg of image.segments) {
    for (const [s, e] of uncovered(seg.address, seg.address + seg.data.length, writable)) {
      outside.push({ start: s, end: e, segment: segmentLabel(seg) });
    }
  }
  if (outside.length) {
    const part = opts.part;
    // The same diagnosis `image inspect` prints, where the catalogue knows the part.
    const problems = part ? diagnoseImage(image, part).problems.filter((p) => p.failsFlash) : [];
    const described = outside.map((o) => {
      const where = part
        ? classifyRange(part, o.start, o.end)
            .map((p) => describePlacement(p))
            .join(', ')
        : `${hex32(o.start)}-${hex32(o.end - 1)}`;
      return `${o.end - o.start} bytes of segment ${o.segment}: ${where}`;
    });
    const total = outside.reduce((n, o) => n + (o.end - o.start), 0);
    const layout = alt.layout.raw.trim();
    const first = problems[0];
    const message = first
      ? `${first.message}${problems.length > 1 ? ` (and ${problems.length - 1} more)` : ''}; not writable in the device's layout (${layout})`
      : `${image.file}: ${total} bytes lie outside the writable memory the device reports (${layout}): ${described.join('; ')}`;
    throw new DfuError('E_DFU_PLAN_OUTSIDE', message, {
      kind: 'input',
      details: {
        file: image.file,
        layout: alt.layout.raw,
        outside: outside.map((o) => ({ start: o.start, end: o.end, segment: o.segment })),
        ...(first ? { imageCode: first.code, problems } : {}),
      },
      hint: `nothing was erased or written. ${
        first
          ? first.remedies.join('; or ')
          : 'keep RAM sections out of the image (NOLOAD in the linker script) or convert it to its flash part only (`stm32-hil image convert --flash-only`)'
      }`,
    });
  }

  // 2. Erase: every sector an image byte falls in, or one mass erase with explicit permission.
  const touched = new Map<number, LayoutSector>();
  for (const seg of image.segments) {
    const end = seg.address + seg.data.length;
    for (const s of writable) {
      if (s.start < end && s.start + s.size > seg.address && s.erasable) touched.set(s.start, s);
    }
  }
  const perms = opts.permissions ?? Permissions.none();
  if (opts.massErase) perms.require('mass-erase', 'a mass erase');
  const eraseSectors = [...touched.values()].sort((a, b) => a.start - b.start);

  // 3. Write runs: segments merged where they share a flash word (ECC flash words can be programmed once per
  // erase, RM0433 section 4.3.9), padded with the erased value to whole words.
  const unit = Math.max(1, opts.part?.flash.programUnit ?? 1);
  const fill = opts.part?.flash.erasedValue ?? 0xff;
  const down = (a: number) => a - (a % unit);
  const up = (a: number) => (a % unit ? a + unit - (a % unit) : a);
  const groups: Array<{ start: number; end: number; segs: Array<{ address: number; data: Uint8Array }> }> =
    [];
  for (const seg of image.coalesced()) {
    const s = down(seg.address);
    const e = up(seg.address + seg.data.length);
    const g = groups.at(-1);
    if (g && s <= g.end) {
      g.end = Math.max(g.end, e);
      g.segs.push(seg);
    } else {
      groups.push({ start: s, end: e, segs: [seg] });
    }
  }
  const writes: WriteRun[] = groups.map((g) => {
    const data = new Uint8Array(g.end - g.start).fill(fill);
    for (const s of g.segs) data.set(s.data, s.address - g.start);
    return { address: g.start, data };
  });

  return {
    alt: alt.alt,
    layout: alt.layout.raw,
    erase: opts.massErase ? { mode: 'mass' } : { mode: 'sectors', sectors: eraseSectors },
    writes,
    imageBytes: image.size,
    writeBytes: writes.reduce((n, w) => n + w.data.length, 0),
    eraseBytes: opts.massErase
      ? sectors.reduce((n, s) => n + s.size, 0)
      : eraseSectors.reduce((n, s) => n + s.size, 0),
  };
}

export function describePlan(plan: FlashPlan): string[] {
  const lines: string[] = [];
  if (plan.erase.mode === 'mass') lines.push('erase: mass erase (whole flash)');
  else {
    const s = plan.erase.sectors;
    lines.push(
      `erase: ${s.length} sector${s.length === 1 ? '' : 's'}${s.length ? ` (${s.map((x) => `${x.index}@${hex32(x.start)}`).join(', ')})` : ''}`,
    );
  }
  for (const w of plan.writes) lines.push(`write: ${w.data.length} bytes at ${hex32(w.address)}`);
  return lines;
}
