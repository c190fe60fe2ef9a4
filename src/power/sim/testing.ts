// Test helpers for code that talks to relay boards over pseudo-terminals (imported by tests only).
import { describe } from 'vitest';
import { ptyUnavailable } from './pty.ts';

/** A describe block on real pseudo-terminals (socat): skipped, with the reason, where socat is missing outside CI. */
export function describePty(title: string, fn: () => void): void {
  describe.skipIf(ptyUnavailable !== undefined)(
    ptyUnavailable ? `${title} [skipped: ${ptyUnavailable}]` : title,
    fn,
  );
}
