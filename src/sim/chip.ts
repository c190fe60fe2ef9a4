import {
  closeSync,
  existsSync,
  fstatSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readSync,
  writeSync,
} from 'node:fs';
import path from 'node:path';
import { HilError } from '../errors.ts';
import { type FlashSector, flashSectors, getPart, type Part } from '../parts/catalogue.ts';
import { hex32 } from '../util/hex.ts';

/**
 * The virtual chip's memory, shared by every way of reaching it: the simulated ROM bootloader over DFU (in the
 * harness process or behind `sim serve`), the ST-LINK stand-in over "SWD" (a separate process) and the virtual
 * relays. Non-volatile memory lives in one file and every access is a positional read or write on it, so what
 * one process programs the next one reads, with no cache to keep coherent. The volatile flags (power, BOOT0,
 * "the DFU bootloader ran since power-on") live in the same file so that processes agree on them; a power cycle
 * clears them, as it clears a chip's RAM.
 */

export class ChipError extends HilError {
  constructor(code: string, message: string, details: Record<string, unknown> = {}) {
    super(code, message, { kind: 'device', details });
  }
}

/** RM0433 section 4.4.4 (H7) / RM0090 section 3.7.3 (F4): RDP byte 0xAA is level 0, 0xCC level 2, anything else level 1. */
export const RDP_LEVEL0 = 0xaa;
export const RDP_LEVEL1 = 0xbb;
export const RDP_LEVEL2 = 0xcc;

export interface OptionBytes {
  rdp: number;
  /** H7 FLASH_OPTSR SWAP_BANK_OPT. */
  swapBank: boolean;
  /** H7 BOOT_CM7_ADD0/ADD1 (address >> 16), F4 has none. */
  bootAdd0: number;
  bootAdd1: number;
  /** Write-protected sectors (global sector numbers): writes and erases there are silently ignored (AN3156). */
  writeProtected: number[];
}

export interface ChipVolatile {
  powered: boolean;
  boot0: boolean;
  /** Counts power-on events since the file was created. */
  powerCycles: number;
  /** The ROM's USB DFU code ran since power-on (seed 003: SWD programming fails until a power cycle). */
  dfuUsedSincePowerOn: boolean;
  /** Bootloader 0x90: the first power-on after power-off does not start the bootloader until an extra reset. */
  resetsSincePowerOn: number;
}

interface Header {
  magic: 'stm32-hil-virtual-chip';
  version: 1;
  part: string;
  chipRevision: string;
  bootloader: number;
  flashSize: number;
  programUnit: number;
  options: OptionBytes;
  volatile: ChipVolatile;
}

const HEADER_BYTES = 4096;

export interface ChipIdentity {
  part: string;
  chipRevision: string;
  bootloader: number;
}

export interface ProgramFaults {
  /** address -> mask of bits that do not hold (read back as 0) */
  weakBits?: ReadonlyMap<number, number>;
}

export class VirtualChip {
  readonly part: Part;
  readonly file: string;
  readonly sectors: FlashSector[];
  readonly flashBase: number;
  readonly flashSize: number;
  readonly #fd: number;
  #header: Header;
  readonly #ram = new Map<number, Uint8Array>();
  #weakBits: ReadonlyMap<number, number>;

  private constructor(file: string, fd: number, header: Header, faults: ProgramFaults) {
    this.file = file;
    this.#fd = fd;
    this.#header = header;
    this.part = getPart(header.part);
    this.sectors = flashSectors(this.part);
    this.flashBase = this.sectors[0]!.start;
    this.flashSize = header.flashSize;
    this.#weakBits = faults.weakBits ?? new Map();
  }

  /**
   * Opens the chip state in `file`, creating an erased chip (RDP level 0) if there is none. An existing file
   * for another part is an error; revision and bootloader follow the configuration (a board can be "re-fitted").
   */
  static open(file: string, id: ChipIdentity, faults: ProgramFaults = {}): VirtualChip {
    const part = getPart(id.part);
    const sectors = flashSectors(part);
    const flashSize = sectors.reduce((n, s) => n + s.size, 0);
    mkdirSync(path.dirname(file), { recursive: true });
    const fresh = !existsSync(file);
    const fd = openSync(file, fresh ? 'w+' : 'r+');
    let header: Header;
    try {
      if (fresh) {
        header = {
          magic: 'stm32-hil-virtual-chip',
          version: 1,
          part: part.id,
          chipRevision: id.chipRevision,
          bootloader: id.bootloader,
          flashSize,
          programUnit: part.flash.programUnit,
          options: {
            rdp: RDP_LEVEL0,
            swapBank: false,
            bootAdd0: 0x0800,
            bootAdd1: 0x1ff0,
            writeProtected: [],
          },
          volatile: {
            powered: true,
            boot0: true,
            powerCycles: 0,
            dfuUsedSincePowerOn: false,
            resetsSincePowerOn: 1,
          },
        };
        ftruncateSync(fd, HEADER_BYTES + flashSize + Math.ceil(flashSize / part.flash.programUnit / 8));
        const erased = Buffer.alloc(flashSize, part.flash.erasedValue);
        writeSync(fd, erased, 0, erased.length, HEADER_BYTES);
      } else {
        header = readHeader(fd, file);
        if (header.part !== part.id) {
          throw new ChipError(
            'E_SIM_STATE_PART',
            `${file} holds a virtual ${header.part}, not a ${part.id}`,
            { file },
          );
        }
        header.chipRevision = id.chipRevision;
        header.bootloader = id.bootloader;
      }
    } catch (e) {
      closeSync(fd);
      throw e;
    }
    const chip = new VirtualChip(file, fd, header, faults);
    chip.#writeHeader();
    return chip;
  }

