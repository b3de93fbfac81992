import { tf, type Scalar, type Tensor1D } from '../backend/tf.js';

/**
 * Bradley–Terry pairwise loss over the scores of a batch:
 *   mean over pairs of −log σ(r_better − r_worse)  [= softplus(r_worse − r_better)]
 *   + centerCoef · mean((r_better + r_worse)²)      (keeps rewards centred, as TRL's
 *                                                   center_rewards_coefficient)
 * `better[i]`, `worse[i]` index the scores of pair i.
 */
export function pairwiseLoss(scores: Tensor1D, better: Int32Array, worse: Int32Array, centerCoef = 0): Scalar {
  const rb = tf.gather(scores, tf.tensor1d(better, 'int32'));
  const rw = tf.gather(scores, tf.tensor1d(worse, 'int32'));
  const loss = tf.softplus(rw.sub(rb)).mean() as Scalar;
  if (centerCoef === 0) return loss;
  return loss.add(rb.add(rw).square().mean().mul(centerCoef));
}
