import fs from 'node:fs';
import path from 'node:path';
import { CheckpointError, loadCheckpoint, readCheckpointMeta } from '../checkpoint/checkpoint.js';
import type { LoadedConfig } from '../config/load.js';
import { disposeParams } from '../model/gpt.js';
import { checkMemory } from '../model/memory.js';
import { readManifest, stageDir } from '../run/stage.js';
import { generate } from '../sample/generate.js';
import { encodePrompt } from '../sample/tokens.js';
import { Rng } from '../util/rng.js';
import { rewardScores } from '../ppo/rollout.js';
import { IDENTITY_NORM, type RewardNorm } from '../reward/score.js';

/** Stages whose `final/` holds a language model, newest first: the default checkpoint to sample. */
export const LM_STAGES = ['ppo', 'sft', 'pretrain'] as const;

export interface SampleRequest {
  checkpoint: string;
  prompts: string[];
  num: number;
  maxNewTokens: number;
  temperature: number;
  topK: number;
  topP: number;
  seed: number;
  useCache?: boolean;
  /** Best-of-n: sample n candidates per row and keep the one this reward model scores highest. */
  bestOf?: { n: number; rewardModel: string };
}

export interface SampleRow {
  prompt_index: number;
  sample_index: number;
  prompt: string;
  completion: string;
  finished: boolean;
  new_tokens: number;
  /** With best-of-n: the kept candidate's normalised reward-model score, and n. */
  reward?: number;
  best_of?: number;
}

/** `final/` of the named stage of a config, or of its newest completed LM stage. */
export function checkpointForConfig(loaded: LoadedConfig, stage?: string): string {
  const candidates = stage ? [stage] : LM_STAGES;
  for (const s of candidates) {
    const dir = stageDir(loaded.config, s);
    if (readManifest(dir)?.status === 'completed') return path.join(dir, 'final');
  }
  const where = stage ? stageDir(loaded.config, stage) : path.join(loaded.config.run_dir, loaded.config.name);
  throw new CheckpointError(`${where}: no completed ${stage ?? 'language-model'} stage to sample from (run it first)`);
}

export function readPromptsFile(file: string): string[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    throw new CheckpointError(`${file}: cannot read prompts file`);
  }
  // One prompt per line; "\n" inside a line stands for a newline in the prompt.
  return text.split('\n').filter((l) => l.length > 0).map((l) => l.replace(/\\n/g, '\n'));
}

/** Rows per generate() call: memory (KV cache, logits, rows) stays bounded however large `num` is. */
export const SAMPLE_BATCH = 256;

/**
 * Samples `num` completions for each prompt from a language-model checkpoint,
 * yielding rows batch by batch (prompt-major) so a caller can print them as they come.
 * Empty prompts start from `<|endoftext|>`, GPT-2's start-of-text convention.
 * With `bestOf`, each row is the highest-reward of n candidates (rejection
 * sampling against the reward model: KL log n − (n−1)/n from the policy).
 */
export function* sampleCheckpoint(req: SampleRequest): Generator<SampleRow> {
  const total = req.prompts.length * req.num;
  const n = req.bestOf?.n ?? 1;
  // rows per generate() call stay within SAMPLE_BATCH candidates
  const perBatch = Math.max(1, Math.floor(SAMPLE_BATCH / n));
  const { model } = readCheckpointMeta(req.checkpoint);
  const rewardMeta = req.bestOf ? readCheckpointMeta(req.bestOf.rewardModel) : undefined;
  if (req.bestOf && rewardMeta!.head !== 'score') throw new CheckpointError(`${req.bestOf.rewardModel}: holds a "${rewardMeta!.head}" model; --reward-model needs a reward model`);
  checkMemory(req.checkpoint, 'sampling', {
    models: [{ model, head: 'lm' }, ...(rewardMeta ? [{ model: rewardMeta.model, head: 'score' as const }] : [])],
    generate: { model, rows: Math.min(total * n, perBatch * n) },
  });
  const ckpt = loadCheckpoint(req.checkpoint, { expectHead: 'lm' });
  const { tokenizer, params, meta } = ckpt;
  const reward = req.bestOf ? loadCheckpoint(req.bestOf.rewardModel, { expectHead: 'score' }) : undefined;
  try {
    if (reward && reward.meta.tokenizer_fingerprint !== meta.tokenizer_fingerprint) {
      throw new CheckpointError(`${req.bestOf!.rewardModel}: tokenizer does not match the policy's (${req.checkpoint})`);
    }
    const norm = (reward?.meta.extra.reward_norm as RewardNorm | undefined) ?? IDENTITY_NORM;
    const rng = new Rng(req.seed);
    for (let start = 0; start < total; start += perBatch) {
      const jobs = Array.from({ length: Math.min(perBatch, total - start) }, (_, i) => {
        const p = Math.floor((start + i) / req.num);
        return { prompt: req.prompts[p], p, s: (start + i) % req.num };
      });
      // n candidates per job, job-major
      const ids = jobs.flatMap((j) => Array.from({ length: n }, () => encodePrompt(tokenizer, j.prompt)));
      const out = generate(
        params,
        meta.model,
        ids,
        tokenizer,
        {
          maxNewTokens: req.maxNewTokens,
          temperature: req.temperature,
          topK: req.topK,
          topP: req.topP,
          stopIds: [tokenizer.eosId],
          useCache: req.useCache,
        },
        rng,
      );
      const scores = reward ? rewardScores(reward.params, reward.meta.model, { prompts: ids, responses: out.responses }, norm, tokenizer) : undefined;
      for (const [i, j] of jobs.entries()) {
        let best = i * n;
        if (scores) for (let c = i * n + 1; c < (i + 1) * n; c++) if (scores[c] > scores[best]) best = c;
        yield {
          prompt_index: j.p,
          sample_index: j.s,
          prompt: j.prompt,
          completion: tokenizer.decode(out.responses[best]),
          finished: out.finished[best],
          new_tokens: out.responses[best].length,
          ...(scores ? { reward: scores[best], best_of: n } : {}),
        };
      }
    }
  } finally {
    disposeParams(params);
    if (reward) disposeParams(reward.params);
  }
}
