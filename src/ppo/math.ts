/**
 * Host-side PPO arithmetic for RLHF (no tfjs): per-token KL estimators, per-token
 * rewards, GAE and masked whitening. One call handles one response (its valid
 * tokens only); the caller slices each row to its valid length.
 *
 * Formulas: Schulman et al. 2016 (GAE), Schulman's "Approximating KL divergence"
 * (k1/k3), Ziegler et al. 2019 and "The N implementation details of RLHF with PPO"
 * (KL-penalised per-token rewards, score at the last token, masked whitening).
 * All arithmetic is float64, whatever the input array type.
 */

export type KlEstimator = 'k1' | 'k3';

/**
 * GAE over one response of length L = rewards.length (values.length must equal L).
 * The value after the last token is 0 (the episode ends there):
 *   δ_t = r_t + γ·V_{t+1} − V_t,  A_t = δ_t + γλ·A_{t+1},  A_L = 0, V_L = 0.
 * returns_t = A_t + V_t (the value target, TRL's `returns`).
 */
export function gae(
  rewards: ArrayLike<number>,
  values: ArrayLike<number>,
  gamma: number,
  lambda: number,
): { advantages: Float64Array; returns: Float64Array } {
  const L = rewards.length;
  if (values.length !== L) {
    throw new RangeError(`gae: rewards has ${L} entries but values has ${values.length}`);
  }
  const advantages = new Float64Array(L);
  const returns = new Float64Array(L);
  const gl = gamma * lambda;
  let nextAdv = 0;
  let nextValue = 0;
  for (let t = L - 1; t >= 0; t--) {
    const v = values[t];
    const delta = rewards[t] + gamma * nextValue - v;
    nextAdv = delta + gl * nextAdv;
    advantages[t] = nextAdv;
    returns[t] = nextAdv + v;
    nextValue = v;
  }
  return { advantages, returns };
}

/**
 * Whitening over the entries where mask ≠ 0 (TRL's masked_whiten): mean and
 * variance over the masked entries, the variance made unbiased (·n/(n−1)), then
 * (x − mean)/√(var + 1e-8). shiftMean=false adds the mean back (used for rewards).
 * Masked-out entries come back as 0. With no masked entry everything is 0; with
 * exactly one the variance is taken as 0 (the entry becomes 0, or the mean).
 */
export function whiten(x: ArrayLike<number>, mask: ArrayLike<number>, shiftMean = true): Float64Array {
  const n = x.length;
  if (mask.length !== n) {
    throw new RangeError(`whiten: x has ${n} entries but mask has ${mask.length}`);
  }
  const out = new Float64Array(n);
  let count = 0;
  let sum = 0;
  for (let i = 0; i < n; i++) {
    if (mask[i] !== 0) {
      count++;
      sum += x[i];
    }
  }
  if (count === 0) return out;
  const mean = sum / count;
  let sq = 0;
  for (let i = 0; i < n; i++) {
    if (mask[i] !== 0) {
      const d = x[i] - mean;
      sq += d * d;
    }
  }
  const variance = count > 1 ? sq / (count - 1) : 0;
  const scale = 1 / Math.sqrt(variance + 1e-8);
  const shift = shiftMean ? 0 : mean;
  for (let i = 0; i < n; i++) {
    if (mask[i] !== 0) out[i] = (x[i] - mean) * scale + shift;
  }
  return out;
}

/**
 * Per-token estimate of KL(π ‖ π_ref) from the log-probs of the sampled token:
 *   k1 = logp − refLogp                      (unbiased, can be negative)
 *   k3 = (r − 1) − log r,  r = exp(refLogp − logp)   (unbiased, always ≥ 0)
 * k3 is computed as expm1(u) − u with u = log r, which keeps it exact for tiny u.
 */
export function klEstimate(logp: number, refLogp: number, kind: KlEstimator): number {
  if (kind === 'k1') return logp - refLogp;
  if (kind === 'k3') {
    const u = refLogp - logp;
    return Math.expm1(u) - u;
  }
  throw new RangeError(`klEstimate: unknown estimator "${String(kind)}" (expected "k1" or "k3")`);
}

/**
 * Per-token rewards of one response of length L = logp.length (refLogp.length must
 * equal L, L ≥ 1): −β·kl_t at every token, plus `score` at the last token (L − 1).
 * Also returns the per-token kl_t (before the −β factor).
 */
export function tokenRewards(
  logp: ArrayLike<number>,
  refLogp: ArrayLike<number>,
  score: number,
  beta: number,
  kind: KlEstimator,
): { rewards: Float64Array; kl: Float64Array } {
  const L = logp.length;
  if (refLogp.length !== L) {
    throw new RangeError(`tokenRewards: logp has ${L} entries but refLogp has ${refLogp.length}`);
  }
  if (L === 0) throw new RangeError('tokenRewards: empty response (the score needs a last token)');
  const kl = new Float64Array(L);
  const rewards = new Float64Array(L);
  for (let t = 0; t < L; t++) {
    kl[t] = klEstimate(logp[t], refLogp[t], kind);
    rewards[t] = -beta * kl[t];
  }
  rewards[L - 1] += score;
  return { rewards, kl };
}
