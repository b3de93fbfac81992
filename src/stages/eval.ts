import fs from 'node:fs';
import path from 'node:path';
import { CheckpointError, loadCheckpoint, readCheckpointMeta, type LoadedCheckpoint } from '../checkpoint/checkpoint.js';
import { ConfigError, type LoadedConfig } from '../config/load.js';
import type { DataSource, EvalConfig } from '../config/schema.js';
import { loadPrompts } from '../data/prompts.js';
import { disposeParams } from '../model/gpt.js';
import { checkMemory } from '../model/memory.js';
import { readHost, responseLogprobs, rewardScores, sampleEpisodes } from '../ppo/rollout.js';
import { IDENTITY_NORM, type RewardNorm } from '../reward/score.js';
import { readObjectLines } from '../run/metrics-file.js';
import { readManifest, StageRun, StageStateError, stageDir } from '../run/stage.js';
import { encodePrompt, stopTokenIds } from '../sample/tokens.js';
import { getTask } from '../tasks/index.js';
import { cutAtStops, type DiversityUnit, type Task } from '../tasks/types.js';
import { bestOfNKl, expectedBestOfN } from '../overoptimization/fit.js';
import { overoptimizationReport, ppoCurve, type BestOfNPoint, type OveroptimizationReport } from '../overoptimization/curves.js';
import { Rng } from '../util/rng.js';
import { parentCheckpoint } from './sft.js';
import { mean } from '../util/arrays.js';
import { OTHER_METHODS } from '../workflow/stages.js';

export interface PolicyEvaluation {
  policy: string;
  /** Mean normalised reward-model score. */
  proxy_reward: number;
  /** Mean gold score, when the prompts come from a task. */
  gold_score?: number;
  /** Monte-Carlo KL to the reference: mean over samples of Σ_t log π(y_t) − log π_ref(y_t). */
  kl: number;
  response_length: number;
  distinct_1: number;
  distinct_2: number;
  /** Wall time of the stage that produced the policy (its `<stage>/final`), from that stage's manifest. */
  wall_s?: number;
  samples: { prompt: string; response: string; proxy_reward: number; gold_score?: number }[];
}

/**
 * Fraction of distinct n-grams among all n-grams of the responses (diversity; low =
 * repetitive/collapsed). The unit is the task's (`Task.diversityUnit`): words, or
 * characters of the response cut at its stop sequences for tasks whose answers are
 * one word (arithmetic's "81"), where word bigrams would not exist.
 */
export function distinctN(responses: readonly string[], n: number, unit: DiversityUnit = 'words', stops: readonly string[] = []): number {
  const seen = new Set<string>();
  let total = 0;
  for (const r of responses) {
    const units = unit === 'words' ? r.split(/\s+/).filter(Boolean) : Array.from(cutAtStops(r, stops));
    for (let i = 0; i + n <= units.length; i++) {
      seen.add(units.slice(i, i + n).join(unit === 'words' ? ' ' : ''));
      total++;
    }
  }
  return total ? seen.size / total : 0;
}

interface EvalSetup {
  settings: EvalConfig;
  prompts: string[];
  task?: string;
  rewardDir: string;
  referenceDir: string;
}

/** Prompts sampled at once per policy. */
const EVAL_BATCH = 32;

function setup(loaded: LoadedConfig): EvalSetup {
  const { config, file } = loaded;
  const settings: EvalConfig = config.eval ?? { num_prompts: 64, samples_per_prompt: 1, seed: 123, max_new_tokens: 32, temperature: 1, top_k: 0, top_p: 1 };
  const source: DataSource | undefined = settings.prompts ?? config.ppo?.prompts ?? config.label?.prompts;
  if (!source) throw new ConfigError(`${file}: eval.prompts: no prompt set (set eval.prompts or ppo.prompts)`);
  const all = loadPrompts(source);
  const prompts = Array.from({ length: Math.min(settings.num_prompts, all.length) }, (_, i) => all[i]);
  return {
    settings,
    prompts,
    task: 'task' in source ? source.task : undefined,
    rewardDir: parentCheckpoint(loaded, config.ppo?.reward_model, 'train-reward'),
    referenceDir: parentCheckpoint(loaded, config.ppo?.policy, 'sft'),
  };
}

