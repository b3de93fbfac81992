import { tf, type Scalar, type Tensor, type Variable } from '../backend/tf.js';
import type { PpoConfig } from '../config/schema.js';
import type { GptConfig } from '../model/config.js';
import type { Params } from '../model/gpt.js';
import type { RewardNorm } from '../reward/score.js';
import type { Tokenizer } from '../tokenizer/index.js';
import type { AdamW } from '../train/adamw.js';
import { lmBatchLoss, type LmBatch } from '../train/lm-loss.js';
import { optimizerStep } from '../train/step.js';
import type { Rng } from '../util/rng.js';
import { computeAdvantages } from './advantages.js';
import { minibatches, rowsOf } from './minibatches.js';
import type { KlController } from './kl-controller.js';
import { entropyFromLogits, policyLoss, valueLoss } from './losses.js';
import { readHost, responseLogprobs, responseValues, selectEpisodes, type Episodes } from './rollout.js';
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
}

export interface IterationInput {
  prompts: number[][];
  promptTexts: string[];
  stopIds: number[];
  /** Gold scorer of the task, when there is one. */
  gold?: (prompt: string, response: string) => number;
  /** Pretraining windows for PPO-ptx. */
  ptxBatch?: () => LmBatch;
}

type Stats = Record<string, number>;

/**
 * One PPO iteration: rollout with the KV cache, rewards (normalised RM score
 * at the last real token, per-token KL penalty), GAE advantages, then
 * `ppo_epochs` passes of shuffled minibatches with the clipped surrogate and
 * clipped value losses. Returns TRL-named metrics.
 */
export function ppoIteration(m: PpoModels, s: PpoConfig, kl: KlController, input: IterationInput, rng: Rng): Stats {
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
  const stats = update(m, s, episodes, oldLogp, oldValues, adv.advantages, adv.returns, input.ptxBatch, rng);
  const updateSeconds = (performance.now() - t1) / 1000;

  const metrics = rolloutMetrics(rollout, adv.klSum, adv.nonScoreReward, kl.value, stats, s.lr, input, tokenizer);
  metrics['time/rollout_s'] = rolloutSeconds;
  metrics['time/update_s'] = updateSeconds;
  kl.update(metrics['objective/kl'], B);
  return metrics;
}

function update(
  m: PpoModels,
  s: PpoConfig,
  episodes: Episodes,
  oldLogp: Float32Array,
  oldValues: Float32Array,
  advantages: Float32Array,
  returns: Float32Array,
  ptxBatch: (() => LmBatch) | undefined,
  rng: Rng,
): Stats {
  const { cfg } = m;
  const { B, R } = episodes;
  const shared = m.valueOptimizer === undefined;
  const sums: Stats = {};
  let count = 0;
  const add = (name: string, value: number): void => {
    sums[name] = (sums[name] ?? 0) + value;
  };
  let epochs = 0;
  for (const { epoch, micro } of minibatches(B, s, rng)) {
    epochs = epoch + 1;
    const kept: Tensor[] = [];
    const policyLosses: (() => Scalar)[] = [];
    const valueLosses: (() => Scalar)[] = [];
    for (const rows of micro) {
      const e = selectEpisodes(episodes, rows);
      // Host slices of this micro-batch, uploaded inside each loss closure (which runs under the gradient tape's tidy).
      const oldLogpRows = rowsOf(oldLogp, rows, R);
      const advantageRows = rowsOf(advantages, rows, R);
      const oldValueRows = rowsOf(oldValues, rows, R);
      const returnRows = rowsOf(returns, rows, R);
      const pgTerm = (): Scalar => {
        const mask = tf.tensor1d(e.responseMask);
        const { logp, logits } = responseLogprobs(m.policy, cfg, e, s.temperature);
        const pg = policyLoss(logp, tf.tensor1d(oldLogpRows), tf.tensor1d(advantageRows), mask, s.cliprange);
        kept.push(tf.keep(tf.stack([pg.loss, pg.clipfrac, pg.approxKl, pg.ratio])));
        let loss = pg.loss as Scalar;
        if (s.ent_coef > 0) {
          const ent = entropyFromLogits(logits).mul(mask).sum().div(tf.maximum(mask.sum(), 1));
          loss = loss.sub(ent.mul(s.ent_coef));
        }
        if (ptxBatch && s.ptx_coef > 0) loss = loss.add(lmBatchLoss(m.policy, cfg, ptxBatch(), false).mul(s.ptx_coef));
        return loss;
      };
      const vfTerm = (): Scalar => {
        const values = responseValues(m.value, m.valueCfg, e);
        const vf = valueLoss(values, tf.tensor1d(oldValueRows), tf.tensor1d(returnRows), tf.tensor1d(e.responseMask), s.cliprange_value);
        kept.push(tf.keep(tf.stack([vf.loss, vf.clipfrac])));
        return vf.loss;
      };
      if (shared) policyLosses.push(() => pgTerm().add(vfTerm().mul(s.vf_coef)));
      else {
        policyLosses.push(pgTerm);
        valueLosses.push(() => vfTerm().mul(s.vf_coef));
      }
    }
    optimizerStep(m.policy, m.policyOptimizer, policyLosses, s.lr, s.grad_clip);
    if (m.valueOptimizer) optimizerStep(m.value, m.valueOptimizer, valueLosses, s.value_lr ?? s.lr, s.grad_clip);
    if (m.ema) updateEma(m.ema, m.policy, s.ema_decay!);

    // kept holds [pg loss, clipfrac, approxkl, ratio] then [vf loss, vf clipfrac] per micro-batch
    const values = kept.map((t) => Array.from(t.dataSync()));
    tf.dispose(kept);
    let approx = 0;
    for (const v of values) {
      if (v.length === 4) {
        add('loss/policy_avg', v[0]);
        add('policy/clipfrac_avg', v[1]);
        add('policy/approxkl_avg', v[2]);
        add('val/ratio', v[3]);
        approx += v[2];
      } else {
        add('loss/value_avg', v[0]);
        add('val/clipfrac_avg', v[1]);
      }
    }
    count += values.length / 2;
    if (s.early_stop_kl !== undefined && approx / (values.length / 2) > s.early_stop_kl) break;
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
