import type { FirmwareImage } from '../image/model.ts';
import { hex32 } from '../util/hex.ts';
import { type FlashSector, flashSectors, type MemoryRegion, type Part } from './catalogue.ts';

/** What one stretch of an image's addresses is on a given part. */
export type Placement =
  | { kind: 'flash'; start: number; end: number; bank: number; sectors: FlashSector[] }
  | {
      kind: 'option-bytes' | 'ram' | 'system' | 'otp' | 'peripheral';
      start: number;
      end: number;
      region: string;
    }
  | { kind: 'unknown'; start: number; end: number };

/**
 * Splits [start, end) into placements on `part`, in address order. Flash is split per bank; every
 * other known region is named; gaps are 'unknown'.
 */
export function classifyRange(part: Part, start: number, end: number): Placement[] {
  const out: Placement[] = [];
  const sectors = flashSectors(part);
  type Piece = { start: number; end: number; make: (s: number, e: number) => Placement };
  const pieces: Piece[] = [];
  for (const bank of part.flash.banks) {
    const bs = sectors.filter((s) => s.bank === bank.bank);
    const bEnd = bs.at(-1)!.start + bs.at(-1)!.size;
    pieces.push({
      start: bank.base,
      end: bEnd,
      make: (s, e) => ({
        kind: 'flash',
        start: s,
        end: e,
        bank: bank.bank,
        sectors: bs.filter((x) => x.start < e && x.start + x.size > s),
      }),
    });
  }
  for (const m of part.memories) {
    pieces.push({
      start: m.start,
      end: m.start + m.size,
      make: (s, e) => ({ kind: m.kind, start: s, end: e, region: m.name }),
    });
  }
  pieces.sort((a, b) => a.start - b.start);
  let cursor = start;
  for (const p of pieces) {
    if (p.end <= cursor || p.start >= end) continue;
    if (p.start > cursor) out.push({ kind: 'unknown', start: cursor, end: p.start });
    const s = Math.max(cursor, p.start);
    const e = Math.min(end, p.end);
    out.push(p.make(s, e));
    cursor = e;
  }
  if (cursor < end) out.push({ kind: 'unknown', start: cursor, end });
  return out;
}

export interface SegmentPlacement {
  segment: { name: string; address: number; size: number; sections?: string[] };
  placements: Placement[];
}

export interface ImagePlan {
  part: Part;
  segments: SegmentPlacement[];
  /** Flash sectors any byte of the image falls in, ordered by address. */
  sectors: FlashSector[];
  banks: number[];
  /** Bytes outside flash, by where they fall. */
  outsideFlash: Array<{ placement: Placement; segment: SegmentPlacement['segment'] }>;
}

export function placeImage(part: Part, image: FirmwareImage): ImagePlan {
  const segments: SegmentPlacement[] = [];
  const touched = new Map<number, FlashSector>();
  const outsideFlash: ImagePlan['outsideFlash'] = [];
  for (const s of image.segments) {
    const seg = {
      name: s.name,
      address: s.address,
      size: s.data.length,
      ...(s.source.sections ? { sections: s.source.sections } : {}),
    };
    const placements = classifyRange(part, s.address, s.address + s.data.length);
    segments.push({ segment: seg, placements });
    for (const p of placements) {
      if (p.kind === 'flash') for (const sec of p.sectors) touched.set(sec.start, sec);
      else outsideFlash.push({ placement: p, segment: seg });
    }
  }
  const sectors = [...touched.values()].sort((a, b) => a.start - b.start);
  return { part, segments, sectors, banks: [...new Set(sectors.map((s) => s.bank))], outsideFlash };
}

export function describePlacement(p: Placement): string {
  const range = `${hex32(p.start)}-${hex32(p.end - 1)}`;
  switch (p.kind) {
    case 'flash':
      return `${range} flash bank ${p.bank}, sector${p.sectors.length > 1 ? 's' : ''} ${p.sectors.map((s) => s.index).join(',')}`;
    case 'unknown':
      return `${range} not in the memory map`;
    default:
      return `${range} ${p.region}`;
  }
}

export function regionByName(part: Part, name: string): MemoryRegion | undefined {
  return part.memories.find((m) => m.name === name);
}
