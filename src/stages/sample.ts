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
}

export interface SampleRow {
  prompt_index: number;
  sample_index: number;
  prompt: string;
  completion: string;
  finished: boolean;
  new_tokens: number;
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
 */
export function* sampleCheckpoint(req: SampleRequest): Generator<SampleRow> {
  const total = req.prompts.length * req.num;
  const { model } = readCheckpointMeta(req.checkpoint);
  checkMemory(req.checkpoint, 'sampling', { models: [{ model, head: 'lm' }], generate: { model, rows: Math.min(total, SAMPLE_BATCH) } });
  const ckpt = loadCheckpoint(req.checkpoint, { expectHead: 'lm' });
  const { tokenizer, params, meta } = ckpt;
  try {
    const rng = new Rng(req.seed);
    for (let start = 0; start < total; start += SAMPLE_BATCH) {
      const jobs = Array.from({ length: Math.min(SAMPLE_BATCH, total - start) }, (_, i) => {
        const p = Math.floor((start + i) / req.num);
        return { prompt: req.prompts[p], p, s: (start + i) % req.num };
      });
      const ids = jobs.map((j) => encodePrompt(tokenizer, j.prompt));
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
      for (const [i, j] of jobs.entries()) {
        yield {
          prompt_index: j.p,
          sample_index: j.s,
          prompt: j.prompt,
          completion: tokenizer.decode(out.responses[i]),
          finished: out.finished[i],
          new_tokens: out.responses[i].length,
        };
      }
    }
  } finally {
    disposeParams(params);
  }
}
