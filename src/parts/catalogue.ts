import { HilError } from '../errors.ts';

/**
 * The parts stm32-hil knows: memory map, flash geometry, and what the ROM bootloader reports over USB DFU.
 * The virtual bootloader is built from these entries, so each fact names its source.
 */

export interface FlashSectorRun {
  count: number;
  size: number;
}

export interface FlashBank {
  /** 1-based bank number as the reference manual counts. */
  bank: number;
  base: number;
  sectors: FlashSectorRun[];
}

export interface MemoryRegion {
  name: string;
  start: number;
  size: number;
  kind: 'ram' | 'system' | 'otp' | 'option-bytes' | 'peripheral';
}

export interface DfuAlternate {
  alt: number;
  /** Exactly the string the ROM reports as the interface name (layout string). */
  name: string;
}

export interface BootloaderInfo {
  /** USB identity of the ROM bootloader (ST AN2606 / AN3156: VID 0x0483, PID 0xDF11). */
  vid: number;
  pid: number;
  /** bcdDevice; its high byte is the DFU bootloader protocol version (AN3156). */
  bcdDevice: number;
  manufacturer: string;
  product: string;
  /** Serial string descriptor the ROM reports (same on every H74x: the farm identifies boards by port path). */
  serial: string;
  alternates: DfuAlternate[];
  /** wTransferSize from the DFU functional descriptor. */
  transferSize: number;
  /** DFU functional descriptor bmAttributes (ST's USB device stack uses 0x0B). */
  attributes: number;
  detachTimeoutMs: number;
  /** Where the bootloader version byte lives in system memory (AN2606). */
  versionAddress?: number;
}

export interface FlashTiming {
  /** Typical erase of the largest sector, ms. */
  sectorEraseMs: number;
  /** Worst-case sector erase, ms (datasheet max): what a host must be prepared to wait. */
  sectorEraseMaxMs: number;
  /** Mass erase (one bank or the whole flash), ms. */
  massEraseMs: number;
  /** Programming one flash word (programUnit bytes), microseconds. */
  programWordUs: number;
}

export interface Part {
  id: string;
  name: string;
  /** Other names that select this entry (same die, same map). */
  aliases: string[];
  family: string;
  /** DBGMCU_IDCODE DEV_ID. */
  deviceId: number;
  cores: string[];
  /** DBGMCU_IDCODE REV_ID by revision letter. */
  revisions: Record<string, number>;
  flash: {
    banks: FlashBank[];
    /** Smallest programmable unit in bytes (256-bit flash words with ECC on the H7). */
    programUnit: number;
    /**
     * True where a programmed unit can never be programmed again before erase (ECC flash such as the H7);
     * false where bits may still go from 1 to 0 (F4).
     */
    eccWords: boolean;
    erasedValue: number;
  };
  optionBytes: { base: number; size: number };
  memories: MemoryRegion[];
  bootloader: BootloaderInfo;
  timing: FlashTiming;
  sources: string[];
}

const KiB = 1024;

// STM32H742/743/750/753: RM0433 rev 8 (section 2.3.2 memory map, table 7 flash organisation: 2 banks x 8
// sectors of 128 KiB, 256-bit flash word plus ECC), DS12110 (flash timing), AN2606 (bootloader, USB DFU
// alternate settings and versions 0xD2/0xD3/0x90/0x91/0x92), AN3156 (DfuSe protocol).
const h74xMemories: MemoryRegion[] = [
  { name: 'ITCM', start: 0x0000_0000, size: 64 * KiB, kind: 'ram' },
  { name: 'DTCM', start: 0x2000_0000, size: 128 * KiB, kind: 'ram' },
  { name: 'AXI SRAM', start: 0x2400_0000, size: 512 * KiB, kind: 'ram' },
  { name: 'SRAM1', start: 0x3000_0000, size: 128 * KiB, kind: 'ram' },
  { name: 'SRAM2', start: 0x3002_0000, size: 128 * KiB, kind: 'ram' },
  { name: 'SRAM3', start: 0x3004_0000, size: 32 * KiB, kind: 'ram' },
  { name: 'SRAM4', start: 0x3800_0000, size: 64 * KiB, kind: 'ram' },
  { name: 'Backup SRAM', start: 0x3880_0000, size: 4 * KiB, kind: 'ram' },
  { name: 'System memory', start: 0x1ff0_0000, size: 128 * KiB, kind: 'system' },
  // FLASH_OPTSR_CUR and the other option registers (RM0433 section 4.9); the ROM exposes them from 0x5200201C.
  { name: 'Option bytes', start: 0x5200_201c, size: 0x134, kind: 'option-bytes' },
];

const h74xBootloader: BootloaderInfo = {
  vid: 0x0483,
  pid: 0xdf11,
  bcdDevice: 0x0200,
  manufacturer: 'STMicroelectronics',
  product: 'DFU in FS Mode',
  serial: '200364500000',
  alternates: [
    { alt: 0, name: '@Internal Flash   /0x08000000/16*128Kg' },
    { alt: 1, name: '@Option Bytes   /0x5200201C/01*128 e' },
  ],
  transferSize: 1024,
  attributes: 0x0b,
  detachTimeoutMs: 255,
  versionAddress: 0x1ff1_e7fe,
};

