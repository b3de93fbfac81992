import type { RewardNorm } from '../reward/score.js';

/**
 * Hugging Face's GPT2ForSequenceClassification has a bias-free score head and
 * no slot for rlhf's reward normalisation, so both are folded into weights:
 *
 *   r_norm = gain·(w·h + b) + bias = w'·h + c,  w' = gain·w,  c = gain·b + bias
 *
 * and h = ln_f(x) = γ⊙x̂ + β feeds only the score head in a reward model, so
 * the constant c moves into ln_f's bias: β' = β + δ with w'·δ = c, taking
 * δ = c·w'/|w'|² (the smallest such shift). Then w'·h' = w'·h + c exactly in
 * real arithmetic; float32 rounding of w' and β' is the only difference.
 */
export interface FoldedHead {
  /** w', [d]. */
  weight: Float32Array;
  /** β', [d]. */
  lnfBias: Float32Array;
}

export function foldRewardHead(weight: Float32Array, bias: number, lnfBias: Float32Array, norm: RewardNorm): FoldedHead {
  const w = Float32Array.from(weight, (x) => norm.gain * x);
  const c = norm.gain * bias + norm.bias;
  let sq = 0;
  for (const x of w) sq += x * x;
  if (!(sq > 0) || !Number.isFinite(sq)) throw new Error(`reward head cannot be folded: |gain·score.weight|² is ${sq}`);
  const shifted = Float32Array.from(lnfBias, (beta, i) => beta + (c * w[i]) / sq);
  return { weight: w, lnfBias: shifted };
}
