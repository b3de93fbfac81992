import type { LmBatch } from '../train/lm-loss.js';
import type { Rng } from '../util/rng.js';

function windowsAt(ids: Int32Array, starts: readonly number[], T: number): LmBatch {
  const x = new Int32Array(starts.length * T);
  const y = new Int32Array(starts.length * T);
  starts.forEach((s, b) => {
    x.set(ids.subarray(s, s + T), b * T);
    y.set(ids.subarray(s + 1, s + T + 1), b * T);
  });
  return { x, y, B: starts.length, T };
}

/** Random windows (nanoGPT's `get_batch`), positions drawn from the run's RNG. */
export function randomWindows(ids: Int32Array, B: number, T: number, rng: Rng): LmBatch {
  const span = ids.length - T;
  return windowsAt(ids, Array.from({ length: B }, () => rng.int(span)), T);
}

/**
 * Fixed, evenly spaced windows for evaluation: the same every time, so val loss
 * is comparable across steps and runs and consumes no randomness.
 */
export function evalWindows(ids: Int32Array, batches: number, B: number, T: number): LmBatch[] {
  const span = ids.length - T;
  const total = batches * B;
  const starts = Array.from({ length: total }, (_, i) => Math.floor((i * span) / total));
  return Array.from({ length: batches }, (_, k) => windowsAt(ids, starts.slice(k * B, (k + 1) * B), T));
}
