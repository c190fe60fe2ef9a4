import type { BoardConfig, RelayConfig } from '../farm/schema.ts';
import { encodeGeneric, GENERIC_CHANNELS } from './drivers/generic.ts';
import { KMTRONIC_CHANNELS } from './drivers/kmtronic.ts';
import { LCUS_CHANNELS } from './drivers/lcus.ts';
import { NUMATO_CHANNELS } from './drivers/numato.ts';

/** A relay problem in boards.yaml, with the key path to report it at (config.ts turns it into file:line:col). */
export interface RelayIssue {
  path: (string | number)[];
  message: string;
}

/** Channel numbers each relay board accepts (and the largest relay count it comes with). */
export const CHANNEL_RANGES: Record<
  Exclude<RelayConfig['protocol'], 'virtual'>,
  { min: number; max: number; maxChannels: number }
> = {
  lcus: { ...LCUS_CHANNELS, maxChannels: 8 },
  kmtronic: { ...KMTRONIC_CHANNELS, maxChannels: 8 },
  numato: { ...NUMATO_CHANNELS, maxChannels: 32 },
  generic: { ...GENERIC_CHANNELS, maxChannels: 32 },
};

const ROLES = ['power', 'boot0', 'reset'] as const;

function checkRelay(
  relay: RelayConfig,
  at: (string | number)[],
  board: Pick<BoardConfig, 'virtual'>,
): RelayIssue | undefined {
  const issue = (key: string | undefined, message: string): RelayIssue => ({
    path: key ? [...at, key] : at,
    message,
  });
  if (relay.protocol === 'virtual') {
    if (!board.virtual)
      return issue(
        'protocol',
        'protocol virtual drives a simulated board: this board has no virtual: section',
      );
    if (relay.port)
      return issue('port', 'a virtual relay has no port (remove port:, or name the real relay protocol)');
  } else if (!relay.port) {
    return issue(
      undefined,
      `protocol ${relay.protocol} needs port: (the relay board's serial device, e.g. /dev/ttyUSB0)`,
    );
  }
  if (relay.protocol !== 'generic' && relay.generic)
    return issue('generic', `generic: only applies to protocol generic, not ${relay.protocol}`);
  if (relay.protocol === 'virtual') return undefined;
  const range = CHANNEL_RANGES[relay.protocol];
  if (relay.channel < range.min || relay.channel > range.max) {
    return issue(
      'channel',
      `channel ${relay.channel} is out of range for ${relay.protocol} (${range.min} to ${range.max})`,
    );
  }
  if (relay.channels !== undefined) {
    if (relay.channels > range.maxChannels)
      return issue('channels', `${relay.protocol} relay boards have at most ${range.maxChannels} relays`);
    const last = range.min + relay.channels - 1;
    if (relay.channel > last) {
      return issue(
        'channel',
        `channel ${relay.channel} does not exist on a ${relay.channels}-relay ${relay.protocol} board (${range.min} to ${last})`,
      );
    }
  }
  if (relay.protocol === 'generic') {
    const g = relay.generic;
    if (!g)
      return issue(
        undefined,
        'protocol generic needs generic: { on, off } (and status, statusPattern to read back)',
      );
    for (const key of ['on', 'off', 'status'] as const) {
      const t = g[key];
      if (t === undefined) continue;
      if (!t.length) return { path: [...at, 'generic', key], message: 'empty command' };
      if (g.encoding === 'hex') {
        try {
          encodeGeneric(t, 'hex', relay.channel);
        } catch (e) {
          return { path: [...at, 'generic', key], message: `not hex bytes: ${(e as Error).message}` };
        }
      }
    }
    if (g.statusPattern !== undefined) {
      try {
        new RegExp(g.statusPattern);
      } catch (e) {
        return {
          path: [...at, 'generic', 'statusPattern'],
          message: `not a regular expression: ${(e as Error).message}`,
        };
      }
    }
    if (g.status !== undefined && g.encoding === 'hex' && g.statusPattern === undefined) {
      return {
        path: [...at, 'generic', 'status'],
        message: 'a hex status query needs statusPattern: (matched against "FF 01 01" style text)',
      };
    }
  }
  return undefined;
}

/**
 * Relay checks the schema cannot express: channel ranges per protocol, ports where needed, generic commands
 * that parse, and no two lines on one relay channel or one port spoken to in two protocols.
 */
export function relayIssues(farm: {
  boards: readonly Pick<BoardConfig, 'id' | 'power' | 'boot0' | 'reset' | 'virtual'>[];
}): RelayIssue[] {
  const issues: RelayIssue[] = [];
  const used = new Map<string, { where: string; id: string }>();
  const ports = new Map<string, { protocol: string; baudRate: number | undefined; where: string }>();
  farm.boards.forEach((board, i) => {
    for (const role of ROLES) {
      const relay = board[role];
      if (!relay) continue;
      const at = ['boards', i, role];
      const bad = checkRelay(relay, at, board);
      if (bad) {
        issues.push(bad);
        continue;
      }
      if (!relay.port) continue;
      const where = `boards[${i}].${role}`;
      const port = ports.get(relay.port);
      if (port && port.protocol !== relay.protocol) {
        issues.push({
          path: [...at, 'protocol'],
          message: `${relay.port} is spoken to as ${port.protocol} in ${port.where}`,
        });
        continue;
      }
      if (port && port.baudRate !== relay.baudRate) {
        issues.push({
          path: [...at, 'baudRate'],
          message: `${relay.port} has another baudRate in ${port.where}`,
        });
        continue;
      }
      if (!port) ports.set(relay.port, { protocol: relay.protocol, baudRate: relay.baudRate, where });
      const key = `${relay.port}#${relay.channel}`;
      const other = used.get(key);
      if (other) {
        issues.push({
          path: [...at, 'channel'],
          message: `channel ${relay.channel} of ${relay.port} is also ${other.where} ("${other.id}"); one relay cannot switch two lines`,
        });
        continue;
      }
      used.set(key, { where, id: board.id });
    }
  });
  return issues;
}
