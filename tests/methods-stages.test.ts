import { describe, it, expect, beforeAll } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { ConfigError, loadConfig, type LoadedConfig } from '../src/config/load.js';
import { runDpo } from '../src/stages/dpo.js';
import { defaultPolicies, runEval } from '../src/stages/eval.js';
import { runGroupRl } from '../src/stages/group-rl.js';
import { runLabel } from '../src/stages/label.js';
import { runPpo } from '../src/stages/ppo.js';
import { runPretrain } from '../src/stages/pretrain.js';
import { runSft } from '../src/stages/sft.js';
import { runTrainReward } from '../src/stages/train-reward.js';
import { readManifest, stageDir } from '../src/run/stage.js';
import type { StageResult } from '../src/stages/supervised.js';
import { stageMetrics } from '../src/workflow/pipeline.js';
import { verifyRun } from '../src/workflow/verify.js';
import { oneLineError, readJsonl, tinyRlhfConfig, withoutWallClock, writeConfig } from './helpers.js';

/**
 * RLOO, GRPO and DPO on the tiny randomwalks fixture: the stages run, log the
 * names the charts read, resume bit-exactly, and eval puts every policy side
 * by side. Efficacy over seeds is measured with `rlhf sweep`, not here.
 */
const group = { prompts: { task: 'randomwalks' }, k: 4, iterations: 3, rollout_batch_size: 16, mini_batch_size: 8, ppo_epochs: 1, response_length: 20, lr: 2e-4, checkpoint_interval: 2 };
const config = {
  ...tinyRlhfConfig('methods'),
  rloo: { ...group, kl_coef: 0.1 },
  grpo: { ...group, beta: 0.1 },
  dpo: { batch_size: 4, max_steps: 6, lr: 1e-4, log_interval: 1, eval_interval: 3, checkpoint_interval: 3 },
};

let file: string;
let loaded: LoadedConfig;

beforeAll(async () => {
  file = writeConfig(config);
  loaded = loadConfig(file);
  await runPretrain(loaded);
  await runSft(loaded);
  await runLabel(loaded);
  await runTrainReward(loaded);
}, 300_000);

/** Metric rows without anything timed (PPO-style stages log time/rollout_s, time/update_s). */
const untimed = (rows: Record<string, number>[]) => withoutWallClock(rows).map((r) => Object.fromEntries(Object.entries(r).filter(([k]) => !k.startsWith('time/'))));

/** Runs a stage, then "crashes" it after its last periodic checkpoint and resumes: same metrics and weights. */
async function expectBitExactResume(run: (resume: boolean) => Promise<StageResult>): Promise<Record<string, number>[]> {
  const straight = await run(false);
  const rows = untimed(readJsonl(path.join(straight.dir, 'metrics.jsonl')));
  const weights = fs.readFileSync(path.join(straight.finalPath, 'model.weights.bin'));
  fs.rmSync(straight.finalPath, { recursive: true });
  const manifest = path.join(straight.dir, 'manifest.json');
  fs.writeFileSync(manifest, JSON.stringify({ ...JSON.parse(fs.readFileSync(manifest, 'utf8')), status: 'running' }));
  const resumed = await run(true);
  expect(untimed(readJsonl(path.join(resumed.dir, 'metrics.jsonl')))).toEqual(rows);
  expect(fs.readFileSync(path.join(resumed.finalPath, 'model.weights.bin')).equals(weights)).toBe(true);
  return rows;
}

