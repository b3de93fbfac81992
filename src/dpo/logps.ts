import { tf, type Tensor1D, type Tensor2D } from '../backend/tf.js';
import type { GptConfig } from '../model/config.js';
import { forward, lmLogits, type Params } from '../model/gpt.js';
import type { SftBatch } from '../sft/examples.js';

/**
 * Σ_t w_t·log π(y_t | x, y_<t) per row of a right-padded batch [B]: with SFT's
 * weights, the log-probability of the response and its EOS given the prompt.
 * Call inside tf.tidy or variableGrads.
 */
export function sequenceLogps(params: Params, cfg: GptConfig, batch: SftBatch, training: boolean, dropoutSeed?: number): Tensor1D {
  const t = { x: tf.tensor2d(batch.x, [batch.B, batch.T], 'int32'), y: tf.tensor1d(batch.y, 'int32'), w: tf.tensor1d(batch.weights) };
  return sequenceLogpsOf(params, cfg, t, training, dropoutSeed);
}

/** `sequenceLogps` of a batch already on the device: x [B, T], y and weights w [B·T]. */
export function sequenceLogpsOf(params: Params, cfg: GptConfig, t: { x: Tensor2D; y: Tensor1D; w: Tensor1D }, training: boolean, dropoutSeed?: number): Tensor1D {
  const [B, T] = t.x.shape;
  const { hidden } = forward(params, cfg, t.x, { training, dropoutSeed });
  const logp = tf.logSoftmax(lmLogits(params, hidden)).mul(tf.oneHot(t.y, cfg.vocab_size)).sum(-1);
  return logp.mul(t.w).reshape([B, T]).sum(-1) as Tensor1D;
}
