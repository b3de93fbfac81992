import { tf, type Scalar, type Tensor } from '../backend/tf.js';
import type { PpoConfig } from '../config/schema.js';
import type { KlController } from '../ppo/kl-controller.js';
import { policyLoss } from '../ppo/losses.js';
import { klEstimate } from '../ppo/math.js';
import { responseLogprobs, selectEpisodes, type Episodes } from '../ppo/rollout.js';
import { rolloutMetrics, scoredRollout } from '../ppo/scored-rollout.js';
import type { IterationInput, PpoModels } from '../ppo/trainer.js';
import { optimizerStep } from '../train/step.js';
import type { Rng } from '../util/rng.js';
import { minibatches, rowsOf } from '../ppo/minibatches.js';
import { grpoAdvantages, perToken, rlooAdvantages } from './advantages.js';
import { k3Penalty } from './losses.js';

export type GroupMethod = 'rloo' | 'grpo';

type Stats = Record<string, number>;

/**
 * One RLOO or GRPO iteration on PPO's models (no value model: `m.value` and
 * `m.valueOptimizer` are unused). The input's prompts come in groups of `k`
 * copies. Rollout and scoring as PPO; then one advantage per response —
 * RLOO: leave-one-out on score − kl_coef·KL (the controller's coefficient);
 * GRPO: group-normalised score, with β·k3 KL (β = the controller's
 * coefficient) added to the loss instead — and `ppo_epochs` passes of PPO's
 * clipped surrogate (as TRL's RLOOTrainer and GRPOTrainer do). Logs PPO's
 * `objective/*` names so the methods chart together.
 */
export function groupIteration(m: PpoModels, s: PpoConfig, method: GroupMethod, k: number, kl: KlController, input: IterationInput, rng: Rng): Stats {
  const t0 = performance.now();
  const rollout = scoredRollout(m, s, input, rng);
  const { episodes, oldLogp, refLogp, scores, lengths } = rollout;
  const { B, R } = episodes;
  const klSum = new Float64Array(B);
  for (let b = 0; b < B; b++) for (let t = 0; t < lengths[b]; t++) klSum[b] += klEstimate(oldLogp[b * R + t], refLogp[b * R + t], s.kl_estimator);
  const beta = kl.value;
  const nonScore = Array.from(klSum, (x) => -beta * x);
  const perResponse = method === 'rloo' ? rlooAdvantages(Array.from(scores, (x, b) => x + nonScore[b]), k) : grpoAdvantages(scores, k);
  const advantages = perToken(perResponse, lengths, R);
  const rolloutSeconds = (performance.now() - t0) / 1000;

  const t1 = performance.now();
  const stats = update(m, s, method === 'grpo' ? beta : 0, episodes, oldLogp, refLogp, advantages, rng);
  const metrics = rolloutMetrics(rollout, klSum, nonScore, beta, stats, s.lr, input, m.tokenizer);
  metrics['time/rollout_s'] = rolloutSeconds;
  metrics['time/update_s'] = (performance.now() - t1) / 1000;
  kl.update(metrics['objective/kl'], B);
  return metrics;
}

const STAT_NAMES = ['loss/policy_avg', 'policy/clipfrac_avg', 'policy/approxkl_avg', 'val/ratio', 'loss/kl_avg'] as const;

/** Clipped-surrogate passes over shuffled minibatches; `klBeta` > 0 adds GRPO's β·k3 term. */
function update(
  m: PpoModels,
  s: PpoConfig,
  klBeta: number,
  episodes: Episodes,
  oldLogp: Float32Array,
  refLogp: Float32Array,
  advantages: Float32Array,
  rng: Rng,
): Stats {
  const { B, R } = episodes;
  const sums = new Float64Array(STAT_NAMES.length);
  let count = 0;
  let epochs = 0;
  for (const { epoch, micro } of minibatches(B, s, rng)) {
    epochs = epoch + 1;
    const kept: Tensor[] = [];
    const losses: (() => Scalar)[] = [];
    for (const rows of micro) {
      const e = selectEpisodes(episodes, rows);
      const old = rowsOf(oldLogp, rows, R);
      const ref = rowsOf(refLogp, rows, R);
      const adv = rowsOf(advantages, rows, R);
      losses.push(() => {
        const mask = tf.tensor1d(e.responseMask);
        const { logp } = responseLogprobs(m.policy, m.cfg, e, s.temperature);
        const pg = policyLoss(logp, tf.tensor1d(old), tf.tensor1d(adv), mask, s.cliprange);
        const klTerm = klBeta > 0 ? k3Penalty(logp, tf.tensor1d(ref), mask) : tf.scalar(0);
        kept.push(tf.keep(tf.stack([pg.loss, pg.clipfrac, pg.approxKl, pg.ratio, klTerm])));
        return pg.loss.add(klTerm.mul(klBeta)) as Scalar;
      });
    }
    optimizerStep(m.policy, m.policyOptimizer, losses, s.lr, s.grad_clip);
    const values = kept.map((t) => t.dataSync());
    tf.dispose(kept);
    let approx = 0;
    for (const v of values) {
      v.forEach((x, j) => (sums[j] += x));
      approx += v[2];
    }
    count += values.length;
    if (s.early_stop_kl !== undefined && approx / values.length > s.early_stop_kl) break;
  }
  const out: Stats = Object.fromEntries(STAT_NAMES.map((n, j) => [n, sums[j] / count]));
  if (klBeta === 0) delete out['loss/kl_avg'];
  // fewer than ppo_epochs when approx-KL stopped the update early
  out['policy/epochs'] = epochs;
  return out;
}
