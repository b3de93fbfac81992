import { gae, tokenRewards, whiten, type KlEstimator } from './math.js';

export interface AdvantageSettings {
  klCoef: number;
  klEstimator: KlEstimator;
  gamma: number;
  lam: number;
  whitenRewards: boolean;
}

export interface Advantages {
  /** [B·R], whitened over response tokens; 0 on padding. */
  advantages: Float32Array;
  /** [B·R] value targets (GAE advantages + old values). */
  returns: Float32Array;
  /** Per episode: Σ_t kl_t (the estimator chosen) and Σ_t −β·kl_t. */
  klSum: Float64Array;
  nonScoreReward: Float64Array;
}

/**
 * From one iteration's host-side arrays to PPO targets: per-token rewards
 * (−β·KL every token, the score added at the last real token), optional reward
 * whitening (mean kept), GAE per response, then advantage whitening over all
 * response tokens of the batch.
 */
export function computeAdvantages(
  lengths: readonly number[],
  R: number,
  logp: ArrayLike<number>,
  refLogp: ArrayLike<number>,
  values: ArrayLike<number>,
  scores: ArrayLike<number>,
  s: AdvantageSettings,
): Advantages {
  const B = lengths.length;
  const rewards = new Float64Array(B * R);
  const mask = new Float64Array(B * R);
  const klSum = new Float64Array(B);
  const nonScoreReward = new Float64Array(B);
  for (let b = 0; b < B; b++) {
    const L = lengths[b];
    if (L === 0) continue;
    const from = b * R;
    const tr = tokenRewards(Array.prototype.slice.call(logp, from, from + L), Array.prototype.slice.call(refLogp, from, from + L), scores[b], s.klCoef, s.klEstimator);
    rewards.set(tr.rewards, from);
    mask.fill(1, from, from + L);
    klSum[b] = tr.kl.reduce((a, x) => a + x, 0);
    nonScoreReward[b] = -s.klCoef * klSum[b];
  }
  const shaped = s.whitenRewards ? whiten(rewards, mask, false) : rewards;
  const rawAdvantages = new Float64Array(B * R);
  const returns = new Float32Array(B * R);
  for (let b = 0; b < B; b++) {
    const L = lengths[b];
    const from = b * R;
    const g = gae(shaped.subarray(from, from + L), Array.prototype.slice.call(values, from, from + L), s.gamma, s.lam);
    rawAdvantages.set(g.advantages, from);
    returns.set(g.returns, from);
  }
  return { advantages: Float32Array.from(whiten(rawAdvantages, mask)), returns, klSum, nonScoreReward };
}