  close(): void {
    closeSync(this.#fd);
  }

  get identity(): ChipIdentity {
    return {
      part: this.part.id,
      chipRevision: this.#header.chipRevision,
      bootloader: this.#header.bootloader,
    };
  }

  /** Re-reads the header (option bytes and volatile flags) that another process may have changed. */
  refresh(): void {
    this.#header = readHeader(this.#fd, this.file);
  }

  get options(): Readonly<OptionBytes> {
    this.refresh();
    return this.#header.options;
  }

  get volatile(): Readonly<ChipVolatile> {
    this.refresh();
    return this.#header.volatile;
  }

  /** RDP level 0, 1 or 2 from the RDP byte. */
  get rdpLevel(): 0 | 1 | 2 {
    const rdp = this.options.rdp;
    return rdp === RDP_LEVEL0 ? 0 : rdp === RDP_LEVEL2 ? 2 : 1;
  }

  updateVolatile(change: Partial<ChipVolatile>): void {
    this.refresh();
    Object.assign(this.#header.volatile, change);
    this.#writeHeader();
  }

  /**
   * Changes option bytes. RDP level 2 is permanent on a real chip and is never set by this harness.
   * Going from level 1 to level 0 mass-erases the flash (RM0433 section 4.5.3), as the real chip does.
   */
  setOptions(change: Partial<OptionBytes>): void {
    if (change.rdp === RDP_LEVEL2) {
      throw new ChipError('E_RDP2_REFUSED', 'RDP level 2 is irreversible and is never set by stm32-hil');
    }
    this.refresh();
    const wasLevel1 = this.#header.options.rdp !== RDP_LEVEL0;
    Object.assign(this.#header.options, change);
    this.#writeHeader();
    if (wasLevel1 && this.#header.options.rdp === RDP_LEVEL0) this.massErase();
  }

  /** Power off and on: volatile flags and RAM are lost, flash and option bytes stay. */
  powerCycle(boot0: boolean = this.volatile.boot0): void {
    this.#ram.clear();
    this.refresh();
    const v = this.#header.volatile;
    this.#header.volatile = {
      powered: true,
      boot0,
      powerCycles: v.powerCycles + 1,
      dfuUsedSincePowerOn: false,
      resetsSincePowerOn: 0,
    };
    this.#writeHeader();
  }

  sectorAt(address: number): FlashSector | undefined {
    return this.sectors.find((s) => address >= s.start && address < s.start + s.size);
  }

  isFlash(address: number, length = 1): boolean {
    return address >= this.flashBase && address + length <= this.flashBase + this.flashSize;
  }

  /** Flash bytes as stored (what any reader sees). */
  readFlash(address: number, length: number): Uint8Array {
    if (!this.isFlash(address, length)) {
      throw new ChipError('E_SIM_NOT_FLASH', `${hex32(address)}+${length} is not flash`, { address, length });
    }
    const out = Buffer.alloc(length);
    readSync(this.#fd, out, 0, length, HEADER_BYTES + address - this.flashBase);
    return new Uint8Array(out.buffer, out.byteOffset, out.length);
  }

  /** Sets a sector to the erased value. Write-protected sectors are left alone (no error, AN3156). */
  eraseSector(sector: FlashSector): void {
    if (this.options.writeProtected.includes(sector.globalIndex)) return;
    const erased = Buffer.alloc(sector.size, this.part.flash.erasedValue);
    writeSync(this.#fd, erased, 0, erased.length, HEADER_BYTES + sector.start - this.flashBase);
    this.#setProgrammed(sector.start, sector.size, false);
  }

  massErase(bank?: number): void {
    for (const s of this.sectors) {
      if (bank === undefined || s.bank === bank) {
        const erased = Buffer.alloc(s.size, this.part.flash.erasedValue);
        writeSync(this.#fd, erased, 0, erased.length, HEADER_BYTES + s.start - this.flashBase);
        this.#setProgrammed(s.start, s.size, false);
      }
    }
  }

  /**
   * Programs flash as the hardware does. On ECC flash (H7: 256-bit words, RM0433 section 4.3.9) a word that was
   * programmed since its last erase cannot be programmed again (PGSERR/INCERR); elsewhere (F4) bits can only go
   * from 1 to 0. Weak bits configured for the board do not hold. Returns false, writing nothing, on a
   * programming error.
   */
  programFlash(
    address: number,
    data: Uint8Array,
  ): { ok: true } | { ok: false; address: number; reason: string } {
    if (!this.isFlash(address, data.length)) {
      return { ok: false, address, reason: 'not flash' };
    }
    const sector = this.sectorAt(address)!;
    if (this.options.writeProtected.includes(sector.globalIndex)) return { ok: true };
    const unit = this.part.flash.programUnit;
    const current = this.readFlash(address, data.length);
    const first = Math.floor((address - this.flashBase) / unit);
    const last = Math.floor((address + data.length - 1 - this.flashBase) / unit);
    // One read and one write of the programmed-word bitmap for the whole range (not one per word).
    const bitmapAt = this.#bitmapOffset() + (first >> 3);
    const bitmap = Buffer.alloc((last >> 3) - (first >> 3) + 1);
    readSync(this.#fd, bitmap, 0, bitmap.length, bitmapAt);
    const bitOf = (w: number): [number, number] => [(w >> 3) - (first >> 3), 1 << (w & 7)];
    if (this.part.flash.eccWords) {
      for (let w = first; w <= last; w++) {
        const [i, m] = bitOf(w);
        if ((bitmap[i]! & m) !== 0) {
          return {
            ok: false,
            address: this.flashBase + w * unit,
            reason: 'flash word already programmed since erase',
          };
        }
      }
    } else {
      for (let i = 0; i < data.length; i++) {
        if ((current[i]! & data[i]!) !== data[i]!) {
          return { ok: false, address: address + i, reason: 'bits cannot go from 0 to 1 without erase' };
        }
      }
    }
    const stored = Buffer.from(data);
    for (const [a, mask] of this.#weakBits) {
      if (a >= address && a < address + data.length) stored[a - address]! &= ~mask & 0xff;
    }
    writeSync(this.#fd, stored, 0, stored.length, HEADER_BYTES + address - this.flashBase);
    for (let w = first; w <= last; w++) {
      const [i, m] = bitOf(w);
      bitmap[i]! |= m;
    }
    writeSync(this.#fd, bitmap, 0, bitmap.length, bitmapAt);
    return { ok: true };
  }

  /** RAM regions of the part (volatile, per process). Unwritten RAM reads as zero. */
  readRam(address: number, length: number): Uint8Array {
    const out = new Uint8Array(length);
    for (const [base, bytes] of this.#ram) {
      const from = Math.max(base, address);
      const to = Math.min(base + bytes.length, address + length);
      if (from < to) out.set(bytes.subarray(from - base, to - base), from - address);
    }
    return out;
  }

  writeRam(address: number, data: Uint8Array): void {
    this.#ram.set(address, new Uint8Array(data));
  }

  /** The bootloader version byte as system memory holds it (AN2606: e.g. 0x1FF1E7FE on the H74x). */
  get bootloaderVersion(): number {
    return this.#header.bootloader;
  }

  get chipRevision(): string {
    return this.#header.chipRevision;
  }

  #bitmapOffset(): number {
    return HEADER_BYTES + this.flashSize;
  }

  #markProgrammed(word: number, value: boolean): void {
    const pos = this.#bitmapOffset() + (word >> 3);
    const b = Buffer.alloc(1);
    readSync(this.#fd, b, 0, 1, pos);
    b[0] = value ? b[0]! | (1 << (word & 7)) : b[0]! & ~(1 << (word & 7));
    writeSync(this.#fd, b, 0, 1, pos);
  }

  #setProgrammed(start: number, size: number, value: boolean): void {
    const unit = this.part.flash.programUnit;
    const first = (start - this.flashBase) / unit;
    const count = size / unit;
    if (first % 8 === 0 && count % 8 === 0) {
      const bytes = Buffer.alloc(count / 8, value ? 0xff : 0);
      writeSync(this.#fd, bytes, 0, bytes.length, this.#bitmapOffset() + first / 8);
      return;
    }
    for (let w = first; w < first + count; w++) this.#markProgrammed(w, value);
  }

  #writeHeader(): void {
    const json = Buffer.from(JSON.stringify(this.#header));
    if (json.length >= HEADER_BYTES) throw new ChipError('E_SIM_STATE', 'virtual chip header too large');
    const block = Buffer.alloc(HEADER_BYTES, 0x20);
    json.copy(block);
    writeSync(this.#fd, block, 0, HEADER_BYTES, 0);
  }
}

function readHeader(fd: number, file: string): Header {
  const size = fstatSync(fd).size;
  const block = Buffer.alloc(HEADER_BYTES);
  readSync(fd, block, 0, HEADER_BYTES, 0);
  try {
    const h = JSON.parse(block.toString('utf8').trimEnd()) as Header;
    if (h.magic !== 'stm32-hil-virtual-chip' || h.version !== 1 || size < HEADER_BYTES + h.flashSize)
      throw new Error('bad header');
    return h;
  } catch {
    throw new ChipError(
      'E_SIM_STATE',
      `${file} is not a virtual chip state file (delete it to start from an erased chip)`,
      {
        file,
      },
    );
  }
}
