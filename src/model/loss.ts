import { sparseCrossEntropy } from './kernels.js';
import { tf, type Scalar, type Tensor1D, type Tensor2D } from '../backend/tf.js';

/** Per-token cross-entropy −log softmax(logits)[target], [N, V] × [N] → [N]. */
export function tokenNll(logits: Tensor2D, targets: Tensor1D): Tensor1D {
  return sparseCrossEntropy(logits, targets);
}

/** Mean NLL over tokens, or over tokens with weight 1 when `weights` (0/1, [N]) is given. */
export function meanTokenNll(logits: Tensor2D, targets: Tensor1D, weights?: Tensor1D): Scalar {
  const nll = tokenNll(logits, targets);
  if (!weights) return nll.mean();
  return nll.mul(weights).sum().div(tf.maximum(weights.sum(), 1));
}
