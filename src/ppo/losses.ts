import { tf, type Tensor, type Scalar } from '../backend/tf.js';

/**
 * PPO losses as tfjs tensor functions (TRL / lm-human-preferences definitions) on
 * flat [N] tensors with a float 0/1 mask [N]; every mean is over the masked
 * entries (a mask with no 1s gives 0, not NaN). Differentiable: call inside
 * tf.variableGrads / tf.tidy. The returned scalars are the caller's to dispose.
 */

function floatMask(mask: Tensor): Tensor {
  return mask.dtype === 'float32' ? mask : mask.toFloat();
}

/** Σ x·mask / max(Σ mask, 1). */
function maskedMean(x: Tensor, mask: Tensor, count: Tensor): Scalar {
  return tf.div(tf.sum(tf.mul(x, mask)), count) as Scalar;
}

/**
 * Clipped surrogate: ratio = exp(logp − oldLogp);
 * loss = masked mean of max(−A·ratio, −A·clip(ratio, 1−ε, 1+ε)).
 * clipfrac: fraction of masked tokens where the clipped term was the larger;
 * approxKl: masked mean of ½(logp − oldLogp)² (TRL's approxkl); ratio: masked mean ratio.
 * Masked-out positions may hold anything (−Infinity log-probs, NaN advantages):
 * they are replaced by 0 before use, so neither the loss nor its gradient sees them.
 */
export function policyLoss(
  logp: Tensor,
  oldLogp: Tensor,
  advantages: Tensor,
  mask: Tensor,
  clipRange: number,
): { loss: Scalar; clipfrac: Scalar; approxKl: Scalar; ratio: Scalar } {
  return tf.tidy(() => {
    const m = floatMask(mask);
    const keep = tf.greater(m, 0);
    const zeros = tf.zerosLike(m);
    const count = tf.maximum(tf.sum(m), 1);
    const diff = tf.where(keep, tf.sub(logp, oldLogp), zeros);
    const adv = tf.where(keep, advantages, zeros);
    const ratio = tf.exp(diff);
    const negAdv = tf.neg(adv);
    const unclipped = tf.mul(negAdv, ratio);
    const clipped = tf.mul(negAdv, tf.clipByValue(ratio, 1 - clipRange, 1 + clipRange));
    return {
      loss: maskedMean(tf.maximum(unclipped, clipped), m, count),
      clipfrac: maskedMean(tf.greater(clipped, unclipped).toFloat(), m, count),
      approxKl: maskedMean(tf.mul(tf.square(diff), 0.5), m, count),
      ratio: maskedMean(ratio, m, count),
    };
  });
}

/**
 * Clipped value loss: vClipped = values clamped to [oldValues − εv, oldValues + εv];
 * loss = ½ · masked mean of max((values − returns)², (vClipped − returns)²);
 * clipfrac: fraction of masked tokens where the clipped term was the larger.
 * Inputs must be finite at masked-out positions too (they are multiplied by 0).
 */
export function valueLoss(
  values: Tensor,
  oldValues: Tensor,
  returns: Tensor,
  mask: Tensor,
  clipRangeValue: number,
): { loss: Scalar; clipfrac: Scalar } {
  return tf.tidy(() => {
    const m = floatMask(mask);
    const count = tf.maximum(tf.sum(m), 1);
    // Clamped to [old − εv, old + εv] rather than old + clip(values − old): inside the range this is `values`
    // itself, so clipfrac counts real clipping, not the rounding of old + (values − old) (which flips with float noise).
    const vClipped = tf.minimum(tf.maximum(values, tf.sub(oldValues, clipRangeValue)), tf.add(oldValues, clipRangeValue));
    const unclipped = tf.square(tf.sub(values, returns));
    const clipped = tf.square(tf.sub(vClipped, returns));
    return {
      loss: tf.mul(maskedMean(tf.maximum(unclipped, clipped), m, count), 0.5) as Scalar,
      clipfrac: maskedMean(tf.greater(clipped, unclipped).toFloat(), m, count),
    };
  });
}

/**
 * Entropy of the categorical distribution given by logits [N, V] (last axis),
 * per row: H = −Σ p·log p with log p = logSoftmax(logits). Logits must be finite.
 */
export function entropyFromLogits(logits: Tensor): Tensor {
  return tf.tidy(() => {
    const logProbs = tf.logSoftmax(logits, -1);
    return tf.neg(tf.sum(tf.mul(tf.exp(logProbs), logProbs), -1));
  });
}
