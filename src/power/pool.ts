import { realpathSync } from 'node:fs';
import { abortReason, deadlineSignal, throwIfAborted } from '../util/abort.ts';
import { hexBytes, RelayError } from './errors.ts';
import { acquirePortLock, type PortLock } from './lock.ts';
import {
  gone,
  nodeSerialBinding,
  type SerialBinding,
  type SerialLink,
  type SerialOpenOptions,
} from './serial.ts';

/** What a reply parser says about the bytes received so far. */
export type ParseResult<T> =
  | { done: true; value: T }
  /** Need more bytes (or, with `final`, the reply is incomplete: garbage). */
  | { done: false }
  | { garbage: string };

export interface ReadOptions {
  /** Names the exchange in errors: "LCUS status of /dev/ttyUSB0". */
  what: string;
  /** No byte within this long: E_RELAY_NO_ANSWER. */
  deadlineMs: number;
  /**
   * For replies of unknown length: once bytes arrived, a gap this long ends the reply and the parser is asked
   * again with `final: true`.
   */
  idleMs?: number;
  signal?: AbortSignal;
}

/**
 * One exclusive use of an open port: buffered reads with deadlines. Handed out by the pool, one at a time per
 * port, so a driver's command and its reply are never interleaved with another board's.
 */
export class SerialSession {
  readonly link: SerialLink;
  #buf: Uint8Array = new Uint8Array(0);
  #wake: (() => void) | undefined;
  #closedError: Error | undefined;

  constructor(link: SerialLink) {
    this.link = link;
  }

