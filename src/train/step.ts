import { tf, type Scalar } from '../backend/tf.js';
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
    const n = microBatchLosses.length;
    const sum = accumulator.sum();
    const stats = tf.tidy(() => tf.stack([globalNorm(sum), tf.addN(losses)]));
    const [normOfSum, lossSum] = stats.dataSync();
    stats.dispose();
    const gradNorm = normOfSum / n;
    const clip = maxGradNorm > 0 ? clipScale(gradNorm, maxGradNorm) : 1;
    if (Number.isFinite(gradNorm)) optimizer.apply(sum, lr, clip / n);
    tf.dispose(sum);
    return { loss: lossSum / n, gradNorm };
  } finally {
    tf.dispose(losses);
    accumulator.dispose();
  }
}
