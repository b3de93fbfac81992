import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { tf } from '../src/backend/tf.js';
import { saveCheckpoint } from '../src/checkpoint/checkpoint.js';
import type { GptConfig, HeadKind } from '../src/model/config.js';
import { disposeParams, initParams } from '../src/model/gpt.js';
import { BpeTokenizer, CharTokenizer, type Tokenizer } from '../src/tokenizer/index.js';
import { Rng } from '../src/util/rng.js';

export const TEXT = 'the quick brown fox jumps over the lazy dog. The dog sleeps; the fox runs away!\n';

export const charTokenizer = (): Tokenizer => CharTokenizer.train(TEXT);
export const bpeTokenizer = (): Tokenizer => BpeTokenizer.train(TEXT.repeat(3), 300);

export function tempDir(prefix = 'rlhf-hf-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export type Kind = 'lm' | 'policy' | 'reward';

/**
 * A random checkpoint: an LM, a PPO policy whose shared value head (score.*)
 * rides along, or a reward model with a score bias and reward normalisation.
 * Biases and LayerNorm gains are randomised too, so a mapping that drops or
 * swaps one shows up.
 */
export async function randomCheckpoint(tokenizer: Tokenizer, kind: Kind, seed = 1): Promise<{ dir: string; model: GptConfig; head: HeadKind }> {
  const model: GptConfig = { vocab_size: tokenizer.vocabSize, n_layer: 2, n_head: 2, d_model: 16, context_length: 24, dropout: 0 };
  const head: HeadKind = kind === 'reward' ? 'score' : 'lm';
  const params = initParams(model, kind === 'lm' ? 'lm' : 'score', new Rng(seed));
  const rng = new Rng(seed + 1);
  for (const [name, v] of params) {
    if (name.endsWith('.bias') || /ln_.*weight/.test(name)) {
      const data = Float32Array.from(v.dataSync(), (x) => x + 0.1 * (rng.next() - 0.5));
      const t = tf.tensor(data, v.shape);
      v.assign(t);
      t.dispose();
    }
  }
  const dir = path.join(tempDir('rlhf-ckpt-'), 'ckpt');
  const extra = kind === 'reward' ? { reward_norm: { gain: 1.7, bias: -0.3 } } : {};
  await saveCheckpoint(dir, { params, head, model, tokenizer, extra });
  disposeParams(params);
  return { dir, model, head };
}
