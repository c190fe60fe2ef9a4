import type { FlashSector, Part } from '../parts/catalogue.ts';
import type { RomQuirks } from './quirks.ts';

/**
 * How long the simulated ROM is busy, and what it reports as bwPollTimeout (USB DFU 1.1 section 6.1.2,
 * a 24-bit count of milliseconds). All figures are divided by `timeScale`. The busy time is enforced on the
 * board's Clock: a GETSTATUS before it elapsed answers dfuDNBUSY again with the remaining time.
 *
 * Reported poll timeouts are whole milliseconds rounded up, so a host that sleeps exactly bwPollTimeout never
 * sees a spurious dfuDNBUSY, and a host on a VirtualClock always advances time when the device is busy.
 */

export interface BusyTime {
  /** How long the operation keeps the device in dfuDNBUSY, ms (may be fractional). */
  busyMs: number;
  /** bwPollTimeout reported with the first dfuDNBUSY, whole ms. */
  pollTimeoutMs: number;
}

/**
 * Power-on (or reset) to "enumerated", ms, before timeScale: the ROM's own start (clock set-up and the
 * interface detection of AN2606 section "Bootloader activation"; order of tens of ms, an estimate: AN2606
 * gives no USB figure for the H7) plus what USB 2.0 makes the host wait: attach debounce TATTDB 100 ms
 * (section 7.1.7.3), reset TDRST 10 ms and reset recovery TRSTRCY 10 ms (section 9.2.6.2).
 */
export const ROM_START_MS = 50;
export const USB_ATTACH_MS = 100 + 10 + 10;
export const ENUMERATION_MS = ROM_START_MS + USB_ATTACH_MS;

export class TimingModel {
  readonly part: Part;
  readonly scale: number;
  readonly #quirks: RomQuirks;
  readonly #largestSector: number;

  constructor(part: Part, quirks: RomQuirks, timeScale = 1) {
    this.part = part;
    this.#quirks = quirks;
    this.scale = timeScale > 0 ? timeScale : 1;
    this.#largestSector = Math.max(...part.flash.banks.flatMap((b) => b.sectors.map((s) => s.size)));
  }

  scaled(ms: number): number {
    return ms / this.scale;
  }

  #busy(busyMs: number, reportedMs = busyMs): BusyTime {
    const busy = this.scaled(busyMs);
    return { busyMs: busy, pollTimeoutMs: Math.ceil(Math.max(this.scaled(reportedMs), busy)) };
  }

  /** Typical erase time of `sector`, ms before scaling (what the hardware takes). */
  sectorEraseMs(sector: FlashSector): number {
    // Sector erase time grows with size but not proportionally: DS8626 (F4) gives 16/64/128 KiB sectors
    // about 250/550/1000 ms, which 0.15 + 0.85 * size/largest reproduces within 5 %. On the H7 every sector
    // is 128 KiB: 0.9 s as in the CubeProgrammer trace (catalogue `sectorEraseMs`).
    return this.part.timing.sectorEraseMs * (0.15 + (0.85 * sector.size) / this.#largestSector);
  }

  sectorErase(sector: FlashSector): BusyTime {
    return this.#busy(this.sectorEraseMs(sector), this.#quirks.erasePollTimeoutMs);
  }

  massErase(): BusyTime {
    return this.#busy(this.part.timing.massEraseMs);
  }

  /** Programming `bytes` of flash: one flash word (programUnit bytes) at a time (catalogue programWordUs). */
  program(bytes: number): BusyTime {
    const words = Math.ceil(bytes / this.part.flash.programUnit);
    return this.#busy((words * this.part.timing.programWordUs) / 1000);
  }

  /** Commands that touch no flash (set address pointer, RAM writes, refused requests). */
  immediate(reportedMs = 0): BusyTime {
    return this.#busy(0, reportedMs);
  }

  /** bwPollTimeout reported while hung (0x90 bank 2 erase). */
  hangPollTimeoutMs(): number {
    return Math.ceil(this.scaled(this.#quirks.hangPollTimeoutMs));
  }

  enumerationMs(extraMs = 0): number {
    return this.scaled(ENUMERATION_MS + extraMs);
  }
}
