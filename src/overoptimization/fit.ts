/**
 * Reward over-optimisation as Gao, Schulman & Hilton (2022, "Scaling Laws for
 * Reward Model Overoptimization") measure it: the gold score's gain over the
 * initial policy, as a function of d = √KL(π‖π_init), follows
 *
 *   best-of-n:  R_bon(d) = d·(α − β·d)
 *   RL:         R_RL(d)  = d·(α − β·log d)
 *
 * Both are linear in (α, β), so least squares through the origin fits them.
 * The gain peaks where dR/dd = 0: d* = α / (2β) for best-of-n, and
 * d* = exp(α/β − 1) for RL; beyond it, optimising the proxy costs gold.
 */

export type OveroptimizationForm = 'bon' | 'rl';

export interface OverPoint {
  /** √KL in √nats. */
  d: number;
  /** Gold score minus the initial policy's. */
  gain: number;
}

export interface OverFit {
  form: OveroptimizationForm;
  alpha: number;
  beta: number;
  /** d at the fitted gain's maximum; null when the fit has no interior maximum (β ≤ 0: no over-optimisation seen yet). */
  peak_d: number | null;
  /** Fitted gain at the peak (null with peak_d). */
  peak_gain: number | null;
  /** Root-mean-square residual of the fit. */
  rmse: number;
  points: number;
}

/** The two features whose combination α·f1 − β·f2 is the form's gain. */
function features(form: OveroptimizationForm, d: number): [number, number] {
  return form === 'bon' ? [d, d * d] : [d, d > 0 ? d * Math.log(d) : 0];
}

export function fittedGain(fit: Pick<OverFit, 'form' | 'alpha' | 'beta'>, d: number): number {
  const [f1, f2] = features(fit.form, d);
  return fit.alpha * f1 - fit.beta * f2;
}

/** Least-squares α, β of the form through the points; needs two points with d > 0 that are not collinear in feature space. */
export function fitOveroptimization(form: OveroptimizationForm, points: readonly OverPoint[]): OverFit {
  let s11 = 0;
  let s12 = 0;
  let s22 = 0;
  let b1 = 0;
  let b2 = 0;
  for (const p of points) {
    if (!(p.d >= 0) || !Number.isFinite(p.gain)) throw new RangeError(`fitOveroptimization: bad point ${JSON.stringify(p)}`);
    const [f1, g] = features(form, p.d);
    const f2 = -g;
    s11 += f1 * f1;
    s12 += f1 * f2;
    s22 += f2 * f2;
    b1 += f1 * p.gain;
    b2 += f2 * p.gain;
  }
  const det = s11 * s22 - s12 * s12;
  if (!(Math.abs(det) > 1e-12 * Math.max(1, s11 * s22))) throw new RangeError(`fitOveroptimization: the ${points.length} point(s) do not determine α and β (need two distinct d > 0)`);
  const alpha = (b1 * s22 - b2 * s12) / det;
  const beta = (s11 * b2 - s12 * b1) / det;
  const fit = { form, alpha, beta };
  let peak: number | null = null;
  if (beta > 0) peak = form === 'bon' ? alpha / (2 * beta) : Math.exp(alpha / beta - 1);
  if (peak !== null && !(peak > 0 && Number.isFinite(peak))) peak = null;
  const rmse = Math.sqrt(points.reduce((s, p) => s + (fittedGain(fit, p.d) - p.gain) ** 2, 0) / points.length);
  return { ...fit, peak_d: peak, peak_gain: peak === null ? null : fittedGain(fit, peak), rmse, points: points.length };
}

/** KL(best-of-n ‖ base) for a continuous score: log n − (n − 1)/n (Stiennon et al. 2020; Gao et al. 2022). */
export function bestOfNKl(n: number): number {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`best-of-n needs an integer n >= 1 (got ${n})`);
  return Math.log(n) - (n - 1) / n;
}

/**
 * Expected `value` of the best-of-n choice (highest `score`) among n of the N
 * samples drawn without replacement, averaged over all C(N, n) subsets: with
 * samples sorted by score ascending, the i-th (1-based) is the best of a subset
 * with probability C(i−1, n−1) / C(N, n). Uses every sample, so it has far less
 * variance than one draw of n. Equal scores are ordered by index.
 */
export function expectedBestOfN(scores: readonly number[], values: readonly number[], n: number): number {
  const N = scores.length;
  if (values.length !== N) throw new RangeError('expectedBestOfN: scores and values differ in length');
  if (!Number.isInteger(n) || n < 1 || n > N) throw new RangeError(`expectedBestOfN: n must be an integer in 1..${N} (got ${n})`);
  const order = scores.map((_, i) => i).sort((a, b) => scores[a] - scores[b] || a - b);
  // w_i = C(i−1, n−1) / C(N, n), built as a running ratio to stay in floating-point range
  let w = 0;
  let total = 0;
  for (let i = n; i <= N; i++) {
    if (i === n) {
      w = 1;
      for (let j = 0; j < n; j++) w *= (n - j) / (N - j); // C(n−1, n−1)/C(N, n) = n!(N−n)!/N!
    } else {
      w *= (i - 1) / (i - n); // C(i−1, n−1) / C(i−2, n−1)
    }
    total += w * values[order[i - 1]];
  }
  return total;
}
