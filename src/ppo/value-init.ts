import { tf } from '../backend/tf.js';
import type { Params } from '../model/gpt.js';
import type { RewardNorm } from '../reward/score.js';

/**
 * Folds the reward normalisation r_norm = gain·r + bias into a scalar head
 * copied from the reward model (w ← gain·w, b ← gain·b + bias), in place, so
 * the value model starts out on the scale of the rewards PPO optimises.
 * Without it the critic begins off by the raw head's offset and scale and its
 * clipped updates take many iterations to close the gap, while the
 * advantages carry that error.
 */
export function foldRewardNorm(params: Params, norm: RewardNorm): void {
  const weight = params.get('score.weight');
  const bias = params.get('score.bias');
  if (!weight || !bias) throw new Error('foldRewardNorm: the model has no score head');
  tf.tidy(() => {
    weight.assign(weight.mul(norm.gain));
    bias.assign(bias.mul(norm.gain).add(norm.bias));
  });
}
