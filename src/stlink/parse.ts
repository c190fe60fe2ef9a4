import type { StlinkErrorCode } from './errors.ts';

/**
 * Parser of STM32CubeProgrammer output: the CLI (STM32_Programmer_CLI 2.1 to 2.20), the GUI log pane
 * ("10:34:59 : " prefixes), verbose logs ("13:05:04:121 : ") and the same text pasted from a forum (non-breaking
 * spaces, blank lines between every line). The whole output is read: the tool can print `Error:` and exit 0, or
 * print an error and then "verified successfully", so the verdict comes from the lines, not the exit code.
 * Hand-written: no library parses this tool's free-form output.
 */

export interface ProbeInfo {
  serial?: string;
  firmware?: string;
  board?: string;
  /** Target voltage the probe measured, volts. */
  voltage?: number;
  /** SWD/JTAG clock, kHz. */
  frequencyKHz?: number;
  accessPort?: number;
}

export interface TargetInfo {
  /** DBGMCU DEV_ID (0x450), whether printed as 0x450 or 0x0450. */
  deviceId?: number;
  /** Revision letter ("V" from "Rev V"), or the text when it is not "Rev X". */
  revision?: string;
  deviceName?: string;
  flashSize?: number;
  flashSizeText?: string;
  deviceType?: string;
  cpu?: string;
  /** Bootloader version byte ("BL Version : 0x90"); undefined for "--". */
  bootloaderVersion?: number;
  /** The tool warned that read-out protection is active. */
  readProtected?: boolean;
}

export interface UsbDfuInfo {
  speed?: string;
  manufacturer?: string;
  product?: string;
  serial?: string;
  dfuProtocol?: string;
}

export type OperationKind =
  | 'connect'
  | 'list-probes'
  | 'read'
  | 'download'
  | 'verify'
  | 'erase'
  | 'mass-erase'
  | 'option-bytes-read'
  | 'option-bytes-write'
  | 'reset'
  | 'compare';

export interface Operation {
  kind: OperationKind;
  /** 'incomplete': started, but the output never said how it ended. */
  outcome: 'ok' | 'failed' | 'incomplete';
  /** 1-based line where it started. */
  line: number;
  /** Facts printed inside it: file, size, address, erased sectors, interface. */
  details: Record<string, unknown>;
  /** The tool claimed success after having printed an error for this operation (the error stands). */
  successClaimedAfterError?: boolean;
}

export interface ParsedError {
  code: StlinkErrorCode;
  /** 1-based line number in the text given to the parser. */
  line: number;
  /** The line as printed (timestamp removed). */
  text: string;
  details: Record<string, unknown>;
  /** A follow-up line of an earlier error ("failed to download the File" after "... Sector[0]"). */
  secondary?: boolean;
  /** A connection error the tool recovered from (it retried and connected). */
  recovered?: boolean;
}

export interface OptionByte {
  bank: number;
  name: string;
  /** Numeric value when the tool printed one (0xAA, 0x1). */
  value?: number;
  /** Value as printed ("0xAA", "Disabled"). */
  raw: string;
  /** The tool's explanation in parentheses. */
  description?: string;
  line: number;
}

export interface MemoryDump {
  address: number;
  bytes: Uint8Array;
  line: number;
}

export interface ProgrammerOutput {
  /** "2.17.0" from the banner or the GUI's API line. */
  version?: string;
  /** The last probe block printed (after a retry, the one that connected). */
  probe?: ProbeInfo;
  /** Probes listed by `-l st-link`. */
  probes: ProbeInfo[];
  connection?: { interface: 'swd' | 'jtag' | 'usb-dfu'; connectMode?: string; resetMode?: string };
  usb?: UsbDfuInfo;
  target?: TargetInfo;
  operations: Operation[];
  errors: ParsedError[];
  warnings: Array<{ line: number; text: string }>;
  optionBytes: OptionByte[];
  memory: MemoryDump[];
  /** Lines after cleaning (timestamps, progress bars and non-breaking spaces removed), index = line - 1. */
  lines: string[];
  /** True when at least one line looked like the tool's output (banner, probe, target or operation). */
  recognised: boolean;
  /** No error that still stands, and every operation that ended said so. */
  ok: boolean;
}

