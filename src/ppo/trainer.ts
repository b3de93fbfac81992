import { tf, type Variable } from '../backend/tf.js';
import type { PpoConfig } from '../config/schema.js';
import type { GptConfig } from '../model/config.js';
import type { Params } from '../model/gpt.js';
import type { RewardNorm } from '../reward/score.js';
import type { Tokenizer } from '../tokenizer/index.js';
import type { AdamW } from '../train/adamw.js';
import type { LmBatch } from '../train/lm-loss.js';
import { StepRunner, StepRunners } from '../train/step-runner.js';
import { eagerStep } from '../train/traced-step.js';
import type { Rng } from '../util/rng.js';
import { computeAdvantages } from './advantages.js';
import type { KlController } from './kl-controller.js';
import { episodeInputs, policyMicroLoss, sharedMicroLoss, valueMicroLoss } from './micro-losses.js';
import { minibatches } from './minibatches.js';
import { buildEpisodes, readHost, responseValues, type Episodes } from './rollout.js';
import { rolloutMetrics, scoredRollout } from './scored-rollout.js';

/** Everything one PPO run holds. The value model is either separate or the policy itself (with a `score` head). */
export interface PpoModels {
  /** Shapes of the policy/reference, value and reward models (they may differ). */
  cfg: GptConfig;
  valueCfg: GptConfig;
  rewardCfg: GptConfig;
  tokenizer: Tokenizer;
  policy: Params;
  reference: Params;
  /** `policy` itself when the value head sits on the policy trunk. */
  value: Params;
  reward: Params;
  rewardNorm: RewardNorm;
  policyOptimizer: AdamW;
  /** Undefined when the value head shares the policy trunk (one optimizer). */
  valueOptimizer?: AdamW;
  /** EMA of the policy weights, when enabled. */
  ema?: Map<string, Variable>;
  /** The update's step runners (graph or eager), kept across iterations; without them every step runs eagerly. */
  steps?: StepRunners;
}

export interface IterationInput {
  prompts: number[][];
  promptTexts: string[];
  stopIds: number[];
  /** Gold scorer of the task, when there is one. */
  gold?: (prompt: string, response: string) => number;
  /** Pretraining windows for PPO-ptx. */
  ptxBatch?: () => LmBatch;
  /** The longest prompt the stage can draw: the traced update pads every batch's prompts to it (one shape). */
  promptWidth?: number;
}

type Stats = Record<string, number>;

/**
 * One PPO iteration: rollout with the KV cache, rewards (normalised RM score
 * at the last real token, per-token KL penalty), GAE advantages, then
 * `ppo_epochs` passes of shuffled minibatches with the clipped surrogate and
 * clipped value losses. Returns TRL-named metrics.
 */
export async function ppoIteration(m: PpoModels, s: PpoConfig, kl: KlController, input: IterationInput, rng: Rng): Promise<Stats> {
  const { tokenizer } = m;
  const t0 = performance.now();

  // 1. Rollout
  const rollout = scoredRollout(m, s, input, rng);
  const { episodes, oldLogp, refLogp, scores, lengths } = rollout;
  const { B, R } = episodes;
  const oldValues = readHost(() => responseValues(m.value, m.valueCfg, episodes));
  const adv = computeAdvantages(lengths, R, oldLogp, refLogp, oldValues, scores, {
    klCoef: kl.value,
    klEstimator: s.kl_estimator,
    gamma: s.gamma,
    lam: s.lam,
    whitenRewards: s.whiten_rewards,
  });
  const rolloutSeconds = (performance.now() - t0) / 1000;

  // 2. Update
  const t1 = performance.now();
  const perToken = { old_logp: oldLogp, advantages: adv.advantages, old_values: oldValues, returns: adv.returns };
  const stats = await update(m, s, episodes, perToken, input, rng);
  const updateSeconds = (performance.now() - t1) / 1000;

  const metrics = rolloutMetrics(rollout, adv.klSum, adv.nonScoreReward, kl.value, stats, s.lr);
  metrics['time/rollout_s'] = rolloutSeconds;
  metrics['time/update_s'] = updateSeconds;
  kl.update(metrics['objective/kl'], B);
  return metrics;
}

