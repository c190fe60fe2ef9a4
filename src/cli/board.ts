import { acquireLease } from '../farm/lease.ts';
import type { CliContext } from './context.ts';

/**
 * Runs `fn` holding the board's lease, so that no `stm32-hil run` or other command drives the board meanwhile
 * (E_BOARD_LEASED names who holds it). Released however `fn` ends.
 */
export async function withLease<T>(
  ctx: CliContext,
  board: string,
  what: string,
  fn: () => Promise<T>,
): Promise<T> {
  const lease = acquireLease(ctx.config().stateDir, board, {
    owner: `stm32-hil ${what} (pid ${process.pid})`,
  });
  try {
    return await fn();
  } finally {
    lease.release();
  }
}
