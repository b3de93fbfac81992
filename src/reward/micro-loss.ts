import type { Tensor1D, Tensor2D } from '../backend/tf.js';
import type { GptConfig } from '../model/config.js';
import type { MicroInputs, MicroLoss } from '../train/traced-step.js';
import { pairwiseLoss } from './loss.js';
import { flatLast, padRows, scoreTensors } from './score.js';

/**
 * The reward model's training loss as a micro-batch loss over named inputs
 * (src/train/traced-step.ts), so one definition runs both eagerly and as a
 * traced graph step.
 */

/** Several comparisons flattened into one batch: their responses' token rows, pairs as row indices. */
export interface ComparisonBatch {
  rows: number[][];
  better: Int32Array;
  worse: Int32Array;
}

/** The one shape every padded batch of a stage takes: rows, columns and pairs. */
export interface RewardBatchShape {
  rows: number;
  width: number;
  pairs: number;
}

/**
 * A batch as step inputs: rows right-padded (ids, mask, positions [N, T], `last`
 * flat indices [N]), pairs (better, worse, weight [P]). Without `shape`, rows are
 * padded to the longest and every pair is real; with it, one-token filler rows and
 * zero-weight pairs of row 0 against itself fill the batch to the shape — neither
 * reaches the loss (causal attention keeps right padding from real tokens).
 */
export function rewardInputs(batch: ComparisonBatch, padId: number, shape?: RewardBatchShape): MicroInputs {
  const fillRows = shape ? shape.rows - batch.rows.length : 0;
  const P = shape ? shape.pairs : batch.better.length;
  if (fillRows < 0 || P < batch.better.length) throw new RangeError(`rewardInputs: a batch of ${batch.rows.length} rows and ${batch.better.length} pairs exceeds the shape ${JSON.stringify(shape)}`);
  const rows = padRows([...batch.rows, ...Array.from({ length: fillRows }, () => [padId])], padId, 'right', shape?.width);
  if (shape && rows.T > shape.width) throw new RangeError(`rewardInputs: a row of ${rows.T} tokens exceeds the shape's ${shape.width}`);
  const pairIndex = (src: Int32Array) => {
    const out = new Int32Array(P);
    out.set(src);
    return out;
  };
  const weight = new Float32Array(P);
  weight.fill(1, 0, batch.better.length);
  return {
    ids: { values: rows.ids, shape: [rows.N, rows.T] },
    mask: { values: rows.mask, shape: [rows.N, rows.T] },
    positions: { values: rows.positions, shape: [rows.N, rows.T] },
    last: { values: flatLast(rows), shape: [rows.N] },
    better: { values: pairIndex(batch.better), shape: [P] },
    worse: { values: pairIndex(batch.worse), shape: [P] },
    pair_weight: { values: weight, shape: [P] },
  };
}

/** The Bradley–Terry loss (`pairwiseLoss`, with centering) of the scores of `rewardInputs`, training mode; `dropoutSeed` for an eager step with dropout. */
export function rewardMicroLoss(cfg: GptConfig, centerCoef: number, dropoutSeed?: number): MicroLoss {
  return (params, t) => {
    const scores = scoreTensors(params, cfg, { ids: t.ids as Tensor2D, mask: t.mask as Tensor2D, positions: t.positions as Tensor2D, last: t.last as Tensor1D }, true, dropoutSeed);
    return { loss: pairwiseLoss(scores, t.better as Tensor1D, t.worse as Tensor1D, centerCoef, t.pair_weight as Tensor1D) };
  };
}
