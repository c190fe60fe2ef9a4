import type { DfuProgress } from '../dfu/dfuse.ts';
import { hex32 } from '../util/hex.ts';

/**
 * Turns DFU progress events into a one-line bar on a terminal (redrawn in place, at most every 100 ms) and
 * into plain lines elsewhere (one per phase start, every 25 %, and the end), so CI logs stay short.
 * Hand-written: a dozen lines do not justify a progress-bar dependency.
 */
export interface ProgressSink {
  onProgress: (e: DfuProgress) => void;
  /** Ends the bar's line (call before printing anything else). */
  done: () => void;
}

const WIDTH = 30;

function size(n: number): string {
  if (n >= 1024 * 1024) return `${(n / (1024 * 1024)).toFixed(2)} MiB`;
  if (n >= 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${n} B`;
}

export function progressSink(
  out: NodeJS.WritableStream & { isTTY?: boolean },
  opts: { tty?: boolean; now?: () => number } = {},
): ProgressSink {
  const tty = opts.tty ?? out.isTTY === true;
  const now = opts.now ?? (() => performance.now());
  let phase: string | undefined;
  let lastDraw = Number.NEGATIVE_INFINITY;
  let lastQuarter = -1;
  let open = false;

  const line = (e: DfuProgress) => {
    const pct = e.total > 0 ? Math.min(100, Math.floor((e.done / e.total) * 100)) : 100;
    return {
      pct,
      text: `${e.phase.padEnd(7)} ${String(pct).padStart(3)}%  ${size(e.done)}/${size(e.total)}  ${hex32(e.address)}`,
    };
  };

  return {
    onProgress(e) {
      const { pct, text } = line(e);
      const newPhase = e.phase !== phase;
      const finished = e.done >= e.total;
      if (tty) {
        if (newPhase && open) out.write('\n');
        if (!newPhase && !finished && now() - lastDraw < 100) return;
        const filled = Math.round((pct / 100) * WIDTH);
        out.write(
          `\r${e.phase.padEnd(7)} [${'#'.repeat(filled)}${'.'.repeat(WIDTH - filled)}] ${text.slice(8)}\x1b[K`,
        );
        open = true;
        lastDraw = now();
      } else {
        const quarter = Math.floor(pct / 25);
        if (newPhase) lastQuarter = -1;
        if (newPhase || quarter > lastQuarter) {
          out.write(`${text}\n`);
          lastQuarter = quarter;
        }
      }
      phase = e.phase;
    },
    done() {
      if (tty && open) out.write('\n');
      open = false;
    },
  };
}
