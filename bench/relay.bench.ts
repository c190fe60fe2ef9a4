// Relay switching over a real pseudo-terminal (socat) through serialport's bindings, measured side by side:
// with and without read-back, and with the port kept open by the pool versus opened for every switch.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PortPool } from '../src/power/pool.ts';
import { servePtyRelay } from '../src/power/sim/pty.ts';
import { VirtualRelayBoard } from '../src/power/sim/relay-board.ts';
import { createRelayDriver, RelaySwitch } from '../src/power/switch.ts';

const N = 100;

async function perSwitch(
  readBack: boolean,
  reopen: boolean,
  protocol: 'lcus-ascii' | 'numato' | 'kmtronic',
): Promise<number> {
  const board = new VirtualRelayBoard({ protocol, channels: 8 });
  const relay = await servePtyRelay(board);
  const pool = new PortPool({ lockDir: mkdtempSync(path.join(tmpdir(), 'bench-locks-')) });
  const cfg = {
    port: relay.path,
    protocol: protocol === 'lcus-ascii' ? ('lcus' as const) : protocol,
    channel: 1,
    channels: 8,
    readBack,
  };
  const sw = new RelaySwitch('bench', 'power', createRelayDriver(cfg, { pool }), cfg);
  await sw.on();
  const t = performance.now();
  for (let i = 0; i < N; i++) {
    await sw.set(i % 2 === 0);
    // Closing releases the port and its lock: the next switch opens, locks and flushes again.
    if (reopen) await pool.closeAll();
  }
  const ms = (performance.now() - t) / N;
  await pool.closeAll();
  await relay.close();
  return ms;
}

const rows: [string, number][] = [];
for (const protocol of ['lcus-ascii', 'numato', 'kmtronic'] as const) {
  const blind = await perSwitch(false, false, protocol);
  const checked = await perSwitch(true, false, protocol);
  rows.push([`${protocol}: switch, port kept open, no read-back`, blind]);
  rows.push([`${protocol}: switch + read-back, port kept open`, checked]);
}
const reopen = await perSwitch(true, true, 'lcus-ascii');
rows.push(['lcus-ascii: switch + read-back, port opened and locked every time', reopen]);

const base = rows[0]![1];
for (const [name, ms] of rows)
  console.log(`${name.padEnd(70)} ${ms.toFixed(2).padStart(7)} ms/switch  x${(ms / base).toFixed(2)}`);
const lcusChecked = rows[1]![1];
console.log(
  `keeping the port open is x${(reopen / lcusChecked).toFixed(2)} faster than opening it for every switch (LCUS, read-back)`,
);
