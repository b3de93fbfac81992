import { describe, it, expect, beforeAll } from 'vitest';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { loadConfig, type LoadedConfig } from '../src/config/load.js';
import { runLabel } from '../src/stages/label.js';
import { runPpo } from '../src/stages/ppo.js';
import { runPretrain } from '../src/stages/pretrain.js';
import { runSft } from '../src/stages/sft.js';
import { runTrainReward } from '../src/stages/train-reward.js';
import { evaluatePolicies } from '../src/stages/eval.js';
import { readJsonl, repoRoot, writeConfig } from './helpers.js';

/**
 * The whole recipe at CI size on the `sentiment` task (seeded, ~2.5 min on 2
 * cores): pretrain → SFT → gold-labelled comparisons → reward model → PPO.
 * The numbers asserted are the ones measured with these settings.
 */
const config = {
  name: 'ci-sentiment',
  seed: 3,
  tokenizer: { type: 'char' },
  model: { n_layer: 2, n_head: 2, d_model: 64, context_length: 64, dropout: 0 },
  pretrain: {
    data: { task: 'sentiment' },
    batch_size: 16,
    max_steps: 600,
    lr: 3e-3,
    min_lr: 3e-4,
    warmup_steps: 20,
    beta2: 0.99,
    log_interval: 50,
    eval_interval: 200,
    eval_batches: 4,
    checkpoint_interval: 200,
  },
  sft: { data: { task: 'sentiment' }, batch_size: 16, max_steps: 120, lr: 1e-3, min_lr: 1e-4, warmup_steps: 10, log_interval: 20, eval_interval: 60, checkpoint_interval: 60 },
  label: {
    prompts: { task: 'sentiment' },
    num_prompts: 512,
    k: 4,
    labeler: 'gold:sentiment',
    noise: { type: 'bradley_terry', temperature: 0.05 },
    max_new_tokens: 30,
  },
  train_reward: { batch_size: 8, max_steps: 150, lr: 2e-4, min_lr: 2e-5, warmup_steps: 10, log_interval: 25, eval_interval: 75, checkpoint_interval: 75 },
  ppo: {
    prompts: { task: 'sentiment' },
    iterations: 20,
    rollout_batch_size: 32,
    mini_batch_size: 16,
    ppo_epochs: 2,
    response_length: 30,
    kl_coef: 0.1,
    lr: 5e-5,
    value_lr: 1e-4,
    checkpoint_interval: 5,
  },
  eval: { prompts: { task: 'sentiment' }, num_prompts: 128, max_new_tokens: 30 },
};

// wall-clock fields, and the process-wide live-tensor count, which depends on what else the process holds
const WALL_CLOCK = /^(time\/|debug\/|tokens_per_s|elapsed_s|responses_per_s)/;
const withoutWallClock = (rows: Record<string, number>[]) => rows.map((r) => Object.fromEntries(Object.entries(r).filter(([k]) => !WALL_CLOCK.test(k))));

let file: string;
let loaded: LoadedConfig;
let sftFinal: string;
let rewardFinal: string;

beforeAll(async () => {
  file = writeConfig(config);
  loaded = loadConfig(file);
  await runPretrain(loaded);
  sftFinal = (await runSft(loaded)).finalPath;
  await runLabel(loaded);
  rewardFinal = (await runTrainReward(loaded)).finalPath;
}, 600_000);

