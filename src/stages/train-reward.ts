import path from 'node:path';
import { tf } from '../backend/tf.js';
import { loadCheckpoint, readCheckpointMeta, type LoadedCheckpoint } from '../checkpoint/checkpoint.js';
import { ConfigError, type LoadedConfig } from '../config/load.js';
import { DataError } from '../data/corpus.js';
import { comparisonPairs, readComparisons, type Comparison } from '../label/comparisons.js';
import type { GptConfig } from '../model/config.js';
import { disposeParams, type Params } from '../model/gpt.js';
import { rewardInputs, rewardMicroLoss, type ComparisonBatch, type RewardBatchShape } from '../reward/micro-loss.js';
import { addScalarHead, normalisationFor, padRows, rewardInput, scoreRows } from '../reward/score.js';
import { stopTokenIds } from '../sample/tokens.js';
import type { DataSource } from '../config/schema.js';
import { stageDir } from '../run/stage.js';
import { generate } from '../sample/generate.js';
import { tokenizeDemonstrations } from '../sft/examples.js';
import { getTask } from '../tasks/index.js';
import type { Tokenizer } from '../tokenizer/index.js';
import { Rng } from '../util/rng.js';
import { parentCheckpoint } from './sft.js';
import { runSupervisedStage, type StageOptions, type StageResult } from './supervised.js';
import { maxOf, splitEveryKth } from '../util/arrays.js';

/** A comparison tokenised for the reward model: one row per response, pairs as row indices. */
interface TokenizedComparison {
  /** Prompt tokens (as truncated to fit). */
  prompt: number[];
  rows: number[][];
  pairs: [number, number][];
  /** Gold score per response when the labeler was a task's gold scorer. */
  gold?: number[];
}

function tokenizeComparisons(comparisons: readonly { value: Comparison; line: number }[], file: string, tokenizer: Tokenizer, cfg: GptConfig): TokenizedComparison[] {
  return comparisons.map(({ value: c, line }) => {
    const demos = c.responses.map((response) => ({ prompt: c.prompt, response, source: `${file}:${line}` }));
    const { sequences } = tokenizeDemonstrations(demos, tokenizer, cfg.context_length - 1);
    const task = /^gold:(\w+)/.exec(c.labeler)?.[1];
    const gold = task ? c.responses.map((r) => getTask(task).goldScore(c.prompt, r)) : undefined;
    return { prompt: sequences[0].ids.slice(0, sequences[0].promptLength), rows: sequences.map((s) => s.ids), pairs: comparisonPairs(c), gold };
  });
}

/** Rows and pair indices of several comparisons, flattened into one batch. */
function flatten(batch: readonly TokenizedComparison[]): ComparisonBatch {
  const rows: number[][] = [];
  const better: number[] = [];
  const worse: number[] = [];
  for (const c of batch) {
    const offset = rows.length;
    rows.push(...c.rows);
    for (const [b, w] of c.pairs) {
      better.push(offset + b);
      worse.push(offset + w);
    }
  }
  return { rows, better: Int32Array.from(better), worse: Int32Array.from(worse) };
}

/** Scores of every response of `items`, in chunks of `chunk` comparisons. */
function scoreAll(params: Params, cfg: GptConfig, items: readonly TokenizedComparison[], padId: number, chunk: number): number[][] {
  const out: number[][] = [];
  for (let i = 0; i < items.length; i += chunk) {
    const part = items.slice(i, i + chunk);
    const { rows } = flatten(part);
    const scores = tf.tidy(() => scoreRows(params, cfg, padRows(rows, padId, 'right')));
    const values = Array.from(scores.dataSync());
    scores.dispose();
    let k = 0;
    for (const c of part) out.push(c.rows.map(() => values[k++]));
  }
  return out;
}

/** Held-out pairwise accuracy, margin and loss; accuracy against gold where gold scores are known. */
export function evaluateRewardModel(params: Params, cfg: GptConfig, items: readonly TokenizedComparison[], padId: number, chunk: number): Record<string, number> {
  const scores = scoreAll(params, cfg, items, padId, chunk);
  let pairs = 0;
  let correct = 0;
  let margin = 0;
  let loss = 0;
  let goldPairs = 0;
  let goldCorrect = 0;
  items.forEach((c, i) => {
    const s = scores[i];
    for (const [b, w] of c.pairs) {
      pairs++;
      const d = s[b] - s[w];
      if (d > 0) correct++;
      margin += d;
      loss += Math.log1p(Math.exp(-d));
    }
    if (c.gold) {
      const g = c.gold;
      for (let a = 0; a < g.length; a++) {
        for (let b = 0; b < g.length; b++) {
          if (g[a] > g[b]) {
            goldPairs++;
            if (s[a] > s[b]) goldCorrect++;
          }
        }
      }
    }
  });
  const metrics: Record<string, number> = { eval_loss: loss / pairs, eval_accuracy: correct / pairs, eval_margin: margin / pairs };
  if (goldPairs > 0) metrics.eval_gold_accuracy = goldCorrect / goldPairs;
  return metrics;
}

/**
 * Reward model: the SFT trunk plus a scalar head read at the last real token
 * (EOS), trained with the Bradley–Terry loss over all C(K,2) pairs of each
 * comparison, kept together in one batch element as InstructGPT does. After
 * training, rewards of SFT-policy samples are normalised to mean 0, std 1.
 */
