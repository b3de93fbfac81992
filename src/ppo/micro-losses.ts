import { tf, type Scalar, type Tensor, type Tensor1D, type Tensor2D } from '../backend/tf.js';
import type { PpoConfig } from '../config/schema.js';
import type { GptConfig } from '../model/config.js';
import { lmBatchLoss, type LmBatch } from '../train/lm-loss.js';
import type { MicroInputs, MicroLoss } from '../train/traced-step.js';
import { entropyFromLogits, policyLoss, valueLoss } from './losses.js';
import { rowsOf } from './minibatches.js';
import { responseLogprobs, responseTargets, responseValues, selectEpisodes, type EpisodeTensors, type Episodes } from './rollout.js';

/**
 * The PPO-family update's micro-batch losses over named inputs, so one
 * definition runs both eagerly and as a traced graph step
 * (src/train/traced-step.ts). Statistics are fetched per micro-batch:
 * policy [pg loss, clipfrac, approx-KL, mean ratio], value [vf loss, vf clipfrac].
 */

/**
 * Rows `rows` of the episodes `e` and of per-token arrays ([B, srcR] each, e.g.
 * old log-probs, advantages) as step inputs; the arrays are right-padded with
 * zeros to e.R columns when `e` was built wider than they are.
 */
export function episodeInputs(e: Episodes, rows: readonly number[], perToken: Record<string, Float32Array>, srcR: number): MicroInputs {
  const sel = selectEpisodes(e, rows);
  const n = rows.length;
  const L = e.P + e.R;
  const inputs: Record<string, MicroInputs[string]> = {
    ids: { values: sel.ids, shape: [n, L] },
    mask: { values: sel.mask, shape: [n, L] },
    positions: { values: sel.positions, shape: [n, L] },
    targets: { values: responseTargets(sel), shape: [n * e.R] },
    response_mask: { values: sel.responseMask, shape: [n * e.R] },
  };
  for (const [name, src] of Object.entries(perToken)) inputs[name] = { values: rowsOf(src, rows, srcR, e.R), shape: [n * e.R] };
  return inputs;
}

function episodesOf(t: Record<string, Tensor>): EpisodeTensors {
  return { ids: t.ids as Tensor2D, mask: t.mask as Tensor2D, positions: t.positions as Tensor2D, targets: t.targets as Tensor1D };
}

/** The clipped surrogate (minus the entropy bonus, plus PPO-ptx's pretraining loss when `ptx` is given) and its statistics. */
function policyTerm(params: Parameters<MicroLoss>[0], cfg: GptConfig, s: PpoConfig, t: Record<string, Tensor>, ptx?: () => LmBatch): { loss: Scalar; stats: Scalar[] } {
  const mask = t.response_mask;
  const { logp, logits } = responseLogprobs(params, cfg, episodesOf(t), s.temperature);
  const pg = policyLoss(logp, t.old_logp, t.advantages, mask, s.cliprange);
  let loss = pg.loss;
  if (s.ent_coef > 0) {
    const ent = entropyFromLogits(logits).mul(mask).sum().div(tf.maximum(mask.sum(), 1));
    loss = loss.sub(ent.mul(s.ent_coef));
  }
  if (ptx) loss = loss.add(lmBatchLoss(params, cfg, ptx(), false).mul(s.ptx_coef));
  return { loss, stats: [pg.loss, pg.clipfrac, pg.approxKl, pg.ratio] };
}

/** The clipped value loss (unscaled) and its statistics. */
function valueTerm(params: Parameters<MicroLoss>[0], cfg: GptConfig, s: PpoConfig, t: Record<string, Tensor>): { loss: Scalar; stats: Scalar[] } {
  const values = responseValues(params, cfg, episodesOf(t));
  const vf = valueLoss(values, t.old_values, t.returns, t.response_mask, s.cliprange_value);
  return { loss: vf.loss, stats: [vf.loss, vf.clipfrac] };
}

/** The policy's loss with a separate value model. `ptx` draws a pretraining batch (PPO-ptx; host RNG, so eager only). */
export function policyMicroLoss(cfg: GptConfig, s: PpoConfig, ptx?: () => LmBatch): MicroLoss {
  return (params, t) => {
    const pg = policyTerm(params, cfg, s, t, ptx);
    return { loss: pg.loss, stats: tf.stack(pg.stats) };
  };
}

/** The separate value model's loss, vf_coef · clipped value loss. */
export function valueMicroLoss(valueCfg: GptConfig, s: PpoConfig): MicroLoss {
  return (params, t) => {
    const vf = valueTerm(params, valueCfg, s, t);
    return { loss: vf.loss.mul(s.vf_coef), stats: tf.stack(vf.stats) };
  };
}

/** Policy and value head on one trunk: policy loss + vf_coef · value loss, both statistics vectors concatenated. */
export function sharedMicroLoss(cfg: GptConfig, s: PpoConfig, ptx?: () => LmBatch): MicroLoss {
  return (params, t) => {
    const pg = policyTerm(params, cfg, s, t, ptx);
    const vf = valueTerm(params, cfg, s, t);
    return { loss: pg.loss.add(vf.loss.mul(s.vf_coef)), stats: tf.stack([...pg.stats, ...vf.stats]) };
  };
}
