import { describe, it, expect } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { loadConfig } from '../src/config/load.js';
import { countParams } from '../src/model/config.js';
import { estimateMemory } from '../src/model/memory.js';
import { dpoMemoryNeeds } from '../src/stages/dpo.js';
import { supervisedMemoryPlan } from '../src/stages/supervised.js';
import { repoRoot } from './helpers.js';

const MiB = 2 ** 20;

describe("DPO's memory plan", () => {
  // V = 10, L = 1, H = 1, d = 4, context 8: 324 parameters (tests/input-limits.test.ts), 1296 bytes.
  const model = { vocab_size: 10, n_layer: 1, n_head: 1, d_model: 4, context_length: 8, dropout: 0 };
  const settings = { batch_size: 2 };

  it('holds two models of the policy shape (the trained policy and the frozen reference) and trains on chosen + rejected rows', () => {
    const plan = supervisedMemoryPlan({ model, head: 'lm', settings, ...dpoMemoryNeeds(settings, model) });
    expect(plan.models).toEqual([
      { model, head: 'lm', trained: true },
      { model, head: 'lm' },
    ]);
    expect(plan.train).toEqual({ rows: 4, tokens: 8 });
    expect(countParams(model)).toBe(324);
    const e = estimateMemory(plan);
    // parameters of both models; gradients + AdamW moments of the policy only;
    // 32 tokens × (256 per layer + 42 at head and embeddings) = 9536 floats, × 2.5 backward = 23840 floats
    expect(e).toEqual({ runtime: 512 * MiB, params: 2 * 1296, optimizer: 3 * 1296, activations: 95360, kvCache: 0, total: 512 * MiB + 2592 + 3888 + 95360 });
  });

  it('fits under 1.5 GiB for every shipped config with a dpo section', () => {
    let checked = 0;
    for (const name of fs.readdirSync(path.join(repoRoot, 'configs'))) {
      const { config } = loadConfig(path.join(repoRoot, 'configs', name));
      if (!config.dpo) continue;
      const m = { ...config.model, vocab_size: config.tokenizer.type === 'bpe' ? config.tokenizer.vocab_size : 256 };
      expect(estimateMemory(supervisedMemoryPlan({ model: m, head: 'lm', settings: config.dpo, ...dpoMemoryNeeds(config.dpo, m) })).total, name).toBeLessThan(1536 * MiB);
      checked++;
    }
    expect(checked).toBeGreaterThan(0);
  });
});