// "10:34:59 : " (GUI log), "13:05:04:121 : " (verbose log), "16:07:44:325 " (older verbose log).
const TIMESTAMP = /^\s*\d{1,2}:\d{2}:\d{2}(?:[:.]\d{1,3})?(?:\s+:\s?|\s+)/;
const PROGRESS = /[█▒░■]+\s*\d*\s*%?/g;

/** Removes what varies between copies of the same output: timestamps, progress bars, NBSP, CR. */
export function cleanLine(raw: string): string {
  return raw
    .replace(/\r$/, '')
    .replace(/\u00a0/g, ' ')
    .replace(TIMESTAMP, '')
    .replace(PROGRESS, '')
    .trimEnd();
}

/** "0x450", "0x0450", "450h"-free hex; undefined for "--", "unknown". */
export function parseHex(text: string): number | undefined {
  const m = /^\s*0x([0-9a-f]+)\b/i.exec(text);
  return m ? Number.parseInt(m[1]!, 16) : undefined;
}

/** "3.26V", "3,26V", "3.26 V" -> 3.26. */
export function parseVoltage(text: string): number | undefined {
  const m = /(\d+(?:[.,]\d+)?)\s*V\b/i.exec(text);
  return m ? Number.parseFloat(m[1]!.replace(',', '.')) : undefined;
}

/**
 * Sizes as the tool prints them: "2 MBytes", "256 KBytes (default)", "60.15 KB", "179,23 KB" (a decimal comma
 * where the locale wants one), "1024 Bytes", "157296 Bytes". Bytes, rounded.
 */
export function parseSize(text: string): number | undefined {
  const m = /(\d+(?:[.,]\d+)?)\s*(M|K|G)?\s*(?:B\b|Bytes?\b|Byte)/i.exec(text);
  if (!m) return undefined;
  const n = Number.parseFloat(m[1]!.replace(',', '.'));
  const unit = (m[2] ?? '').toUpperCase();
  const mult = unit === 'K' ? 1024 : unit === 'M' ? 1024 * 1024 : unit === 'G' ? 1024 ** 3 : 1;
  return Math.round(n * mult);
}

/** "4000 KHz", "8 MHz" -> kHz. */
export function parseFrequency(text: string): number | undefined {
  const m = /(\d+(?:[.,]\d+)?)\s*(K|M)?Hz/i.exec(text);
  if (!m) return undefined;
  const n = Number.parseFloat(m[1]!.replace(',', '.'));
  return Math.round((m[2] ?? 'K').toUpperCase() === 'M' ? n * 1000 : n);
}

/**
 * Classifies one error line. Order matters: the specific patterns come before the generic ones.
 * Wording from real outputs (seeds 000, 003, 004, ST community threads) and CubeProgrammer 2.x.
 */