describe('RLOO and GRPO stages', () => {
  for (const method of ['rloo', 'grpo'] as const) {
    it(`${method}: PPO's objective/* names, no value model, flat tensors, bit-exact resume`, async () => {
      const rows = await expectBitExactResume((resume) => runGroupRl(loaded, method, { resume, force: !resume }));
      expect(rows).toHaveLength(3);
      for (const name of ['objective/kl', 'objective/entropy', 'objective/non_score_reward', 'objective/rlhf_reward', 'objective/scores', 'objective/kl_coef', 'loss/policy_avg', 'policy/clipfrac_avg', 'policy/approxkl_avg', 'val/ratio', 'gold/score', 'episode']) {
        expect(rows[2][name], name).toBeTypeOf('number');
      }
      expect(rows[2]['loss/value_avg']).toBeUndefined();
      expect(rows[2]['loss/kl_avg'] !== undefined).toBe(method === 'grpo');
      expect(rows[2].episode).toBe(48);
      expect(new Set(rows.slice(1).map((r) => r['debug/num_tensors'])).size).toBe(1);
      // the first iteration samples from the reference itself: KL exactly 0
      expect(rows[0]['objective/kl']).toBe(0);
      const ckpt = fs.readdirSync(path.join(loaded.config.run_dir, 'methods', method, 'checkpoints'));
      expect(ckpt).toEqual(['step-000002']);
    });
  }

  it('refuse k < 2 and a rollout that does not split into groups of k, naming the key', () => {
    expect(oneLineError(ConfigError, () => loadConfig(file, ['rloo.k=1']))).toMatch(/rloo\.k.*k must be ≥ 2/);
    expect(oneLineError(ConfigError, () => loadConfig(file, ['grpo.k=3']))).toMatch(/grpo\.k.*multiple of k/);
  });
});

describe('DPO stage', () => {
  it("logs TRL's DPO names; at the first step (policy = reference) the loss is log 2 and the rewards 0; bit-exact resume", async () => {
    const rows = await expectBitExactResume((resume) => runDpo(loaded, { resume, force: !resume }));
    expect(rows).toHaveLength(6);
    for (const name of ['loss', 'rewards/chosen', 'rewards/rejected', 'rewards/accuracies', 'rewards/margins', 'logps/chosen', 'logps/rejected']) expect(rows[5][name], name).toBeTypeOf('number');
    expect(rows[2].eval_loss).toBeTypeOf('number');
    expect(rows[2]['eval_rewards/accuracies']).toBeTypeOf('number');
    expect(rows[0].loss).toBeCloseTo(Math.LN2, 5);
    expect(rows[0]['rewards/chosen']).toBeCloseTo(0, 5);
    expect(rows[0]['rewards/margins']).toBeCloseTo(0, 5);
    expect(rows[0]['logps/chosen']).toBeLessThan(0);
  });
});

describe('eval with every method', () => {
  it('puts SFT, RLOO, GRPO, DPO and PPO side by side, and a sweep row gets each one', async () => {
    await runPpo(loaded);
    const policies = defaultPolicies(loaded);
    expect(policies.map((p) => path.relative(path.join(loaded.config.run_dir, 'methods'), p))).toEqual(['sft/final', 'rloo/final', 'grpo/final', 'dpo/final', 'ppo/final']);
    const { dir, results } = await runEval(loaded, policies, { force: true });
    expect(results[0].kl).toBe(0);
    const m = stageMetrics(dir)!;
    for (const method of ['sft', 'rloo', 'grpo', 'dpo', 'ppo']) expect(m[`${method}/gold_score`], method).toBeTypeOf('number');
    expect(m['ppo/kl']).toBe(m.kl);
    // each method's wall time is its own stage's, from that stage's manifest
    for (const r of results) expect(r.wall_s, r.policy).toBe(readManifest(path.dirname(r.policy))!.wall_time_s);
    expect(m['dpo/wall_s']).toBe(readManifest(stageDir(loaded.config, 'dpo'))!.wall_time_s);
  });
});

describe('rlhf verify', () => {
  it('re-runs a GRPO and a DPO stage from their manifests and finds them identical', async () => {
    const runDir = path.join(loaded.config.run_dir, 'methods');
    for (const stage of ['grpo', 'dpo']) {
      const r = await verifyRun(runDir, { stage });
      // integrity 'partial': run outside the pipeline, so no output hashes were recorded
      expect(r.stages.map((c) => [c.stage, c.integrity, c.rerun]), r.first_difference).toEqual([[stage, 'partial', 'identical']]);
    }
  });
});

