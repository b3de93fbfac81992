import { tf, type Scalar, type Tensor } from '../backend/tf.js';

/**
 * GRPO's KL term (Shao et al. 2024, eq. 4): masked mean over response tokens
 * of the k3 estimator exp(u) − u − 1 with u = refLogp − logp, differentiable
 * in logp; ≥ 0, and 0 exactly where the policy agrees with the reference.
 * Masked-out positions are replaced by u = 0 before the exp, so padding never
 * overflows.
 */
export function k3Penalty(logp: Tensor, refLogp: Tensor, mask: Tensor): Scalar {
  return tf.tidy(() => {
    const keep = tf.greater(mask, 0);
    const u = tf.where(keep, tf.sub(refLogp, logp), tf.zerosLike(logp));
    const k3 = tf.sub(tf.sub(tf.exp(u), u), 1);
    return tf.div(tf.sum(tf.mul(k3, mask)), tf.maximum(tf.sum(mask), 1)) as Scalar;
  });
}
