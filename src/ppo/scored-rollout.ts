import type { PpoConfig } from '../config/schema.js';
import type { Tokenizer } from '../tokenizer/index.js';
import { mean } from '../util/arrays.js';
import type { Rng } from '../util/rng.js';
import { readHost, responseLogprobs, rewardScores, sampleEpisodes, type Episodes } from './rollout.js';
import type { IterationInput, PpoModels } from './trainer.js';

/** One iteration's responses with what every RL method needs of them, on the host. */
export interface ScoredRollout {
  episodes: Episodes;
  /** [B·R] log-probs of the response tokens under the policy that sampled them, and under the reference. */
  oldLogp: Float32Array;
  refLogp: Float32Array;
  /** Per response: the normalised reward-model score (or gold_reward × gold), clipped and EOS-penalised as configured. */
  scores: Float64Array;
  /** Per response: the task's gold score, when the prompts come from a task. */
  gold?: Float64Array;
  lengths: number[];
}

/** Samples responses to the input's prompts with the KV cache and scores them (PPO, RLOO and GRPO alike). */
export function scoredRollout(m: PpoModels, s: PpoConfig, input: IterationInput, rng: Rng): ScoredRollout {
  const { cfg, tokenizer } = m;
  const episodes = sampleEpisodes(
    m.policy,
    cfg,
    input.prompts,
    tokenizer,
    { maxNewTokens: s.response_length, temperature: s.temperature, topK: s.top_k, topP: s.top_p, stopIds: input.stopIds },
    rng,
  );
  const oldLogp = readHost(() => responseLogprobs(m.policy, cfg, episodes, s.temperature).logp);
  const refLogp = readHost(() => responseLogprobs(m.reference, cfg, episodes, s.temperature).logp);
  const gold = input.gold ? goldScores(input.gold, input.promptTexts, episodes, tokenizer) : undefined;
  // gold_reward: the stage has checked the prompts come from a task, so gold is set
  const scores = s.gold_reward === undefined ? rewardScores(m.reward, m.rewardCfg, episodes, m.rewardNorm, tokenizer) : gold!.map((g) => s.gold_reward! * g);
  for (let b = 0; b < episodes.B; b++) {
    if (s.reward_clip !== undefined) scores[b] = Math.max(-s.reward_clip, Math.min(s.reward_clip, scores[b]));
    if (s.missing_eos_penalty !== undefined && !episodes.finished[b]) scores[b] = s.missing_eos_penalty;
  }
  return { episodes, oldLogp, refLogp, scores, ...(gold ? { gold } : {}), lengths: episodes.responses.map((r) => r.length) };
}

function goldScores(score: NonNullable<IterationInput['gold']>, promptTexts: readonly string[], episodes: Episodes, tokenizer: Tokenizer): Float64Array {
  return Float64Array.from(episodes.responses, (resp, b) => score(promptTexts[b], tokenizer.decode(resp)));
}

/**
 * TRL's objective/* and val/* metrics of a rollout around a method's update
 * statistics, plus gold/score when the task has a gold scorer: one set of
 * names, so the methods chart together. `klSum` and `nonScore` are per response.
 */
export function rolloutMetrics(
  r: ScoredRollout,
  klSum: ArrayLike<number>,
  nonScore: ArrayLike<number>,
  klCoef: number,
  stats: Record<string, number>,
  lr: number,
): Record<string, number> {
  const { episodes, oldLogp, lengths, scores } = r;
  const negLogpSum = new Float64Array(episodes.B);
  for (let b = 0; b < episodes.B; b++) for (let t = 0; t < lengths[b]; t++) negLogpSum[b] -= oldLogp[b * episodes.R + t];
  const metrics: Record<string, number> = {
    'objective/kl': mean(klSum),
    'objective/entropy': mean(negLogpSum),
    'objective/non_score_reward': mean(nonScore),
    'objective/rlhf_reward': mean(scores) + mean(nonScore),
    'objective/scores': mean(scores),
    'objective/kl_coef': klCoef,
    ...stats,
    'val/num_eos_tokens': episodes.finished.filter(Boolean).length,
    'val/response_length': mean(lengths),
    lr,
  };
  if (r.gold) metrics['gold/score'] = mean(r.gold);
  return metrics;
}
