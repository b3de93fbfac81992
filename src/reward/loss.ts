import { tf, type Scalar, type Tensor, type Tensor1D } from '../backend/tf.js';
import { embed } from '../model/kernels.js';

/** scores[index] by `embed`, whose gather (unlike tf.gather on tfjs-node) reads nothing back to the host, so a training step stays traceable. */
function pick(scores: Tensor1D, index: Int32Array | Tensor1D): Tensor1D {
  const ids = index instanceof Int32Array ? tf.tensor1d(index, 'int32') : index;
  return embed(scores.reshape([-1, 1]), ids).reshape([-1]) as Tensor1D;
}

/**
 * Bradley–Terry pairwise loss over the scores of a batch:
 *   mean over pairs of −log σ(r_better − r_worse)  [= softplus(r_worse − r_better)]
 *   + centerCoef · mean((r_better + r_worse)²)      (keeps rewards centred, as TRL's
 *                                                   center_rewards_coefficient)
 * `better[i]`, `worse[i]` index the scores of pair i. With `weights` (1 per real
 * pair, 0 per padding pair) both means are weighted, so padding pairs change nothing.
 */
export function pairwiseLoss(scores: Tensor1D, better: Int32Array | Tensor1D, worse: Int32Array | Tensor1D, centerCoef = 0, weights?: Tensor1D): Scalar {
  const rb = pick(scores, better);
  const rw = pick(scores, worse);
  const mean = (x: Tensor): Scalar => (weights ? (x.mul(weights).sum().div(weights.sum()) as Scalar) : (x.mean() as Scalar));
  const loss = mean(tf.softplus(rw.sub(rb)));
  if (centerCoef === 0) return loss;
  return loss.add(mean(rb.add(rw).square()).mul(centerCoef));
}
