import { tf, type Tensor1D } from '../backend/tf.js';
import type { GptConfig } from '../model/config.js';
import { forward, lmLogits, type Params } from '../model/gpt.js';
import type { SftBatch } from '../sft/examples.js';

/**
 * Σ_t w_t·log π(y_t | x, y_<t) per row of a right-padded batch [B]: with SFT's
 * weights, the log-probability of the response and its EOS given the prompt.
 * Call inside tf.tidy or variableGrads.
 */
export function sequenceLogps(params: Params, cfg: GptConfig, batch: SftBatch, training: boolean, dropoutSeed?: number): Tensor1D {
  const { hidden } = forward(params, cfg, tf.tensor2d(batch.x, [batch.B, batch.T], 'int32'), { training, dropoutSeed });
  const logp = tf.logSoftmax(lmLogits(params, hidden)).mul(tf.oneHot(tf.tensor1d(batch.y, 'int32'), cfg.vocab_size)).sum(-1);
  return logp.mul(tf.tensor1d(batch.weights)).reshape([batch.B, batch.T]).sum(-1) as Tensor1D;
}
