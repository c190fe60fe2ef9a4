import { abortReason, throwIfAborted } from './abort.ts';

/**
 * Time source for everything that waits: the DfuSe host's poll timeouts, the virtual bootloader's
 * timing model, relay off-times. Tests run on a VirtualClock so a 0.9 s sector erase costs nothing.
 */
export interface Clock {
  /** Milliseconds, monotonic. */
  now(): number;
  /** Waits `ms`, rejecting with the signal's reason if it aborts first. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
  readonly virtual: boolean;
}

export class RealClock implements Clock {
  readonly virtual = false;
  now(): number {
    return performance.now();
  }
  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    throwIfAborted(signal);
    if (ms <= 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        clearTimeout(timer);
        reject(abortReason(signal));
      };
      const timer = setTimeout(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      }, ms);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }
}

/**
 * Time advances only when someone sleeps: each sleep moves `now` forward by its duration and resolves
 * on the next macrotask, so concurrent sleepers interleave but nothing waits in real time.
 */
export class VirtualClock implements Clock {
  readonly virtual = true;
  #now = 0;
  now(): number {
    return this.#now;
  }
  advance(ms: number): void {
    this.#now += Math.max(0, ms);
  }
  async sleep(ms: number, signal?: AbortSignal): Promise<void> {
    throwIfAborted(signal);
    this.#now += Math.max(0, ms);
    await new Promise<void>((resolve) => setImmediate(resolve));
    throwIfAborted(signal);
  }
}

/** A real clock that runs `scale` times faster: waits stay waits, shorter (used by benches and e2e). */
export class ScaledClock implements Clock {
  readonly virtual = false;
  readonly #real = new RealClock();
  readonly #scale: number;
  constructor(scale: number) {
    this.#scale = scale;
  }
  now(): number {
    return this.#real.now() * this.#scale;
  }
  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return this.#real.sleep(ms / this.#scale, signal);
  }
}

export const realClock: Clock = new RealClock();