/** The default policies to compare: SFT and every completed RLOO, GRPO, DPO and PPO stage's final (PPO last). */
export function defaultPolicies(loaded: LoadedConfig): string[] {
  const root = path.join(loaded.config.run_dir, loaded.config.name);
  const out = [path.join(stageDir(loaded.config, 'sft'), 'final')];
  for (const m of OTHER_METHODS) if (readManifest(stageDir(loaded.config, m))?.status === 'completed') out.push(path.join(stageDir(loaded.config, m), 'final'));
  const ppoStages = fs.existsSync(root) ? fs.readdirSync(root).filter((d) => d === 'ppo' || /^round-\d+$/.test(d)) : [];
  for (const s of ppoStages.sort()) {
    const dir = s === 'ppo' ? path.join(root, s) : path.join(root, s, 'ppo');
    if (readManifest(dir)?.status === 'completed') out.push(path.join(dir, 'final'));
  }
  return out;
}

/** `wall_time_s` of the completed stage whose `final` checkpoint `policyDir` is; undefined for any other checkpoint. */
export function producingStageWall(policyDir: string): number | undefined {
  if (path.basename(path.resolve(policyDir)) !== 'final') return undefined;
  const m = readManifest(path.dirname(path.resolve(policyDir)));
  return m?.status === 'completed' && typeof m.wall_time_s === 'number' ? m.wall_time_s : undefined;
}

/** Every policy must be a language model speaking the reward model's tokenizer: checked (cheaply) before any is evaluated. */
function checkPolicies(policies: readonly string[], rewardDir: string): void {
  const reward = readCheckpointMeta(rewardDir);
  for (const dir of policies) {
    const meta = readCheckpointMeta(dir);
    if (meta.head !== 'lm') throw new CheckpointError(`${dir}: holds a "${meta.head}" model (a reward model?); a policy to evaluate must be a language model`);
    if (meta.tokenizer_fingerprint !== reward.tokenizer_fingerprint) {
      throw new CheckpointError(`${dir}: tokenizer does not match the reward model's (${rewardDir})`);
    }
  }
}

/**
 * Scores policies on the same prompts with the same sampling seed: proxy
 * reward, gold score, KL to the reference and diversity. Plotting gold against
 * proxy as KL grows is how reward over-optimisation shows.
 */
export function evaluatePolicies(loaded: LoadedConfig, policies: readonly string[]): PolicyEvaluation[] {
  return withScorers(loaded, (scorers) => {
    checkPolicies(policies, scorers.rewardDir);
    return policies.map((dir) => {
      const policy = loadCheckpoint(dir, { expectHead: 'lm' });
      try {
        const samples = samplePolicy(policy, scorers, scorers.settings.samples_per_prompt);
        const responses = samples.map((x) => x.response);
        const wall = producingStageWall(dir);
        return {
          policy: dir,
          proxy_reward: mean(samples.map((x) => x.proxy_reward)),
          ...(scorers.task ? { gold_score: mean(samples.map((x) => x.gold_score!)) } : {}),
          kl: mean(samples.map((x) => x.kl)),
          response_length: mean(samples.map((x) => x.length)),
          distinct_1: distinctN(responses, 1, scorers.gold?.diversityUnit, scorers.gold?.stopSequences),
          distinct_2: distinctN(responses, 2, scorers.gold?.diversityUnit, scorers.gold?.stopSequences),
          ...(wall !== undefined ? { wall_s: wall } : {}),
          samples: samples.map(({ prompt, response, proxy_reward, gold_score }) => ({ prompt, response, proxy_reward, ...(gold_score !== undefined ? { gold_score } : {}) })),
        };
      } finally {
        disposeParams(policy.params);
      }
    });
  });
}

/** The eval's prompts and settings with the reward model, the KL reference and the gold scorer loaded. */
interface Scorers extends EvalSetup {
  reward: LoadedCheckpoint;
  reference: LoadedCheckpoint;
  norm: RewardNorm;
  gold?: Task;
}