  /** @internal called by the pool with every chunk */
  push(chunk: Uint8Array): void {
    const next = new Uint8Array(this.#buf.length + chunk.length);
    next.set(this.#buf);
    next.set(chunk, this.#buf.length);
    this.#buf = next;
    this.#wake?.();
  }

  /** @internal */
  closed(error: Error): void {
    this.#closedError = error;
    this.#wake?.();
  }

  get pending(): Uint8Array {
    return this.#buf;
  }

  /**
   * Drops anything received so far (late replies, line noise) before a new command. Only our buffer: the
   * port's flush (tcflush TCIOFLUSH) would also discard a command still in the output queue — on a pty,
   * tcdrain does not wait for the far end to read.
   */
  async discardInput(): Promise<void> {
    if (this.#closedError) throw this.#closedError;
    this.#buf = new Uint8Array(0);
  }

  async write(data: Uint8Array): Promise<void> {
    if (this.#closedError) throw this.#closedError;
    await this.link.write(data);
  }

  /**
   * Reads until `parse` accepts the bytes. Consumes everything read. Throws E_RELAY_NO_ANSWER when nothing came
   * within the deadline, E_RELAY_GARBAGE when the parser rejects the bytes or they stay incomplete.
   */
  async read<T>(parse: (bytes: Uint8Array, final: boolean) => ParseResult<T>, opts: ReadOptions): Promise<T> {
    throwIfAborted(opts.signal);
    const started = performance.now();
    let lastByteAt = started;
    let seen = this.#buf.length;
    for (;;) {
      if (this.#closedError) throw this.#closedError;
      if (this.#buf.length > 0) {
        const r = parse(this.#buf, false);
        if ('garbage' in r) throw this.#garbage(opts, r.garbage);
        if (r.done) {
          this.#buf = new Uint8Array(0);
          return r.value;
        }
      }
      const now = performance.now();
      if (this.#buf.length !== seen) {
        seen = this.#buf.length;
        lastByteAt = now;
      }
      const idleLeft =
        opts.idleMs !== undefined && this.#buf.length > 0 ? opts.idleMs - (now - lastByteAt) : Infinity;
      const deadlineLeft = opts.deadlineMs - (now - started);
      if (idleLeft <= 0 || deadlineLeft <= 0) {
        if (this.#buf.length === 0) {
          throw new RelayError('E_RELAY_NO_ANSWER', `${opts.what}: no answer within ${opts.deadlineMs} ms`, {
            details: { port: this.link.path, deadlineMs: opts.deadlineMs },
            hint: 'check the protocol and channel in boards.yaml and that the relay board is powered; a board that cannot report its state (LCUS-1) needs readBack: false',
          });
        }
        const r = parse(this.#buf, true);
        if ('garbage' in r) throw this.#garbage(opts, r.garbage);
        if (r.done) {
          this.#buf = new Uint8Array(0);
          return r.value;
        }
        throw this.#garbage(opts, 'incomplete reply');
      }
      await this.#waitForData(Math.min(idleLeft, deadlineLeft), opts.signal);
    }
  }

  #garbage(opts: ReadOptions, why: string): RelayError {
    const got = this.#buf;
    this.#buf = new Uint8Array(0);
    return new RelayError(
      'E_RELAY_GARBAGE',
      `${opts.what}: unexpected reply ${describeBytes(got)} (${why})`,
      {
        details: { port: this.link.path, reply: hexBytes(got) },
        hint: 'is `protocol` in boards.yaml right for this relay board?',
      },
    );
  }

  #waitForData(ms: number, signal: AbortSignal | undefined): Promise<void> {
    return new Promise((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.#wake = undefined;
      };
      const onAbort = () => {
        done();
        reject(abortReason(signal));
      };
      const timer = setTimeout(
        () => {
          done();
          resolve();
        },
        Math.max(1, Math.ceil(ms)),
      );
      this.#wake = () => {
        done();
        resolve();
      };
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }
}

/** Hex, plus the text when it is printable: `43 48 31 3A ("CH1:")`. */
export function describeBytes(data: Uint8Array): string {
  const shown = data.length > 48 ? data.subarray(0, 48) : data;
  const text = Buffer.from(shown).toString('latin1');
  const printable = /^[\x20-\x7e\r\n]*$/.test(text) && /[A-Za-z0-9]/.test(text);
  return `${hexBytes(shown)}${data.length > shown.length ? ' ...' : ''}${printable ? ` (${JSON.stringify(text)})` : ''}`;
}

interface Entry {
  key: string;
  options: SerialOpenOptions;
  link?: SerialLink;
  session?: SerialSession;
  lock?: PortLock;
  /** Serialises users of this port inside the process. */
  queue: Promise<unknown>;
  idleTimer?: NodeJS.Timeout;
  /** Bumped by every use, so an idle close queued before a use does not close the port after it. */
  generation: number;
  unsubscribe: (() => void)[];
}

export interface PortPoolOptions {
  binding?: SerialBinding;
  /** Lock directory shared by the processes of a host (see lock.ts). */
  lockDir?: string;
  /** Close the port (and release the lock) after this long unused; default 300 ms. */
  idleCloseMs?: number;
  /** How long to wait for another process to let go of a port; default 10 s. */
  lockWaitMs?: number;
  lockStaleMs?: number;
  owner?: string;
}

export interface UseOptions {
  signal?: AbortSignal;
}

/**
 * Every serial port of the process: one open link per device (keyed by its real path, so /dev/serial/by-id/...
 * and /dev/ttyUSB0 are one port), one user at a time, a cross-process lock while open, closed again when idle
 * so other processes get their turn.
 */
export class PortPool {
  readonly #entries = new Map<string, Entry>();
  readonly #binding: SerialBinding;
  readonly #opts: PortPoolOptions;

  constructor(opts: PortPoolOptions = {}) {
    this.#binding = opts.binding ?? nodeSerialBinding;
    this.#opts = opts;
  }

  get binding(): SerialBinding {
    return this.#binding;
  }

  /** Runs `fn` with exclusive use of the port; opens it (and takes the lock) if needed. */
  use<T>(
    options: SerialOpenOptions,
    fn: (session: SerialSession) => Promise<T>,
    use: UseOptions = {},
  ): Promise<T> {
    const key = portKey(options.path);
    let entry = this.#entries.get(key);
    if (!entry) {
      entry = { key, options, queue: Promise.resolve(), generation: 0, unsubscribe: [] };
      this.#entries.set(key, entry);
    }
    const e = entry;
    const run = e.queue.then(async () => {
      throwIfAborted(use.signal);
      e.generation++;
      if (e.idleTimer) clearTimeout(e.idleTimer);
      e.idleTimer = undefined;
      if (e.link && (!e.link.isOpen || e.options.baudRate !== options.baudRate)) await this.#close(e);
      if (!e.link) await this.#open(e, options, use.signal);
      try {
        return await fn(e.session!);
      } finally {
        if (e.link?.isOpen) this.#scheduleIdleClose(e);
        else await this.#close(e);
      }
    });
    e.queue = run.catch(() => undefined);
    return run;
  }

  async #open(e: Entry, options: SerialOpenOptions, signal?: AbortSignal): Promise<void> {
    e.options = options;
    e.lock = await acquirePortLock(e.key, {
      ...(this.#opts.lockDir ? { dir: this.#opts.lockDir } : {}),
      ...(this.#opts.lockStaleMs ? { staleMs: this.#opts.lockStaleMs } : {}),
      waitMs: this.#opts.lockWaitMs ?? 10_000,
      owner: this.#opts.owner ?? `stm32-hil pid ${process.pid}`,
      ...(signal ? { signal } : {}),
    });
    try {
      const link = await this.#binding.open(options, signal);
      const session = new SerialSession(link);
      e.unsubscribe.push(link.onData((chunk) => session.push(chunk)));
      e.unsubscribe.push(
        link.onClose((err) => {
          session.closed(gone(options.path, err));
        }),
      );
      // Whatever the board sent before we opened it is stale.
      await link.flushInput().catch(async (err: unknown) => {
        await link.close().catch(() => undefined);
        throw err;
      });
      e.link = link;
      e.session = session;
    } catch (err) {
      e.lock.release();
      e.lock = undefined;
      throw err;
    }
  }

  #scheduleIdleClose(e: Entry): void {
    const ms = this.#opts.idleCloseMs ?? 300;
    const generation = e.generation;
    e.idleTimer = setTimeout(() => {
      e.queue = e.queue.then(() => (e.generation === generation ? this.#close(e) : undefined));
    }, ms);
    e.idleTimer.unref();
  }

  async #close(e: Entry): Promise<void> {
    if (e.idleTimer) clearTimeout(e.idleTimer);
    e.idleTimer = undefined;
    for (const u of e.unsubscribe.splice(0)) u();
    const link = e.link;
    e.link = undefined;
    e.session = undefined;
    try {
      if (link?.isOpen) await link.close();
    } catch {
      // Closing a port that went away fails; it is closed either way.
    } finally {
      e.lock?.release();
      e.lock = undefined;
    }
  }

  /** Whether the process holds `port` open right now (tests, diagnostics). */
  isOpen(port: string): boolean {
    return Boolean(this.#entries.get(portKey(port))?.link?.isOpen);
  }

  /** Closes every port and releases every lock; waits for users in progress. */
  async closeAll(): Promise<void> {
    await Promise.all(
      [...this.#entries.values()].map(async (e) => {
        await e.queue;
        await this.#close(e);
      }),
    );
    this.#entries.clear();
  }
}

/** A port's identity: the device node behind any symlink. */
export function portKey(port: string): string {
  try {
    return realpathSync(port);
  } catch {
    return port;
  }
}

let shared: PortPool | undefined;

/** The process-wide pool (one open port per path per process). */
export function sharedPortPool(): PortPool {
  shared ??= new PortPool();
  return shared;
}

/** Bounded wrapper for a whole relay operation (lock wait, open, command, reply). */
export async function withRelayDeadline<T>(
  what: string,
  ms: number,
  signal: AbortSignal | undefined,
  fn: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const d = deadlineSignal(what, ms, signal);
  try {
    return await fn(d.signal);
  } finally {
    d.dispose();
  }
}
