import { findPart, PARTS, type Part } from '../parts/catalogue.ts';

/**
 * What the host must know about a particular DfuSe device beyond the protocol. One table, one entry per
 * device family, each naming the chip and the source.
 */
export interface DfuQuirks {
  /** Catalogue part the device was recognised as (by VID:PID and its flash layout string), if any. */
  part: Part | undefined;
  /** Sources and chips the entries below come from, for messages. */
  notes: string[];
  /**
   * A CLRSTATUS outside dfuERROR puts the device into dfuERROR/errUNKNOWN, so recovering from a stuck busy
   * state takes two (ST's USB device middleware; seen in the STM32H743 rev V CubeProgrammer trace).
   */
  clrStatusFaultsOutsideError: boolean;
  /** The device is not manifestation tolerant: after leave it jumps to the application and vanishes (AN3156). */
  vanishesOnLeave: boolean;
  /** Worst-case busy time of one page/sector erase, ms (datasheet maximum). */
  sectorEraseMaxMs: number;
  /** Worst-case busy time of a mass erase, ms. */
  massEraseMaxMs: number;
  /** Worst-case busy time for programming one block of wTransferSize bytes, ms. */
  programBlockMaxMs: number;
  /** Page erases at or above this address may hang in dfuDNBUSY (bootloader bug), with the advice to give. */
  eraseHang?: { from: number; hint: string };
  /** Mass erase may not work (bootloader bug), with the advice to give. */
  massEraseBroken?: string;
}

interface QuirkEntry {
  /** Which devices: VID:PID and (optionally) the exact alternate-0 layout string. */
  match: { vendorId: number; productId: number; layout?: RegExp };
  /** Part catalogue id used for timing. */
  part?: string;
  apply: Partial<Omit<DfuQuirks, 'part' | 'notes'>>;
  note: string;
}

// Margin on top of datasheet maxima: USB round trips and the ROM's own bookkeeping.
const MARGIN_MS = 500;

const TABLE: QuirkEntry[] = [
  {
    // Every ST ROM bootloader (VID 0x0483 PID 0xDF11, ST AN2606): ST's USB device middleware answers a
    // CLRSTATUS outside dfuERROR with dfuERROR/errUNKNOWN; the bootloader is not manifestation tolerant
    // (AN3156 section 4: "Leave DFU mode").
    match: { vendorId: 0x0483, productId: 0xdf11 },
    apply: { clrStatusFaultsOutsideError: true, vanishesOnLeave: true },
    note: 'ST ROM bootloader (AN2606, AN3156)',
  },
  {
    // STM32H74x/75x ROM bootloader (layout string from AN2606). AN2606 table "STM32H74xxx/75xxx bootloader
    // versions": V9.0 (0x90, rev V) and V9.1 (0x91) hang on a bank 2 (>= 0x08100000) page erase over USB DFU,
    // fixed in V9.2 (0x92); the field workaround is a mass erase (dfu-util ":force:mass-erase", ST community
    // thread "STM32H743 USB DFU cannot write to Flash Bank 2"). V13.3 (0xD3): "DFU mass erase does not work".
    match: { vendorId: 0x0483, productId: 0xdf11, layout: /^@Internal Flash\s*\/0x08000000\/16\*128Kg\s*$/ },
    part: 'stm32h743',
    apply: {
      eraseHang: {
        from: 0x0810_0000,
        hint:
          'STM32H74x/75x rev V bootloaders 0x90/0x91 hang on a bank 2 page erase (ST AN2606); ' +
          'flash with a mass erase instead (--mass-erase --force), or update to bootloader 0x92',
      },
      massEraseBroken:
        'bootloader V13.3 (0xD3) of the STM32H74x/75x does not perform a DFU mass erase (ST AN2606)',
    },
    note: 'STM32H74x/75x bootloader (AN2606 table of H74x/75x bootloader versions)',
  },
];

const DEFAULTS: Omit<DfuQuirks, 'part' | 'notes'> = {
  clrStatusFaultsOutsideError: false,
  vanishesOnLeave: false,
  // Conservative bounds for a device the catalogue does not know.
  sectorEraseMaxMs: 10_000,
  massEraseMaxMs: 60_000,
  programBlockMaxMs: 2_000,
};

function partByLayout(layout: string | undefined): Part | undefined {
  if (!layout) return undefined;
  const t = layout.trim();
  return PARTS.find((p) => p.bootloader.alternates.some((a) => a.name.trim() === t));
}

function timingBounds(
  part: Part,
  transferSize: number,
): Pick<DfuQuirks, 'sectorEraseMaxMs' | 'massEraseMaxMs' | 'programBlockMaxMs'> {
  const t = part.timing;
  return {
    sectorEraseMaxMs: t.sectorEraseMaxMs + MARGIN_MS,
    // Datasheets give mass erase as a typical figure; allow four times it (their maxima are about twice typical).
    massEraseMaxMs: t.massEraseMs * 4 + MARGIN_MS,
    // Ten times the typical flash-word time per block, at least a second.
    programBlockMaxMs: Math.max(
      1000,
      Math.ceil(((transferSize / part.flash.programUnit) * t.programWordUs * 10) / 1000),
    ),
  };
}

/** The quirks of a device, from its USB identity and the layout string of alternate setting 0. */
export function quirksFor(id: {
  vendorId: number;
  productId: number;
  layout?: string;
  transferSize: number;
}): DfuQuirks {
  const q: DfuQuirks = { ...DEFAULTS, part: undefined, notes: [] };
  for (const e of TABLE) {
    if (e.match.vendorId !== id.vendorId || e.match.productId !== id.productId) continue;
    if (e.match.layout && !(id.layout && e.match.layout.test(id.layout.trim()))) continue;
    Object.assign(q, e.apply);
    q.notes.push(e.note);
    if (e.part) q.part = findPart(e.part);
  }
  q.part ??= id.vendorId === 0x0483 ? partByLayout(id.layout) : undefined;
  if (q.part) Object.assign(q, timingBounds(q.part, id.transferSize));
  return q;
}
