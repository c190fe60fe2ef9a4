import { type Command, Option } from 'commander';
import { UsageError } from '../errors.ts';
import type { BoardEvent, TransitionResult } from '../farm/board-state.ts';
import { type BoardPower, openBoardPower } from '../power/board-power.ts';
import { listSerialPorts, type SerialPortInfo } from '../power/list.ts';
import { sharedPortPool } from '../power/pool.ts';
import { describeRelay, type PowerSwitch, type SwitchState } from '../power/switch.ts';
import { withLease } from './board.ts';
import type { CliContext, RegisterCommands } from './context.ts';

/** `power on|off|cycle|status`, `boot bootloader|application`, `serial list`. */

function offTime(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  if (!/^\d+$/.test(text.trim()))
    throw new UsageError(`--off-time: "${text}" is not a whole number of milliseconds`);
  return Number(text);
}

async function withBoard<T>(
  ctx: CliContext,
  boardId: string,
  fn: (p: BoardPower) => Promise<T>,
  onEvent?: (e: BoardEvent) => void,
): Promise<T> {
  return withLease(ctx, boardId, 'power', async () => {
    const power = openBoardPower(ctx.config(), boardId, onEvent ? { onEvent } : {});
    try {
      return await fn(power);
    } finally {
      power.close();
      await sharedPortPool().closeAll();
    }
  });
}

function powerSwitch(p: BoardPower): PowerSwitch {
  if (!p.switches.power) {
    throw new UsageError(`board ${p.board.id} has no power relay in boards.yaml`, {
      hint: 'add power: { port, protocol, channel }',
    });
  }
  return p.switches.power;
}

function stateText(s: SwitchState | undefined): string {
  if (!s) return '-';
  const on = s.on === undefined ? 'unknown' : s.on ? 'on' : 'off';
  return s.source === 'last-command' ? `${on} (last command)` : on;
}

interface StatusRow {
  board: string;
  virtual: boolean;
  mode?: string;
  power?: SwitchState & { relay: string };
  boot0?: SwitchState & { relay: string };
  reset?: SwitchState & { relay: string };
}

async function status(ctx: CliContext, boardId: string): Promise<StatusRow> {
  return withBoard(ctx, boardId, async (p) => {
    const row: StatusRow = { board: p.board.id, virtual: Boolean(p.virtual) };
    if (p.virtual) row.mode = p.virtual.mode;
    for (const role of ['power', 'boot0', 'reset'] as const) {
      const sw = p.switches[role];
      const relay = p.board[role];
      if (sw && relay) row[role] = { ...(await sw.state(ctx.signal)), relay: describeRelay(relay) };
    }
    return row;
  });
}

function transitionText(r: TransitionResult): string {
  const enumeration = r.measurements.find((m) => m.name === 'enumeration_ms');
  const parts = [`${r.board}: ${r.to} in ${Math.round(r.ms)} ms`];
  if (enumeration) parts.push(`power-on to DFU enumeration ${Math.round(enumeration.value)} ms`);
  if (r.extraReset?.needed)
    parts.push(
      `needed an extra ${r.extraReset.method} (${r.extraReset.expected ? 'expected: AN2606' : 'not expected'})`,
    );
  if (r.attempts > 1) parts.push(`${r.attempts} attempts`);
  return parts.join(', ');
}

function portsText(ports: SerialPortInfo[], usedBy: Map<string, string[]>): string {
  if (!ports.length) return 'no serial ports';
  return ports
    .map((p) => {
      const id = p.vendorId ? `${p.vendorId}:${p.productId}` : '';
      const name = [p.manufacturer, p.product].filter(Boolean).join(' ');
      const bits = [
        p.path,
        p.driver ?? '',
        id,
        p.usbPath ? `usb ${p.usbPath}` : '',
        name,
        p.serialNumber ? `serial ${p.serialNumber}` : '',
      ];
      const lines = [bits.filter(Boolean).join('  ')];
      for (const link of p.byId) lines.push(`    ${link}`);
      if (p.hint) lines.push(`    ${p.hint}`);
      const used = usedBy.get(p.path) ?? p.byId.flatMap((l) => usedBy.get(l) ?? []);
      if (used.length) lines.push(`    boards.yaml: ${used.join(', ')}`);
      return lines.join('\n');
    })
    .join('\n');
}