function withScorers<T>(loaded: LoadedConfig, fn: (scorers: Scorers) => T): T {
  const s = setup(loaded);
  const reward = loadCheckpoint(s.rewardDir, { expectHead: 'score' });
  try {
    const reference = loadCheckpoint(s.referenceDir, { expectHead: 'lm' });
    try {
      const norm = (reward.meta.extra.reward_norm as RewardNorm | undefined) ?? IDENTITY_NORM;
      return fn({ ...s, reward, reference, norm, gold: s.task ? getTask(s.task) : undefined });
    } finally {
      disposeParams(reference.params);
    }
  } finally {
    disposeParams(reward.params);
  }
}

interface ScoredSample {
  prompt: string;
  response: string;
  proxy_reward: number;
  gold_score?: number;
  /** Σ_t log π(y_t) − log π_ref(y_t) of this sample. */
  kl: number;
  length: number;
}

/** `perPrompt` samples of each eval prompt (prompt-major), with proxy reward, gold score and KL to the reference. Same seed for every policy. */
function samplePolicy(policy: LoadedCheckpoint, s: Scorers, perPrompt: number): ScoredSample[] {
  const { tokenizer } = policy;
  const rng = new Rng(`${s.settings.seed}:eval`);
  const stopIds = stopTokenIds(tokenizer, s.gold?.stopSequences ?? []);
  const jobs = s.prompts.flatMap((p) => Array.from({ length: perPrompt }, () => p));
  const out: ScoredSample[] = [];
  for (let i = 0; i < jobs.length; i += EVAL_BATCH) {
    const texts = jobs.slice(i, i + EVAL_BATCH);
    const ids = texts.map((t) => encodePrompt(tokenizer, t));
    const e = sampleEpisodes(policy.params, policy.meta.model, ids, tokenizer, { maxNewTokens: s.settings.max_new_tokens, temperature: s.settings.temperature, topK: s.settings.top_k, topP: s.settings.top_p, stopIds }, rng);
    // the reference against itself: KL 0 without computing it
    const logp = policy === s.reference ? undefined : readHost(() => responseLogprobs(policy.params, policy.meta.model, e, s.settings.temperature).logp);
    const refLogp = logp && readHost(() => responseLogprobs(s.reference.params, s.reference.meta.model, e, s.settings.temperature).logp);
    const scores = rewardScores(s.reward.params, s.reward.meta.model, e, s.norm, tokenizer);
    e.responses.forEach((r, b) => {
      let kl = 0;
      if (logp && refLogp) for (let t = 0; t < r.length; t++) kl += logp[b * e.R + t] - refLogp[b * e.R + t];
      const response = tokenizer.decode(r);
      out.push({ prompt: texts[b], response, proxy_reward: scores[b], ...(s.gold ? { gold_score: s.gold.goldScore(texts[b], response) } : {}), kl, length: r.length });
    });
  }
  return out;
}

/**
 * Best-of-n on the reference (SFT) policy against the same reward model:
 * `samples` responses per prompt, and for each n the expected proxy and gold
 * score of the highest-proxy response among n of them (all subsets averaged,
 * expectedBestOfN), at KL = log n − (n−1)/n.
 */
export function evaluateBestOfN(loaded: LoadedConfig, ns: readonly number[], samples = Math.max(...ns)): BestOfNPoint[] {
  return withScorers(loaded, (s) => {
    checkPolicies([s.referenceDir], s.rewardDir);
    const rows = samplePolicy(s.reference, s, samples);
    const byPrompt = s.prompts.map((_, p) => rows.slice(p * samples, (p + 1) * samples));
    return [...new Set([1, ...ns])].sort((a, b) => a - b).map((n) => {
      const pick = (value: (x: ScoredSample) => number) => mean(byPrompt.map((g) => expectedBestOfN(g.map((x) => x.proxy_reward), g.map(value), n)));
      const kl = bestOfNKl(n);
      return { n, kl, d: Math.sqrt(kl), proxy_reward: pick((x) => x.proxy_reward), ...(s.gold ? { gold_score: pick((x) => x.gold_score!) } : {}) };
    });
  });
}

/** Wall time of the eval's best-of-n: loading the SFT policy and reward model, sampling `n` responses per prompt and scoring them. */
export interface BestOfNSampling {
  n: number;
  wall_s: number;
}

export const OVEROPTIMIZATION_FILE = 'overoptimization.json';

