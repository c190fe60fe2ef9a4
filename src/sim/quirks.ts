import type { Part } from '../parts/catalogue.ts';

/**
 * Bootloader revision quirks: ONE table, one row per chip and bootloader version, each row saying where its
 * behaviour comes from. Sources: ST AN2606 (table "STM32H74xxx/75xxx bootloader versions", version byte at
 * 0x1FF1E7FE), the recorded rev V traces in /work/shared/reference/traces (STM32CubeProgrammer verbose log,
 * betaflight-configurator PR #1861; dfu-util ticket #88) and field reports (ST community "USB DFU cannot
 * write to Flash Bank 2"). Where ST only writes "does not work", the row says what the simulator chose.
 */

export interface AddressRange {
  name: string;
  start: number;
  /** Exclusive. */
  end: number;
}

export interface RomQuirks {
  /** Human summary for `board identify` and reports. */
  summary: string;
  /**
   * A sector erase at or above `bank2Base` is accepted and the GETSTATUS that starts it answers dfuDNBUSY,
   * then every later GETSTATUS answers dfuDNBUSY again (bwPollTimeout `hangPollTimeoutMs`) forever.
   * CLRSTATUS gives dfuERROR/errUNKNOWN and a second CLRSTATUS dfuIDLE (ST middleware: CLRSTATUS outside
   * dfuERROR). The flash controller did receive the erase: the sector is erased (reasoning in
   * dfuse-rom.ts `#eraseSector`).
   */
  bank2EraseHang: boolean;
  /**
   * A bank 2 sector erase reports done as soon as it started while the bank keeps erasing for the sector
   * erase time; a bank 2 flash command (erase or program) issued before the bank finished hangs like
   * `bank2EraseHang` (AN2606: "a following flash command can hang").
   */
  bank2EraseEarlyDone: boolean;
  /** Mass erase (0x41 alone) is accepted, reports success and erases nothing. */
  massEraseNoop: boolean;
  /** RAM the bootloader refuses (errTARGET) besides what it uses itself. */
  inaccessible: AddressRange[];
  /** RAM the bootloader itself uses (refused as a target: errTARGET). */
  bootloaderRam: AddressRange[];
  /**
   * Leave jumps only when the application's initial stack pointer is at most RAM end - 16; otherwise the
   * jump faults and nothing answers until a reset (AN2606 0x90 "jump issue").
   */
  leaveNeedsStackBelowRamEnd: boolean;
  /** After power off/on with BOOT0 high the ROM does not answer until one extra reset (mode 'silent'). */
  extraResetAfterPowerOn: boolean;
  /** bwPollTimeout the ROM reports for a sector erase, ms (before any timeScale). Undefined: the erase time. */
  erasePollTimeoutMs?: number;
  /** bwPollTimeout reported while hung in dfuDNBUSY, ms. */
  hangPollTimeoutMs: number;
}

const KiB = 1024;

// AN2606, STM32H74xxx/75xxx: "16 Kbytes starting from 0x20000000 and 208 Kbytes starting from 0x24000000
// are used by the bootloader" (20 Kbytes from 0x24000000 from V9.1 on).
const h7BootloaderRamV9_0 = [
  { name: 'DTCM used by the bootloader', start: 0x2000_0000, end: 0x2000_0000 + 16 * KiB },
  { name: 'AXI SRAM used by the bootloader', start: 0x2400_0000, end: 0x2400_0000 + 208 * KiB },
];
const h7BootloaderRamV9_1 = [
  { name: 'DTCM used by the bootloader', start: 0x2000_0000, end: 0x2000_0000 + 16 * KiB },
  { name: 'AXI SRAM used by the bootloader', start: 0x2400_0000, end: 0x2400_0000 + 20 * KiB },
];
// SRAM4 (D3 domain) and backup SRAM are not reachable through the H7 bootloader on any version (ST community
// answer in seed 002: 0x38000000-0x3800FFFF "is not accessible by the bootloader"; CubeProgrammer says
// "Not flash Memory : No erase done").
const h7NeverAccessible = [
  { name: 'SRAM4', start: 0x3800_0000, end: 0x3801_0000 },
  { name: 'Backup SRAM', start: 0x3880_0000, end: 0x3880_1000 },
];

const NONE: RomQuirks = {
  summary: 'no known DFU limitation',
  bank2EraseHang: false,
  bank2EraseEarlyDone: false,
  massEraseNoop: false,
  inaccessible: [],
  bootloaderRam: [],
  leaveNeedsStackBelowRamEnd: false,
  extraResetAfterPowerOn: false,
  hangPollTimeoutMs: 1000,
};

