import { tf, type Tensor2D } from '../backend/tf.js';

const NEG = -1e9;
const causalCache = new Map<number, Tensor2D>();

/**
 * Causal additive bias [T, tPast + T] for queries at absolute positions
 * tPast … tPast+T−1: a slice of one [n, n] lower-triangular bias built on the
 * host once per context size and kept (uploading it every step would cost more
 * than the attention it masks; one tensor per size keeps memory flat however
 * many shapes generation and PPO produce).
 */
export function causalBias(T: number, tPast: number): Tensor2D {
  const n = tPast + T;
  let size = 64;
  while (size < n) size *= 2;
  let full = causalCache.get(size);
  if (!full) {
    const values = new Float32Array(size * size);
    for (let q = 0; q < size; q++) for (let k = q + 1; k < size; k++) values[q * size + k] = NEG;
    full = tf.keep(tf.tensor2d(values, [size, size]));
    causalCache.set(size, full);
  }
  return full.slice([tPast, 0], [T, n]);
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