describe('RLHF on sentiment (CI size)', () => {
  it('SFT learns the demonstrations', () => {
    const rows = readJsonl(path.join(path.dirname(sftFinal), 'metrics.jsonl')).filter((r) => r.eval_loss !== undefined);
    const last = rows[rows.length - 1];
    // measured: eval_loss 0.829, mean_token_accuracy 0.747
    expect(last.eval_loss).toBeLessThan(0.9);
    expect(last.mean_token_accuracy).toBeGreaterThan(0.72);
  });

  it("reward model's held-out accuracy against gold rankings is well above chance", () => {
    const rows = readJsonl(path.join(path.dirname(rewardFinal), 'metrics.jsonl')).filter((r) => r.eval_gold_accuracy !== undefined);
    // measured: 0.667 on held-out comparisons (chance 0.5)
    expect(rows[rows.length - 1].eval_gold_accuracy).toBeGreaterThan(0.62);
    const meta = JSON.parse(fs.readFileSync(path.join(rewardFinal, 'model.json'), 'utf8'));
    expect(meta.head).toBe('score');
    expect(meta.extra.reward_norm.gain).toBeGreaterThan(0);
  });

  it('a PPO step whose policy equals the reference gives KL 0, ratio 1 and clipfrac 0', async () => {
    const one = loadConfig(file, ['ppo.iterations=1', 'ppo.ppo_epochs=1', 'ppo.mini_batch_size=32']);
    const result = await runPpo(one, { stage: 'ppo-identity' });
    const m = result.metrics;
    expect(m['objective/kl']).toBe(0);
    expect(m['objective/non_score_reward']).toBe(0);
    expect(m['val/ratio']).toBeCloseTo(1, 5);
    expect(m['policy/clipfrac_avg']).toBe(0);
    expect(m['policy/approxkl_avg']).toBeLessThan(1e-10);
  });

  it('PPO raises the proxy reward over SFT with bounded KL and no loss of gold; tensors stay flat', async () => {
    const result = await runPpo(loaded);
    const rows = readJsonl(path.join(result.dir, 'metrics.jsonl'));
    expect(rows).toHaveLength(20);
    for (const name of ['objective/kl', 'objective/entropy', 'objective/non_score_reward', 'objective/rlhf_reward', 'objective/scores', 'objective/kl_coef', 'policy/approxkl_avg', 'policy/clipfrac_avg', 'loss/policy_avg', 'loss/value_avg', 'val/clipfrac_avg', 'val/ratio', 'val/num_eos_tokens', 'lr', 'episode', 'gold/score']) {
      expect(rows[19][name], name).toBeTypeOf('number');
    }
    const tensors = rows.slice(1).map((r) => r['debug/num_tensors']);
    expect(new Set(tensors).size).toBe(1);

    const [sft, ppo] = evaluatePolicies(loaded, [sftFinal, result.finalPath]);
    // measured, value head on the reward scale: proxy 0.156 → 0.674, gold 0.117 → 0.130, KL 2.11 (oneDNN on);
    // 0.168 → 0.661, 0.117 → 0.138, KL 2.24 (off). (The raw-head critic reached proxy 0.99 at KL 3.0.)
    // One seed is no efficacy claim (Δgold's seed-to-seed sd is 0.08–0.13 on this task, and the
    // oneDNN modes part from the first PPO step): the claim over seeds is tests/rlhf-randomwalks.test.ts.
    // Here the proxy must rise, KL stay bounded, and gold not fall (reward hacking would).
    console.info(`sentiment PPO: proxy ${sft.proxy_reward.toFixed(3)} → ${ppo.proxy_reward.toFixed(3)}, gold ${sft.gold_score!.toFixed(3)} → ${ppo.gold_score!.toFixed(3)}, KL ${ppo.kl.toFixed(2)}`);
    expect(sft.kl).toBe(0);
    expect(ppo.proxy_reward).toBeGreaterThan(sft.proxy_reward + 0.3);
    expect(ppo.gold_score!, `gold ${sft.gold_score!.toFixed(3)} → ${ppo.gold_score!.toFixed(3)}`).toBeGreaterThan(sft.gold_score! - 0.03);
    expect(ppo.kl).toBeGreaterThan(0.5);
    expect(ppo.kl).toBeLessThan(6);
  });

  it('SIGKILL mid-run, then --resume: metrics equal an uninterrupted run line for line', async () => {
    const common = ['ppo.iterations=6', 'ppo.checkpoint_interval=2', `ppo.policy=${sftFinal}`, `ppo.reward_model=${rewardFinal}`];
    const straight = await runPpo(loadConfig(file, [...common, 'name=resume-straight']));

    const args = [path.join(repoRoot, 'bin', 'rlhf.js'), 'ppo', '-c', file, ...[...common, 'name=resume-killed'].flatMap((s) => ['--set', s])];
    const dir = path.join(path.dirname(file), 'runs', 'resume-killed', 'ppo');
    const child = spawn(process.execPath, args, { stdio: 'ignore' });
    const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
    const killAt = path.join(dir, 'checkpoints', 'step-000002');
    const deadline = Date.now() + 120_000;
    while (!fs.existsSync(killAt) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    child.kill('SIGKILL');
    await exited;
    expect(fs.existsSync(path.join(dir, 'final'))).toBe(false);

    const resumed = await runPpo(loadConfig(file, [...common, 'name=resume-killed']), { resume: true });
    const a = withoutWallClock(readJsonl(path.join(straight.dir, 'metrics.jsonl')));
    const b = withoutWallClock(readJsonl(path.join(resumed.dir, 'metrics.jsonl')));
    expect(b).toHaveLength(6);
    expect(b).toEqual(a);
    const wa = fs.readFileSync(path.join(straight.finalPath, 'model.weights.bin'));
    const wb = fs.readFileSync(path.join(resumed.finalPath, 'model.weights.bin'));
    expect(wb.equals(wa)).toBe(true);
  });

  it('runs every PPO option together: shared value head, k3, adaptive KL, PPO-ptx, EMA, early stop, penalties, whitening, entropy', async () => {
    const options = loadConfig(file, [
      'ppo.iterations=2',
      'ppo.value_model=policy_head',
      'ppo.kl_estimator=k3',
      'ppo.adaptive_kl={target: 0.5, horizon: 100}',
      'ppo.ptx_coef=0.1',
      'ppo.ema_decay=0.9',
      'ppo.early_stop_kl=0.5',
      'ppo.missing_eos_penalty=-1',
      'ppo.reward_clip=3',
      'ppo.whiten_rewards=true',
      'ppo.ent_coef=0.01',
    ]);
    const result = await runPpo(options, { stage: 'ppo-options' });
    const rows = readJsonl(path.join(result.dir, 'metrics.jsonl'));
    expect(rows).toHaveLength(2);
    // the adaptive controller moved β away from its initial value after iteration 1
    expect(rows[0]['objective/kl_coef']).toBe(0.1);
    expect(rows[1]['objective/kl_coef']).not.toBe(0.1);
    for (const r of rows) for (const [k, v] of Object.entries(r)) expect(Number.isFinite(v), k).toBe(true);
    expect(fs.existsSync(path.join(result.dir, 'final-ema', 'model.weights.bin'))).toBe(true);
    const policyHead = JSON.parse(fs.readFileSync(path.join(result.finalPath, 'model.json'), 'utf8'));
    expect(policyHead.weightsManifest[0].weights.map((w: { name: string }) => w.name)).toContain('score.weight');
  });

  it('refuses a reward model whose tokenizer does not match the policy', async () => {
    const otherTokenizer = writeConfig({ ...config, name: 'other', tokenizer: { type: 'bpe', vocab_size: 300 }, pretrain: { ...config.pretrain, max_steps: 1, warmup_steps: 0 } });
    const other = await runPretrain(loadConfig(otherTokenizer));
    await expect(runPpo(loadConfig(file, [`ppo.policy=${other.finalPath}`, `ppo.reward_model=${rewardFinal}`, 'name=mismatch']))).rejects.toThrow(/tokenizer does not match the policy/);
    expect(fs.existsSync(path.join(path.dirname(file), 'runs', 'mismatch'))).toBe(false);
  });
});
