import { HilError } from '../errors.ts';
import { hex32 } from '../util/hex.ts';

/**
 * DfuSe memory layout strings, as ST ROM bootloaders report them in each alternate setting's name
 * (ST UM0424 "STM32 USB-FS-Device development kit", section on the DFU memory descriptor; examples in
 * ST AN3156 and AN2606): `@Name/0xBASE/NN*SSSUt[,NN*SSSUt...][/0xBASE/...]`.
 * Unit U is B, K or M (a multiplier nobody knows counts as bytes, as dfu-util does); the type letter t
 * is a bit field: bit 0 readable, bit 1 erasable, bit 2 writable ('a' = 1 ... 'g' = 7).
 */
export interface LayoutSectorRun {
  count: number;
  size: number;
  readable: boolean;
  erasable: boolean;
  writable: boolean;
  /** The letter as the device sent it. */
  type: string;
}

export interface LayoutRegion {
  base: number;
  runs: LayoutSectorRun[];
}

export interface MemoryLayout {
  name: string;
  regions: LayoutRegion[];
  /** The string as the device sent it. */
  raw: string;
}

export interface LayoutSector {
  index: number;
  start: number;
  size: number;
  readable: boolean;
  erasable: boolean;
  writable: boolean;
}

export class LayoutError extends HilError {
  constructor(raw: string, reason: string) {
    super('E_LAYOUT_PARSE', `cannot parse DfuSe layout "${raw}": ${reason}`, {
      kind: 'device',
      details: { layout: raw },
    });
  }
}

const RUN = /^\s*(\d+)\s*\*\s*(\d+)\s*([BKM ]?)\s*([a-g])\s*$/i;

export function parseLayout(raw: string): MemoryLayout {
  const text = raw.trim();
  if (!text.startsWith('@')) throw new LayoutError(raw, 'it does not start with "@"');
  const parts = text.slice(1).split('/');
  const name = parts[0]!.trim();
  if (parts.length < 3 || (parts.length - 1) % 2 !== 0) {
    throw new LayoutError(raw, 'expected "/base/sectors" pairs after the name');
  }
  const regions: LayoutRegion[] = [];
  for (let i = 1; i < parts.length; i += 2) {
    const baseText = parts[i]!.trim();
    if (!/^0x[0-9a-f]+$/i.test(baseText))
      throw new LayoutError(raw, `base "${baseText}" is not a hex address`);
    const base = Number.parseInt(baseText.slice(2), 16);
    const runs: LayoutSectorRun[] = [];
    for (const spec of parts[i + 1]!.split(',')) {
      if (spec.trim() === '') continue;
      // Units and type letters come upper- or lower-case, glued or spaced: "128Kg", "128 e", "0001Ke".
      const m = RUN.exec(spec.replace(/\s+$/, ''));
      if (!m) throw new LayoutError(raw, `sector run "${spec.trim()}" is not COUNT*SIZE[B|K|M]TYPE`);
      const unit = m[3]!.toUpperCase();
      const mult = unit === 'K' ? 1024 : unit === 'M' ? 1024 * 1024 : 1;
      const bits = m[4]!.toLowerCase().charCodeAt(0) - 0x60;
      runs.push({
        count: Number.parseInt(m[1]!, 10),
        size: Number.parseInt(m[2]!, 10) * mult,
        readable: (bits & 1) !== 0,
        erasable: (bits & 2) !== 0,
        writable: (bits & 4) !== 0,
        type: m[4]!,
      });
    }
    if (runs.length === 0) throw new LayoutError(raw, `region at ${hex32(base)} has no sectors`);
    regions.push({ base, runs });
  }
  return { name, regions, raw };
}

/** Every sector of the layout with its absolute address, in order. */
export function layoutSectors(layout: MemoryLayout): LayoutSector[] {
  const out: LayoutSector[] = [];
  for (const region of layout.regions) {
    let addr = region.base;
    for (const run of region.runs) {
      for (let i = 0; i < run.count; i++) {
        out.push({
          index: out.length,
          start: addr,
          size: run.size,
          readable: run.readable,
          erasable: run.erasable,
          writable: run.writable,
        });
        addr += run.size;
      }
    }
  }
  return out;
}

export function sectorAt(sectors: readonly LayoutSector[], address: number): LayoutSector | undefined {
  // Sectors are few (at most a few hundred); a linear scan is clearer than a search here.
  return sectors.find((s) => address >= s.start && address < s.start + s.size);
}

/** Formats a layout back into the DfuSe notation (used by the virtual bootloader). */
export function formatLayout(layout: Omit<MemoryLayout, 'raw'>): string {
  const regions = layout.regions.map((r) => {
    const runs = r.runs.map((run) => {
      const [n, u] =
        run.size % (1024 * 1024) === 0 && run.size >= 1024 * 1024
          ? [run.size / (1024 * 1024), 'M']
          : run.size % 1024 === 0
            ? [run.size / 1024, 'K']
            : [run.size, ' '];
      return `${String(run.count).padStart(2, '0')}*${String(n).padStart(3, '0')}${u}${run.type}`;
    });
    return `/${hex32(r.base)}/${runs.join(',')}`;
  });
  return `@${layout.name}${regions.join('')}`;
}
