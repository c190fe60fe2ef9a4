import { describe, expect, it } from 'vitest';
import type { DfuProgress } from '../dfu/dfuse.ts';
import { progressSink } from './progress.ts';

function sink(tty: boolean) {
  let out = '';
  let t = 0;
  const write = (s: string) => {
    out += s;
    return true;
  };
  const stream = { write, isTTY: tty } as unknown as NodeJS.WritableStream;
  const p = progressSink(stream, { tty, now: () => t });
  const tick = (ms: number) => {
    t += ms;
  };
  return { p, out: () => out, tick };
}

const ev = (
  phase: DfuProgress['phase'],
  done: number,
  total: number,
  address = 0x0800_0000,
): DfuProgress => ({ phase, done, total, address });

describe('progressSink', () => {
  it('prints plain lines off a terminal: phase start, every 25 %, and the end', () => {
    const s = sink(false);
    for (let i = 0; i <= 100; i++) s.p.onProgress(ev('program', i * 1024, 100 * 1024));
    s.p.onProgress(ev('verify', 0, 10));
    s.p.done();
    const lines = s.out().trim().split('\n');
    expect(lines.map((l) => l.slice(0, 12))).toEqual([
      'program   0%',
      'program  25%',
      'program  50%',
      'program  75%',
      'program 100%',
      'verify    0%',
    ]);
    expect(lines[4]).toContain('100.0 KiB/100.0 KiB');
    expect(s.out()).not.toContain('\r');
  });

  it('redraws one bar in place on a terminal, at most every 100 ms, and always the last state', () => {
    const s = sink(true);
    s.p.onProgress(ev('erase', 0, 4));
    s.p.onProgress(ev('erase', 1, 4));
    s.tick(150);
    s.p.onProgress(ev('erase', 2, 4));
    s.p.onProgress(ev('erase', 4, 4));
    s.p.done();
    const draws = s.out().split('\r').filter(Boolean);
    expect(draws).toHaveLength(3);
    expect(draws[2]).toMatch(/^erase {3}\[#{30}\] 100%/);
    expect(s.out().endsWith('\n')).toBe(true);
  });
});
