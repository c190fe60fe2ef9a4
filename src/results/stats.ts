/**
 * The two statistics the regression analysis needs, hand-written: npm has no small, maintained package
 * for just an exact 2x2 test and a binomial interval (the statistics suites are large and mostly
 * unmaintained), and both fit in a few lines.
 */

const logFactorials: number[] = [0];

function logFactorial(n: number): number {
  for (let i = logFactorials.length; i <= n; i++) logFactorials[i] = logFactorials[i - 1]! + Math.log(i);
  return logFactorials[n]!;
}

function checkCount(name: string, v: number): void {
  if (!Number.isInteger(v) || v < 0)
    throw new RangeError(`${name} must be a non-negative integer (got ${v})`);
}

/**
 * Fisher's exact test, two-sided, for the 2x2 table [[a, b], [c, d]] (rows: groups, columns: outcome).
 * The p-value is the sum of the hypergeometric probabilities of every table with the same margins that
 * is no more likely than the observed one (the usual definition, as R's fisher.test; a relative
 * tolerance of 1e-7 counts ties that differ only by rounding).
 */
export function fisherExact(a: number, b: number, c: number, d: number): number {
  for (const [name, v] of [
    ['a', a],
    ['b', b],
    ['c', c],
    ['d', d],
  ] as const)
    checkCount(name, v);
  const row1 = a + b;
  const row2 = c + d;
  const col1 = a + c;
  const n = row1 + row2;
  if (n === 0) return 1;
  // log P(X = x) for X ~ Hypergeometric: x of col1 in row 1.
  const base =
    logFactorial(row1) + logFactorial(row2) + logFactorial(col1) + logFactorial(n - col1) - logFactorial(n);
  const logP = (x: number) =>
    base - logFactorial(x) - logFactorial(row1 - x) - logFactorial(col1 - x) - logFactorial(row2 - col1 + x);
  const lo = Math.max(0, col1 - row2);
  const hi = Math.min(row1, col1);
  const observed = logP(a);
  let p = 0;
  for (let x = lo; x <= hi; x++) {
    const lp = logP(x);
    if (lp <= observed + 1e-7) p += Math.exp(lp);
  }
  return Math.min(1, p);
}

/** 1.96: the two-sided 95% quantile of the standard normal distribution. */
export const Z95 = 1.959963984540054;

export interface Interval {
  /** Observed proportion (0 when there are no trials). */
  rate: number;
  low: number;
  high: number;
}

/**
 * Wilson score interval for a proportion (`events` out of `trials`), 95% by default. Unlike the
 * normal approximation it stays inside [0, 1] and is honest for 0 of n and n of n, which is what a
 * farm's failure counts mostly look like. No trials: the whole range [0, 1].
 */
export function wilson(events: number, trials: number, z = Z95): Interval {
  checkCount('events', events);
  checkCount('trials', trials);
  if (events > trials) throw new RangeError(`events (${events}) cannot exceed trials (${trials})`);
  if (trials === 0) return { rate: 0, low: 0, high: 1 };
  const p = events / trials;
  const z2 = z * z;
  const denom = 1 + z2 / trials;
  const center = (p + z2 / (2 * trials)) / denom;
  const half = (z / denom) * Math.sqrt((p * (1 - p)) / trials + z2 / (4 * trials * trials));
  return {
    rate: p,
    low: events === 0 ? 0 : Math.max(0, center - half),
    high: events === trials ? 1 : Math.min(1, center + half),
  };
}

/** Mean and sample standard deviation (n - 1); sd is 0 for fewer than two values. */
export function meanSd(values: readonly number[]): { mean: number; sd: number } {
  if (values.length === 0) return { mean: Number.NaN, sd: Number.NaN };
  const mean = values.reduce((s, v) => s + v, 0) / values.length;
  if (values.length < 2) return { mean, sd: 0 };
  const ss = values.reduce((s, v) => s + (v - mean) ** 2, 0);
  return { mean, sd: Math.sqrt(ss / (values.length - 1)) };
}
