import { tf, type Scalar, type Tensor1D, type Tensor2D } from '../backend/tf.js';
import type { PpoConfig } from '../config/schema.js';
import type { GptConfig } from '../model/config.js';
import type { KlController } from '../ppo/kl-controller.js';
import { policyLoss } from '../ppo/losses.js';
import { klEstimate } from '../ppo/math.js';
import { episodeInputs } from '../ppo/micro-losses.js';
import { minibatches } from '../ppo/minibatches.js';
import { responseLogprobs, type Episodes } from '../ppo/rollout.js';
import { rolloutMetrics, scoredRollout } from '../ppo/scored-rollout.js';
import { updateEpisodes, type IterationInput, type PpoModels } from '../ppo/trainer.js';
import { StepRunner, StepRunners } from '../train/step-runner.js';
import { eagerStep, type MicroLoss } from '../train/traced-step.js';
import type { Rng } from '../util/rng.js';
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
export async function groupIteration(m: PpoModels, s: PpoConfig, method: GroupMethod, k: number, kl: KlController, input: IterationInput, rng: Rng): Promise<Stats> {
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
  const stats = await update(m, s, method === 'grpo' ? beta : 0, episodes, { old_logp: oldLogp, ref_logp: refLogp, advantages }, input, rng);
  const metrics = rolloutMetrics(rollout, klSum, nonScore, beta, stats, s.lr);
  metrics['time/rollout_s'] = rolloutSeconds;
  metrics['time/update_s'] = (performance.now() - t1) / 1000;
  kl.update(metrics['objective/kl'], B);
  return metrics;
}

const STAT_NAMES = ['loss/policy_avg', 'policy/clipfrac_avg', 'policy/approxkl_avg', 'val/ratio', 'loss/kl_avg'] as const;

/** PPO's clipped surrogate plus, when `kl` (GRPO), kl_beta · k3 KL to the reference; statistics [pg loss, clipfrac, approx-KL, ratio, k3]. */
function groupMicroLoss(cfg: GptConfig, s: PpoConfig, kl: boolean): MicroLoss {
  return (params, t) => {
    const mask = t.response_mask;
    const { logp } = responseLogprobs(params, cfg, { ids: t.ids as Tensor2D, mask: t.mask as Tensor2D, positions: t.positions as Tensor2D, targets: t.targets as Tensor1D }, s.temperature);
    const pg = policyLoss(logp, t.old_logp, t.advantages, mask, s.cliprange);
    const klTerm = kl ? k3Penalty(logp, t.ref_logp, mask) : tf.scalar(0);
    return { loss: pg.loss.add(klTerm.mul(t.kl_beta)) as Scalar, stats: tf.stack([pg.loss, pg.clipfrac, pg.approxKl, pg.ratio, klTerm]) };
  };
}

/** Clipped-surrogate passes over shuffled minibatches; `klBeta` > 0 adds GRPO's β·k3 term. */
async function update(m: PpoModels, s: PpoConfig, klBeta: number, episodes: Episodes, tokens: Record<string, Float32Array>, input: IterationInput, rng: Rng): Promise<Stats> {
  const { B, R } = episodes;
  const loss = groupMicroLoss(m.cfg, s, klBeta > 0);
  const steps = m.steps ?? new StepRunners(false);
  const runner = steps.get(klBeta > 0 ? 'group-kl' : 'group', (graph) => new StepRunner(m.policy, m.policyOptimizer, s.grad_clip, loss, { graph }));
  const wide = updateEpisodes(episodes, s, input, m.tokenizer.padId);
  // β is an input, not a constant of the graph
  const beta = { kl_beta: { values: Float32Array.of(klBeta), shape: [] } };
  const sums = new Float64Array(STAT_NAMES.length);
  let count = 0;
  let epochs = 0;
  for (const { epoch, micro } of minibatches(B, s, rng)) {
    epochs = epoch + 1;
    const graphInputs = micro.map((rows) => ({ ...episodeInputs(wide, rows, tokens, R), ...beta }));
    const eagerInputs = () => micro.map((rows) => ({ ...episodeInputs(episodes, rows, tokens, R), ...beta }));
    const { stats } = await runner.step(graphInputs, s.lr, () => eagerStep(m.policy, m.policyOptimizer, s.grad_clip, loss, eagerInputs(), s.lr));
    let approx = 0;
    for (const v of stats) {
      v.forEach((x, j) => (sums[j] += x));
      approx += v[2];
    }
    count += stats.length;
    if (s.early_stop_kl !== undefined && approx / stats.length > s.early_stop_kl) break;
  }
  const out: Stats = Object.fromEntries(STAT_NAMES.map((n, j) => [n, sums[j] / count]));
  if (klBeta === 0) delete out['loss/kl_avg'];
  // fewer than ppo_epochs when approx-KL stopped the update early
  out['policy/epochs'] = epochs;
  return out;
}
