import { tf, type Tensor, type Tensor1D, type Tensor2D } from '../backend/tf.js';
import type { GptConfig } from '../model/config.js';
import { forward, lmLogits, scalarHead, type Params } from '../model/gpt.js';
import { positionIdsFromMask } from '../model/masks.js';
import { padRows, rewardInput, scoreRows, type RewardNorm } from '../reward/score.js';
import { generate, type SpecialIds } from '../sample/generate.js';
import type { Rng } from '../util/rng.js';

/**
 * Episodes of one PPO iteration, on the host. Each row is a left-padded prompt
 * (P columns) followed by a right-padded response (R columns); positions skip
 * the padding, so every row is computed as if alone.
 */
export interface Episodes {
  B: number;
  P: number;
  R: number;
  prompts: number[][];
  responses: number[][];
  /** Ended with a stop token. */
  finished: boolean[];
  /** [B, P+R] tokens, attention mask and position ids. */
  ids: Int32Array;
  mask: Float32Array;
  positions: Int32Array;
  /** [B, R]: 1 on response tokens. */
  responseMask: Float32Array;
}

/** `minWidth` widens the prompt and response columns (a fixed shape for a traced update, src/ppo/trainer.ts). */
export function buildEpisodes(prompts: number[][], responses: number[][], finished: boolean[], padId: number, minWidth = { P: 0, R: 0 }): Episodes {
  const B = prompts.length;
  const P = Math.max(minWidth.P, ...prompts.map((p) => p.length));
  const R = Math.max(1, minWidth.R, ...responses.map((r) => r.length));
  const L = P + R;
  const ids = new Int32Array(B * L).fill(padId);
  const mask = new Float32Array(B * L);
  const responseMask = new Float32Array(B * R);
  for (let b = 0; b < B; b++) {
    const p = prompts[b];
    ids.set(p, b * L + P - p.length);
    mask.fill(1, b * L + P - p.length, b * L + P);
    ids.set(responses[b], b * L + P);
    mask.fill(1, b * L + P, b * L + P + responses[b].length);
    responseMask.fill(1, b * R, b * R + responses[b].length);
  }
  return { B, P, R, prompts, responses, finished, ids, mask, positions: positionIdsFromMask(mask, B, L), responseMask };
}

/** Rows `rows` of the episodes as a smaller Episodes (a minibatch), keeping P and R. */
export function selectEpisodes(e: Episodes, rows: readonly number[]): Episodes {
  const L = e.P + e.R;
  const take = <T extends Int32Array | Float32Array>(src: T, width: number): T => {
    const out = new (src.constructor as { new (n: number): T })(rows.length * width);
    rows.forEach((r, i) => out.set(src.subarray(r * width, (r + 1) * width), i * width));
    return out;
  };
  return {
    B: rows.length,
    P: e.P,
    R: e.R,
    prompts: rows.map((r) => e.prompts[r]),
    responses: rows.map((r) => e.responses[r]),
    finished: rows.map((r) => e.finished[r]),
    ids: take(e.ids, L),
    mask: take(e.mask, L),
    positions: take(e.positions, L),
    responseMask: take(e.responseMask, e.R),
  };
}

/**
 * Episodes on the device, as the log-prob and value passes read them: ids,
 * attention mask and positions [B, P+R], response tokens [B·R] (padding 0).
 */
export interface EpisodeTensors {
  ids: Tensor2D;
  mask: Tensor2D;
  positions: Tensor2D;
  targets: Tensor1D;
}

export function episodeTensors(e: Episodes): EpisodeTensors {
  const L = e.P + e.R;
  return {
    ids: tf.tensor2d(e.ids, [e.B, L], 'int32'),
    mask: tf.tensor2d(e.mask, [e.B, L]),
    positions: tf.tensor2d(e.positions, [e.B, L], 'int32'),
    targets: tf.tensor1d(responseTargets(e), 'int32'),
  };
}

