import type { Rng } from '../util/rng.js';

/** The keys of a PPO-style section that decide how an update slices its batch. */
export interface MinibatchPlan {
  ppo_epochs: number;
  mini_batch_size: number;
  grad_accum_steps: number;
}

/** One optimiser step's rows: the minibatch split into micro-batches (row indices into the batch). */
export interface Minibatch {
  epoch: number;
  micro: number[][];
}

/**
 * The minibatches of `ppo_epochs` shuffled passes over B rows, each split into
 * micro-batches of mini_batch_size / grad_accum_steps rows (PPO, RLOO and GRPO
 * updates). Lazy: each epoch's permutation is drawn from `rng` when its first
 * minibatch is requested, so a consumer that stops early (approx-KL) draws no more.
 */
export function* minibatches(B: number, plan: MinibatchPlan, rng: Rng): Generator<Minibatch> {
  const size = plan.mini_batch_size / plan.grad_accum_steps;
  for (let epoch = 0; epoch < plan.ppo_epochs; epoch++) {
    const order = rng.permutation(B);
    for (let start = 0; start < B; start += plan.mini_batch_size) {
      const mini = order.slice(start, start + plan.mini_batch_size);
      const micro: number[][] = [];
      for (let k = 0; k < mini.length; k += size) micro.push(mini.slice(k, k + size));
      yield { epoch, micro };
    }
  }
}

/** Rows `rows` of a row-major [B, width] array, in that order, right-padded with zeros to `outWidth` columns. */
export function rowsOf(src: Float32Array, rows: readonly number[], width: number, outWidth = width): Float32Array {
  const out = new Float32Array(rows.length * outWidth);
  rows.forEach((r, i) => out.set(src.subarray(r * width, (r + 1) * width), i * outWidth));
  return out;
}