const H7_COMMON: RomQuirks = {
  ...NONE,
  inaccessible: h7NeverAccessible,
  bootloaderRam: h7BootloaderRamV9_0,
  // dfu-util -v on a rev V H743 (ticket #88): every sector erase reports "Poll timeout 1000 ms".
  erasePollTimeoutMs: 1000,
  hangPollTimeoutMs: 1000,
};

interface QuirkRow {
  /** Catalogue part ids the row applies to. */
  parts: string[];
  version: number;
  quirks: RomQuirks;
}

export const QUIRK_TABLE: readonly QuirkRow[] = [
  // STM32H74x/75x rev Y, bootloader V13.2 (0xD2), AN2606: initial version, no DFU limitation. Field report
  // (seed 001): "Chip version Y with bootloader version D2 ... erase/write 2nd Bank ... without any problem".
  {
    parts: ['stm32h743'],
    version: 0xd2,
    quirks: { ...H7_COMMON, summary: 'V13.2 (rev Y): no DFU limitation' },
  },
  // STM32H74x/75x, bootloader V13.3 (0xD3), AN2606: "DFU mass erase does not work". ST gives no symptom.
  // Chosen: the command is accepted, GETSTATUS goes dfuDNBUSY then dfuDNLOAD-IDLE/OK, and the flash is left
  // as it was. A silent no-op is the reading of "does not work" that a host can only catch by checking
  // (programming an already written H7 flash word then fails with errPROG, or verify finds old bytes), so it
  // is the case the DfuSe host must survive; an error status would be caught by any host.
  {
    parts: ['stm32h743'],
    version: 0xd3,
    quirks: {
      ...H7_COMMON,
      massEraseNoop: true,
      summary: 'V13.3: DFU mass erase does nothing (reports success)',
    },
  },
  // STM32H74x/75x rev V, bootloader V9.0 (0x90), AN2606: SRAM1-3 (0x30000000-0x30047FFF) and ITCM not
  // accessible; jump issue (stack pointer must be below RAM end - 16); additional reset needed after power
  // off/on. Field reports and both recorded traces: a sector erase in bank 2 leaves the device in dfuDNBUSY
  // (CubeProgrammer: two GETSTATUS answer state 4, CLRSTATUS -> errUNKNOWN/dfuERROR, CLRSTATUS -> dfuIDLE;
  // dfu-util: "Poll timeout 1000 ms" forever). Mass erase works (dfu-util :force:mass-erase workaround).
  {
    parts: ['stm32h743'],
    version: 0x90,
    quirks: {
      ...H7_COMMON,
      summary:
        'V9.0 (rev V): bank 2 sector erase hangs in dfuDNBUSY; SRAM1-3/ITCM refused; leave needs a reset',
      bank2EraseHang: true,
      inaccessible: [
        ...h7NeverAccessible,
        { name: 'ITCM', start: 0x0000_0000, end: 0x0001_0000 },
        { name: 'SRAM1-3', start: 0x3000_0000, end: 0x3004_8000 },
      ],
      leaveNeedsStackBelowRamEnd: true,
      extraResetAfterPowerOn: true,
    },
  },
  // STM32H74x/75x rev V, bootloader V9.1 (0x91), AN2606: bank 2 erase reports done while the flash is still
  // erasing; a following flash command can hang; workaround: wait the datasheet worst case, or mass erase.
  // Bootloader AXI SRAM use drops to 20 KiB.
  {
    parts: ['stm32h743'],
    version: 0x91,
    quirks: {
      ...H7_COMMON,
      summary: 'V9.1: bank 2 erase reports done early; the next bank 2 command can hang',
      bank2EraseEarlyDone: true,
      bootloaderRam: h7BootloaderRamV9_1,
    },
  },
  // STM32H74x/75x, bootloader V9.2 (0x92), AN2606: bank 2 erase fixed, erase timeouts increased (internal
  // ROM timeouts; the reported bwPollTimeout is kept at the traced 1000 ms).
  {
    parts: ['stm32h743'],
    version: 0x92,
    quirks: { ...H7_COMMON, summary: 'V9.2: bank 2 erase fixed', bootloaderRam: h7BootloaderRamV9_1 },
  },
];

/**
 * The quirks of `bootloader` on `part`. Versions the table does not list behave like the part family's
 * fixed bootloader (H7: 0x92-like with the accessible-memory rules; others: no limitation).
 */
export function quirksFor(part: Part, bootloader: number): RomQuirks {
  const row = QUIRK_TABLE.find((r) => r.parts.includes(part.id) && r.version === bootloader);
  if (row) return row.quirks;
  if (part.family === 'STM32H7') {
    return {
      ...H7_COMMON,
      summary: `version 0x${bootloader.toString(16)} not in the quirk table: no DFU limitation`,
    };
  }
  return NONE;
}
