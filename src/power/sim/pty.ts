import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { HilError } from '../../errors.ts';
import { onPath } from '../list.ts';
import { nodeSerialBinding, type SerialBinding, type SerialLink } from '../serial.ts';
import type { VirtualRelayBoard } from './relay-board.ts';

/**
 * A pair of linked pseudo-terminals made by socat (Debian package socat): whatever is written to one end is
 * read at the other, with termios on both, like a USB serial adapter and the MCU behind it.
 */
export interface PtyPair {
  /** The end a driver opens (what boards.yaml calls the relay's port). */
  readonly path: string;
  /** The far end, where the simulated relay board listens. */
  readonly devicePath: string;
  readonly pid: number;
  /** Whether socat still runs. */
  readonly alive: boolean;
  /** Ends socat and removes the links. */
  close(): Promise<void>;
}

export class PtyError extends HilError {
  constructor(code: string, message: string, hint?: string) {
    super(code, message, { kind: 'tool', ...(hint ? { hint } : {}) });
  }
}

export interface PtyOptions {
  /** Directory for the links (default: a new temporary directory). */
  dir?: string;
  /** Link name of the driver's end (default `relay`); the far end is `<name>.dev`. */
  name?: string;
  /** How long to wait for socat to create the links (default 5 s). */
  timeoutMs?: number;
}

function waitExit(child: ChildProcess, ms: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    child.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
  });
}

/**
 * Why tests on pseudo-terminals cannot run on this machine, or undefined when they can. Outside CI a missing
 * socat skips them with this reason; in CI (CI=true, where .ci/run installs socat) they always run.
 */
export const ptyUnavailable: string | undefined =
  !process.env.CI && !onPath('socat') ? 'needs socat for pseudo-terminals: apt-get install socat' : undefined;

export async function openPtyPair(opts: PtyOptions = {}): Promise<PtyPair> {
  if (!onPath('socat')) throw new PtyError('E_TOOL_SOCAT', 'socat is not installed', 'apt-get install socat');
  const dir = opts.dir ?? mkdtempSync(path.join(tmpdir(), 'stm32-hil-pty-'));
  const name = opts.name ?? 'relay';
  const a = path.join(dir, name);
  const b = path.join(dir, `${name}.dev`);
  const child = spawn('socat', ['-d', '-d', `pty,raw,echo=0,link=${a}`, `pty,raw,echo=0,link=${b}`], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  child.on('error', () => {
    // Reported below through exitCode / the missing links; an 'error' listener keeps it from crashing us.
  });
  const deadline = performance.now() + (opts.timeoutMs ?? 5000);
  // Bounded: ends at the deadline or when socat exits.
  while (!(existsSync(a) && existsSync(b) && /starting data transfer loop/.test(stderr))) {
    if (child.exitCode !== null || performance.now() > deadline) {
      child.kill('SIGKILL');
      throw new PtyError(
        'E_TOOL_SOCAT',
        `socat did not create ${a}: ${stderr.trim().split('\n').at(-1) ?? 'no output'}`,
      );
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  return {
    path: a,
    devicePath: b,
    pid: child.pid!,
    get alive() {
      return child.exitCode === null && child.signalCode === null;
    },
    async close() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await waitExit(child, 2000);
        if (child.exitCode === null && child.signalCode === null) {
          child.kill('SIGKILL');
          await waitExit(child, 2000);
        }
      }
      rmSync(a, { force: true });
      rmSync(b, { force: true });
    },
  };
}

/** A simulated relay board served on a pty: the driver opens `path` exactly as it opens /dev/ttyUSB0. */
export interface PtyRelay {
  readonly path: string;
  readonly board: VirtualRelayBoard;
  readonly pty: PtyPair;
  /** Waits until every reply written so far left (tests). */
  idle(): Promise<void>;
  close(): Promise<void>;
  /** The relay board is unplugged: the port disappears under whoever has it open. */
  vanish(): Promise<void>;
}

export async function servePtyRelay(
  board: VirtualRelayBoard,
  opts: PtyOptions & { binding?: SerialBinding } = {},
): Promise<PtyRelay> {
  const pty = await openPtyPair(opts);
  let link: SerialLink;
  try {
    link = await (opts.binding ?? nodeSerialBinding).open({ path: pty.devicePath, baudRate: 9600 });
  } catch (e) {
    await pty.close();
    throw e;
  }
  let chain: Promise<void> = Promise.resolve();
  link.onData((chunk) => {
    const reply = board.feed(chunk);
    if (reply.length) chain = chain.then(() => link.write(reply)).catch(() => undefined);
  });
  const stop = async () => {
    await chain;
    if (link.isOpen) await link.close();
  };
  return {
    path: pty.path,
    board,
    pty,
    idle: () => chain,
    async close() {
      await stop();
      await pty.close();
    },
    async vanish() {
      await pty.close();
      await stop().catch(() => undefined);
    },
  };
}