export const registerPowerCommands: RegisterCommands = (program: Command, ctx: CliContext) => {
  const power = program
    .command('power')
    .description("switch a board's supply through its relay (boards.yaml power:)");
  const board = () => new Option('--board <id>', 'board id from boards.yaml').makeOptionMandatory();

  for (const [name, on] of [
    ['on', true],
    ['off', false],
  ] as const) {
    power
      .command(name)
      .description(`switch the board's supply ${name}`)
      .addOption(board())
      .action(async (o: { board: string }) => {
        const result = await withBoard(ctx, o.board, async (p) => {
          const sw = powerSwitch(p);
          await sw.set(on, ctx.signal);
          return { board: p.board.id, power: on, relay: sw.label, readBack: sw.canReadBack };
        });
        ctx.result(
          result,
          `${result.board}: power ${on ? 'on' : 'off'}${result.readBack ? ' (read back)' : ''}`,
        );
      });
  }

  power
    .command('cycle')
    .description('switch the supply off, wait, and on again')
    .addOption(board())
    .option('--off-time <ms>', 'how long to keep it off (default: the relay offMs, else 1000)')
    .action(async (o: { board: string; offTime?: string }) => {
      const ms = offTime(o.offTime);
      const result = await withBoard(ctx, o.board, async (p) => {
        const sw = powerSwitch(p);
        const t = p.clock.now();
        await sw.cycle(ms ?? sw.offMs, ctx.signal);
        return { board: p.board.id, offTimeMs: ms ?? sw.offMs, ms: Math.round(p.clock.now() - t) };
      });
      ctx.result(result, `${result.board}: power cycled (off ${result.offTimeMs} ms)`);
    });

  power
    .command('status')
    .description('what the relays of a board (or of every board) report')
    .option('--board <id>', 'board id from boards.yaml (default: every board with relays)')
    .action(async (o: { board?: string }) => {
      const config = ctx.config();
      const ids = o.board
        ? [o.board]
        : config.boards.filter((b) => b.power || b.boot0 || b.reset).map((b) => b.id);
      const rows: StatusRow[] = [];
      for (const id of ids) rows.push(await status(ctx, id));
      ctx.result(o.board ? rows[0] : rows, () =>
        rows
          .map((r) =>
            [
              `${r.board}${r.mode ? ` [virtual: ${r.mode}]` : ''}`,
              `  power ${stateText(r.power)}${r.power ? `  (${r.power.relay})` : ''}`,
              `  boot0 ${stateText(r.boot0)}${r.boot0 ? `  (${r.boot0.relay})` : ''}`,
              ...(r.reset ? [`  reset ${stateText(r.reset)}  (${r.reset.relay})`] : []),
            ].join('\n'),
          )
          .join('\n'),
      );
    });

  const boot = program
    .command('boot')
    .description('put a board into its ROM bootloader or its application (power cycle with BOOT0)');
  for (const target of ['bootloader', 'application'] as const) {
    boot
      .command(target)
      .description(
        target === 'bootloader'
          ? 'BOOT0 high, power cycle, wait for the DFU device (with the extra reset bootloader 0x90 needs)'
          : 'BOOT0 low, power cycle, check the DFU device stays away',
      )
      .addOption(board())
      .action(async (o: { board: string }) => {
        const result = await withBoard(
          ctx,
          o.board,
          (p) => p.machine.to(target, ctx.signal),
          (e) => {
            if (e.type === 'attempt-failed')
              ctx.warn(`${e.board}: attempt ${e.attempt} to reach ${e.transition} failed: ${e.message}`);
          },
        );
        ctx.result(result, transitionText(result));
      });
  }

  const serial = program.command('serial').description('serial ports (relay boards)');
  serial
    .command('list')
    .description('serial ports of this host, with USB identity and which boards.yaml relays use them')
    .action(async () => {
      const ports = await listSerialPorts({ signal: ctx.signal });
      const usedBy = new Map<string, string[]>();
      try {
        for (const b of ctx.config().boards) {
          for (const role of ['power', 'boot0', 'reset'] as const) {
            const r = b[role];
            if (r?.port)
              usedBy.set(r.port, [
                ...(usedBy.get(r.port) ?? []),
                `${b.id} ${role} (${r.protocol} channel ${r.channel})`,
              ]);
          }
        }
      } catch {
        // No boards.yaml here: list the ports anyway.
      }
      ctx.result(ports, () => portsText(ports, usedBy));
    });
};
