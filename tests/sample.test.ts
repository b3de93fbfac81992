import { describe, it, expect, beforeAll } from 'vitest';
import { disposeParams, initParams } from '../src/model/gpt.js';
import { generate, sampleToken } from '../src/sample/generate.js';
import { sampleCheckpoint } from '../src/stages/sample.js';
import { trainTokenizer } from '../src/tokenizer/index.js';
import { Rng } from '../src/util/rng.js';
import { randomLmCheckpoint } from './helpers.js';

describe('sampling a token', () => {
  const logits = Float32Array.from([1, 3, 2, 0.5]);
  it('top-k 1 and a tiny top-p are greedy', () => {
    const rng = new Rng(1);
    for (let i = 0; i < 20; i++) {
      expect(sampleToken(logits, { temperature: 1, topK: 1, topP: 1 }, rng)).toBe(1);
      expect(sampleToken(logits, { temperature: 1, topK: 0, topP: 0.01 }, rng)).toBe(1);
    }
  });

  it('top-k 2 only ever returns the two most likely tokens, at their renormalised odds', () => {
    const rng = new Rng(2);
    const counts = [0, 0, 0, 0];
    for (let i = 0; i < 4000; i++) counts[sampleToken(logits, { temperature: 1, topK: 2, topP: 1 }, rng)]++;
    expect(counts[0] + counts[3]).toBe(0);
    // p(1) = e^3 / (e^3 + e^2) = 0.731
    expect(counts[1] / 4000).toBeGreaterThan(0.7);
    expect(counts[1] / 4000).toBeLessThan(0.76);
  });

  it('temperature sharpens the distribution', () => {
    const rng = new Rng(3);
    let top = 0;
    for (let i = 0; i < 2000; i++) if (sampleToken(logits, { temperature: 0.1, topK: 0, topP: 1 }, rng) === 1) top++;
    expect(top / 2000).toBeGreaterThan(0.99);
  });
});

describe('generation from a checkpoint', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await randomLmCheckpoint({ n_layer: 2, d_model: 32, context_length: 48 }, 4);
  });

  const request = (seed: number, useCache = true) => ({ checkpoint: dir, prompts: ['the ', ''], num: 3, maxNewTokens: 20, temperature: 1, topK: 0, topP: 1, seed, useCache });

  it('same seed gives the same text; another seed gives other text', () => {
    const a = [...sampleCheckpoint(request(7))];
    const b = [...sampleCheckpoint(request(7))];
    const c = [...sampleCheckpoint(request(8))];
    expect(a).toHaveLength(6);
    expect(b).toEqual(a);
    expect(c.map((r) => r.completion)).not.toEqual(a.map((r) => r.completion));
    for (const r of a) expect(r.new_tokens).toBeLessThanOrEqual(20);
  });

  it('KV-cache decoding samples the same tokens as full re-encoding', () => {
    const cached = [...sampleCheckpoint(request(9, true))];
    const uncached = [...sampleCheckpoint(request(9, false))];
    expect(uncached).toEqual(cached);
  });

  it('never samples padding or <unk>, and stops rows at EOS', () => {
    const tokenizer = trainTokenizer({ type: 'char' }, 'ab');
    const cfg = { vocab_size: tokenizer.vocabSize, n_layer: 1, n_head: 1, d_model: 8, context_length: 40, dropout: 0 };
    const params = initParams(cfg, 'lm', new Rng(5));
    const out = generate(params, cfg, [[0], [1, 0]], tokenizer as never, { maxNewTokens: 30, temperature: 3, topK: 0, topP: 1, stopIds: [tokenizer.eosId] }, new Rng(6));
    disposeParams(params);
    const unk = (tokenizer as unknown as { unkId: number }).unkId;
    for (const [i, r] of out.responses.entries()) {
      expect(r).not.toContain(tokenizer.padId);
      expect(r).not.toContain(unk);
      if (out.finished[i]) expect(r[r.length - 1]).toBe(tokenizer.eosId);
      expect(r.indexOf(tokenizer.eosId)).toBe(out.finished[i] ? r.length - 1 : -1);
    }
  });
});
