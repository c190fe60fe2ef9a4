import { constants } from 'node:fs';
import { access, readFile, stat } from 'node:fs/promises';
import type { SerialPort } from 'serialport';
import { sysCode } from '../errors.ts';
import { abortReason, throwIfAborted } from '../util/abort.ts';
import { SerialError } from './errors.ts';
import { listSerialPorts, type SerialPortInfo } from './list.ts';

/**
 * The narrow serial interface every relay driver talks to (node-serialport style). The real implementation
 * sits on `serialport` (@serialport/bindings-cpp); tests reach it through pseudo-terminals, so the drivers run
 * exactly the code that drives a USB serial adapter.
 */
export interface SerialOpenOptions {
  path: string;
  baudRate: number;
  dataBits?: 5 | 6 | 7 | 8;
  parity?: 'none' | 'even' | 'odd';
  stopBits?: 1 | 2;
}

export interface SerialLink {
  readonly path: string;
  readonly isOpen: boolean;
  /** Writes and waits until the bytes left the host's buffer (tcdrain). */
  write(data: Uint8Array): Promise<void>;
  /** Discards bytes received but not read yet, and bytes not sent yet (tcflush TCIOFLUSH): use right after open. */
  flushInput(): Promise<void>;
  /** Subscribes to received bytes; returns the unsubscribe function. */
  onData(listener: (chunk: Uint8Array) => void): () => void;
  /** Called once when the port closes; `error` is set when it went away (unplugged, pty closed). */
  onClose(listener: (error?: Error) => void): () => void;
  close(): Promise<void>;
}

export interface SerialBinding {
  open(options: SerialOpenOptions, signal?: AbortSignal): Promise<SerialLink>;
  list(signal?: AbortSignal): Promise<SerialPortInfo[]>;
}

/** Classifies the open error of bindings-cpp ("Error: Permission denied, cannot open X", "Cannot lock port"). */
export async function openError(portPath: string, cause: unknown): Promise<SerialError> {
  const text = cause instanceof Error ? cause.message : String(cause);
  const code = sysCode(cause);
  if (code === 'ENOENT' || /no such file|ENOENT/i.test(text)) return notFound(portPath, cause);
  if (code === 'EACCES' || code === 'EPERM' || /permission denied|EACCES/i.test(text))
    return permissionDenied(portPath, cause);
  if (/cannot lock port|resource temporarily unavailable|EAGAIN|EBUSY|device or resource busy/i.test(text)) {
    return new SerialError('E_SERIAL_BUSY', `${portPath}: in use by another program (${text})`, {
      details: { port: portPath },
      hint: `find it with: fuser -v ${portPath}`,
      cause,
    });
  }
  return new SerialError('E_SERIAL_IO', `${portPath}: cannot open: ${text}`, {
    details: { port: portPath },
    cause,
  });
}

export function notFound(portPath: string, cause?: unknown): SerialError {
  return new SerialError('E_SERIAL_NOT_FOUND', `serial port ${portPath} does not exist`, {
    details: { port: portPath },
    hint: 'is the relay board plugged in? `stm32-hil serial list` shows the ports this host has',
    cause,
  });
}

/** Name of the group owning `file` (from /etc/group), e.g. `dialout` for /dev/ttyUSB*. */
async function groupOf(gid: number): Promise<string | undefined> {
  try {
    const text = await readFile('/etc/group', 'utf8');
    for (const line of text.split('\n')) {
      const [name, , id] = line.split(':');
      if (name && Number(id) === gid) return name;
    }
  } catch {
    // No /etc/group (Windows, odd containers): fall through to the usual name.
  }
  return undefined;
}

export async function permissionDenied(portPath: string, cause?: unknown): Promise<SerialError> {
  let group: string | undefined;
  let mode: string | undefined;
  try {
    const st = await stat(portPath);
    group = await groupOf(st.gid);
    mode = (st.mode & 0o777).toString(8).padStart(3, '0');
  } catch {
    // The port vanished meanwhile: keep the generic advice.
  }
  const grant = group && group !== 'root' ? group : 'dialout';
  const groupText = group ? `owned by group ${group}, mode ${mode}` : 'no read/write access';
  return new SerialError('E_SERIAL_PERMISSION', `serial port ${portPath}: permission denied (${groupText})`, {
    details: { port: portPath, group: group ?? null, mode: mode ?? null, grantingGroup: grant },
    hint:
      group && group !== 'root'
        ? `members of group ${grant} may open it: sudo usermod -aG ${grant} $USER, then log out and in again`
        : `add a udev rule giving group ${grant} access (MODE="0660", GROUP="${grant}"), then: sudo usermod -aG ${grant} $USER and log in again`,
    cause,
  });
}

