import { tf, type Tensor, type Tensor1D, type Tensor2D } from '../backend/tf.js';
import type { GptConfig } from '../model/config.js';
import type { Params } from '../model/gpt.js';
import { sftBatch, type SftSequence } from '../sft/examples.js';
import { lmInputs } from '../train/graph-step.js';
import { padBatch } from '../train/lm-step-runner.js';
import type { MicroInputs, MicroLoss } from '../train/traced-step.js';
import { sequenceLogpsOf } from './logps.js';
import { dpoLoss, type DpoLossKind } from './loss.js';

/**
 * DPO's loss as a micro-batch loss over named inputs (src/train/traced-step.ts),
 * so one definition runs eagerly, as a traced graph step, and in evaluation.
 * The frozen reference's log-probabilities are inputs, computed once before
 * training: the reference never changes, so tracing its forward pass into every
 * step would only repeat that work (and need its weights as further inputs).
 */

/** A preference pair, tokenised, with its responses' log-probabilities under the (frozen) reference. */
export interface Pair {
  chosen: SftSequence;
  rejected: SftSequence;
  refChosen: number;
  refRejected: number;
}

/**
 * Pairs as step inputs: x [2N, T], y and w [2N·T] (the chosen responses, then the
 * rejected ones, as an SFT batch) and the reference log-probs ref_chosen,
 * ref_rejected [N]. `width` right-pads to T = width with zero-weight positions
 * (src/train/lm-step-runner.ts padBatch), which change no real position's log-prob.
 */
export function dpoInputs(pairs: readonly Pair[], padId: number, width?: number): MicroInputs {
  const batch = sftBatch([...pairs.map((p) => p.chosen), ...pairs.map((p) => p.rejected)], padId);
  if (width !== undefined && batch.T > width) throw new RangeError(`dpoInputs: a sequence of ${batch.T + 1} tokens exceeds the width ${width}`);
  const n = pairs.length;
  return {
    ...lmInputs(width === undefined ? batch : padBatch(batch, width)),
    ref_chosen: { values: Float32Array.from(pairs, (p) => p.refChosen), shape: [n] },
    ref_rejected: { values: Float32Array.from(pairs, (p) => p.refRejected), shape: [n] },
  };
}

/**
 * Loss of `dpoInputs` under `params`, and its per-pair values for the TRL
 * statistics (src/dpo/stats.ts): implicit rewards of the chosen and the rejected
 * responses, and the policy's log-probs of each, [4N]. Call inside tidy/variableGrads.
 */
export function dpoTerms(params: Params, cfg: GptConfig, t: Record<string, Tensor>, beta: number, kind: DpoLossKind, training: boolean, dropoutSeed?: number) {
  const refChosen = t.ref_chosen as Tensor1D;
  const n = refChosen.shape[0];
  const logps = sequenceLogpsOf(params, cfg, { x: t.x as Tensor2D, y: t.y as Tensor1D, w: t.w as Tensor1D }, training, dropoutSeed);
  const policyChosen = logps.slice(0, n);
  const policyRejected = logps.slice(n, n);
  const r = dpoLoss({ policyChosen, policyRejected, refChosen, refRejected: t.ref_rejected as Tensor1D }, beta, kind);
  return { loss: r.loss, stats: tf.concat([r.chosenRewards, r.rejectedRewards, policyChosen, policyRejected]) };
}

/** `dpoTerms` in training mode as a micro-batch loss; `dropoutSeed` for an eager step with dropout. */
export function dpoMicroLoss(cfg: GptConfig, beta: number, kind: DpoLossKind, dropoutSeed?: number): MicroLoss {
  return (params, t) => dpoTerms(params, cfg, t, beta, kind, true, dropoutSeed);
}
