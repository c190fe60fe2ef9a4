import { writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import {
  type DfuProgress,
  DfuseHost,
  describeReport,
  Permissions,
  traceToPcapng,
  type VerifyReport,
  verifyError,
} from '../dfu/index.ts';
import { FileError, UsageError } from '../errors.ts';
import { FarmBoard } from '../farm/board.ts';
import { ConfigError } from '../farm/config.ts';
import { acquireLease } from '../farm/lease.ts';
import { readImage } from '../image/index.ts';
import { findPart, type Part } from '../parts/catalogue.ts';
import { virtualPortPath } from '../sim/paths.ts';
import {
  describeEntry,
  duplicateSerials,
  duplicateSerialWarning,
  findDevice,
  hex4,
  NodeUsbBackend,
  parseUsbSelector,
  ST_DFU_PID,
  ST_DFU_VID,
  type UsbDeviceEntry,
  UsbError,
} from '../usb/index.ts';
import { realClock } from '../util/clock.ts';
import { hex32, parseNumber } from '../util/hex.ts';
import type { CliContext, RegisterCommands } from './context.ts';
import { progressSink } from './progress.ts';

interface TargetOptions {
  board?: string;
  usb?: string;
  alt?: string;
  trace?: string;
}

interface Target {
  host: DfuseHost;
  label: string;
  board?: FarmBoard;
  /** usbmon bus/address for the pcapng trace. */
  bus: number;
  /** boards.yaml deadlines.operationMs, when set. */
  operationMs?: number;
  address: number;
  close(): Promise<void>;
}

function parseAddress(text: string | undefined, option: string): number | undefined {
  if (text === undefined) return undefined;
  const n = parseNumber(text);
  if (n === undefined || n > 0xffff_ffff)
    throw new UsageError(`${option} ${text}: not a 32-bit address (0x08000000 or decimal)`);
  return n;
}

function parseLength(text: string): number {
  const m = /^\s*(0x[0-9a-f_]+|[0-9_]+)\s*([km]i?b?)?\s*$/i.exec(text);
  const n = m ? parseNumber(m[1]!) : undefined;
  if (!m || n === undefined)
    throw new UsageError(`--length ${text}: not a byte count (e.g. 4096, 0x1000, 128K)`);
  const unit = (m[2] ?? '').toLowerCase();
  return n * (unit.startsWith('k') ? 1024 : unit.startsWith('m') ? 1024 * 1024 : 1);
}

function altOption(text: string | undefined): number | string | undefined {
  if (text === undefined) return undefined;
  return /^\d+$/.test(text) ? Number(text) : text;
}

async function openTarget(ctx: CliContext, o: TargetOptions, trace: boolean): Promise<Target> {
  if (!!o.board === !!o.usb)
    throw new UsageError('name the device with exactly one of --board ID or --usb VID:PID[:SERIAL|@PATH]');
  let entry: UsbDeviceEntry;
  let board: FarmBoard | undefined;
  let release: (() => void) | undefined;
  let label: string;
  let part: Part | undefined;
  const config = o.board ? ctx.config() : undefined;
  const transferTimeoutMs = config?.deadlines?.transferMs;
  if (o.board) {
    // The board is leased for the command (no nightly run drives it meanwhile) and brought to its bootloader.
    board = FarmBoard.open(config!, o.board, { warn: ctx.warn });
    try {
      release = acquireLease(config!.stateDir, board.id, { owner: 'stm32-hil dfu' }).release;
      entry = await board.ensureBootloader(ctx.signal);
    } catch (e) {
      release?.();
      board.close();
      throw e;
    }
    part = board.part;
    label = `board ${board.id} (${describeEntry(entry)})`;
  } else {
    entry = await findDevice([new NodeUsbBackend()], parseUsbSelector(o.usb!), { warn: ctx.warn });
    label = describeEntry(entry);
  }
  try {
    const alt = altOption(o.alt);
    const host = await DfuseHost.open(entry.device, {
      clock: board?.clock ?? realClock,
      trace,
      label,
      ...(alt === undefined ? {} : { alt }),
      ...(part ? { part } : {}),
      ...(transferTimeoutMs ? { transferTimeoutMs } : {}),
      signal: ctx.signal,
    });
    return {
      host,
      label,
      ...(board ? { board } : {}),
      ...(config?.deadlines?.operationMs ? { operationMs: config.deadlines.operationMs } : {}),
      bus: entry.busNumber ?? 1,
      address: entry.address ?? 1,
      async close() {
        await host.close();
        board?.close();
        release?.();
      },
    };
  } catch (e) {
    board?.close();
    release?.();
    throw e;
  }
}

function writeTrace(ctx: CliContext, t: Target | undefined, out: string | undefined): void {
  if (!t || !out || !t.host.trace) return;
  const trace = t.host.trace;
  try {
    if (out.endsWith('.txt')) writeFileSync(out, `${trace.toText()}\n`);
    else writeFileSync(out, traceToPcapng(trace, { busNumber: t.bus, deviceAddress: t.address }));
  } catch (e) {
    throw new FileError('E_FILE_WRITE', out, e);
  }
  const decode = `usb.device==0x${((t.bus << 16) | t.address).toString(16).padStart(8, '0')},usbdfu`;
  ctx.info(
    `trace: ${trace.entries.length} control transfers written to ${out}` +
      (out.endsWith('.txt') ? '' : ` (Wireshark before 4.2 decodes DFU with: tshark -r ${out} -d ${decode})`),
  );
}

/** Opens the device the options name, runs `fn` on it, then writes the --trace file and closes it, whatever happened. */
async function withTarget<T>(ctx: CliContext, o: TargetOptions, fn: (t: Target) => Promise<T>): Promise<T> {
  const t = await openTarget(ctx, o, !!o.trace);
  try {
    return await fn(t);
  } finally {
    writeTrace(ctx, t, o.trace);
    await t.close();
  }
}

/** The options of a command that acts on one DFU device: which device, which alternate setting, the trace. */
function targetOptions(cmd: Command, opts: { alt: boolean }): Command {
  cmd
    .option('--board <id>', 'board from boards.yaml (virtual boards are started in their bootloader)')
    .option('--usb <spec>', 'USB device: VID:PID, VID:PID:SERIAL or VID:PID@PORTPATH');
  if (opts.alt) cmd.option('--alt <alt>', 'DFU alternate setting (number or name; default "Internal Flash")');
  return cmd.option(
    '--trace <out>',
    'write every control transfer to OUT (.pcapng for Wireshark, .txt for text)',
  );
}

function progressFor(ctx: CliContext): { onProgress: (e: DfuProgress) => void; done: () => void } {
  return progressSink(ctx.stderr);
}

function reportLines(r: VerifyReport): string {
  return describeReport(r).join('\n');
}

interface FlashCliOptions extends TargetOptions {
  verify?: boolean;
  massErase?: boolean;
  force?: boolean;
  leave?: boolean;
  base?: string;
}

export const registerDfuCommands: RegisterCommands = (program, ctx) => {
  const dfu = program.command('dfu').description('USB DFU devices (ST ROM bootloaders, real and virtual)');

  dfu
    .command('list')
    .description('list DFU devices attached over USB and the virtual boards of boards.yaml')
    .action(async () => {
      const usb: {
        available: boolean;
        error?: string;
        hint?: string;
        devices: Array<Record<string, unknown>>;
      } = {
        available: true,
        devices: [],
      };
      try {
        const entries = await new NodeUsbBackend().list(ctx.signal);
        for (const [serial, list] of duplicateSerials(entries))
          ctx.warn(duplicateSerialWarning(serial, list));
        usb.devices = entries.map((e) => ({
          vid: hex4(e.vendorId),
          pid: hex4(e.productId),
          bcdDevice: hex4(e.bcdDevice),
          serial: e.serial ?? null,
          product: e.product ?? null,
          portPath: e.portPath,
          dfu: e.vendorId === ST_DFU_VID && e.productId === ST_DFU_PID,
          ...(e.vendorId === ST_DFU_VID && e.productId === ST_DFU_PID ? { alternates: alternatesOf(e) } : {}),
        }));
      } catch (e) {
        if (!(e instanceof UsbError)) throw e;
        usb.available = false;
        usb.error = e.message;
        if (e.hint) usb.hint = e.hint;
      }
      let virtual: Array<Record<string, unknown>> = [];
      let configNote: string | undefined;
      try {
        virtual = ctx
          .config()
          .boards.filter((b) => b.virtual)
          .map((b) => {
            const bl = findPart(b.part)?.bootloader;
            return {
              board: b.id,
              part: b.part,
              chipRevision: b.virtual!.chipRevision,
              bootloader: `0x${b.virtual!.bootloader.toString(16).toUpperCase()}`,
              portPath: virtualPortPath(b.id),
              vid: bl ? hex4(bl.vid) : null,
              pid: bl ? hex4(bl.pid) : null,
              serial: bl?.serial ?? null,
              alternates: bl?.alternates.map((a) => a.name) ?? [],
            };
          });
      } catch (e) {
        // Without a boards.yaml the USB list still answers; a file that was named, or is there but wrong, is an error.
        if (!(e instanceof ConfigError && e.code === 'E_CONFIG_NOT_FOUND') || ctx.configNamed()) throw e;
        configNote = e.message;
      }
      ctx.result({ usb, virtual, ...(configNote ? { configError: configNote } : {}) }, () => {
        const lines: string[] = [];
        if (!usb.available) lines.push(`USB: ${usb.error}`, ...(usb.hint ? [`  hint: ${usb.hint}`] : []));
        else if (usb.devices.length === 0) lines.push('USB: no devices attached');
        else {
          const dfuDevices = usb.devices.filter((d) => d.dfu);
          lines.push(`USB: ${usb.devices.length} device(s), ${dfuDevices.length} ST DFU bootloader(s)`);
          for (const d of usb.devices) {
            lines.push(
              `  ${d.vid}:${d.pid} @${d.portPath}  ${d.product ?? ''}  serial ${d.serial ?? '-'}${d.dfu ? '  [DFU]' : ''}`,
            );
            for (const a of (d.alternates as string[] | undefined) ?? []) lines.push(`      ${a}`);
          }
        }
        if (configNote) lines.push(`virtual boards: ${configNote}`);
        else if (virtual.length === 0) lines.push('virtual boards: none in boards.yaml');
        else {
          lines.push(`virtual boards: ${virtual.length}`);
          for (const v of virtual) {
            lines.push(
              `  ${String(v.board).padEnd(16)} ${v.part} rev ${v.chipRevision} bootloader ${v.bootloader}  ${v.vid}:${v.pid} @${v.portPath}`,
            );
          }
        }
        return lines.join('\n');
      });
    });

  targetOptions(
    program
      .command('flash <file>')
      .description(
        'flash an image over USB DFU: erase the sectors it touches, write, optionally verify and leave',
      ),
    { alt: true },
  )
    .option('--base <addr>', 'load address of a raw binary (default 0x08000000)')
    .option('--verify', 'read back and compare after writing')
    .option('--mass-erase', 'erase the whole flash instead of the sectors the image touches (needs --force)')
    .option('--force', 'allow destructive operations (mass erase)')
    .option('--leave', 'leave DFU mode and start the application afterwards')
    .action(async (file: string, o: FlashCliOptions) => {
      const base = parseAddress(o.base, '--base');
      const image = readImage(file, base === undefined ? {} : { base });
      let permissions = Permissions.none();
      if (o.massErase && o.force) permissions = permissions.allowMassErase();
      await withTarget(ctx, o, async (t) => {
        const progress = progressFor(ctx);
        try {
          const r = await t.host.flash(image, {
            massErase: !!o.massErase,
            permissions,
            verify: !!o.verify,
            ...(o.leave ? { leave: true } : {}),
            signal: ctx.signal,
            onProgress: progress.onProgress,
            ...(t.operationMs ? { deadlineMs: t.operationMs } : {}),
          });
          progress.done();
          const erase =
            r.plan.erase.mode === 'mass' ? 'mass erase' : `${r.plan.erase.sectors.length} sector(s) erased`;
          ctx.result(
            {
              file,
              target: t.label,
              layout: r.plan.layout,
              erase:
                r.plan.erase.mode === 'mass'
                  ? 'mass'
                  : r.plan.erase.sectors.map((s) => ({ index: s.index, start: s.start, size: s.size })),
              writes: r.plan.writes.map((w) => ({ address: w.address, length: w.data.length })),
              imageBytes: r.plan.imageBytes,
              verify: r.verify ?? null,
              left: r.left ?? null,
              elapsedMs: Math.round(r.elapsedMs),
              transfers: r.stats.transfers,
            },
            () =>
              [
                `flashed ${file} (${r.plan.imageBytes} bytes) to ${t.label}: ${erase}, ${r.plan.writes.length} write run(s), ${(r.elapsedMs / 1000).toFixed(1)} s`,
                ...(r.verify ? [reportLines(r.verify)] : []),
                ...(r.left
                  ? [r.left === 'left' ? 'left DFU mode: the device detached' : 'left DFU mode (manifesting)']
                  : []),
              ].join('\n'),
          );
        } catch (e) {
          progress.done();
          const report = (e as { report?: VerifyReport }).report;
          if (report && !ctx.json) ctx.info(reportLines(report));
          throw e;
        }
      });
    });

  targetOptions(program.command('read').description('read memory over USB DFU (UPLOAD) into a binary file'), {
    alt: true,
  })
    .requiredOption('--address <addr>', 'start address')
    .requiredOption('--length <n>', 'bytes to read (4096, 0x1000, 128K)')
    .requiredOption('-o, --output <file>', 'where to write the bytes')
    .action(async (o: TargetOptions & { address: string; length: string; output: string }) => {
      const address = parseAddress(o.address, '--address')!;
      const length = parseLength(o.length);
      await withTarget(ctx, o, async (t) => {
        const progress = progressFor(ctx);
        try {
          const data = await t.host.read(address, length, {
            signal: ctx.signal,
            onProgress: progress.onProgress,
          });
          progress.done();
          try {
            writeFileSync(o.output, data);
          } catch (e) {
            throw new FileError('E_FILE_WRITE', o.output, e);
          }
          ctx.result(
            { target: t.label, address, length: data.length, output: o.output },
            `read ${data.length} bytes at ${hex32(address)} from ${t.label} into ${o.output}`,
          );
        } finally {
          progress.done();
        }
      });
    });

  targetOptions(
    program
      .command('unprotect')
      .description(
        'remove read protection (RDP level 1 to 0) over USB DFU: the chip erases its whole flash and resets (needs --force)',
      ),
    { alt: false },
  )
    .option('--force', 'allow it: every byte of flash is lost')
    .action(async (o: TargetOptions & { force?: boolean }) => {
      const permissions = o.force ? Permissions.none().allowReadUnprotect() : Permissions.none();
      // Refused before the board is touched (leased, powered, enumerated).
      permissions.require('read-unprotect', 'a read unprotect');
      await withTarget(ctx, o, async (t) => {
        await t.host.readUnprotect(permissions, {
          signal: ctx.signal,
          ...(t.operationMs ? { deadlineMs: t.operationMs } : {}),
        });
        ctx.result(
          { target: t.label, readUnprotect: 'accepted' },
          `read unprotect accepted by ${t.label}: the chip erases its flash, drops read protection to level 0 and resets`,
        );
      });
    });

  targetOptions(
    program
      .command('verify <file>')
      .description('compare the device memory with an image (UPLOAD and compare)'),
    { alt: true },
  )
    .option('--base <addr>', 'load address of a raw binary (default 0x08000000)')
    .action(async (file: string, o: TargetOptions & { base?: string }) => {
      const base = parseAddress(o.base, '--base');
      const image = readImage(file, base === undefined ? {} : { base });
      await withTarget(ctx, o, async (t) => {
        const progress = progressFor(ctx);
        try {
          const report = await t.host.verify(image, { signal: ctx.signal, onProgress: progress.onProgress });
          progress.done();
          if (!report.ok) {
            if (!ctx.json) ctx.info(reportLines(report));
            throw Object.assign(verifyError(image, report), { report });
          }
          ctx.result(
            { file, target: t.label, ...report },
            `${file} matches ${t.label}: ${reportLines(report)}`,
          );
        } finally {
          progress.done();
        }
      });
    });
};

/** Layout strings of a real device, when node-usb can read them without claiming it. */
function alternatesOf(e: UsbDeviceEntry): string[] {
  try {
    return (e.device.configuration?.interfaces ?? [])
      .flatMap((i) => i.alternates.map((a) => a.interfaceName ?? ''))
      .filter(Boolean);
  } catch {
    // node-usb 3 opens the device to read the configuration; without access rights it throws.
    return [];
  }
}