/** Cheap checks before the binding opens the port, so the two common mistakes get precise errors. */
export async function checkPortAccess(portPath: string): Promise<void> {
  try {
    await access(portPath, constants.R_OK | constants.W_OK);
  } catch (e) {
    const code = sysCode(e);
    if (code === 'ENOENT' || code === 'ENOTDIR') throw notFound(portPath, e);
    if (code === 'EACCES' || code === 'EPERM') throw await permissionDenied(portPath, e);
    throw new SerialError('E_SERIAL_IO', `${portPath}: ${(e as Error).message}`, {
      details: { port: portPath },
      cause: e,
    });
  }
}

class NodeSerialLink implements SerialLink {
  readonly path: string;
  readonly #port: SerialPort;
  readonly #closeListeners = new Set<(error?: Error) => void>();
  #closed = false;

  constructor(portPath: string, port: SerialPort) {
    this.path = portPath;
    this.#port = port;
    port.on('close', (err?: Error) => this.#onClosed(err ?? undefined));
    // Errors after open (a write to a vanished port) also arrive through the promises below; this listener
    // keeps an unhandled 'error' event from killing the process.
    port.on('error', (err: Error) => {
      if (!port.isOpen) this.#onClosed(err);
    });
  }

  get isOpen(): boolean {
    return !this.#closed && this.#port.isOpen;
  }

  #onClosed(err?: Error): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const l of this.#closeListeners) l(err);
    this.#closeListeners.clear();
  }

  write(data: Uint8Array): Promise<void> {
    return new Promise((resolve, reject) => {
      if (!this.isOpen) {
        reject(gone(this.path));
        return;
      }
      this.#port.write(Buffer.from(data), (err) => {
        if (err) reject(ioError(this.path, 'write', err));
      });
      this.#port.drain((err) => (err ? reject(ioError(this.path, 'drain', err)) : resolve()));
    });
  }

  flushInput(): Promise<void> {
    return new Promise((resolve, reject) => {
      if (!this.isOpen) {
        reject(gone(this.path));
        return;
      }
      this.#port.flush((err) => (err ? reject(ioError(this.path, 'flush', err)) : resolve()));
    });
  }

  onData(listener: (chunk: Uint8Array) => void): () => void {
    const l = (chunk: Buffer) => listener(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.length));
    this.#port.on('data', l);
    return () => this.#port.off('data', l);
  }

  onClose(listener: (error?: Error) => void): () => void {
    if (this.#closed) {
      queueMicrotask(() => listener(gone(this.path)));
      return () => {};
    }
    this.#closeListeners.add(listener);
    return () => this.#closeListeners.delete(listener);
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      if (!this.#port.isOpen) {
        this.#onClosed();
        resolve();
        return;
      }
      this.#port.close(() => {
        this.#onClosed();
        resolve();
      });
    });
  }
}

export function gone(portPath: string, cause?: unknown): SerialError {
  return new SerialError('E_SERIAL_GONE', `serial port ${portPath} went away (unplugged or closed)`, {
    details: { port: portPath },
    cause,
  });
}

function ioError(portPath: string, op: string, cause: Error): SerialError {
  if (/disconnect|EIO|ENXIO|EBADF|not open/i.test(cause.message)) return gone(portPath, cause);
  return new SerialError('E_SERIAL_IO', `${portPath}: ${op} failed: ${cause.message}`, {
    details: { port: portPath },
    cause,
  });
}

/** The real binding: `serialport` with its native bindings. `lock: true` also takes flock(2) on the device. */
export const nodeSerialBinding: SerialBinding = {
  async open(options, signal) {
    throwIfAborted(signal);
    await checkPortAccess(options.path);
    // Loaded on first use so that loading boards.yaml or a virtual-only run never loads the native module.
    const { SerialPort } = await import('serialport');
    const port = new SerialPort({
      path: options.path,
      baudRate: options.baudRate,
      dataBits: options.dataBits ?? 8,
      parity: options.parity ?? 'none',
      stopBits: options.stopBits ?? 1,
      autoOpen: false,
      lock: true,
    });
    await new Promise<void>((resolve, reject) => {
      const onAbort = () => reject(abortReason(signal));
      signal?.addEventListener('abort', onAbort, { once: true });
      port.open((err) => {
        signal?.removeEventListener('abort', onAbort);
        if (err) {
          openError(options.path, err).then(reject, reject);
          return;
        }
        if (signal?.aborted) {
          port.close(() => reject(abortReason(signal)));
          return;
        }
        resolve();
      });
    });
    return new NodeSerialLink(options.path, port);
  },
  list: (signal) => listSerialPorts({ signal }),
};
