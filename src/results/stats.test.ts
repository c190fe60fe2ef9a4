import { describe, expect, it } from 'vitest';
import { fisherExact, meanSd, wilson } from './stats.ts';

describe('fisherExact (two-sided)', () => {
  it('gives the lady tasting tea p = 0.4857 for [[3,1],[1,3]]', () => {
    expect(fisherExact(3, 1, 1, 3)).toBeCloseTo(0.485714, 5);
  });

  it('matches published values', () => {
    // Wikipedia "Fisher's exact test" example: [[1,9],[11,3]], two-sided p = 0.002759.
    expect(fisherExact(1, 9, 11, 3)).toBeCloseTo(0.002759, 6);
    // R: fisher.test(matrix(c(0,5,5,0),2))$p.value = 0.007937 (2/252).
    expect(fisherExact(0, 5, 5, 0)).toBeCloseTo(2 / 252, 10);
    // All-pass vs all-fail with one run each tells nothing.
    expect(fisherExact(0, 1, 1, 0)).toBe(1);
  });

  it('is symmetric in rows and columns', () => {
    expect(fisherExact(2, 7, 8, 2)).toBeCloseTo(fisherExact(8, 2, 2, 7), 12);
    expect(fisherExact(2, 7, 8, 2)).toBeCloseTo(fisherExact(2, 8, 7, 2), 12);
  });

  it('is 1 for identical rows and for an empty table', () => {
    expect(fisherExact(3, 3, 3, 3)).toBeCloseTo(1, 12);
    expect(fisherExact(0, 0, 0, 0)).toBe(1);
  });

  it('handles large counts without overflow', () => {
    const p = fisherExact(10, 990, 40, 960);
    expect(p).toBeGreaterThan(0);
    expect(p).toBeLessThan(1e-4);
  });

  it('rejects counts that are not non-negative integers', () => {
    expect(() => fisherExact(-1, 1, 1, 1)).toThrow(RangeError);
    expect(() => fisherExact(1.5, 1, 1, 1)).toThrow(RangeError);
  });
});

describe('wilson (95%)', () => {
  it('matches textbook values', () => {
    const half = wilson(5, 10);
    expect(half.rate).toBe(0.5);
    expect(half.low).toBeCloseTo(0.2366, 4);
    expect(half.high).toBeCloseTo(0.7634, 4);
    // 0 of 10: [0, 0.2775]; 10 of 10: [0.7225, 1].
    expect(wilson(0, 10)).toEqual({ rate: 0, low: 0, high: expect.closeTo(0.2775, 4) });
    expect(wilson(10, 10)).toEqual({ rate: 1, low: expect.closeTo(0.7225, 4), high: 1 });
    // 1 of 20: [0.0089, 0.2361].
    expect(wilson(1, 20).low).toBeCloseTo(0.0089, 4);
    expect(wilson(1, 20).high).toBeCloseTo(0.2361, 4);
  });

  it('narrows as trials grow and spans [0,1] with no trials', () => {
    expect(wilson(0, 0)).toEqual({ rate: 0, low: 0, high: 1 });
    const a = wilson(2, 20);
    const b = wilson(20, 200);
    expect(b.high - b.low).toBeLessThan(a.high - a.low);
  });

  it('rejects more events than trials', () => {
    expect(() => wilson(3, 2)).toThrow(RangeError);
  });
});

describe('meanSd', () => {
  it('gives the sample standard deviation', () => {
    const { mean, sd } = meanSd([2, 4, 4, 4, 5, 5, 7, 9]);
    expect(mean).toBe(5);
    expect(sd).toBeCloseTo(2.13809, 5);
    expect(meanSd([3])).toEqual({ mean: 3, sd: 0 });
  });
});
