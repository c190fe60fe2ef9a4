import { createInterface } from 'node:readline';
import type { VirtualBoard } from '../sim/board.ts';
import { serveVirtualFarm } from '../usbip/farm.ts';
import { DEFAULT_USBIP_PORT, isLoopback, parseListen, type UsbipServerEvent } from '../usbip/server.ts';
import { hex8 } from '../util/hex.ts';
import type { CliContext, RegisterCommands } from './context.ts';

interface ServeOptions {
  board?: string[];
  listen: string;
  allowRemote?: boolean;
  stdinCommands?: boolean;
}

/**
 * One line of `--stdin-commands`: what a relay or a reset button would do to a served board (scripts use it to
 * bring a board back into its bootloader after a DFU leave). Returns what happened, for the log.
 */
export function boardCommand(line: string, boards: readonly VirtualBoard[]): string {
  const [verb, id, arg] = line.trim().split(/\s+/);
  if (!verb) return '';
  const board = boards.find((b) => b.id === id);
  if (!board)
    return `unknown board "${id ?? ''}" (commands: reset ID, power ID on|off, power-cycle ID, boot0 ID high|low)`;
  switch (verb) {
    case 'reset':
      board.reset();
      return `${board.id}: reset (now ${board.mode})`;
    case 'power':
      if (arg !== 'on' && arg !== 'off') return `power ${board.id} needs on or off`;
      board.setPower(arg === 'on');
      return `${board.id}: power ${arg} (now ${board.mode})`;
    case 'power-cycle':
      board.setPower(false);
      board.setPower(true);
      return `${board.id}: power cycled (now ${board.mode})`;
    case 'boot0':
      if (arg !== 'high' && arg !== 'low') return `boot0 ${board.id} needs high or low`;
      board.setBoot0(arg === 'high');
      return `${board.id}: BOOT0 ${arg} (sampled at the next reset or power-on)`;
    default:
      return `unknown command "${verb}" (commands: reset ID, power ID on|off, power-cycle ID, boot0 ID high|low)`;
  }
}

function stamp(): string {
  return new Date().toISOString().slice(11, 23);
}

/** The `usbip` command line that attaches `busid` from `host:port`. */
export function attachCommand(host: string, port: number, busid: string): string {
  const h = host === '0.0.0.0' || host === '::' ? 'THIS-HOST' : host;
  return `usbip ${port === DEFAULT_USBIP_PORT ? '' : `--tcp-port ${port} `}attach -r ${h} -b ${busid}`;
}

function eventLine(e: UsbipServerEvent, boardOf: (busid: string) => string): string | undefined {
  switch (e.type) {
    case 'import':
      return `${e.busid} ${e.board}: attached by ${e.peer}`;
    case 'released':
      return `${e.busid} ${e.board}: USB/IP connection ended (${e.reason})`;
    case 'protocol-error':
      return `${e.peer}${e.busid ? ` (${e.busid} ${boardOf(e.busid)})` : ''}: bad USB/IP input, connection dropped: ${e.message}`;
    case 'transfer-error':
      return `${e.busid} ${boardOf(e.busid)}: transfer failed inside the simulator: ${e.message}`;
    default:
      return undefined;
  }
}

