import { tf, type Scalar, type Tensor } from '../backend/tf.js';
import type { Params } from '../model/gpt.js';
import type { AdamW } from './adamw.js';
import { GradAccumulator } from './accumulate.js';
import { clipScale, globalNorm } from './clip.js';

export interface StepResult {
  /** Mean loss over the micro-batches. */
  loss: number;
  /** Global norm of the mean gradient, before clipping. */
  gradNorm: number;
}

/**
 * One optimiser step: micro-batch gradients are summed, then the 1/n average
 * and the global-norm clip (PyTorch semantics) are folded into one scale that
 * AdamW applies, so neither costs a pass over the gradients.
 */
export function optimizerStep(
  params: Params,
  optimizer: AdamW,
  microBatchLosses: readonly (() => Scalar)[],
  lr: number,
  maxGradNorm: number,
): StepResult {
  const { sum, losses } = summedGradients(params, microBatchLosses);
  try {
    const n = microBatchLosses.length;
    const stats = tf.tidy(() => tf.stack([globalNorm(sum), tf.addN(losses)]));
    const [normOfSum, lossSum] = stats.dataSync();
    stats.dispose();
    const gradNorm = normOfSum / n;
    const clip = maxGradNorm > 0 ? clipScale(gradNorm, maxGradNorm) : 1;
    if (Number.isFinite(gradNorm)) optimizer.apply(sum, lr, clip / n);
    return { loss: lossSum / n, gradNorm };
  } finally {
    tf.dispose(sum);
    tf.dispose(losses);
  }
}

/**
 * The micro-batches' gradients summed per parameter (keyed by parameter name) and
 * their losses, as tensors the caller disposes. Shared by the eager step and the
 * traced graph step (src/train/graph-step.ts).
 */
export function summedGradients(params: Params, microBatchLosses: readonly (() => Scalar)[]): { sum: Record<string, Tensor>; losses: Scalar[] } {
  const names = [...params.keys()];
  const vars = names.map((n) => params.get(n)!);
  const keyOf = new Map(vars.map((v, i) => [v.name, names[i]]));
  const accumulator = new GradAccumulator();
  const losses: Scalar[] = [];
  try {
    for (const lossFn of microBatchLosses) {
      const { value, grads } = tf.variableGrads(lossFn, vars);
      losses.push(value as Scalar);
      accumulator.add(new Map(Object.entries(grads).map(([k, g]) => [keyOf.get(k)!, g])));
      tf.dispose(grads);
    }
    return { sum: accumulator.sum(), losses };
  } catch (err) {
    tf.dispose(losses);
    throw err;
  } finally {
    accumulator.dispose();
  }
}
