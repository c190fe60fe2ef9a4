import { cleanLine, type ProgrammerOutput, parseHex, parseProgrammerOutput } from '../stlink/parse.ts';
import { hex8, hex32 } from '../util/hex.ts';

/**
 * Triage of a log a user pasted: STM32CubeProgrammer (GUI log pane, CLI, verbose trace, the CubeIDE console
 * around it) or dfu-util. Each known failure signature becomes a finding with the lines that show it, the likely
 * causes, the next step and the harness suite that reproduces it. Signatures live in one table (SIGNATURES below).
 */

export type Confidence = 'certain' | 'likely' | 'possible';

/** Suites of the lead's suites/ folder a finding can point at. */
export type SuiteName =
  | 'flash-verify'
  | 'bank2-write'
  | 'ram-sections'
  | 'crosscheck'
  | 'power-cycle'
  | 'bootloader-entry'
  | 'option-bytes'
  | 'sector-stress';

export interface Evidence {
  /** 1-based line number in the log. */
  line: number;
  text: string;
}

export interface Finding {
  code: string;
  title: string;
  confidence: Confidence;
  evidence: Evidence[];
  causes: string[];
  next: string;
  suite?: SuiteName;
  details?: Record<string, unknown>;
}

export type LogTool =
  | 'cubeprogrammer-cli'
  | 'cubeprogrammer-gui'
  | 'cubeprogrammer-verbose'
  | 'dfu-util'
  | 'mixed'
  | 'unknown';

export interface TriageReport {
  file?: string;
  tool: LogTool;
  lines: number;
  /** What the log says about the setup (device, revision, bootloader, connection, tool version). */
  facts: {
    interface?: 'swd' | 'jtag' | 'usb-dfu';
    deviceId?: number;
    revision?: string;
    bootloaderVersion?: number;
    cliVersion?: string;
    probeSerial?: string;
    voltage?: number;
  };
  findings: Finding[];
  /** Lines that look like errors (always listed; the whole story when no signature matched). */
  errorLines: Evidence[];
  /** False when no signature matched: the report then says so plainly. */
  known: boolean;
}

interface Log {
  raw: string[];
  /** Cleaned (timestamps, NBSP, progress bars removed), index = line - 1. */
  text: string[];
  parsed: ProgrammerOutput;
}

const ev = (log: Log, i: number): Evidence => ({ line: i + 1, text: log.text[i]!.trim() });

function findAll(log: Log, re: RegExp, from = 0, to = log.text.length): number[] {
  const out: number[] = [];
  for (let i = from; i < to; i++) if (re.test(log.text[i]!)) out.push(i);
  return out;
}

function first(log: Log, re: RegExp, from = 0, to = log.text.length): number | undefined {
  for (let i = from; i < to; i++) if (re.test(log.text[i]!)) return i;
  return undefined;
}

/** Bank 2 of the STM32H74x/75x flash (RM0433 table 7: 0x08100000-0x081FFFFF), also written without the leading 0. */
const BANK2_ADDRESS = /0x0?81[0-9a-f]{5}\b/i;

type Signature = (log: Log) => Finding | undefined;

