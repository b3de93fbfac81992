import { mean } from './arrays.js';

/** Sample standard deviation (n − 1 in the denominator; 0 below two values). */
export function sampleSd(xs: readonly number[]): number {
  if (xs.length < 2) return 0;
  const m = mean(xs);
  return Math.sqrt(xs.reduce((s, x) => s + (x - m) ** 2, 0) / (xs.length - 1));
}

// Two-sided 95% quantiles of Student's t, t_{0.975}(df), df = 1..30.
const T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.16, 2.145, 2.131, 2.12, 2.11, 2.101, 2.093, 2.086, 2.08, 2.074, 2.069, 2.064, 2.06, 2.056, 2.052, 2.048, 2.045, 2.042];

/** t_{0.975}(df): the table up to 30, then the normal quantile with its first-order correction (error < 0.003). */
export function tCritical95(df: number): number {
  if (!Number.isInteger(df) || df < 1) throw new RangeError(`degrees of freedom must be a positive integer (got ${df})`);
  if (df <= T975.length) return T975[df - 1];
  const z = 1.959964;
  return z + (z ** 3 + z) / (4 * df);
}

export interface SeedSummary {
  n: number;
  mean: number;
  sd: number;
  /** 95% confidence interval of the mean (t-based); NaN with fewer than two values. */
  ci95: [number, number];
  /** How many values are above zero (for a Δ: how many seeds improved). */
  positive: number;
}

/** Mean, sample sd, t-based 95% CI of the mean, and the count above zero. */
export function summarizeSeeds(xs: readonly number[]): SeedSummary {
  const m = mean(xs);
  const sd = sampleSd(xs);
  const half = xs.length >= 2 ? (tCritical95(xs.length - 1) * sd) / Math.sqrt(xs.length) : NaN;
  return { n: xs.length, mean: m, sd, ci95: [m - half, m + half], positive: xs.filter((x) => x > 0).length };
}
