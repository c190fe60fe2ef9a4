import { HilError } from '../errors.ts';

/** Raised when an operation's deadline passes. `what` names the operation that gave up. */
export class DeadlineError extends HilError {
  constructor(what: string, ms: number, details: Record<string, unknown> = {}) {
    super('E_DEADLINE', `${what}: no answer within ${ms} ms`, {
      kind: 'device',
      details: { ...details, deadlineMs: ms },
    });
  }
}

export class CancelledError extends HilError {
  constructor(what = 'operation') {
    super('E_CANCELLED', `${what} was cancelled`, { kind: 'infra' });
  }
}

export function abortReason(signal: AbortSignal | undefined): unknown {
  const r: unknown = signal?.reason;
  if (r instanceof Error) return r;
  return new CancelledError();
}

export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw abortReason(signal);
}

/**
 * A signal that aborts when `parent` aborts or after `ms`, with a DeadlineError naming `what`.
 * Call `dispose()` when done so the timer does not keep the process alive.
 */
export function deadlineSignal(
  what: string,
  ms: number,
  parent?: AbortSignal,
): { signal: AbortSignal; dispose: () => void } {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(new DeadlineError(what, ms)), ms);
  const onParent = () => ctl.abort(abortReason(parent));
  if (parent?.aborted) onParent();
  else parent?.addEventListener('abort', onParent, { once: true });
  return {
    signal: ctl.signal,
    dispose: () => {
      clearTimeout(timer);
      parent?.removeEventListener('abort', onParent);
    },
  };
}

/** Runs `fn` under a deadline; the signal handed to `fn` aborts at the deadline or with `parent`. */
export async function withDeadline<T>(
  what: string,
  ms: number,
  parent: AbortSignal | undefined,
  fn: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const { signal, dispose } = deadlineSignal(what, ms, parent);
  try {
    return await Promise.race([
      fn(signal),
      new Promise<never>((_, reject) => {
        if (signal.aborted) reject(abortReason(signal));
        signal.addEventListener('abort', () => reject(abortReason(signal)), { once: true });
      }),
    ]);
  } finally {
    dispose();
  }
}