const h74xTiming: FlashTiming = {
  // 0.9 s between the erase command and dfuDNLOAD-IDLE in a real rev V CubeProgrammer verbose trace;
  // DS12110 gives about 1.1 s typical and 2.2 s max for a 128 KiB sector at x32 parallelism.
  sectorEraseMs: 900,
  sectorEraseMaxMs: 2200,
  // DS12110: bank erase of the same order as eight sectors at x64; both banks erase in parallel.
  massEraseMs: 3000,
  // DS12110 t_prog for one 256-bit flash word, typical at x32 (order of tens of microseconds).
  programWordUs: 16,
};

const h743: Part = {
  id: 'stm32h743',
  name: 'STM32H743',
  aliases: ['stm32h742', 'stm32h750', 'stm32h753'],
  family: 'STM32H7',
  deviceId: 0x450,
  cores: ['Cortex-M7'],
  // RM0433 section 61.5.8 DBGMCU_IDC: REV_ID 0x1001 = Z, 0x1003 = Y, 0x2001 = X, 0x2003 = V.
  revisions: { Z: 0x1001, Y: 0x1003, X: 0x2001, V: 0x2003 },
  flash: {
    banks: [
      { bank: 1, base: 0x0800_0000, sectors: [{ count: 8, size: 128 * KiB }] },
      { bank: 2, base: 0x0810_0000, sectors: [{ count: 8, size: 128 * KiB }] },
    ],
    programUnit: 32,
    eccWords: true,
    erasedValue: 0xff,
  },
  optionBytes: { base: 0x5200_201c, size: 0x134 },
  memories: h74xMemories,
  bootloader: h74xBootloader,
  timing: h74xTiming,
  sources: ['RM0433', 'DS12110', 'AN2606', 'AN3156'],
};

// STM32H745/747/755/757: RM0399 (same flash shape and DEV_ID 0x450 as the H743, Cortex-M7 + Cortex-M4;
// SRAM3 is 32 KiB, SRAM4 at 0x38000000 is the D3 domain RAM cores often share), AN2606.
const h747: Part = {
  ...h743,
  id: 'stm32h747',
  name: 'STM32H747',
  aliases: ['stm32h745', 'stm32h755', 'stm32h757'],
  cores: ['Cortex-M7', 'Cortex-M4'],
  revisions: { Y: 0x1003, X: 0x2001, V: 0x2003 },
  sources: ['RM0399', 'DS12930', 'AN2606', 'AN3156'],
};

// STM32F405/407/415/417: RM0090 (section 3.3 flash organisation: 4 x 16 KiB, 1 x 64 KiB, 7 x 128 KiB;
// 2.2 memory map), DS8626 (timing), AN2606 (bootloader DFU: bcdDevice 0x2200, alternate settings).
const f407: Part = {
  id: 'stm32f407',
  name: 'STM32F407',
  aliases: ['stm32f405', 'stm32f415', 'stm32f417'],
  family: 'STM32F4',
  deviceId: 0x413,
  cores: ['Cortex-M4'],
  // RM0090 section 38.6.1 DBGMCU_IDCODE: 0x1000 = A, 0x1001 = Z, 0x1003 = Y, 0x1007 = 1, 0x2001 = 3.
  revisions: { A: 0x1000, Z: 0x1001, Y: 0x1003, '1': 0x1007, '3': 0x2001 },
  flash: {
    banks: [
      {
        bank: 1,
        base: 0x0800_0000,
        sectors: [
          { count: 4, size: 16 * KiB },
          { count: 1, size: 64 * KiB },
          { count: 7, size: 128 * KiB },
        ],
      },
    ],
    // x32 parallelism at 2.7-3.6 V; bits may be cleared again without erase (RM0090 3.6.3).
    programUnit: 4,
    eccWords: false,
    erasedValue: 0xff,
  },
  optionBytes: { base: 0x1fff_c000, size: 16 },
  memories: [
    { name: 'CCM RAM', start: 0x1000_0000, size: 64 * KiB, kind: 'ram' },
    { name: 'SRAM1', start: 0x2000_0000, size: 112 * KiB, kind: 'ram' },
    { name: 'SRAM2', start: 0x2001_c000, size: 16 * KiB, kind: 'ram' },
    { name: 'Backup SRAM', start: 0x4002_4000, size: 4 * KiB, kind: 'ram' },
    { name: 'System memory', start: 0x1fff_0000, size: 30 * KiB, kind: 'system' },
    { name: 'OTP', start: 0x1fff_7800, size: 528, kind: 'otp' },
    { name: 'Option bytes', start: 0x1fff_c000, size: 16, kind: 'option-bytes' },
  ],
  bootloader: {
    vid: 0x0483,
    pid: 0xdf11,
    bcdDevice: 0x2200,
    manufacturer: 'STMicroelectronics',
    product: 'STM32  BOOTLOADER',
    serial: '336F38723032',
    alternates: [
      { alt: 0, name: '@Internal Flash  /0x08000000/04*016Kg,01*064Kg,07*128Kg' },
      { alt: 1, name: '@Option Bytes  /0x1FFFC000/01*016 e' },
      { alt: 2, name: '@OTP Memory /0x1FFF7800/01*512 e,01*016 e' },
      { alt: 3, name: '@Device Feature/0xFFFF0000/01*004 e' },
    ],
    transferSize: 2048,
    attributes: 0x0b,
    detachTimeoutMs: 255,
    versionAddress: 0x1fff_76de,
  },
  // DS8626 table "Flash memory programming": 128 KiB sector erase typ 1 s (x32), max 2 s; mass erase typ 8 s,
  // max 16 s; word program typ 16 us.
  timing: { sectorEraseMs: 1000, sectorEraseMaxMs: 2000, massEraseMs: 8000, programWordUs: 16 },
  sources: ['RM0090', 'DS8626', 'AN2606', 'AN3156'],
};

