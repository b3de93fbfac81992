import { describe, it, expect } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CheckpointError, loadCheckpoint, saveCheckpoint } from '../src/checkpoint/checkpoint.js';
import { disposeParams, initParams } from '../src/model/gpt.js';
import { trainTokenizer } from '../src/tokenizer/index.js';
import { Rng } from '../src/util/rng.js';

const tokenizer = trainTokenizer({ type: 'char' }, 'abcdef ');
const cfg = { vocab_size: tokenizer.vocabSize, n_layer: 1, n_head: 2, d_model: 8, context_length: 8, dropout: 0 };

async function fresh(): Promise<string> {
  const dir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'rlhf-ckpt-')), 'ckpt');
  const params = initParams(cfg, 'lm', new Rng(1));
  await saveCheckpoint(dir, { params, head: 'lm', model: cfg, tokenizer });
  disposeParams(params);
  return dir;
}

function loadError(dir: string, opts = {}): string {
  try {
    disposeParams(loadCheckpoint(dir, opts).params);
  } catch (e) {
    expect(e).toBeInstanceOf(CheckpointError);
    return (e as Error).message;
  }
  throw new Error('expected a CheckpointError');
}

describe('checkpoints', () => {
  it('round-trips weights exactly and leaves no temporary directories', async () => {
    const dir = await fresh();
    const a = loadCheckpoint(dir);
    const again = path.join(path.dirname(dir), 'copy');
    await saveCheckpoint(again, { params: a.params, head: 'lm', model: cfg, tokenizer: a.tokenizer });
    expect(fs.readFileSync(path.join(again, 'model.weights.bin')).equals(fs.readFileSync(path.join(dir, 'model.weights.bin')))).toBe(true);
    // overwriting an existing checkpoint is also atomic
    await saveCheckpoint(again, { params: a.params, head: 'lm', model: cfg, tokenizer: a.tokenizer });
    expect(fs.readdirSync(path.dirname(dir)).sort()).toEqual(['ckpt', 'copy']);
    disposeParams(a.params);
  });

  it('refuses a tokenizer.json that is not the one the weights were trained with', async () => {
    const dir = await fresh();
    fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(trainTokenizer({ type: 'char' }, 'xyz').toJSON()));
    expect(loadError(dir)).toMatch(/tokenizer\.json does not match the tokenizer the weights were trained with/);
  });

  it('refuses truncated weights, a missing directory and the wrong head', async () => {
    const dir = await fresh();
    expect(loadError(dir, { expectHead: 'score' })).toMatch(/holds a "lm" model, expected "score"/);
    const bin = path.join(dir, 'model.weights.bin');
    fs.writeFileSync(bin, fs.readFileSync(bin).subarray(0, 100));
    expect(loadError(dir)).toMatch(/model\.weights\.bin: expected \d+ bytes, found 100/);
    expect(loadError('/nonexistent/ckpt')).toMatch(/\/nonexistent\/ckpt\/model\.json: missing/);
  });
});
