import { tf, type Tensor1D, type Tensor2D } from '../backend/tf.js';
import type { GptConfig } from '../model/config.js';
import { forward, scalarHead, type Params } from '../model/gpt.js';
import { embed } from '../model/kernels.js';
import { positionIdsFromMask } from '../model/masks.js';
import type { Rng } from '../util/rng.js';

/** Token rows padded to one length on the host, with what is needed to read a score at each row's last real token. */
export interface PaddedRows {
  ids: Int32Array;
  mask: Float32Array;
  positions: Int32Array;
  /** Index (within the row) of each row's last real token. */
  last: Int32Array;
  N: number;
  T: number;
}

/**
 * Pads token rows to the longest (or to `width` columns, at least as many). Left padding needs the mask and position ids
 * (the model then sees each row as if unpadded); right padding needs neither,
 * but both sides go through the same path so scores agree.
 */
export function padRows(rows: readonly number[][], padId: number, side: 'left' | 'right', width = 0): PaddedRows {
  const N = rows.length;
  const T = Math.max(width, ...rows.map((r) => r.length));
  const ids = new Int32Array(N * T).fill(padId);
  const mask = new Float32Array(N * T);
  const last = new Int32Array(N);
  rows.forEach((r, n) => {
    const offset = side === 'left' ? T - r.length : 0;
    ids.set(r, n * T + offset);
    mask.fill(1, n * T + offset, n * T + offset + r.length);
    last[n] = offset + r.length - 1;
  });
  return { ids, mask, positions: positionIdsFromMask(mask, N, T), last, N, T };
}

/**
 * What the reward model reads: prompt ++ response ++ EOS, exactly as in its
 * training data, whether the response ended at EOS, at another stop token or
 * at the length limit (the score is then read at that final EOS).
 */
export function rewardInput(prompt: readonly number[], response: readonly number[], eosId: number): number[] {
  const body = response.length && response[response.length - 1] === eosId ? response.slice(0, -1) : response;
  return [...prompt, ...body, eosId];
}

/** Padded rows on the device: ids, mask and positions [N, T], and `last`, each row's last real token as an index into the N·T positions. */
export interface RowTensors {
  ids: Tensor2D;
  mask: Tensor2D;
  positions: Tensor2D;
  last: Tensor1D;
}

/** `last` of padded rows as indices into their N·T flattened positions (what `scoreTensors` gathers). */
export function flatLast(rows: PaddedRows): Int32Array {
  return Int32Array.from(rows.last, (t, n) => n * rows.T + t);
}

/** Scalar-head output at each row's last real token, [N]. Call inside tidy / variableGrads. */
export function scoreRows(params: Params, cfg: GptConfig, rows: PaddedRows, training = false, dropoutSeed?: number): Tensor1D {
  const t: RowTensors = {
    ids: tf.tensor2d(rows.ids, [rows.N, rows.T], 'int32'),
    mask: tf.tensor2d(rows.mask, [rows.N, rows.T]),
    positions: tf.tensor2d(rows.positions, [rows.N, rows.T], 'int32'),
    last: tf.tensor1d(flatLast(rows), 'int32'),
  };
  return scoreTensors(params, cfg, t, training, dropoutSeed);
}

/** `scoreRows` on rows already on the device (a traced step's inputs). */
export function scoreTensors(params: Params, cfg: GptConfig, rows: RowTensors, training = false, dropoutSeed?: number): Tensor1D {
  const { hidden } = forward(params, cfg, rows.ids, { attentionMask: rows.mask, positionIds: rows.positions, training, dropoutSeed });
  return scalarHead(params, embed(hidden, rows.last)); // embed: a gather with no host read-back, so a training step stays traceable
}

/**
 * Adds a fresh scalar head to a language-model trunk (reward/value model
 * initialised from SFT). Std 1/sqrt(d+1) as in lm-human-preferences, so
 * initial rewards have unit scale.
 */
export function addScalarHead(params: Params, cfg: GptConfig, rng: Rng): Params {
  const std = 1 / Math.sqrt(cfg.d_model + 1);
  const weight = tf.randomNormal([cfg.d_model, 1], 0, std, 'float32', rng.seed());
  const bias = tf.zeros([1]);
  params.set('score.weight', tf.variable(weight, true));
  params.set('score.bias', tf.variable(bias, true));
  tf.dispose([weight, bias]);
  return params;
}

/** Reward normalisation stored with a reward checkpoint: r_norm = gain·r + bias. */
export interface RewardNorm {
  gain: number;
  bias: number;
}

export const IDENTITY_NORM: RewardNorm = { gain: 1, bias: 0 };

/** gain and bias that map `scores` to mean 0, std 1. */
export function normalisationFor(scores: readonly number[]): RewardNorm {
  const mean = scores.reduce((s, x) => s + x, 0) / scores.length;
  const variance = scores.reduce((s, x) => s + (x - mean) ** 2, 0) / scores.length;
  const std = Math.sqrt(variance) || 1;
  return { gain: 1 / std, bias: -mean / std };
}
