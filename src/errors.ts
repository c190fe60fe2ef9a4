/**
 * Error model shared by every layer. Each layer defines its own subclass (ImageError, DfuError, ...)
 * with stable `code`s; the CLI maps `kind` to an exit code and prints one line.
 */
export type ErrorKind =
  /** The command line was wrong. */
  | 'usage'
  /** A file or configuration the user gave is wrong. */
  | 'input'
  /** A check failed: verify mismatch, failing test, regression. */
  | 'check'
  /** A board, USB device, relay or probe misbehaved or is missing. */
  | 'device'
  /** An external tool is missing or failed. */
  | 'tool'
  /** The harness itself could not run (lease, filesystem, internal). */
  | 'infra';

export const EXIT_CODES: Record<ErrorKind, number> = {
  check: 1,
  usage: 2,
  input: 2,
  device: 3,
  tool: 3,
  infra: 3,
};

export interface HilErrorOptions {
  kind: ErrorKind;
  cause?: unknown;
  /** Structured facts for --json output and reports (addresses, file, line, ...). */
  details?: Record<string, unknown>;
  /** What the user can do next; printed after the message. */
  hint?: string;
}

export class HilError extends Error {
  readonly code: string;
  readonly kind: ErrorKind;
  readonly details: Record<string, unknown>;
  readonly hint: string | undefined;

  constructor(code: string, message: string, options: HilErrorOptions) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.kind = options.kind;
    this.details = options.details ?? {};
    this.hint = options.hint;
  }

  get exitCode(): number {
    return EXIT_CODES[this.kind];
  }

  toJSON(): Record<string, unknown> {
    return {
      error: this.code,
      kind: this.kind,
      message: this.message,
      ...(this.hint ? { hint: this.hint } : {}),
      details: this.details,
    };
  }
}

export class UsageError extends HilError {
  constructor(message: string, options: Omit<HilErrorOptions, 'kind'> & { code?: string } = {}) {
    super(options.code ?? 'E_USAGE', message, { ...options, kind: 'usage' });
  }
}

/** A file the user handed us cannot be read at all (missing, unreadable). */
export class FileError extends HilError {
  constructor(code: 'E_FILE_NOT_FOUND' | 'E_FILE_READ' | 'E_FILE_WRITE', path: string, cause: unknown) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    super(code, `${path}: ${reason}`, {
      kind: code === 'E_FILE_NOT_FOUND' ? 'input' : 'infra',
      cause,
      details: { path },
    });
  }
}

export function isHilError(e: unknown): e is HilError {
  return e instanceof HilError;
}

/** Error-like `code` of a Node system error (ENOENT, EACCES, ...), if any. */
export function sysCode(e: unknown): string | undefined {
  return typeof e === 'object' && e !== null && 'code' in e && typeof e.code === 'string'
    ? e.code
    : undefined;
}
