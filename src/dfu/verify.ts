import type { FirmwareImage } from '../image/model.ts';
import { type LayoutSector, sectorAt } from '../parts/layout.ts';
import { hex8, hex32, hexDump } from '../util/hex.ts';
import { DfuError } from './errors.ts';

export interface VerifyMismatch {
  address: number;
  expected: number;
  actual: number;
}

export interface VerifyReport {
  ok: boolean;
  /** Image bytes compared. */
  bytes: number;
  mismatches: number;
  first?: VerifyMismatch;
  /** Sectors holding at least one mismatch, with how many. */
  sectors: Array<{ index: number; start: number; size: number; mismatches: number }>;
  /** Device bytes around the first difference, differing bytes marked; then what the image holds there. */
  dump?: string;
}

/** STM32CubeProgrammer's wording, so logs grep the same: "Data mismatch found at address 0x08000002 (byte = 0x00 instead of 0x08)". */
export function mismatchLine(m: VerifyMismatch): string {
  return `Data mismatch found at address ${hex32(m.address)} (byte = ${hex8(m.actual)} instead of ${hex8(m.expected)})`;
}

/** Compares the device's bytes (`readBack`, one buffer per image segment, same order) with the image. */
export function compareImage(
  segments: ReadonlyArray<{ address: number; data: Uint8Array }>,
  readBack: readonly Uint8Array[],
  sectors: readonly LayoutSector[],
): VerifyReport {
  let bytes = 0;
  let count = 0;
  let first: VerifyMismatch | undefined;
  let firstSeg = -1;
  const bySector = new Map<number, { index: number; start: number; size: number; mismatches: number }>();
  segments.forEach((seg, i) => {
    const got = readBack[i]!;
    bytes += seg.data.length;
    // Fast path: most verifies match; Buffer.compare runs in native code.
    if (got.length >= seg.data.length && Buffer.compare(seg.data, got.subarray(0, seg.data.length)) === 0)
      return;
    for (let o = 0; o < seg.data.length; o++) {
      const expected = seg.data[o]!;
      const actual = got[o]!;
      if (expected === actual) continue;
      count++;
      const address = seg.address + o;
      if (!first) {
        first = { address, expected, actual };
        firstSeg = i;
      }
      const s = sectorAt(sectors, address);
      const key = s?.start ?? -1;
      const entry = bySector.get(key) ?? {
        index: s?.index ?? -1,
        start: s?.start ?? address,
        size: s?.size ?? 0,
        mismatches: 0,
      };
      entry.mismatches++;
      bySector.set(key, entry);
    }
  });
  const report: VerifyReport = {
    ok: count === 0,
    bytes,
    mismatches: count,
    sectors: [...bySector.values()].sort((a, b) => a.start - b.start),
  };
  if (first) {
    report.first = first;
    const seg = segments[firstSeg]!;
    const got = readBack[firstSeg]!;
    const from = Math.max(seg.address, first.address - 32);
    const to = Math.min(seg.address + seg.data.length, first.address + 48);
    const at = first.address;
    // Mark the reported byte only; the image lines below show every other difference.
    const mark = (a: number) => a === at;
    report.dump = `device:\n${hexDump(got, seg.address, from, to, mark)}\nimage:\n${hexDump(seg.data, seg.address, from, to)}`;
  }
  return report;
}

export function describeReport(r: VerifyReport): string[] {
  if (r.ok) return [`verified ${r.bytes} bytes: no difference`];
  const lines = [mismatchLine(r.first!)];
  const sectors = r.sectors.map((s) =>
    s.index >= 0
      ? `sector ${s.index} at ${hex32(s.start)} (${s.mismatches})`
      : `${hex32(s.start)} (${s.mismatches})`,
  );
  lines.push(`${r.mismatches} of ${r.bytes} bytes differ, in ${sectors.join(', ')}`);
  if (r.dump) lines.push(r.dump);
  return lines;
}

export function verifyError(image: Pick<FirmwareImage, 'file'>, r: VerifyReport): DfuError {
  return new DfuError('E_DFU_VERIFY_MISMATCH', `${mismatchLine(r.first!)}; ${r.mismatches} bytes differ`, {
    kind: 'check',
    details: {
      file: image.file,
      address: r.first!.address,
      expected: r.first!.expected,
      actual: r.first!.actual,
      mismatches: r.mismatches,
      sectors: r.sectors,
    },
    hint: 'the flash does not hold the image: erase and program again; a difference that returns at the same bits is a weak flash cell',
  });
}