/** Best-of-n on the SFT policy and the PPO stage's own curve (when it ran), with both fits. */
export function overoptimization(loaded: LoadedConfig, ns: readonly number[]): OveroptimizationReport {
  const { rows } = readObjectLines<Record<string, number>>(path.join(stageDir(loaded.config, 'ppo'), 'metrics.jsonl'));
  return overoptimizationReport(evaluateBestOfN(loaded, ns), ppoCurve(rows));
}

/** Fixed-width table of the evaluations, for the terminal. */
export function evaluationTable(results: readonly PolicyEvaluation[]): string {
  const cols = ['policy', 'proxy', 'gold', 'kl', 'length', 'distinct-1', 'distinct-2', 'wall s'];
  const rows = results.map((r) => [
    r.policy.split(path.sep).slice(-3).join('/'),
    r.proxy_reward.toFixed(3),
    r.gold_score !== undefined ? r.gold_score.toFixed(3) : '-',
    r.kl.toFixed(3),
    r.response_length.toFixed(1),
    r.distinct_1.toFixed(3),
    r.distinct_2.toFixed(3),
    r.wall_s !== undefined ? r.wall_s.toFixed(1) : '-',
  ]);
  const widths = cols.map((c, i) => Math.max(c.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [line(cols), ...rows.map(line)].join('\n');
}

/** `rlhf eval`: evaluates, writes runs/<name>/eval/{results.json,samples.jsonl}, returns the results. */
export async function runEval(loaded: LoadedConfig, policies?: string[], opts: { force?: boolean } = {}): Promise<{ dir: string; results: PolicyEvaluation[] }> {
  const list = policies?.length ? policies : defaultPolicies(loaded);
  const s = setup(loaded);
  const held = [{ model: readCheckpointMeta(s.referenceDir).model, head: 'lm' as const }, { model: readCheckpointMeta(s.rewardDir).model, head: 'score' as const }];
  for (const p of list) {
    const { model } = readCheckpointMeta(p);
    checkMemory(loaded.file, 'eval', { models: [{ model, head: 'lm' }, ...held], generate: { model, rows: EVAL_BATCH } });
  }
  // Evaluated before the stage directory is opened: a bad policy, or any failure
  // while evaluating, leaves the previous results untouched.
  // An earlier eval is kept unless --force, like any stage's completed run.
  const previous = readManifest(stageDir(loaded.config, 'eval'));
  if (previous?.status === 'completed' && !opts.force) {
    throw new StageStateError(`${stageDir(loaded.config, 'eval')}: holds a completed run; pass --force to overwrite it`);
  }
  const results = evaluatePolicies(loaded, list);
  const ns = loaded.config.eval?.best_of_n;
  const bonStart = performance.now();
  const over = ns ? overoptimization(loaded, ns) : undefined;
  // Best-of-n's own cost: sampling and scoring max(n) responses per prompt (only in the manifest: it is no result to verify).
  const bonSampling: BestOfNSampling | undefined = ns ? { n: Math.max(...ns), wall_s: Number(((performance.now() - bonStart) / 1000).toFixed(3)) } : undefined;
  const run = StageRun.open(loaded.config, 'eval', { force: true, parents: list });
  try {
    const summary = results.map(({ samples, ...rest }) => rest);
    fs.writeFileSync(path.join(run.dir, 'results.json'), JSON.stringify(summary, null, 2) + '\n');
    if (over) fs.writeFileSync(path.join(run.dir, OVEROPTIMIZATION_FILE), JSON.stringify(over, null, 2) + '\n');
    fs.writeFileSync(path.join(run.dir, 'samples.jsonl'), results.flatMap((r) => r.samples.map((x) => JSON.stringify({ policy: r.policy, ...x }))).join('\n') + '\n');
    results.forEach((r, i) => {
      const { samples, policy, ...numbers } = r;
      run.metrics(i, Object.fromEntries(Object.entries(numbers).filter(([, v]) => typeof v === 'number')) as Record<string, number>);
    });
    run.complete({ policies: summary, ...(over ? { overoptimization: over.fits, best_of_n: over.best_of_n, best_of_n_sampling: bonSampling } : {}) });
    return { dir: run.dir, results };
  } catch (err) {
    run.fail('failed', (err as Error).message);
    throw err;
  }
}