describe('KL budget', () => {
  it("stops when a rollout's KL exceeds the budget, keeps the policy that sampled the previous rollout, resumes bit-exactly", async () => {
    const free = await runGroupRl(loadConfig(file, ['rloo.iterations=6']), 'rloo', { force: true });
    const kls = readJsonl(path.join(free.dir, 'metrics.jsonl')).map((r) => r['objective/kl']);
    // the first iteration from the 3rd on whose KL is a new maximum; the budget sits between it and the earlier ones
    const j = kls.findIndex((k, i) => i >= 2 && k > Math.max(...kls.slice(0, i))) + 1;
    expect(j, `KLs ${kls}`).toBeGreaterThanOrEqual(3);
    const budget = (kls[j - 1] + Math.max(...kls.slice(0, j - 1))) / 2;
    const budgeted = loadConfig(file, ['rloo.iterations=6', `rloo.kl_budget=${budget}`]);
    const rows = await expectBitExactResume((resume) => runGroupRl(budgeted, 'rloo', { resume, force: !resume }));
    expect(rows.map((r) => r['objective/kl'])).toEqual(kls.slice(0, j));
    const manifest = JSON.parse(fs.readFileSync(path.join(free.dir, 'manifest.json'), 'utf8'));
    expect([manifest.summary.iterations, manifest.summary.kl_budget_stop]).toEqual([j, true]);
    const stoppedWeights = fs.readFileSync(path.join(free.finalPath, 'model.weights.bin'));
    // rollout j was sampled after j − 1 updates (over budget); rollout j − 1 after j − 2 (inside)
    const inside = await runGroupRl(loadConfig(file, [`rloo.iterations=${j - 2}`]), 'rloo', { force: true });
    expect(fs.readFileSync(path.join(inside.finalPath, 'model.weights.bin')).equals(stoppedWeights)).toBe(true);
  });

  it('refuses a budget that is not a positive number, naming the key', () => {
    expect(oneLineError(ConfigError, () => loadConfig(file, ['ppo.kl_budget=0']))).toMatch(/ppo\.kl_budget/);
  });
});

describe('gold_reward (the perfect-reward-model diagnostic)', () => {
  it("scores each rollout by the task's gold scorer times the factor, not by the reward model", async () => {
    const r = await runGroupRl(loadConfig(file, ['rloo.iterations=2', 'rloo.gold_reward=2']), 'rloo', { force: true });
    const rows = readJsonl(path.join(r.dir, 'metrics.jsonl'));
    expect(rows).toHaveLength(2);
    for (const row of rows) expect(row['objective/scores']).toBeCloseTo(2 * row['gold/score'], 12);
    // the reward model's scores are normalised to mean 0 on SFT samples; the gold scorer's lie in [0, 1]
    expect(rows[0]['gold/score']).toBeGreaterThan(0);
  });

  it('refuses prompts without a task before the stage directory is touched, naming the key', async () => {
    const prompts = path.join(path.dirname(file), 'plain-prompts.jsonl');
    fs.writeFileSync(prompts, `${JSON.stringify({ prompt: 'a' })}\n`);
    const before = fs.readFileSync(path.join(stageDir(loaded.config, 'rloo'), 'manifest.json'));
    const noTask = loadConfig(file, ['rloo.gold_reward=1', `rloo.prompts={path: ${prompts}}`]);
    await expect(runGroupRl(noTask, 'rloo', { force: true })).rejects.toThrow(/rloo\.gold_reward: needs rloo\.prompts from a task/);
    expect(fs.readFileSync(path.join(stageDir(loaded.config, 'rloo'), 'manifest.json')).equals(before)).toBe(true);
  });
});
