import { expect } from 'vitest';
import type { HilError } from '../errors.ts';

/**
 * What `p` rejects with (tests only). Fails the test when `p` resolves, or, given `type`, when the rejection is
 * not of that class. Without `type` it is typed as a HilError, the shape every layer's errors share.
 */
export async function rejection<E extends Error = HilError>(
  p: Promise<unknown>,
  // biome-ignore lint/suspicious/noExplicitAny: any constructor signature
  type?: abstract new (...args: any[]) => E,
): Promise<E> {
  try {
    await p;
  } catch (e) {
    if (type) expect(e).toBeInstanceOf(type);
    return e as E;
  }
  throw new Error('expected a rejection, but the promise resolved');
}
