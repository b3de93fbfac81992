import { describe, it, expect } from 'vitest';
import path from 'node:path';
import { loadConfig } from '../src/config/load.js';
import fs from 'node:fs';
import { defaultPolicies, evaluatePolicies } from '../src/stages/eval.js';
import { runRounds } from '../src/stages/rounds.js';
import { runLabel } from '../src/stages/label.js';
import { runPpo } from '../src/stages/ppo.js';
import { runPretrain } from '../src/stages/pretrain.js';
import { runSft } from '../src/stages/sft.js';
import { runTrainReward } from '../src/stages/train-reward.js';
import { readJsonl, writeConfig } from './helpers.js';

/** trlX's randomwalks task at CI size (~1.5 min): PPO against a learned reward model raises the gold optimality score. */
const config = {
  name: 'ci-randomwalks',
  seed: 5,
  tokenizer: { type: 'char' },
  model: { n_layer: 2, n_head: 2, d_model: 48, context_length: 32, dropout: 0 },
  pretrain: { data: { task: 'randomwalks' }, batch_size: 16, max_steps: 300, lr: 3e-3, min_lr: 3e-4, warmup_steps: 20, beta2: 0.99, log_interval: 50, eval_interval: 150, eval_batches: 4, checkpoint_interval: 150 },
  sft: { data: { task: 'randomwalks' }, batch_size: 16, max_steps: 100, lr: 1e-3, min_lr: 1e-4, warmup_steps: 10, log_interval: 20, eval_interval: 50, checkpoint_interval: 50 },
  label: { prompts: { task: 'randomwalks' }, num_prompts: 600, k: 6, labeler: 'gold:randomwalks', noise: { type: 'none' }, max_new_tokens: 20 },
  train_reward: { batch_size: 8, max_steps: 200, lr: 3e-4, min_lr: 3e-5, warmup_steps: 10, log_interval: 25, eval_interval: 100, checkpoint_interval: 100 },
  ppo: { prompts: { task: 'randomwalks' }, iterations: 30, rollout_batch_size: 32, mini_batch_size: 16, ppo_epochs: 2, response_length: 20, kl_coef: 0.1, lr: 2e-4, value_lr: 1e-4, checkpoint_interval: 10 },
  eval: { prompts: { task: 'randomwalks' }, num_prompts: 20, samples_per_prompt: 8, max_new_tokens: 20 },
};

const file = writeConfig(config);

describe('RLHF on randomwalks (CI size)', () => {
  it('PPO raises the gold score of the walks over the SFT policy', async () => {
    const loaded = loadConfig(file);
    await runPretrain(loaded);
    const sft = await runSft(loaded);
    await runLabel(loaded);
    const rm = await runTrainReward(loaded);
    const rmRows = readJsonl(path.join(rm.dir, 'metrics.jsonl')).filter((r) => r.eval_gold_accuracy !== undefined);
    // measured: 0.88 of strictly gold-ordered held-out pairs
    expect(rmRows[rmRows.length - 1].eval_gold_accuracy).toBeGreaterThan(0.8);
    const ppo = await runPpo(loaded);
    const [before, after] = evaluatePolicies(loaded, [sft.finalPath, ppo.finalPath]);
    // measured: gold 0.528 → 0.587, proxy 0.059 → 0.543, KL 1.06 nats
    expect(after.gold_score!).toBeGreaterThan(before.gold_score! + 0.03);
    expect(after.proxy_reward).toBeGreaterThan(before.proxy_reward + 0.2);
    expect(after.kl).toBeLessThan(3);
  }, 600_000);

  it('iterated RLHF: a second round labels the PPO policy, retrains the RM on all comparisons, continues PPO', async () => {
    const loaded = loadConfig(file, ['ppo.rounds=2', 'label.num_prompts=60', 'train_reward.max_steps=20', 'ppo.iterations=3']);
    const rounds = await runRounds(loaded);
    expect(rounds.map((r) => r.round)).toEqual([1, 2]);
    expect(rounds[0].ppo).toBe('skipped'); // round 1 completed above
    const root = path.join(path.dirname(file), 'runs', 'ci-randomwalks', 'round-2');
    for (const stage of ['label', 'train-reward', 'ppo']) {
      expect(JSON.parse(fs.readFileSync(path.join(root, stage, 'manifest.json'), 'utf8')).status, stage).toBe('completed');
    }
    const all = fs.readFileSync(path.join(root, 'comparisons-all.jsonl'), 'utf8').trim().split('\n');
    expect(all).toHaveLength(600 + 60);
    const ppoManifest = JSON.parse(fs.readFileSync(path.join(root, 'ppo', 'manifest.json'), 'utf8'));
    const parents = ppoManifest.parents.map((p: { path: string }) => p.path);
    expect(parents[0]).toBe(path.join(path.dirname(file), 'runs', 'ci-randomwalks', 'ppo', 'final'));
    expect(readJsonl(path.join(root, 'ppo', 'metrics.jsonl'))).toHaveLength(3);
    expect(defaultPolicies(loaded)).toHaveLength(3);
  }, 300_000);
});