async function serve(ctx: CliContext, opts: ServeOptions): Promise<void> {
  const config = ctx.config();
  const { host, port } = parseListen(opts.listen);
  const log = (line: string) => ctx.info(`[${stamp()}] ${line}`);
  const names = new Map<string, string>();
  const farm = await serveVirtualFarm({
    config,
    boardIds: opts.board ?? [],
    host,
    port,
    allowRemote: opts.allowRemote === true,
    onEvent: (e) => {
      const line = eventLine(e, (b) => names.get(b) ?? '?');
      if (line) log(line);
      else if (ctx.debug) log(JSON.stringify(e));
    },
  });
  try {
    const address = farm.server.address;
    for (const s of farm.boards) names.set(s.busid, s.board.id);
    const onAttach = (busid: string) => () =>
      log(
        `${busid} ${names.get(busid)}: enumerated (bootloader), attach with: ${attachCommand(host, address.port, busid)}`,
      );
    // The board finishes its transition after telling its listeners: say where it went a moment later.
    const onDetach = (busid: string) => () =>
      setImmediate(() =>
        log(
          `${busid} ${names.get(busid)}: left the bus (now ${farm.boards.find((s) => s.busid === busid)?.board.mode})`,
        ),
      );
    const listeners = farm.boards.map((s) => ({ s, attach: onAttach(s.busid), detach: onDetach(s.busid) }));
    for (const l of listeners) l.s.board.on('attach', l.attach).on('detach', l.detach);

    const rows = farm.boards.map((s) => ({
      busid: s.busid,
      board: s.board.id,
      part: s.config.part,
      chipRevision: s.config.virtual!.chipRevision,
      bootloader: s.config.virtual!.bootloader,
      timeScale: s.timeScale,
      mode: s.board.mode,
      attach: attachCommand(host, address.port, s.busid),
    }));
    const remote = !isLoopback(host);
    ctx.result({ listen: { host, port: address.port }, remote, boards: rows }, () => {
      const scales = [...new Set(rows.map((r) => r.timeScale))];
      const lines = [
        `USB/IP server on ${host}:${address.port}${remote ? '' : ' (loopback only)'}: ${rows.length} virtual board${rows.length === 1 ? '' : 's'}`,
        `timing model: ${scales.map((t) => (t === 1 ? 'real time' : `${t}x faster than real hardware (poll timeouts shrink too)`)).join(', ')}`,
        '',
        table([
          ['bus id', 'board', 'part', 'rev', 'bootloader', 'now'],
          ...rows.map((r) => [r.busid, r.board, r.part, r.chipRevision, hex8(r.bootloader), r.mode]),
        ]),
        '',
        'attach on a Linux host with the vhci-hcd module loaded (modprobe vhci-hcd; Debian package usbip):',
        ...rows.map((r) => `  ${r.attach}    # ${r.board}`),
        `list: usbip ${address.port === DEFAULT_USBIP_PORT ? '' : `--tcp-port ${address.port} `}list -r ${host}`,
      ];
      return lines.join('\n');
    });
    if (remote)
      ctx.warn(
        `USB/IP has no authentication: anyone who can reach ${host}:${address.port} can attach these boards and rewrite their flash`,
      );
    if (opts.stdinCommands) {
      // Closing stdin ends the commands, not the server.
      const rl = createInterface({ input: process.stdin, terminal: false });
      rl.on('line', (line) => {
        const said = boardCommand(
          line,
          farm.boards.map((b) => b.board),
        );
        if (said) log(said);
      });
      ctx.signal.addEventListener('abort', () => rl.close(), { once: true });
    }
    ctx.info('serving until interrupted (Ctrl-C)');
    await new Promise<void>((resolve) => {
      if (ctx.signal.aborted) resolve();
      ctx.signal.addEventListener('abort', () => resolve(), { once: true });
    });
    for (const l of listeners) l.s.board.off('attach', l.attach).off('detach', l.detach);
  } finally {
    await farm.close();
  }
  ctx.info('USB/IP server stopped');
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows
    .map((r) => `  ${r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')}`.trimEnd())
    .join('\n');
}

export const registerSimCommands: RegisterCommands = (program, ctx) => {
  const sim = program
    .command('sim')
    .description('the virtual farm seen from outside: virtual boards for other programs');
  sim
    .command('serve')
    .description(
      'export virtual boards as USB devices over USB/IP: `usbip attach` makes them real USB devices for dfu-util, STM32CubeProgrammer or stm32-hil',
    )
    .option('--board <id...>', 'boards to serve (default: every virtual board in boards.yaml)')
    .option('--listen <host:port>', 'address to listen on', `127.0.0.1:${DEFAULT_USBIP_PORT}`)
    .option('--allow-remote', 'allow a non-loopback --listen address (USB/IP has no authentication)')
    .option(
      '--stdin-commands',
      'read board commands from stdin, one per line: reset ID, power ID on|off, power-cycle ID, boot0 ID high|low',
    )
    .action(async (opts: ServeOptions) => serve(ctx, opts));
};