export function classifyError(text: string): { code: StlinkErrorCode; details: Record<string, unknown> } {
  const t = text.replace(/^Error:\s*/i, '');
  let m =
    /Data mismatch found at address\s+(0x[0-9a-f]+)\s*\(\s*byte\s*=\s*(0x[0-9a-f]+)\s+instead of\s+(0x[0-9a-f]+)\s*\)/i.exec(
      t,
    );
  if (m) {
    // "(byte = 0x00 instead of 0x08)": 0x00 is what the chip holds, 0x08 what the file wanted.
    return {
      code: 'E_STLINK_DATA_MISMATCH',
      details: { address: parseHex(m[1]!), actual: parseHex(m[2]!), expected: parseHex(m[3]!) },
    };
  }
  if (/No STM32 target found/i.test(t)) return { code: 'E_STLINK_NO_TARGET', details: {} };
  m = /failed to download\s+(Sector|Segment)\s*\[\s*(\d+)\s*\]/i.exec(t);
  if (m)
    return { code: 'E_STLINK_DOWNLOAD_FAILED', details: { unit: m[1]!.toLowerCase(), index: Number(m[2]) } };
  if (/Not flash Memory/i.test(t)) return { code: 'E_STLINK_NOT_FLASH', details: {} };
  if (/DEV_USB_COMM_ERR|USB communication|LIBUSB_ERROR|libusb/i.test(t)) {
    const dev = /\((DEV_\w+)\)/.exec(t)?.[1] ?? /(LIBUSB_ERROR_\w+)/.exec(t)?.[1];
    return { code: 'E_STLINK_USB_COMM', details: dev ? { probeCode: dev } : {} };
  }
  if (
    /No (?:debug probe|ST-?LINK)s?\b.*(?:serial|sn)/i.test(t) ||
    /serial number.*not (?:found|detected)/i.test(t)
  ) {
    return { code: 'E_STLINK_PROBE_NOT_FOUND', details: {} };
  }
  if (/No (?:debug probe|ST-?LINK)s?\b/i.test(t)) return { code: 'E_STLINK_NO_PROBE', details: {} };
  if (/verification failed|verify failed/i.test(t)) return { code: 'E_STLINK_VERIFY_FAILED', details: {} };
  if (/read ?out protection|memory protection mechanism|read protect/i.test(t))
    return { code: 'E_STLINK_RDP_ACTIVE', details: {} };
  if (/unknown or unsupported device|Cannot identify the device|Unable to get core ID/i.test(t)) {
    const id = /DevID\s*=\s*(0x[0-9a-f]+)/i.exec(t)?.[1];
    return { code: 'E_STLINK_UNKNOWN_DEVICE', details: id ? { deviceId: parseHex(id) } : {} };
  }
  m = /ST-?LINK error \((\w+)\)/i.exec(t);
  if (m) return { code: 'E_STLINK_PROBE_ERROR', details: { probeCode: m[1] } };
  if (/Option Byte/i.test(t)) return { code: 'E_STLINK_OPTION_BYTES', details: {} };
  if (/failed to download|download(?:ing)? .*failed|Failed to download data/i.test(t)) {
    return { code: 'E_STLINK_DOWNLOAD_FAILED', details: {} };
  }
  if (/erase/i.test(t)) return { code: 'E_STLINK_ERASE_FAILED', details: {} };
  if (/read/i.test(t) && /fail|not acknowledged|could not/i.test(t))
    return { code: 'E_STLINK_READ_FAILED', details: {} };
  if (
    /file/i.test(t) &&
    /(does not exist|not found|cannot open|can't open|unable to open|wrong|not supported|parse)/i.test(t)
  ) {
    return { code: 'E_STLINK_FILE', details: {} };
  }
  if (
    /wrong (?:command|parameter|argument)|unknown (?:option|command)|invalid (?:argument|command|option)|missing (?:argument|parameter)/i.test(
      t,
    )
  ) {
    return { code: 'E_STLINK_USAGE', details: {} };
  }
  return { code: 'E_STLINK_ERROR', details: {} };
}

type KeyHandler = (value: string, out: ProgrammerOutput, ctx: ParseState) => void;

interface ParseState {
  lineNo: number;
  current: Operation | undefined;
  obBank: number | undefined;
  inProbeList: boolean;
}

function probe(out: ProgrammerOutput, ctx: ParseState): ProbeInfo {
  if (ctx.inProbeList) {
    const last = out.probes.at(-1);
    if (last) return last;
  }
  out.probe ??= {};
  return out.probe;
}

function target(out: ProgrammerOutput): TargetInfo {
  out.target ??= {};
  return out.target;
}

function startOperation(
  out: ProgrammerOutput,
  ctx: ParseState,
  kind: OperationKind,
  details: Record<string, unknown> = {},
): Operation {
  const op: Operation = { kind, outcome: 'incomplete', line: ctx.lineNo, details };
  out.operations.push(op);
  ctx.current = op;
  return op;
}

function succeed(out: ProgrammerOutput, kinds: OperationKind[]): void {
  for (let i = out.operations.length - 1; i >= 0; i--) {
    const op = out.operations[i]!;
    if (!kinds.includes(op.kind)) continue;
    if (op.outcome === 'failed') op.successClaimedAfterError = true;
    else op.outcome = 'ok';
    return;
  }
}

// "Key : value" lines of the probe and target blocks (both CLI layouts: "ST-LINK SN  :" and "ST-LINK SN :").
const KEYS: Record<string, KeyHandler> = {
  'st-link sn': (v, out, ctx) => {
    if (!ctx.inProbeList) {
      // A new probe block is a new connection attempt (the tool retries at a lower clock, seed 004).
      out.probe = {};
      out.connection = { interface: 'swd' };
      startOperation(out, ctx, 'connect', { interface: 'swd' });
    }
    probe(out, ctx).serial = v.trim();
  },
  'st-link fw': (v, out, ctx) => {
    probe(out, ctx).firmware = v.trim();
  },
  board: (v, out, ctx) => {
    if (v.trim() !== '--') probe(out, ctx).board = v.trim();
  },
  'board name': (v, out, ctx) => {
    if (v.trim() !== '--') probe(out, ctx).board = v.trim();
  },
  'access port number': (v, out, ctx) => {
    const n = Number.parseInt(v, 10);
    if (Number.isFinite(n)) probe(out, ctx).accessPort = n;
  },
  voltage: (v, out, ctx) => {
    const volts = parseVoltage(v);
    if (volts !== undefined) probe(out, ctx).voltage = volts;
  },
  'swd freq': (v, out, ctx) => {
    const f = parseFrequency(v);
    if (f !== undefined) probe(out, ctx).frequencyKHz = f;
  },
  'jtag freq': (v, out, ctx) => {
    const f = parseFrequency(v);
    if (f !== undefined) probe(out, ctx).frequencyKHz = f;
    if (out.connection) out.connection.interface = 'jtag';
  },
  'connect mode': (v, out) => {
    out.connection ??= { interface: 'swd' };
    out.connection.connectMode = v.trim();
  },
  'reset mode': (v, out) => {
    out.connection ??= { interface: 'swd' };
    out.connection.resetMode = v.trim();
  },
  'usb speed': (v, out, ctx) => {
    out.usb = { speed: v.trim() };
    out.connection = { interface: 'usb-dfu' };
    startOperation(out, ctx, 'connect', { interface: 'usb-dfu' });
  },
  'manuf. id': (v, out) => {
    out.usb ??= {};
    out.usb.manufacturer = v.trim();
  },
  'product id': (v, out) => {
    out.usb ??= {};
    out.usb.product = v.trim();
  },
  sn: (v, out) => {
    out.usb ??= {};
    out.usb.serial = v.trim();
  },
  'dfu protocol': (v, out) => {
    out.usb ??= {};
    out.usb.dfuProtocol = v.trim();
  },
  'device id': (v, out) => {
    const id = parseHex(v);
    if (id !== undefined && id !== 0) {
      target(out).deviceId = id;
      succeed(out, ['connect']);
    }
  },
  'revision id': (v, out) => {
    const m = /^Rev\s+(\S+)/i.exec(v.trim());
    target(out).revision = m ? m[1]! : v.trim();
  },
  'device name': (v, out) => {
    target(out).deviceName = v.trim();
  },
  'flash size': (v, out) => {
    const t = target(out);
    t.flashSizeText = v.trim();
    const n = parseSize(v);
    if (n !== undefined) t.flashSize = n;
  },
  'device type': (v, out) => {
    target(out).deviceType = v.trim();
  },
  'device cpu': (v, out) => {
    target(out).cpu = v.trim();
  },
  'bl version': (v, out) => {
    const n = parseHex(v);
    if (n !== undefined) target(out).bootloaderVersion = n;
  },
  // Facts inside an operation ("  File : x.srec", "  Size : 65.18 KB", "  Address : 0x08000000", "  Bank : 0x00").
  file: (v, _out, ctx) => {
    if (ctx.current) ctx.current.details.file = v.trim();
  },
  size: (v, _out, ctx) => {
    if (ctx.current) {
      const n = parseSize(v);
      ctx.current.details.sizeText = v.trim();
      if (n !== undefined) ctx.current.details.size = n;
    }
  },
  address: (v, _out, ctx) => {
    const n = parseHex(v);
    if (ctx.current && n !== undefined) ctx.current.details.address = n;
  },
  bank: (v, _out, ctx) => {
    const n = parseHex(v);
    if (ctx.current && n !== undefined) ctx.current.details.bank = n;
  },
};

const KEY_VALUE = /^\s*([A-Za-z][A-Za-z0-9 .\-/]*?)\s*:\s*(.*)$/;
const OPTION_BYTE = /^\s*([A-Za-z][A-Za-z0-9_]*)\s*:\s*(\S+)\s*(?:\((.*)\))?\s*$/;
const MEMORY_LINE = /^\s*0x([0-9a-f]{1,8})\s*:\s*((?:[0-9a-f]{2,8}\s*)+)$/i;

function markFailed(out: ProgrammerOutput, ctx: ParseState): void {
  const op = ctx.current ?? out.operations.at(-1);
  if (op) op.outcome = 'failed';
}

function addError(out: ProgrammerOutput, ctx: ParseState, text: string): void {
  const { code, details } = classifyError(text);
  const err: ParsedError = { code, line: ctx.lineNo, text, details };
  const prev = out.errors.at(-1);
  // Follow-up lines restate the error above them: keep them as evidence, not as new causes.
  if (
    prev &&
    ((code === 'E_STLINK_DOWNLOAD_FAILED' &&
      /the file/i.test(text) &&
      ['E_STLINK_DOWNLOAD_FAILED', 'E_STLINK_NOT_FLASH'].includes(prev.code)) ||
      (code === 'E_STLINK_VERIFY_FAILED' && prev.code === 'E_STLINK_DATA_MISMATCH') ||
      (code === 'E_STLINK_DOWNLOAD_FAILED' && prev.code === 'E_STLINK_NOT_FLASH'))
  ) {
    err.secondary = true;
  }
  out.errors.push(err);
  markFailed(out, ctx);
}

/** Parses the whole output of one run (or a pasted log). Never throws. */
export function parseProgrammerOutput(text: string): ProgrammerOutput {
  const out: ProgrammerOutput = {
    probes: [],
    operations: [],
    errors: [],
    warnings: [],
    optionBytes: [],
    memory: [],
    lines: [],
    recognised: false,
    ok: false,
  };
  const ctx: ParseState = { lineNo: 0, current: undefined, obBank: undefined, inProbeList: false };
  const rawLines = text.split('\n');
  for (const raw of rawLines) {
    ctx.lineNo++;
    const line = cleanLine(raw);
    out.lines.push(line);
    const t = line.trim();
    if (t === '') continue;

    let m = /STM32CubeProgrammer(?:\s+API)?\s+v(\d+\.\d+(?:\.\d+)?)/i.exec(t);
    if (m) {
      out.version = m[1]!;
      out.recognised = true;
      continue;
    }
    if (/^Error\b\s*:/i.test(t)) {
      addError(out, ctx, t);
      continue;
    }
    if (/^Not flash Memory\b/i.test(t)) {
      // Not an "Error:" line, but the cause of the failure that follows (seed 000: data outside flash).
      addError(out, ctx, t);
      continue;
    }
    if (/^Warning\b\s*:/i.test(t)) {
      out.warnings.push({ line: ctx.lineNo, text: t });
      m = /First difference found at\s+(0x[0-9a-f]+)/i.exec(t);
      if (m) startOperation(out, ctx, 'compare', { address: parseHex(m[1]!) }).outcome = 'failed';
      if (/Read Out Protection/i.test(t)) target(out).readProtected = true;
      continue;
    }

    // Operation markers.
    if (/^-+\s*Connected ST-LINK Probes List|^=+\s*STLink Interface|^ST-Link Probe\s+\d+/i.test(t)) {
      if (!ctx.inProbeList) startOperation(out, ctx, 'list-probes');
      ctx.inProbeList = true;
      out.recognised = true;
      m = /^ST-Link Probe\s+(\d+)/i.exec(t);
      if (m) out.probes.push({});
      continue;
    }
    if (/^2nd connect tentative/i.test(t)) {
      out.recognised = true;
      continue;
    }
    if (/^Memory Programming/i.test(t)) {
      // CLI 2.17 prints this before "Opening and parsing file", 2.20 and the GUI after it: one operation.
      const cur = ctx.current;
      if (!(cur?.kind === 'download' && cur.outcome === 'incomplete' && cur.details.erase === undefined)) {
        startOperation(out, ctx, 'download');
      }
      out.recognised = true;
      continue;
    }
    if (/^Downloading\s+\d+-bit data\.*$/i.test(t)) {
      startOperation(out, ctx, 'download');
      out.recognised = true;
      continue;
    }
    if (/^Opening and parsing file:\s*(.+)$/i.test(t)) {
      const file = /^Opening and parsing file:\s*(.+)$/i.exec(t)![1]!.trim();
      const cur = ctx.current;
      if (!(cur?.kind === 'download' && cur.outcome === 'incomplete' && cur.details.erase === undefined)) {
        startOperation(out, ctx, 'download');
      }
      ctx.current!.details.file = file;
      out.recognised = true;
      continue;
    }
    m = /^Erasing (?:memory corresponding to (sector|segment)\s+(\d+)|internal memory sectors?\s+(.+))/i.exec(
      t,
    );
    if (m) {
      out.recognised = true;
      if (ctx.current?.kind === 'download' && ctx.current.outcome === 'incomplete') {
        const erased = (ctx.current.details.erase as string[] | undefined) ?? [];
        erased.push(t);
        ctx.current.details.erase = erased;
      } else {
        startOperation(out, ctx, 'erase', { what: t });
      }
      continue;
    }
    if (/^(?:Erase sector|Erasing sector|Flash sector erase)/i.test(t)) {
      startOperation(out, ctx, 'erase', { what: t });
      out.recognised = true;
      continue;
    }
    if (/^Mass erase\s*\.\.\./i.test(t)) {
      startOperation(out, ctx, 'mass-erase');
      out.recognised = true;
      continue;
    }
    if (/^Mass erase (?:successfully achieved|command correctly executed)/i.test(t)) {
      succeed(out, ['mass-erase']);
      continue;
    }
    if (
      /(?:sector|sectors|memory) erased successfully|erase operation achieved successfully|Erase (?:done|achieved) successfully/i.test(
        t,
      )
    ) {
      succeed(out, ['erase']);
      continue;
    }
    if (
      /^File download complete|^Downloading\s+\d+-bit data done successfully|^Download (?:done|complete)/i.test(
        t,
      )
    ) {
      succeed(out, ['download']);
      continue;
    }
    if (/^Verifying\s*\.\.\./i.test(t)) {
      startOperation(out, ctx, 'verify');
      out.recognised = true;
      continue;
    }
    if (/verified successfully/i.test(t)) {
      succeed(out, ['verify']);
      continue;
    }
    if (/^UPLOADING OPTION BYTES DATA/i.test(t)) {
      startOperation(out, ctx, 'option-bytes-read');
      out.recognised = true;
      continue;
    }
    if (/^PROGRAMMING OPTION BYTES AREA/i.test(t)) {
      startOperation(out, ctx, 'option-bytes-write');
      out.recognised = true;
      continue;
    }
    if (/^Option Bytes? successfully programmed|^Option byte command/i.test(t)) {
      if (/successfully/i.test(t)) succeed(out, ['option-bytes-write']);
      continue;
    }
    m = /^OPTION BYTES BANK:\s*(\d+)/i.exec(t);
    if (m) {
      ctx.obBank = Number(m[1]);
      if (ctx.current?.kind !== 'option-bytes-read') startOperation(out, ctx, 'option-bytes-read');
      out.recognised = true;
      continue;
    }
    if (/^UPLOADING\s*\.\.\./i.test(t) || /^Reading\s+\d+-bit memory content/i.test(t)) {
      startOperation(out, ctx, 'read');
      out.recognised = true;
      continue;
    }
    if (/^Data read successfully/i.test(t)) {
      succeed(out, ['read', 'option-bytes-read']);
      continue;
    }
    if (/^MCU Reset|^System Reset/i.test(t)) {
      startOperation(out, ctx, 'reset');
      out.recognised = true;
      continue;
    }
    if (/^(?:Software|Hardware|Core|System) reset is performed/i.test(t)) {
      if (ctx.current?.kind !== 'reset') startOperation(out, ctx, 'reset');
      succeed(out, ['reset']);
      continue;
    }
    if (/^Download in Progress|^Read progress|^Time elapsed/i.test(t)) continue;

    m = MEMORY_LINE.exec(t);
    if (m) {
      const words = m[2]!.trim().split(/\s+/);
      const width = words[0]!.length / 2;
      const bytes = new Uint8Array(words.length * width);
      words.forEach((w, i) => {
        const v = Number.parseInt(w, 16);
        // -r32 prints little-endian words as numbers: byte 0 is the low byte.
        for (let b = 0; b < width; b++) bytes[i * width + b] = Math.floor(v / 256 ** b) & 0xff;
      });
      out.memory.push({ address: Number.parseInt(m[1]!, 16), bytes, line: ctx.lineNo });
      if (ctx.current?.kind !== 'read') startOperation(out, ctx, 'read');
      succeed(out, ['read']);
      out.recognised = true;
      continue;
    }

    if (ctx.obBank !== undefined && ctx.current?.kind === 'option-bytes-read') {
      m = OPTION_BYTE.exec(t);
      if (m && !/^(?:bank|address|size|file)$/i.test(m[1]!)) {
        out.optionBytes.push({
          bank: ctx.obBank,
          name: m[1]!,
          raw: m[2]!,
          ...(parseHex(m[2]!) !== undefined ? { value: parseHex(m[2]!) } : {}),
          ...(m[3] !== undefined ? { description: m[3].trim() } : {}),
          line: ctx.lineNo,
        });
        ctx.current.outcome = 'ok';
        continue;
      }
    }

    m = KEY_VALUE.exec(t);
    if (m) {
      const key = m[1]!.toLowerCase().replace(/\s+/g, ' ');
      const handler = KEYS[key];
      if (handler) {
        handler(m[2]!, out, ctx);
        if (key !== 'file' && key !== 'size' && key !== 'address' && key !== 'bank') out.recognised = true;
      }
    }
  }

  // A connection error followed by a successful connection was recovered (the tool retried).
  const lastConnectOk = out.operations.filter((o) => o.kind === 'connect' && o.outcome === 'ok').at(-1);
  for (const e of out.errors) {
    if (
      lastConnectOk &&
      e.line < lastConnectOk.line + 1 &&
      ['E_STLINK_NO_TARGET', 'E_STLINK_UNKNOWN_DEVICE', 'E_STLINK_PROBE_ERROR'].includes(e.code)
    ) {
      e.recovered = true;
    }
  }
  // The first connect attempt that failed is the one the error belongs to; mark attempts without a device ID.
  for (const op of out.operations) {
    if (op.kind === 'connect' && op.outcome === 'incomplete' && out.errors.some((e) => e.line > op.line))
      op.outcome = 'failed';
  }
  out.ok =
    standingErrors(out).length === 0 &&
    out.operations.every(
      (o) =>
        o.outcome !== 'failed' ||
        (o.kind === 'connect' && lastConnectOk !== undefined && o.line < lastConnectOk.line),
    );
  return out;
}

/** Errors that still stand: not recovered from. Secondary lines are included (they are evidence). */
export function standingErrors(out: ProgrammerOutput): ParsedError[] {
  return out.errors.filter((e) => !e.recovered);
}

/** The error that explains the failure: the first standing, non-secondary one. */
export function primaryError(out: ProgrammerOutput): ParsedError | undefined {
  return out.errors.find((e) => !e.recovered && !e.secondary) ?? out.errors.find((e) => !e.recovered);
}

export interface OptionBytesOfInterest {
  /** RDP level 0, 1 or 2 (RM0433 4.4.4 / RM0090 3.7.3: 0xAA level 0, 0xCC level 2, else level 1). */
  rdpLevel?: 0 | 1 | 2;
  rdpRaw?: string;
  /** H7 SWAP_BANK_OPT: banks swapped after boot. */
  swapBank?: boolean;
  /** Boot addresses (H7 BOOT_CM7_ADD0/1 or BOOT_ADD0/1), as full addresses. */
  bootAddress0?: number;
  bootAddress1?: number;
}

function bootAddress(ob: OptionByte | undefined): number | undefined {
  if (!ob) return undefined;
  // The CLI prints "0x800 (0x8000000)": the register field (address >> 16) then the address.
  const full = ob.description ? parseHex(ob.description) : undefined;
  if (full !== undefined) return full;
  return ob.value !== undefined ? ob.value * 0x10000 : undefined;
}

export function optionBytesOfInterest(obs: readonly OptionByte[]): OptionBytesOfInterest {
  const find = (...names: string[]) => obs.find((o) => names.includes(o.name.toUpperCase()));
  const out: OptionBytesOfInterest = {};
  const rdp = find('RDP');
  if (rdp) {
    out.rdpRaw = rdp.raw;
    if (rdp.value !== undefined) out.rdpLevel = rdp.value === 0xaa ? 0 : rdp.value === 0xcc ? 2 : 1;
    else if (/disabled|level 0/i.test(`${rdp.raw} ${rdp.description ?? ''}`)) out.rdpLevel = 0;
    else if (/level 2/i.test(`${rdp.raw} ${rdp.description ?? ''}`)) out.rdpLevel = 2;
    else if (/enabled|level 1/i.test(`${rdp.raw} ${rdp.description ?? ''}`)) out.rdpLevel = 1;
  }
  const swap = find('SWAP_BANK', 'SWAP_BANK_OPT', 'BFB2');
  if (swap?.value !== undefined) out.swapBank = swap.value !== 0;
  const b0 = bootAddress(find('BOOT_CM7_ADD0', 'BOOT_ADD0'));
  const b1 = bootAddress(find('BOOT_CM7_ADD1', 'BOOT_ADD1'));
  if (b0 !== undefined) out.bootAddress0 = b0;
  if (b1 !== undefined) out.bootAddress1 = b1;
  return out;
}