// STM32U073/U083: RM0503 (flash of 2 KiB pages, 64-bit double-word programming with ECC), DS14461, AN2606.
// The DFU strings follow the pattern AN2606 documents for the G0/G4 (2 KiB pages); no recorded U0 log yet.
const u073: Part = {
  id: 'stm32u073',
  name: 'STM32U073',
  aliases: ['stm32u083'],
  family: 'STM32U0',
  deviceId: 0x489,
  cores: ['Cortex-M0+'],
  revisions: { A: 0x1000, Z: 0x1001 },
  flash: {
    banks: [{ bank: 1, base: 0x0800_0000, sectors: [{ count: 128, size: 2 * KiB }] }],
    programUnit: 8,
    eccWords: true,
    erasedValue: 0xff,
  },
  optionBytes: { base: 0x1fff_7800, size: 128 },
  memories: [
    { name: 'SRAM', start: 0x2000_0000, size: 40 * KiB, kind: 'ram' },
    { name: 'System memory', start: 0x1fff_0000, size: 24 * KiB, kind: 'system' },
    { name: 'OTP', start: 0x1fff_6800, size: 1 * KiB, kind: 'otp' },
    { name: 'Option bytes', start: 0x1fff_7800, size: 128, kind: 'option-bytes' },
  ],
  bootloader: {
    vid: 0x0483,
    pid: 0xdf11,
    bcdDevice: 0x0200,
    manufacturer: 'STMicroelectronics',
    product: 'DFU in FS Mode',
    serial: '204A35663430',
    alternates: [
      { alt: 0, name: '@Internal Flash   /0x08000000/128*02Kg' },
      { alt: 1, name: '@Option Bytes   /0x1FFF7800/01*128 e' },
      { alt: 2, name: '@OTP Memory   /0x1FFF6800/01*1024 e' },
    ],
    transferSize: 1024,
    attributes: 0x0b,
    detachTimeoutMs: 255,
  },
  // Order of magnitude from DS14461 (2 KiB page erase in tens of ms, double-word program under 100 us);
  // not yet checked against a recorded U0 bootloader trace.
  timing: { sectorEraseMs: 22, sectorEraseMaxMs: 40, massEraseMs: 22, programWordUs: 85 },
  sources: ['RM0503', 'DS14461', 'AN2606'],
};

export const PARTS: readonly Part[] = [h743, h747, f407, u073];

export class PartError extends HilError {}

export function findPart(name: string): Part | undefined {
  const key = name.trim().toLowerCase();
  return PARTS.find((p) => p.id === key || p.aliases.includes(key));
}

export function getPart(name: string): Part {
  const part = findPart(name);
  if (!part) {
    throw new PartError('E_PART_UNKNOWN', `unknown part "${name}"`, {
      kind: 'input',
      details: { part: name },
      hint: `known parts: ${PARTS.flatMap((p) => [p.id, ...p.aliases]).join(', ')}`,
    });
  }
  return part;
}

export interface FlashSector {
  bank: number;
  /** Sector number within its bank, as the reference manual counts. */
  index: number;
  /** Sector number over the whole flash, as DfuSe layouts and CubeProgrammer count ("sector 8" = bank 2 sector 0). */
  globalIndex: number;
  start: number;
  size: number;
}

export function flashSectors(part: Part): FlashSector[] {
  const out: FlashSector[] = [];
  for (const bank of part.flash.banks) {
    let addr = bank.base;
    let index = 0;
    for (const run of bank.sectors) {
      for (let i = 0; i < run.count; i++) {
        out.push({ bank: bank.bank, index: index++, globalIndex: out.length, start: addr, size: run.size });
        addr += run.size;
      }
    }
  }
  return out;
}

export function flashRange(part: Part): { start: number; end: number } {
  const sectors = flashSectors(part);
  return { start: sectors[0]!.start, end: sectors.at(-1)!.start + sectors.at(-1)!.size };
}