export function runTrainReward(loaded: LoadedConfig, opts: StageOptions = {}): Promise<StageResult> {
  const { config, file } = loaded;
  return runSupervisedStage(loaded, 'train-reward', opts, (resumed?: LoadedCheckpoint) => {
    const cfg = config.train_reward;
    if (!cfg) throw new ConfigError(`${file}: train_reward: section missing`);
    const parent = parentCheckpoint(loaded, cfg.init_from, 'sft');
    const meta = readCheckpointMeta(parent);
    const model = meta.model;
    const dataFile = cfg.data?.path ?? path.join(stageDir(config, 'label'), 'comparisons.jsonl');
    const sft = loadCheckpoint(parent);
    const tokenizer = sft.tokenizer;
    let items: TokenizedComparison[];
    try {
      items = tokenizeComparisons(readComparisons(dataFile), dataFile, tokenizer, model);
    } catch (err) {
      disposeParams(sft.params);
      throw err;
    }
    // A comparison whose responses all tie teaches nothing (its prompt still serves the normalisation below).
    const informative = items.filter((c) => c.pairs.length > 0);
    const { train, evaluation } = splitEveryKth(informative, cfg.eval_fraction);
    if (train.length === 0 || evaluation.length === 0) {
      disposeParams(sft.params);
      throw new DataError(`${dataFile}: too few comparisons with a preference (${informative.length} of ${items.length}) for a train/eval split`);
    }
    const B = cfg.batch_size;
    const padId = tokenizer.padId;
    const meanRows = train.reduce((s, c) => s + c.rows.reduce((a, r) => a + r.length, 0), 0) / train.length;
    // A graph step pads every batch to the most rows, columns and pairs B training comparisons can have, so one graph serves all.
    const shape: RewardBatchShape = {
      rows: B * maxOf(train.map((c) => c.rows.length)),
      width: maxOf(train.map((c) => maxOf(c.rows.map((r) => r.length)))),
      pairs: B * maxOf(train.map((c) => c.pairs.length)),
    };
    if (resumed) disposeParams(sft.params);
    return {
      head: 'score',
      model,
      tokenizer,
      settings: cfg,
      parents: [parent],
      tokensPerStep: Math.round(B * meanRows * cfg.grad_accum_steps),
      initialParams: (rng) => addScalarHead(sft.params, model, rng),
      microBatch: {
        loss: (seed) => rewardMicroLoss(model, cfg.center_coef, seed),
        draw: (rng) => {
          const batch = flatten(Array.from({ length: B }, () => train[rng.int(train.length)]));
          return { exact: rewardInputs(batch, padId), padded: rewardInputs(batch, padId, shape) };
        },
      },
      evaluate: (params) => evaluateRewardModel(params, model, evaluation, padId, B),
      finalExtra: (params) => ({
        reward_norm: rewardNormalisation(params, model, parent, items, {
          n: cfg.norm_samples,
          seed: config.seed,
          maxNewTokens: config.label?.max_new_tokens ?? 32,
          temperature: config.label?.temperature ?? 1,
          stops: taskStops(config.ppo?.prompts ?? config.label?.prompts),
        }),
      }),
      describe: { parent, comparisons: items.length, all_tied: items.length - informative.length, eval: evaluation.length, data: dataFile },
      batchRows: B * maxOf(items.map((c) => c.rows.length)),
      // the reward normalisation samples from the SFT policy, 32 rows at a time
      alsoNeeds: { models: [{ model, head: 'lm' }], generate: { model, rows: NORM_BATCH } },
    };
  });
}

/** Stop texts of the task a prompt source belongs to (none for a prompts file). */
function taskStops(source: DataSource | undefined): string[] {
  return source && 'task' in source ? (getTask(source.task).stopSequences ?? []) : [];
}

/** Rows the reward normalisation generates at once. */
const NORM_BATCH = 32;

/**
 * Scores SFT-policy samples on the comparison prompts, sampled and terminated
 * as PPO will (task stop tokens, then EOS appended); returns the gain/bias mapping them to mean 0, std 1.
 */
function rewardNormalisation(
  rewardParams: Params,
  cfg: GptConfig,
  sftDir: string,
  items: readonly TokenizedComparison[],
  o: { n: number; seed: number; maxNewTokens: number; temperature: number; stops: string[] },
) {
  const policy = loadCheckpoint(sftDir, { expectHead: 'lm' });
  const { eosId, padId } = policy.tokenizer;
  try {
    const rng = new Rng(`${o.seed}:reward-norm`);
    const prompts = Array.from({ length: o.n }, (_, i) => items[i % items.length].prompt).map((p) => (p.length ? p : [eosId]));
    const rows: number[][] = [];
    for (let i = 0; i < prompts.length; i += NORM_BATCH) {
      const part = prompts.slice(i, i + NORM_BATCH);
      const stopIds = stopTokenIds(policy.tokenizer, o.stops);
      const out = generate(policy.params, cfg, part, policy.tokenizer, { maxNewTokens: o.maxNewTokens, temperature: o.temperature, topK: 0, topP: 1, stopIds }, rng);
      part.forEach((p, j) => rows.push(rewardInput(p, out.responses[j], eosId).slice(-cfg.context_length)));
    }
    return normalisationFor(scoreAll(rewardParams, cfg, [{ prompt: [], rows, pairs: [] }], padId, 1)[0]);
  } finally {
    disposeParams(policy.params);
  }
}