/** Final hidden states at the positions that predict each response token: [B·R, d]. */
function responseHidden(params: Params, cfg: GptConfig, t: EpisodeTensors, training: boolean): Tensor2D {
  const [B, L] = t.ids.shape;
  const R = t.targets.shape[0] / B;
  const P = L - R;
  const { hidden } = forward(params, cfg, t.ids, { attentionMask: t.mask, positionIds: t.positions, training });
  return hidden.reshape([B, L, -1]).slice([0, P - 1, 0], [B, R, -1]).reshape([B * R, -1]) as Tensor2D;
}

/** Response tokens [B·R] (padding replaced by 0 so gathers stay in range; masked out later). */
export function responseTargets(e: Episodes): Int32Array {
  const L = e.P + e.R;
  const out = new Int32Array(e.B * e.R);
  for (let b = 0; b < e.B; b++) {
    for (let t = 0; t < e.R; t++) out[b * e.R + t] = e.responseMask[b * e.R + t] ? e.ids[b * L + e.P + t] : 0;
  }
  return out;
}

/**
 * Log-probabilities [B·R] of the response tokens under `params`, with the
 * sampling temperature applied to the logits (the distribution the tokens were
 * drawn from), and those logits (for the entropy). Call inside tidy/grads.
 * Greedy tokens (temperature 0) are scored under the model's own distribution.
 */
export function responseLogprobs(params: Params, cfg: GptConfig, e: Episodes | EpisodeTensors, temperature: number): { logp: Tensor; logits: Tensor2D } {
  const t = 'B' in e ? episodeTensors(e) : e;
  const logits = lmLogits(params, responseHidden(params, cfg, t, false)).div(temperature > 0 ? temperature : 1) as Tensor2D;
  const logp = tf.logSoftmax(logits).mul(tf.oneHot(t.targets, cfg.vocab_size)).sum(-1);
  return { logp, logits };
}

/** Value estimates [B·R] at the states preceding each response token. */
export function responseValues(params: Params, cfg: GptConfig, e: Episodes | EpisodeTensors): Tensor {
  return scalarHead(params, responseHidden(params, cfg, 'B' in e ? episodeTensors(e) : e, false));
}

/** Reward-model scores of prompt + response + EOS, normalised with the stored gain/bias. */
export function rewardScores(rewardParams: Params, cfg: GptConfig, e: Pick<Episodes, 'prompts' | 'responses'>, norm: RewardNorm, tokenizer: SpecialIds & { eosId: number }): Float64Array {
  const rows = e.prompts.map((p, b) => rewardInput(p, e.responses[b], tokenizer.eosId));
  const t = tf.tidy(() => scoreRows(rewardParams, cfg, padRows(rows, tokenizer.padId, 'left')));
  const raw = t.dataSync();
  t.dispose();
  return Float64Array.from(raw, (s) => norm.gain * s + norm.bias);
}

/** Runs `make` in a tidy scope and reads the result to the host. */
export function readHost(make: () => Tensor): Float32Array {
  const t = tf.tidy(make);
  const out = t.dataSync() as Float32Array;
  t.dispose();
  return out;
}

export interface SampleSettings {
  maxNewTokens: number;
  temperature: number;
  topK: number;
  topP: number;
  stopIds: number[];
}

/** Samples responses to a batch of prompts with the KV cache. */
export function sampleEpisodes(policy: Params, cfg: GptConfig, prompts: number[][], tokenizer: SpecialIds, s: SampleSettings, rng: Rng): Episodes {
  // Leave room for the EOS the reward model reads after a response cut at the length limit.
  const P = Math.max(...prompts.map((p) => p.length));
  const out = generate(policy, cfg, prompts, tokenizer, { ...s, maxNewTokens: Math.min(s.maxNewTokens, cfg.context_length - P - 1) }, rng);
  return buildEpisodes(prompts, out.responses, out.finished, tokenizer.padId);
}
