import type { Part } from '../parts/catalogue.ts';
import { layoutSectors, parseLayout } from '../parts/layout.ts';
import { optionBytesSize } from './option-bytes.ts';
import type { AddressRange, RomQuirks } from './quirks.ts';

/**
 * Which addresses the ROM bootloader lets a host reach, per alternate setting. The rules (ST AN2662 section
 * 4.5 / AN3156 section 6, "Set Address Pointer", "Write", "Read" device-side flows):
 * - Set Address Pointer accepts internal flash, embedded RAM, system memory and option bytes (and the OTP
 *   area where the part has one); anything else is dfuERROR/errTARGET.
 * - Reads, writes and erases must fall in the memory of the selected alternate setting (its layout string)
 *   with the access its type letter grants; the flash alternate (alt 0) also reaches the RAM the bootloader
 *   makes accessible (RAM minus what it uses itself minus what the version table refuses) and reads system
 *   memory. Otherwise dfuERROR/errTARGET.
 * The option-bytes alternate spans the part's whole option area (CubeProgrammer reads 308 bytes from
 * 0x5200201C on the H743 although the layout string says 01*128).
 */

export type MemoryKind = 'flash' | 'option-bytes' | 'otp' | 'ram' | 'system' | 'other';

export interface RomRegion {
  kind: MemoryKind;
  name: string;
  start: number;
  /** Exclusive. */
  end: number;
  readable: boolean;
  writable: boolean;
  erasable: boolean;
}

function subtract(ranges: AddressRange[], holes: AddressRange[]): AddressRange[] {
  let out = ranges;
  for (const h of holes) {
    const next: AddressRange[] = [];
    for (const r of out) {
      if (h.end <= r.start || h.start >= r.end) {
        next.push(r);
        continue;
      }
      if (r.start < h.start) next.push({ name: r.name, start: r.start, end: h.start });
      if (h.end < r.end) next.push({ name: r.name, start: h.end, end: r.end });
    }
    out = next;
  }
  return out;
}

export class RomMemoryMap {
  readonly part: Part;
  readonly flashStart: number;
  readonly flashEnd: number;
  /** RAM the bootloader lets a host read and write. */
  readonly ram: RomRegion[];
  /** RAM the bootloader refuses, with the reason (for messages and tests). */
  readonly refusedRam: AddressRange[];
  readonly system: RomRegion | undefined;
  readonly #alts: RomRegion[][];

  constructor(part: Part, quirks: RomQuirks) {
    this.part = part;
    const flashSectors = part.flash.banks.flatMap((b) => b.sectors.map((s) => s.count * s.size));
    this.flashStart = part.flash.banks[0]!.base;
    this.flashEnd = this.flashStart + flashSectors.reduce((a, b) => a + b, 0);
    const ramRanges = part.memories
      .filter((m) => m.kind === 'ram')
      .map((m) => ({ name: m.name, start: m.start, end: m.start + m.size }));
    this.refusedRam = [...quirks.bootloaderRam, ...quirks.inaccessible];
    this.ram = subtract(ramRanges, this.refusedRam).map((r) => ({
      kind: 'ram',
      name: r.name,
      start: r.start,
      end: r.end,
      readable: true,
      writable: true,
      erasable: false,
    }));
    const sys = part.memories.find((m) => m.kind === 'system');
    this.system = sys && {
      kind: 'system',
      name: sys.name,
      start: sys.start,
      end: sys.start + sys.size,
      readable: true,
      writable: false,
      erasable: false,
    };
    this.#alts = part.bootloader.alternates.map((alt) => this.#altRegions(alt.name));
  }

  #altRegions(name: string): RomRegion[] {
    const layout = parseLayout(name);
    const out: RomRegion[] = [];
    for (const s of layoutSectors(layout)) {
      let kind: MemoryKind = 'other';
      if (s.start >= this.flashStart && s.start < this.flashEnd) kind = 'flash';
      else if (s.start === this.part.optionBytes.base) kind = 'option-bytes';
      else if (
        this.part.memories.some((m) => m.kind === 'otp' && s.start >= m.start && s.start < m.start + m.size)
      )
        kind = 'otp';
      const end =
        kind === 'option-bytes' ? s.start + Math.max(s.size, optionBytesSize(this.part)) : s.start + s.size;
      out.push({
        kind,
        name: layout.name,
        start: s.start,
        end,
        readable: s.readable,
        writable: s.writable,
        erasable: s.erasable,
      });
    }
    // Adjacent sectors with the same access form one region, so a block may straddle a sector boundary.
    const merged: RomRegion[] = [];
    for (const r of out) {
      const last = merged.at(-1);
      if (
        last &&
        last.end === r.start &&
        last.kind === r.kind &&
        last.readable === r.readable &&
        last.writable === r.writable &&
        last.erasable === r.erasable
      ) {
        last.end = r.end;
      } else {
        merged.push({ ...r });
      }
    }
    out.length = 0;
    out.push(...merged);
    if (out.some((r) => r.kind === 'flash')) {
      out.push(...this.ram);
      if (this.system) out.push(this.system);
    }
    return out;
  }

  get alternateCount(): number {
    return this.#alts.length;
  }

  /** The region of alternate `alt` holding all of [start, start + length), if any. */
  find(alt: number, start: number, length: number): RomRegion | undefined {
    const end = start + Math.max(1, length);
    return this.#alts[alt]?.find((r) => start >= r.start && end <= r.end);
  }

  /** Set Address Pointer accepts an address in any alternate's memory, accessible RAM or system memory. */
  pointerAllowed(address: number): boolean {
    return this.#alts.some((regions) => regions.some((r) => address >= r.start && address < r.end));
  }

  /** Why an address is refused (for errTARGET details). */
  refusal(address: number): string {
    const refused = this.refusedRam.find((r) => address >= r.start && address < r.end);
    if (refused) return `${refused.name} is not accessible through the bootloader`;
    return 'not a memory the bootloader reaches';
  }
}
