import { tf } from '../backend/tf.js';
import { gradEntries, type Grads, type Scalar, type Tensor } from './adamw.js';

/** PyTorch's `clip_grad_norm_` guard against division by zero. */
const CLIP_EPS = 1e-6;

const LETTERS = 'abcdefghijklmnopqrstuvwxyz';

/** Σ x² of one tensor as a single op (an einsum contraction, i.e. a BLAS dot). */
function sumSquares(x: Tensor): Tensor {
  if (x.rank === 0) return tf.mul(x, x);
  if (x.rank > LETTERS.length) return tf.sum(tf.square(x));
  const idx = LETTERS.slice(0, x.rank);
  return tf.einsum(`${idx},${idx}->`, x, x);
}

/**
 * Global L2 norm √(Σ_tensors Σ_elements g²) of all gradients, as a float32 scalar
 * the caller owns (dispose it). One op per gradient plus two; no intermediates leak.
 */
export function globalNorm(grads: Grads): Scalar {
  const list = gradEntries(grads).map(([, g]) => g);
  if (list.length === 0) return tf.scalar(0, 'float32');
  return tf.tidy(() => {
    const parts = list.map((g) => sumSquares(g.dtype === 'float32' ? g : tf.cast(g, 'float32')));
    const total = parts.length === 1 ? parts[0] : tf.addN(parts);
    return tf.sqrt(total) as Scalar;
  });
}

/**
 * The factor PyTorch's `clip_grad_norm_` multiplies gradients by, given their global
 * norm: maxNorm / (norm + 1e-6) when that is < 1, else 1. A NaN norm gives 1 and an
 * infinite one gives 0: check `Number.isFinite(norm)` and skip the step instead.
 * Useful to fold clipping into `AdamW.apply(grads, lr, clipScale(norm, maxNorm))`.
 */
export function clipScale(norm: number, maxNorm: number): number {
  if (!(Number.isFinite(maxNorm) && maxNorm > 0)) {
    throw new RangeError(`clip: maxNorm must be a finite number > 0 (got ${maxNorm})`);
  }
  const scale = maxNorm / (norm + CLIP_EPS);
  return scale < 1 ? scale : 1;
}

/**
 * Clip gradients by their global norm with PyTorch's semantics: if
 * scale = maxNorm / (norm + 1e-6) is < 1 every gradient is multiplied by it,
 * otherwise the gradients are returned unchanged.
 *
 * Returns NEW tensors (clones when unscaled: no copy, shared data) that the caller
 * owns and must dispose, alongside its own input gradients, which are not touched;
 * and `norm`, the pre-clip global norm as a JS number (one scalar read-back).
 */
export function clipByGlobalNorm(
  grads: Grads,
  maxNorm: number,
): { grads: Record<string, Tensor>; norm: number } {
  clipScale(0, maxNorm); // validate before doing any work
  const entries = gradEntries(grads);
  const normT = globalNorm(grads);
  const norm = normT.dataSync()[0];
  normT.dispose();
  const scale = clipScale(norm, maxNorm);
  const out: Record<string, Tensor> = {};
  if (scale < 1) {
    const s = tf.scalar(scale, 'float32');
    for (const [name, g] of entries) out[name] = tf.mul(g, s);
    s.dispose();
  } else {
    for (const [name, g] of entries) out[name] = tf.clone(g);
  }
  return { grads: out, norm };
}