const dataOutsideFlash: Signature = (log) => {
  const notFlash = findAll(log, /Not flash Memory\s*:?\s*No erase done/i);
  if (notFlash.length === 0) return undefined;
  const asToolLine = notFlash.some((i) => /^\s*Not flash Memory/i.test(log.text[i]!));
  const failures = findAll(log, /^\s*Error:\s*failed to download\s+(?:Sector|Segment)\s*\[\s*\d+\s*\]/i);
  // Addresses outside flash the log names (an SRAM4 mailbox at 0x38000000, DTCM at 0x20000000, ...).
  const ramLines = findAll(log, /\b0x(?:2[0-4]|3[0-8])[0-9a-f]{6}\b/i).filter(
    (i) => !/Address\s*:/i.test(log.text[i]!),
  );
  const addresses = [
    ...new Set(
      ramLines
        .flatMap((i) => log.text[i]!.match(/\b0x(?:2[0-4]|3[0-8])[0-9a-f]{6}\b/gi) ?? [])
        .map((a) => hex32(parseHex(a)!)),
    ),
  ];
  return {
    code: 'DATA_OUTSIDE_FLASH',
    title: 'the image has data outside flash, which the ROM bootloader cannot write',
    confidence: asToolLine ? 'certain' : 'likely',
    evidence: [...notFlash, ...failures.slice(0, 3), ...ramLines.slice(0, 3)]
      .sort((a, b) => a - b)
      .map((i) => ev(log, i)),
    causes: [
      'a RAM section is in the image: a .noinit or shared-memory section (e.g. a CM7/CM4 mailbox in SRAM4 at 0x38000000, data in DTCM at 0x20000000) not marked NOLOAD in the linker script',
      'the USB DFU bootloader writes flash only; over ST-LINK the same file programs fine because the debugger writes RAM too (seed 002)',
      'STM32H74x bootloader V9.0 also refuses SRAM1-3 (0x30000000-0x30047FFF) and ITCM (ST AN2606)',
    ],
    next: 'list the segments against the part (`stm32-hil image inspect FILE --part PART`), mark the RAM sections NOLOAD, or write a flash-only copy with `stm32-hil image convert FILE --part PART --flash-only -o OUT.hex`',
    suite: 'ram-sections',
    ...(addresses.length ? { details: { addressesOutsideFlash: addresses } } : {}),
  };
};

const bank2EraseHang: Signature = (log) => {
  const evidence: number[] = [];
  let confidence: Confidence | undefined;
  // CubeProgrammer verbose: a page erase at bank 2 answered by dfuDNBUSY over and over, then CLRSTATUS/errUNKNOWN.
  for (const i of findAll(log, /page erase request @:\s*0x0?81[0-9a-f]{5}/i)) {
    const next = first(log, /page erase request @|erasing sector .* done/i, i + 1) ?? log.text.length;
    const busy = findAll(log, /DFU State\s*=\s*4\b|State:\s*dfuDNBUSY/i, i + 1, next);
    const recovery = [
      first(log, /clear status request/i, i + 1, next),
      first(log, /errUNKNOWN|State:\s*dfuERROR/i, i + 1, next),
    ].filter((x): x is number => x !== undefined);
    if (busy.length >= 2 || recovery.length > 0) {
      evidence.push(i, ...busy.slice(0, 3), ...recovery);
      confidence = 'certain';
    }
  }
  // dfu-util verbose: "Erasing page ... at address 0x0810...." followed by "Poll timeout" with no further page.
  for (const i of findAll(log, /Erasing page.*at address\s+0x0?81[0-9a-f]{5}/i)) {
    const next = first(log, /Erasing page|Download\s|Download done/i, i + 1) ?? log.text.length;
    const polls = findAll(log, /Poll timeout/i, i + 1, next);
    if (polls.length >= 3) {
      evidence.push(i, ...polls.slice(0, 3));
      confidence = 'certain';
    }
  }
  // A report in words (seed 001): bank 2 / 0x8100000 together with endless timeouts.
  if (!confidence) {
    const bank2 = findAll(log, new RegExp(`${BANK2_ADDRESS.source}|\\bbank\\s*2\\b`, 'i'));
    const timeouts = findAll(log, /time\s?outs?\b|timed out|hangs?\b|stuck/i);
    if (bank2.length > 0 && timeouts.length > 0) {
      evidence.push(...bank2.slice(0, 2), ...timeouts.slice(0, 2));
      confidence = 'likely';
    }
  }
  if (!confidence) return undefined;
  const versionLines = findAll(
    log,
    /BL Version\s*:\s*0x9[01]\b|bootloader version\s*(?:0x)?9[01]\b|Revision ID\s*:\s*Rev V\b|\brev(?:ision)? V\b|Chip version is V\b/i,
  );
  evidence.push(...versionLines.slice(0, 2));
  return {
    code: 'H74X_BANK2_ERASE_HANG',
    title: 'bank 2 page erase hangs on an STM32H74x/75x rev V bootloader (V9.0/V9.1)',
    confidence,
    // The erase and what followed it first, then the lines naming the chip revision or bootloader version.
    evidence: [...new Set(evidence)].map((i) => ev(log, i)),
    causes: [
      'ST AN2606 (STM32H74xxx/75xxx bootloader versions): V9.0 on rev V parts hangs on a bank 2 page erase over USB DFU (the device stays dfuDNBUSY); V9.1 reports the erase done while bank 2 is still erasing; fixed in V9.2',
      'rev Y parts with bootloader 0xD2 erase bank 2 fine, so the same host and file work on older boards',
    ],
    next: 'use a mass erase instead of page erases (`stm32-hil flash FILE --board ID --mass-erase --force`, or `dfu-util -a 0 -s 0x08000000:force:mass-erase:leave -D fw.dfu`), or program bank 2 over SWD; `stm32-hil board identify` shows the bootloader version',
    suite: 'bank2-write',
  };
};

