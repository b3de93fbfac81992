import { tf, type Scalar, type Tensor1D, type Tensor2D } from '../backend/tf.js';
import type { GptConfig } from '../model/config.js';
import { forward, lmLogits, type Params } from '../model/gpt.js';
import { meanTokenNll } from '../model/loss.js';

/** A language-modelling batch on the host: inputs, next-token targets, optional 0/1 loss weights; [B, T] row-major. */
export interface LmBatch {
  x: Int32Array;
  y: Int32Array;
  weights?: Float32Array;
  B: number;
  T: number;
}

function logitsAndTargets(params: Params, cfg: GptConfig, batch: LmBatch, training: boolean, dropoutSeed?: number) {
  const { hidden } = forward(params, cfg, tf.tensor2d(batch.x, [batch.B, batch.T], 'int32'), { training, dropoutSeed });
  return { logits: lmLogits(params, hidden), targets: tf.tensor1d(batch.y, 'int32') };
}

/** A batch's tensors: inputs [B, T], targets [B·T] (int32), loss weights [B·T] if the batch has them. */
export interface LmBatchTensors {
  x: Tensor2D;
  y: Tensor1D;
  weights?: Tensor1D;
}

export function lmBatchTensors(batch: LmBatch): LmBatchTensors {
  return {
    x: tf.tensor2d(batch.x, [batch.B, batch.T], 'int32'),
    y: tf.tensor1d(batch.y, 'int32'),
    weights: batch.weights ? tf.tensor1d(batch.weights) : undefined,
  };
}

/** `lmBatchLoss` on a batch already on the device (a traced step feeds these tensors). */
export function lmTensorLoss(params: Params, cfg: GptConfig, t: LmBatchTensors, training: boolean, dropoutSeed?: number): Scalar {
  const { hidden } = forward(params, cfg, t.x, { training, dropoutSeed });
  return meanTokenNll(lmLogits(params, hidden), t.y, t.weights);
}

/** Mean next-token NLL over the weighted (or all) targets. Call inside tf.tidy or variableGrads. */
export function lmBatchLoss(params: Params, cfg: GptConfig, batch: LmBatch, training: boolean, dropoutSeed?: number): Scalar {
  return lmTensorLoss(params, cfg, lmBatchTensors(batch), training, dropoutSeed);
}

/** Summed NLL, number of correct argmax predictions, and token count, over weighted targets (evaluation). */
export function lmBatchStats(params: Params, cfg: GptConfig, batch: LmBatch): { nll: number; correct: number; count: number } {
  const stats = tf.tidy(() => {
    const { logits, targets } = logitsAndTargets(params, cfg, batch, false);
    const w = batch.weights ? tf.tensor1d(batch.weights) : tf.onesLike(targets).toFloat();
    const nll = meanTokenNll(logits, targets, w).mul(tf.maximum(w.sum(), 1));
    const correct = tf.equal(logits.argMax(-1), targets).toFloat().mul(w).sum();
    return tf.stack([nll, correct, w.sum()]);
  });
  const [nll, correct, count] = stats.dataSync();
  stats.dispose();
  return { nll, correct, count };
}

/** Token-weighted mean NLL and argmax accuracy over evaluation batches. */
export function evaluateLm(params: Params, cfg: GptConfig, batches: readonly LmBatch[]): { loss: number; accuracy: number } {
  let nll = 0;
  let correct = 0;
  let count = 0;
  for (const b of batches) {
    const s = lmBatchStats(params, cfg, b);
    nll += s.nll;
    correct += s.correct;
    count += s.count;
  }
  return { loss: nll / count, accuracy: correct / count };
}