/** The episodes widened to the fixed shape of the traced update: prompts to `promptWidth` columns (if known), responses to response_length. */
export function updateEpisodes(e: Episodes, s: PpoConfig, input: IterationInput, padId: number): Episodes {
  return buildEpisodes(e.prompts, e.responses, e.finished, padId, { P: input.promptWidth ?? e.P, R: s.response_length });
}

async function update(
  m: PpoModels,
  s: PpoConfig,
  episodes: Episodes,
  perToken: { old_logp: Float32Array; advantages: Float32Array; old_values: Float32Array; returns: Float32Array },
  input: IterationInput,
  rng: Rng,
): Promise<Stats> {
  const { cfg } = m;
  const { B, R } = episodes;
  const shared = m.valueOptimizer === undefined;
  const ptx = input.ptxBatch && s.ptx_coef > 0 ? input.ptxBatch : undefined;
  const steps = m.steps ?? new StepRunners(false);
  // PPO-ptx's batch is drawn from the host RNG inside the step, which a graph cannot repeat.
  const unavailable = ptx ? 'PPO-ptx draws its pretraining batch from the host RNG inside each step' : undefined;
  const policyLoss = shared ? sharedMicroLoss(cfg, s, ptx) : policyMicroLoss(cfg, s, ptx);
  const policy = steps.get(shared ? 'ppo-shared' : 'ppo-policy', (graph) => new StepRunner(m.policy, m.policyOptimizer, s.grad_clip, policyLoss, { graph, unavailable }));
  const valueOptimizer = m.valueOptimizer;
  const valueLoss = valueMicroLoss(m.valueCfg, s);
  const value = valueOptimizer && steps.get('ppo-value', (graph) => new StepRunner(m.value, valueOptimizer, s.grad_clip, valueLoss, { graph }));
  // The graph runs on episodes padded to one fixed shape; the eager reference on the episodes as sampled.
  const wide = updateEpisodes(episodes, s, input, m.tokenizer.padId);
  const sums: Stats = {};
  let count = 0;
  const add = (name: string, value: number): void => {
    sums[name] = (sums[name] ?? 0) + value;
  };
  let epochs = 0;
  for (const { epoch, micro } of minibatches(B, s, rng)) {
    epochs = epoch + 1;
    const graphInputs = micro.map((rows) => episodeInputs(wide, rows, perToken, R));
    const eagerInputs = () => micro.map((rows) => episodeInputs(episodes, rows, perToken, R));
    const p = await policy.step(graphInputs, s.lr, () => eagerStep(m.policy, m.policyOptimizer, s.grad_clip, policyLoss, eagerInputs(), s.lr));
    const vlr = s.value_lr ?? s.lr;
    const v = value && (await value.step(graphInputs, vlr, () => eagerStep(m.value, valueOptimizer!, s.grad_clip, valueLoss, eagerInputs(), vlr)));
    if (m.ema) updateEma(m.ema, m.policy, s.ema_decay!);

    // per micro-batch: [pg loss, clipfrac, approxkl, ratio] (then [vf loss, vf clipfrac] on a shared trunk), and the value model's [vf loss, vf clipfrac]
    const vfStats = v ? v.stats : p.stats.map((x) => x.subarray(4));
    let approx = 0;
    p.stats.forEach((x, k) => {
      add('loss/policy_avg', x[0]);
      add('policy/clipfrac_avg', x[1]);
      add('policy/approxkl_avg', x[2]);
      add('val/ratio', x[3]);
      approx += x[2];
      add('loss/value_avg', vfStats[k][0]);
      add('val/clipfrac_avg', vfStats[k][1]);
    });
    count += p.stats.length;
    if (s.early_stop_kl !== undefined && approx / p.stats.length > s.early_stop_kl) break;
  }
  const out: Stats = {};
  for (const [k, v] of Object.entries(sums)) out[k] = v / count;
  // fewer than ppo_epochs when approx-KL stopped the update early
  out['policy/epochs'] = epochs;
  return out;
}

/** ema ← d·ema + (1−d)·θ. */
function updateEma(ema: Map<string, Variable>, params: Params, decay: number): void {
  tf.tidy(() => {
    for (const [name, v] of ema) v.assign(v.mul(decay).add(params.get(name)!.mul(1 - decay)));
  });
}