const verifyMismatch: Signature = (log) => {
  const lines = findAll(log, /Data mismatch found at address\s+0x[0-9a-f]+\s*\(\s*byte\s*=/i);
  if (lines.length === 0) return undefined;
  const mismatches = lines.map((i) => {
    const m = /address\s+(0x[0-9a-f]+)\s*\(\s*byte\s*=\s*(0x[0-9a-f]+)\s+instead of\s+(0x[0-9a-f]+)/i.exec(
      log.text[i]!,
    )!;
    return { address: parseHex(m[1]!)!, actual: parseHex(m[2]!)!, expected: parseHex(m[3]!)! };
  });
  const m0 = mismatches[0]!;
  const flipped = m0.expected ^ m0.actual;
  const stuckLow = m0.expected & ~m0.actual & 0xff;
  const sameAddress = mismatches.every((m) => m.address === m0.address);
  const summary = findAll(log, /Download verification failed/i);
  const obLines = findAll(log, /SWAP_BANK|BOOT_CM7_ADD|VCAP/i);
  return {
    code: 'VERIFY_MISMATCH',
    title: `verify finds ${hex8(m0.actual)} instead of ${hex8(m0.expected)} at ${hex32(m0.address)}${sameAddress && mismatches.length > 1 ? ', every time' : ''}`,
    confidence: 'certain',
    evidence: [...lines, ...summary, ...obLines.slice(0, 2)].sort((a, b) => a - b).map((i) => ev(log, i)),
    causes: [
      `bit${(flipped & (flipped - 1)) === 0 ? '' : 's'} ${hex8(flipped)} ${stuckLow === flipped ? 'read 0 where the file has 1' : 'differ'}: a fixed address and a fixed bit point at the chip or its supply, not at the file`,
      'power integrity on a custom board: VCAP capacitors (STM32H74x/75x: see ST AN4938, the VCAP pins and their decoupling), VDD decoupling, a core supply out of range',
      'flash banking option bytes: with SWAP_BANK set the bank that is written is not the one read back at that address',
      'a readback path that lies rather than the flash: only a second way of reading tells',
    ],
    next: 'read the same flash both ways (`stm32-hil crosscheck FILE --board ID`), check the option bytes (`stm32-hil board identify --board ID`: bank swap, RDP), then compare the board with the reference schematic (AN4938 for H74x/75x)',
    suite: 'flash-verify',
    details: { mismatches, sameAddress },
  };
};

const compareDifference: Signature = (log) => {
  const lines = findAll(log, /First difference found at\s+0x[0-9a-f]+/i);
  if (lines.length === 0) return undefined;
  const address = parseHex(/First difference found at\s+(0x[0-9a-f]+)/i.exec(log.text[lines[0]!]!)![1]!)!;
  const dfu = log.parsed.connection?.interface === 'usb-dfu';
  return {
    code: 'COMPARE_DIFFERENCE',
    title: `a compare reports a difference at ${hex32(address)} without showing the bytes`,
    confidence: 'likely',
    evidence: lines.map((i) => ev(log, i)),
    causes: [
      'the compared file holds data the download skipped (bytes outside flash), so flash and file cannot match',
      `${dfu ? 'the USB DFU readback' : 'one readback path'} differs from what the chip holds; only a second way of reading tells which`,
    ],
    next: 'read the flash over DFU and over SWD and compare both with the image: `stm32-hil crosscheck FILE --board ID`',
    suite: 'crosscheck',
    details: { address },
  };
};

const swdNoTarget: Signature = (log) => {
  const lines = findAll(log, /No STM32 target found/i);
  if (lines.length === 0) return undefined;
  const i0 = lines[0]!;
  const voltageLine = (() => {
    for (let i = i0; i >= Math.max(0, i0 - 12); i--) if (/^\s*Voltage\s*:/i.test(log.text[i]!)) return i;
    return undefined;
  })();
  const volts =
    voltageLine !== undefined
      ? Number.parseFloat(
          /(\d+(?:[.,]\d+)?)\s*V/i.exec(log.text[voltageLine]!)?.[1]?.replace(',', '.') ?? 'NaN',
        )
      : undefined;
  const retry = first(log, /connect tentative|2nd connect/i, i0 + 1);
  const recovered =
    retry !== undefined && first(log, /^\s*Device ID\s*:\s*0x[0-9a-f]*[1-9a-f]/i, retry) !== undefined;
  const unpowered = volts !== undefined && volts < 1.6;
  const causes = unpowered
    ? [`the target is not powered: the probe measures ${volts} V on its VDD pin`]
    : recovered
      ? [
          'the first attempt failed and a retry at another SWD clock connected: marginal SWD signal integrity (long or unshielded wires, a missing GND, too high a clock)',
          'firmware that reconfigures the SWD pins or sleeps at the moment of connection (connect under reset avoids it)',
        ]
      : [
          'SWDIO/SWCLK/GND/NRST not wired, or the board not powered',
          'firmware that reuses the SWD pins or enters a low-power mode: connect under reset (mode=UR, reset=HWrst with NRST wired)',
          'read-out protection level 2 or debug authentication disabling the debug port',
        ];
  return {
    code: 'SWD_NO_TARGET',
    title: recovered
      ? 'the ST-LINK did not find the target at first; a retry connected'
      : 'the ST-LINK finds no STM32 on SWD',
    confidence: recovered ? 'possible' : unpowered ? 'certain' : 'likely',
    evidence: [
      ...(voltageLine !== undefined ? [voltageLine] : []),
      ...lines,
      ...(retry !== undefined ? [retry] : []),
    ].map((i) => ev(log, i)),
    causes,
    next: unpowered
      ? 'power the board (check the power relay: `stm32-hil power on --board ID`) and connect again'
      : 'connect under reset at a low clock (`-c port=SWD mode=UR reset=HWrst freq=1000`), check the wiring and the supply, then `stm32-hil board identify --board ID`',
    suite: 'power-cycle',
    details: { ...(volts !== undefined ? { voltage: volts } : {}), recovered },
  };
};

const falseFailureAfterLeave: Signature = (log) => {
  const leave =
    first(log, /Submitting leave request|Transitioning to dfuMANIFEST/i) ?? first(log, /:leave\b/i);
  if (leave === undefined) return undefined;
  const errors = findAll(
    log,
    /Error during download get_status|unable to read DFU status|get_status.*LIBUSB_ERROR|LIBUSB_ERROR_(?:PIPE|IO|NO_DEVICE)/i,
    leave,
  );
  if (errors.length === 0) return undefined;
  const success =
    first(log, /File downloaded successfully/i, 0, errors[0]) ??
    first(log, /^\s*Download done\.?$/i, 0, errors[0]);
  return {
    code: 'FALSE_FAILURE_AFTER_LEAVE',
    title: 'an error after the leave request, though the download had finished',
    confidence: success !== undefined ? 'certain' : 'likely',
    evidence: [...(success !== undefined ? [success] : []), leave, ...errors.slice(0, 2)]
      .sort((a, b) => a - b)
      .map((i) => ev(log, i)),
    causes: [
      'the ST ROM bootloader is not manifestation tolerant: after the leave request it jumps to the application and drops off the bus before answering the last GETSTATUS (ST AN3156, leave); dfu-util then reports an error and exits 74',
    ],
    next: 'trust a read-back, not the exit code: `stm32-hil verify FILE --board ID` (stm32-hil treats a device that vanishes after leave as success)',
    suite: 'bootloader-entry',
  };
};

const libusbPipe: Signature = (log) => {
  const lines = findAll(log, /LIBUSB_ERROR_PIPE/i);
  if (lines.length === 0) return undefined;
  const onStatus = lines.filter((i) => /status/i.test(log.text[i]!) || /status/i.test(log.text[i - 1] ?? ''));
  const leave = first(log, /Submitting leave request|Transitioning to dfuMANIFEST|:leave\b/i);
  // After a leave this is the false failure above, not a stall.
  if (leave !== undefined && lines.every((i) => i > leave)) return undefined;
  const before = onStatus.length
    ? first(log, /address|erase|Download|upload/i, Math.max(0, onStatus[0]! - 6), onStatus[0])
    : undefined;
  return {
    code: 'LIBUSB_PIPE_ON_STATUS',
    title: onStatus.length
      ? 'the device stalled a DFU status request (LIBUSB_ERROR_PIPE)'
      : 'the device stalled a USB request (LIBUSB_ERROR_PIPE)',
    confidence: onStatus.length ? 'certain' : 'likely',
    evidence: [
      ...(before !== undefined ? [before] : []),
      ...(onStatus.length ? onStatus : lines).slice(0, 3),
    ].map((i) => ev(log, i)),
    causes: [
      "the previous request failed and the device sits in dfuERROR; ST's DFU middleware then stalls requests until a CLRSTATUS (ST AN3156)",
      'an address the bootloader refuses (outside flash/RAM it allows, or protected by RDP) in the command before',
      'the device reset or left DFU mode in the middle of the session (watchdog, brown-out, a leave)',
    ],
    next: 'repeat with a trace (`stm32-hil flash FILE --board ID --trace out.pcapng`, or `dfu-util -v -v`) and look at the request before the stall; power-cycle into the bootloader and retry',
    suite: 'bootloader-entry',
  };
};

const swdLockedAfterDfu: Signature = (log) => {
  if (log.parsed.connection?.interface !== 'swd' && !findAll(log, /ST-LINK SN\s*:/i).length) return undefined;
  const failed = findAll(log, /^\s*Error:\s*failed to download\s+(?:Sector|Segment)\s*\[\s*\d+\s*\]/i);
  if (failed.length === 0) return undefined;
  if (findAll(log, /Not flash Memory|Data mismatch/i).length) return undefined;
  const erase = findAll(log, /Erasing (?:memory corresponding|internal memory)/i);
  const dfuMentions = findAll(log, /\bDFU\b|system memory|bootloader/i).filter(
    (i) => !/STM32_Programmer_CLI|ST-LINK_GDB/i.test(log.text[i]!),
  );
  const readsOk = findAll(log, /can read|read.*successfully|Data read successfully/i);
  return {
    code: 'SWD_LOCKED_AFTER_DFU',
    title:
      'ST-LINK programming fails right after erase, as after the USB DFU bootloader ran (until a power cycle)',
    confidence: dfuMentions.length ? 'likely' : 'possible',
    evidence: [
      ...dfuMentions.slice(0, 2),
      ...erase.slice(0, 2),
      ...failed.slice(0, 2),
      ...readsOk.slice(0, 1),
    ]
      .sort((a, b) => a - b)
      .map((i) => ev(log, i)),
    causes: [
      'field report (seed 003, STM32U073): after the ROM bootloader\'s USB DFU code ran, flash programming over SWD fails with "failed to download Sector[0]" until the board is power-cycled; reads still work and a reset is not enough',
      'write protection (WRP option bytes) or read-out protection on the sectors being written',
    ],
    next: 'power-cycle the board (remove power; an NRST reset does not clear it) and program again; if it still fails, check WRP/RDP with `stm32-hil board identify --board ID`',
    suite: 'power-cycle',
  };
};

const probeUsbComm: Signature = (log) => {
  const lines = findAll(log, /DEV_USB_COMM_ERR|USB communication error/i);
  if (lines.length === 0) return undefined;
  return {
    code: 'STLINK_USB_COMM',
    title: 'USB communication with the ST-LINK failed',
    confidence: 'certain',
    evidence: lines.slice(0, 3).map((i) => ev(log, i)),
    causes: [
      'a flaky USB cable or hub, or an underpowered port',
      'outdated ST-LINK firmware',
      'another program holding the probe',
    ],
    next: 'replug the probe on another port (no passive hub), update its firmware, close other debug sessions; then `stm32-hil board identify --board ID`',
  };
};

const readProtection: Signature = (log) => {
  const lines = findAll(
    log,
    /Read Out Protection|memory protection mechanism|RDP\s*:\s*0x(?!AA)[0-9a-f]{2}\b|read protected/i,
  );
  if (lines.length === 0) return undefined;
  return {
    code: 'READ_PROTECTION',
    title: 'read-out protection is active',
    confidence: 'likely',
    evidence: lines.slice(0, 3).map((i) => ev(log, i)),
    causes: [
      'RDP level 1: flash cannot be read or written over SWD or DFU; lifting it (RDP=0xAA) mass-erases the flash',
      'the device held in reset while being read',
    ],
    next: 'check the level with `stm32-hil board identify --board ID`; lift it only on a board whose flash may be erased',
    suite: 'option-bytes',
  };
};

const unknownDevice: Signature = (log) => {
  const lines = findAll(
    log,
    /unknown or unsupported device|Cannot identify the device|Unable to get core ID/i,
  );
  if (lines.length === 0) return undefined;
  return {
    code: 'UNKNOWN_DEVICE',
    title: 'the probe reached a core but could not identify the device',
    confidence: 'likely',
    evidence: lines.slice(0, 3).map((i) => ev(log, i)),
    causes: [
      'DEV_ID read as 0: the core is held in reset or in a low-power mode, or the supply is marginal',
      'a programmer version older than the part (update STM32CubeProgrammer)',
    ],
    next: 'connect under reset (`mode=UR reset=HWrst`) at a lower clock, check the supply, update STM32CubeProgrammer',
    suite: 'power-cycle',
  };
};

const successAfterError: Signature = (log) => {
  const ops = log.parsed.operations.filter((o) => o.successClaimedAfterError);
  if (ops.length === 0) return undefined;
  const err = log.parsed.errors.find((e) => e.line >= ops[0]!.line);
  return {
    code: 'SUCCESS_AFTER_ERROR',
    title: 'the tool printed an error and then "successfully" for the same operation',
    confidence: 'certain',
    evidence: [ops[0]!.line - 1, ...(err ? [err.line - 1] : [])].map((i) => ev(log, i)),
    causes: [
      'STM32CubeProgrammer prints the progress line of an operation whatever its outcome: the error stands and the data was not written',
    ],
    next: 'read the flash back (`stm32-hil crosscheck FILE --board ID`) instead of trusting the success line or the exit code',
    suite: 'flash-verify',
  };
};

/** The known signatures, most specific first. Each names its source (seeds, traces, ST application notes). */
export const SIGNATURES: ReadonlyArray<{ code: string; match: Signature }> = [
  { code: 'DATA_OUTSIDE_FLASH', match: dataOutsideFlash }, // seeds 000, 002
  { code: 'H74X_BANK2_ERASE_HANG', match: bank2EraseHang }, // seed 001, traces/, AN2606
  { code: 'VERIFY_MISMATCH', match: verifyMismatch }, // seed 004
  { code: 'COMPARE_DIFFERENCE', match: compareDifference }, // seed 000
  { code: 'SWD_LOCKED_AFTER_DFU', match: swdLockedAfterDfu }, // seed 003
  { code: 'SWD_NO_TARGET', match: swdNoTarget }, // seed 004
  { code: 'FALSE_FAILURE_AFTER_LEAVE', match: falseFailureAfterLeave }, // dfu-util after :leave, AN3156
  { code: 'LIBUSB_PIPE_ON_STATUS', match: libusbPipe },
  { code: 'STLINK_USB_COMM', match: probeUsbComm },
  { code: 'READ_PROTECTION', match: readProtection },
  { code: 'UNKNOWN_DEVICE', match: unknownDevice },
  { code: 'SUCCESS_AFTER_ERROR', match: successAfterError },
];

const RANK: Record<Confidence, number> = { certain: 0, likely: 1, possible: 2 };

function detectTool(raw: string[], parsed: ProgrammerOutput): LogTool {
  const has = (re: RegExp) => raw.some((l) => re.test(l));
  const dfuUtil = has(
    /dfu-util|Poll timeout|Erasing page size|DfuSe interface name|Opening DFU capable USB device/i,
  );
  const verbose = has(/^\s*\d{1,2}:\d{2}:\d{2}:\d{3}\s*:/);
  const gui = has(/^\s*\d{1,2}:\d{2}:\d{2}\s+:\s/);
  const cube = parsed.recognised || verbose || gui;
  if (dfuUtil && cube) return 'mixed';
  if (dfuUtil) return 'dfu-util';
  if (verbose) return 'cubeprogrammer-verbose';
  if (gui) return 'cubeprogrammer-gui';
  if (parsed.recognised) return 'cubeprogrammer-cli';
  return 'unknown';
}

const ERROR_LINE =
  /\b(?:error|fail(?:ed|ure|s)?|timeout|timed out|LIBUSB_ERROR_\w+|stall(?:ed)?|cannot|unable|mismatch)\b/i;

/** Analyses one log; never throws on content (any text is a log). */
export function triageLog(text: string, file?: string): TriageReport {
  const raw = text.split('\n');
  const log: Log = { raw, text: raw.map(cleanLine), parsed: parseProgrammerOutput(text) };
  const p = log.parsed;
  const findings = SIGNATURES.map((s) => s.match(log))
    .filter((f): f is Finding => f !== undefined)
    .map((f, order) => ({ f, order }))
    .sort((a, b) => RANK[a.f.confidence] - RANK[b.f.confidence] || a.order - b.order)
    .map((x) => x.f);
  const errorLines = findAll(log, ERROR_LINE).map((i) => ev(log, i));
  return {
    ...(file ? { file } : {}),
    tool: detectTool(raw, p),
    lines: raw.length,
    facts: {
      ...(p.connection ? { interface: p.connection.interface } : {}),
      ...(p.target?.deviceId !== undefined ? { deviceId: p.target.deviceId } : {}),
      ...(p.target?.revision ? { revision: p.target.revision } : {}),
      ...(p.target?.bootloaderVersion !== undefined ? { bootloaderVersion: p.target.bootloaderVersion } : {}),
      ...(p.version ? { cliVersion: p.version } : {}),
      ...(p.probe?.serial ? { probeSerial: p.probe.serial } : {}),
      ...(p.probe?.voltage !== undefined ? { voltage: p.probe.voltage } : {}),
    },
    findings,
    errorLines,
    known: findings.length > 0,
  };
}

const TOOL_NAMES: Record<LogTool, string> = {
  'cubeprogrammer-cli': 'STM32CubeProgrammer CLI output',
  'cubeprogrammer-gui': 'STM32CubeProgrammer GUI log',
  'cubeprogrammer-verbose': 'STM32CubeProgrammer verbose log',
  'dfu-util': 'dfu-util output',
  mixed: 'STM32CubeProgrammer and dfu-util output',
  unknown: 'log of an unrecognised tool',
};

/** The report for a person. */
export function describeTriage(r: TriageReport): string {
  const out: string[] = [];
  const f = r.facts;
  const facts = [
    f.deviceId !== undefined ? `device 0x${f.deviceId.toString(16).toUpperCase()}` : '',
    f.revision ? `rev ${f.revision}` : '',
    f.bootloaderVersion !== undefined ? `bootloader ${hex8(f.bootloaderVersion)}` : '',
    f.interface ? `over ${f.interface === 'usb-dfu' ? 'USB DFU' : f.interface.toUpperCase()}` : '',
    f.cliVersion ? `CubeProgrammer ${f.cliVersion}` : '',
  ].filter(Boolean);
  out.push(
    `${r.file ?? 'log'}: ${TOOL_NAMES[r.tool]}, ${r.lines} lines${facts.length ? ` (${facts.join(', ')})` : ''}`,
  );
  if (!r.known) {
    out.push('', 'no known signature in this log.');
    if (r.errorLines.length) {
      out.push('lines that look like errors:');
      for (const e of r.errorLines.slice(0, 20)) out.push(`  ${String(e.line).padStart(5)}: ${e.text}`);
      if (r.errorLines.length > 20) out.push(`  ... and ${r.errorLines.length - 20} more`);
    } else {
      out.push('no line in it looks like an error either: is it the whole log, from the command to its end?');
    }
    return out.join('\n');
  }
  r.findings.forEach((x, n) => {
    out.push('', `${n + 1}. ${x.code} (${x.confidence}): ${x.title}`, '   evidence:');
    for (const e of x.evidence) out.push(`   ${String(e.line).padStart(5)}: ${e.text}`);
    out.push('   likely causes:');
    for (const c of x.causes) out.push(`     - ${c}`);
    out.push(`   next step: ${x.next}`);
    if (x.suite) out.push(`   reproduced by suite: ${x.suite}`);
  });
  return out.join('\n');
}
