import { z } from 'zod';

/**
 * The schema of boards.yaml. Objects are strict: an unknown key is an error, because a typo such as
 * `powr:` must not silently leave a relay unconfigured.
 */

const address = z.number().int().min(0).max(0xffff_ffff);
const probability = z.number().min(0).max(1);

export const relaySchema = z.strictObject({
  /** Serial device (`/dev/ttyUSB0`, `COM3`); omitted for the virtual relay of a virtual board. */
  port: z.string().min(1).optional(),
  protocol: z.enum(['lcus', 'numato', 'kmtronic', 'generic', 'virtual']),
  channel: z.number().int().min(0).max(31),
  /** Relays on the relay board: sizes its status reply (LCUS, KMTronic answer one entry per relay). */
  channels: z.number().int().min(1).max(32).optional(),
  /** How long a power cycle keeps the relay off, ms (default 1000). */
  offMs: z.number().int().min(0).max(600_000).optional(),
  baudRate: z.number().int().positive().optional(),
  /** Invert the sense (relay closed = line low / board off). */
  inverted: z.boolean().optional(),
  /** Read the relay back after switching (default: where the protocol can). */
  readBack: z.boolean().optional(),
  /** Bytes or text for a home-made controller (protocol: generic). `{ch}` is replaced by the channel. */
  generic: z
    .strictObject({
      on: z.string(),
      off: z.string(),
      status: z.string().optional(),
      /** Regular expression applied to the status reply; group 1 is `on`/`1` when the channel is on. */
      statusPattern: z.string().optional(),
      encoding: z.enum(['hex', 'text']).default('text'),
    })
    .optional(),
});

export const faultsSchema = z.strictObject({
  seed: z.number().int().default(1),
  /** Probability that programming one sector's worth of a download fails (errWRITE). */
  sectorWriteFailure: probability.optional(),
  /** Bits that do not hold after programming: reads return the programmed byte with `mask` bits cleared. */
  weakBits: z.array(z.strictObject({ address, mask: z.number().int().min(1).max(0xff) })).optional(),
  /** Stall the control transfer number N (1-based, counted from attach). */
  stallAtTransfer: z.number().int().positive().optional(),
  /** Stop answering (time out) from control transfer number N on. */
  stopAnsweringAtTransfer: z.number().int().positive().optional(),
  /** Disconnect during control transfer number N. */
  disconnectAtTransfer: z.number().int().positive().optional(),
  /** ST-LINK programming fails after the DFU bootloader ran, until a power cycle (seed 003). */
  swdLockedAfterDfu: z.boolean().optional(),
  /** Extra milliseconds before the bootloader enumerates after power-on. */
  enumerationDelayMs: z.number().int().min(0).optional(),
  /** The board never enumerates (a dead board, a broken cable). */
  neverEnumerates: z.boolean().optional(),
});

export const virtualSchema = z.strictObject({
  chipRevision: z.string().min(1),
  bootloader: z.number().int().min(0).max(0xff),
  faults: faultsSchema.optional(),
  /** Where the chip's non-volatile memory lives between processes (default: under the state directory). */
  state: z.string().optional(),
  /** Speed-up of the timing model: 1 is real time, 10 runs waits ten times shorter. */
  timeScale: z.number().positive().optional(),
});

export const boardSchema = z.strictObject({
  id: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, 'letters, digits, ".", "_" and "-"'),
  part: z.string().min(1),
  description: z.string().optional(),
  /** What this board should be; `board identify` and every run compare against it. */
  expect: z
    .strictObject({
      chipRevision: z.string().min(1).optional(),
      bootloader: z.number().int().min(0).max(0xff).optional(),
    })
    .optional(),
  usb: z
    .strictObject({
      path: z.string().min(1).optional(),
      serial: z.string().min(1).optional(),
      vid: z.number().int().min(0).max(0xffff).optional(),
      pid: z.number().int().min(0).max(0xffff).optional(),
    })
    .optional(),
  stlink: z
    .strictObject({
      serial: z.union([z.string(), z.number()]).transform(String),
      freq: z.number().int().positive().optional(),
    })
    .optional(),
  power: relaySchema.optional(),
  boot0: relaySchema.optional(),
  /** A relay that holds NRST low while closed (STM32H74x bootloader 0x90 needs a reset after power-on, AN2606). */
  reset: relaySchema.optional(),
  tags: z.array(z.string().min(1)).default([]),
  host: z.string().optional(),
  virtual: virtualSchema.optional(),
});

export const knownIssueSchema = z
  .strictObject({
    id: z.string().min(1),
    title: z.string().min(1),
    /** Tests the issue is expected to fail: `suite/test`, a whole suite (`suite`), or a prefix ending in `*`. */
    tests: z.array(z.string().min(1)).min(1).optional(),
    /** Measurements the issue is expected to make worse (a timing regression): names, or a prefix ending in `*`. */
    measurements: z.array(z.string().min(1)).min(1).optional(),
    parts: z.array(z.string()).optional(),
    bootloaders: z.array(z.number().int().min(0).max(0xff)).optional(),
    boards: z.array(z.string()).optional(),
    source: z.string().min(1),
  })
  .refine((k) => k.tests !== undefined || k.measurements !== undefined, {
    message: 'a known issue names the tests it fails (tests:) or the measurements it slows (measurements:)',
  });

export const farmSchema = z.strictObject({
  farm: z
    .strictObject({
      name: z.string().optional(),
      /** Directory for leases, virtual chip state and the results store (relative to boards.yaml). */
      stateDir: z.string().optional(),
      reportsDir: z.string().optional(),
      /** Speed-up applied to every virtual board's timing model (see virtual.timeScale). */
      timeScale: z.number().positive().optional(),
    })
    .optional(),
  tools: z
    .strictObject({
      programmerCli: z.string().optional(),
      dfuUtil: z.string().optional(),
    })
    .optional(),
  deadlines: z
    .strictObject({
      enumerationMs: z.number().int().positive().optional(),
      transferMs: z.number().int().positive().optional(),
      operationMs: z.number().int().positive().optional(),
      cliMs: z.number().int().positive().optional(),
      relayMs: z.number().int().positive().optional(),
    })
    .optional(),
  retries: z
    .strictObject({
      transition: z.number().int().min(0).max(10).optional(),
    })
    .optional(),
  knownIssues: z.array(knownIssueSchema).optional(),
  boards: z.array(boardSchema).min(1, 'at least one board'),
});

export type RelayConfig = z.infer<typeof relaySchema>;
export type FaultsConfig = z.infer<typeof faultsSchema>;
export type VirtualConfig = z.infer<typeof virtualSchema>;
export type BoardConfig = z.infer<typeof boardSchema>;
export type KnownIssue = z.infer<typeof knownIssueSchema>;
export type FarmFile = z.infer<typeof farmSchema>;
