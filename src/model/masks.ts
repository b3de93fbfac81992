import { tf, type Tensor2D } from '../backend/tf.js';

const NEG = -1e9;
const causalCache = new Map<string, Tensor2D>();

/**
 * Causal additive bias [T, tPast + T] for queries at absolute positions
 * tPast … tPast+T−1. Built on the host once per shape and kept: uploading it
 * every step would cost more than the attention it masks.
 */
export function causalBias(T: number, tPast: number): Tensor2D {
  const key = `${T}:${tPast}`;
  let bias = causalCache.get(key);
  if (!bias) {
    const tk = tPast + T;
    const values = new Float32Array(T * tk);
    for (let q = 0; q < T; q++) for (let k = tPast + q + 1; k < tk; k++) values[q * tk + k] = NEG;
    bias = tf.keep(tf.tensor2d(values, [T, tk]));
    causalCache.set(key, bias);
  }
  return bias;
}

/**
 * Positions for left-padded rows: each real token's index among the real tokens
 * of its row (padding gets 0), so a padded prompt sees the same positions as an
 * unpadded one.
 */
export function positionIdsFromMask(mask: ArrayLike<number>, rows: number, cols: number): Int32Array {
  const out = new Int32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    let seen = 0;
    for (let c = 0; c < cols; c++) {
      const real = mask[r * cols + c] !== 0;
      out[r * cols + c] = real ? seen : 0;
      if (real) seen++;
    }
  }
  return out;
}
