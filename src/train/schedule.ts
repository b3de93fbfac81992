/**
 * Learning-rate schedules: linear warm-up, then cosine / linear decay to a floor
 * (or a constant rate), in the style of nanoGPT's `get_lr`.
 */

export interface LrSchedule {
  /** Peak learning rate, reached at the first step after warm-up. */
  lr: number;
  /** Floor reached at `max_steps` by the `cosine` and `linear` decays (unused by `constant`). */
  min_lr: number;
  /** Number of warm-up steps (0 = no warm-up). */
  warmup_steps: number;
  /** Step at which the decay reaches `min_lr` (unused by `constant`). */
  max_steps: number;
  decay: 'cosine' | 'linear' | 'constant';
}

function check(s: LrSchedule, step: number): void {
  const bad = (msg: string): never => {
    throw new RangeError(`learning-rate schedule: ${msg}`);
  };
  if (!Number.isFinite(s.lr) || s.lr < 0) bad(`lr must be a finite number >= 0 (got ${s.lr})`);
  if (!Number.isFinite(s.min_lr) || s.min_lr < 0) bad(`min_lr must be a finite number >= 0 (got ${s.min_lr})`);
  if (!Number.isInteger(s.warmup_steps) || s.warmup_steps < 0) {
    bad(`warmup_steps must be an integer >= 0 (got ${s.warmup_steps})`);
  }
  if (s.decay !== 'cosine' && s.decay !== 'linear' && s.decay !== 'constant') {
    bad(`decay must be "cosine", "linear" or "constant" (got ${String(s.decay)})`);
  }
  if (s.decay !== 'constant' && (!Number.isInteger(s.max_steps) || s.max_steps < s.warmup_steps)) {
    bad(`max_steps must be an integer >= warmup_steps (${s.warmup_steps}) (got ${s.max_steps})`);
  }
  if (!Number.isInteger(step) || step < 0) bad(`step must be an integer >= 0 (got ${step})`);
}

/**
 * Learning rate for the optimiser step `step` (0-based: the first update is step 0).
 *
 * With W = warmup_steps, M = max_steps:
 *
 * - warm-up, `step < W`:            lr · (step + 1) / (W + 1)
 *   (nanoGPT's form: never 0, step 0 gets lr/(W+1), step W−1 gets lr·W/(W+1)).
 * - `constant`, `step >= W`:         lr
 * - decay, `W <= step <= M`, with r = (step − W) / (M − W) ∈ [0, 1]
 *   (r = 1 when M = W):
 *     `cosine`: min_lr + ½·(1 + cos(π·r))·(lr − min_lr)
 *     `linear`: min_lr + (1 − r)·(lr − min_lr)
 *   so step W gets exactly lr and step M exactly min_lr.
 * - `step > M` (cosine / linear):    min_lr
 *
 * A run of M steps (0 … M−1) therefore ends just above min_lr, as in nanoGPT with
 * lr_decay_iters = max_iters. Throws RangeError on an invalid schedule or step.
 */
export function learningRate(s: LrSchedule, step: number): number {
  check(s, step);
  const W = s.warmup_steps;
  if (step < W) return (s.lr * (step + 1)) / (W + 1);
  if (s.decay === 'constant') return s.lr;
  const M = s.max_steps;
  if (step >= M) return s.min_lr;
  const r = (step - W) / (M - W);
  const coeff = s.decay === 'cosine' ? 0.5 * (1 + Math.cos(Math.PI * r)) : 1 - r;
  return s.min_lr + coeff * (s.lr - s.min_lr);
}
