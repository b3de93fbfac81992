import { describe, it, expect, beforeAll } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { loadConfig } from '../src/config/load.js';
import { rewardScores } from '../src/ppo/rollout.js';
import { loadCheckpoint } from '../src/checkpoint/checkpoint.js';
import { disposeParams } from '../src/model/gpt.js';
import { IDENTITY_NORM, type RewardNorm } from '../src/reward/score.js';
import { defaultPolicies, evaluatePolicies, OVEROPTIMIZATION_FILE, runEval, type PolicyEvaluation } from '../src/stages/eval.js';
import { runRounds } from '../src/stages/rounds.js';
import { runLabel } from '../src/stages/label.js';
import { runPpo } from '../src/stages/ppo.js';
import { runPretrain } from '../src/stages/pretrain.js';
import { sampleCheckpoint } from '../src/stages/sample.js';
import { runSft } from '../src/stages/sft.js';
import { runTrainReward } from '../src/stages/train-reward.js';
import { encodePrompt } from '../src/sample/tokens.js';
import type { OveroptimizationReport } from '../src/overoptimization/curves.js';
import { summarizeSeeds } from '../src/util/stats.js';
import { mean } from '../src/util/arrays.js';
import { readJsonl, repoRoot } from './helpers.js';

/**
 * The shipped CI experiment (configs/ci.yaml: trlX's randomwalks at CI size)
 * over three seeds, in whichever oneDNN mode `npm test` runs (it runs both).
 * An RLHF result is a statistic over seeds, so the efficacy assertions are on
 * the seeds' mean, with thresholds far outside the seed-to-seed spread that
 * was measured on 6 seeds × both oneDNN modes (see configs/ci.yaml).
 */
const SEEDS = [1, 2, 3];
const runDir = fs.mkdtempSync(path.join(fs.realpathSync(process.env.TMPDIR ?? '/tmp'), 'rlhf-rw-'));
const configFile = path.join(repoRoot, 'configs', 'ci.yaml');

interface SeedRun {
  sft: PolicyEvaluation;
  ppo: PolicyEvaluation;
  over: OveroptimizationReport;
  rmGoldAccuracy: number;
}

const runs: SeedRun[] = [];

beforeAll(async () => {
  for (const seed of SEEDS) {
    const loaded = loadConfig(configFile, [`run_dir=${runDir}`, `name=rw-${seed}`, `seed=${seed}`]);
    await runPretrain(loaded);
    await runSft(loaded);
    await runLabel(loaded);
    const rm = await runTrainReward(loaded);
    await runPpo(loaded);
    const { dir, results } = await runEval(loaded);
    const rmRows = readJsonl(path.join(rm.dir, 'metrics.jsonl')).filter((r) => r.eval_gold_accuracy !== undefined);
    runs.push({
      sft: results[0],
      ppo: results[results.length - 1],
      over: JSON.parse(fs.readFileSync(path.join(dir, OVEROPTIMIZATION_FILE), 'utf8')) as OveroptimizationReport,
      rmGoldAccuracy: rmRows[rmRows.length - 1].eval_gold_accuracy,
    });
  }
}, 900_000);

describe(`RLHF on randomwalks (configs/ci.yaml), seeds ${SEEDS.join(', ')}`, () => {
  it('the reward model orders held-out walks as gold does, ties left out', () => {
    // measured, seeds 1–6: 0.70–0.91 (seeds 1–3: 0.754, 0.703, 0.863)
    expect(mean(runs.map((r) => r.rmGoldAccuracy))).toBeGreaterThan(0.72);
    for (const r of runs) expect(r.rmGoldAccuracy).toBeGreaterThan(0.6);
  });

  it('PPO raises gold over SFT on average, by a margin far outside the seed spread, within the KL budget and without collapse', () => {
    const deltas = runs.map((r) => r.ppo.gold_score! - r.sft.gold_score!);
    const s = summarizeSeeds(deltas);
    // measured (6 seeds × oneDNN on/off): Δgold +0.10 ± 0.04; a mean of 3 has sd ≈ 0.025.
    // With the value head on the normalised reward scale, seeds 1–3: +0.113 (on), +0.097 (off)
    expect(s.mean, `Δgold per seed ${deltas.map((d) => d.toFixed(3)).join(', ')}`).toBeGreaterThan(0.03);
    for (const r of runs) {
      expect(r.ppo.proxy_reward).toBeGreaterThan(r.sft.proxy_reward + 0.2);
      // the config's KL budget is 1 nat (measured 0.27–0.59)
      expect(r.ppo.kl).toBeLessThan(1);
      // no collapse to one walk (measured ratio 0.74–1.08 over 12 runs)
      expect(r.ppo.distinct_2).toBeGreaterThan(0.5 * r.sft.distinct_2);
    }
    expect(mean(runs.map((r) => r.ppo.distinct_2 / r.sft.distinct_2))).toBeGreaterThan(0.7);
  });

  it('best-of-n against the same reward model: KL log n − (n−1)/n, proxy rising with n, gold above SFT', () => {
    for (const r of runs) {
      const [one, four, sixteen] = r.over.best_of_n;
      expect(r.over.best_of_n.map((p) => p.n)).toEqual([1, 4, 16]);
      expect(sixteen.kl).toBeCloseTo(Math.log(16) - 15 / 16, 12);
      expect(one.kl).toBe(0);
      expect(four.proxy_reward).toBeGreaterThan(one.proxy_reward);
      expect(sixteen.proxy_reward).toBeGreaterThan(four.proxy_reward);
      // n = 1 is the SFT policy itself (other draws: 320 samples against the eval's 160, so ~3 standard errors apart at most)
      expect(Math.abs(one.gold_score! - r.sft.gold_score!)).toBeLessThan(0.12);
      // the RL curve starts at the SFT policy: KL 0 at iteration 1
      expect(r.over.rl[0].kl).toBeCloseTo(0, 6);
    }
    // measured: best-of-4 gold +0.12 to +0.17 over SFT
    expect(mean(runs.map((r) => r.over.best_of_n[1].gold_score! - r.over.best_of_n[0].gold_score!))).toBeGreaterThan(0.05);
  });

  it('sample --best-of: each row is the candidate the reward model scores highest; --best-of 1 is plain sampling', () => {
    const checkpoint = path.join(runDir, 'rw-1', 'sft', 'final');
    const rewardModel = path.join(runDir, 'rw-1', 'train-reward', 'final');
    const base = { checkpoint, prompts: ['walk: c', 'walk: k'], num: 8, maxNewTokens: 20, temperature: 1, topK: 0, topP: 1, seed: 3 };
    const plain = [...sampleCheckpoint(base)];
    const one = [...sampleCheckpoint({ ...base, bestOf: { n: 1, rewardModel } })];
    expect(one.map((r) => r.completion)).toEqual(plain.map((r) => r.completion));
    const best = [...sampleCheckpoint({ ...base, bestOf: { n: 16, rewardModel } })];
    expect(best).toHaveLength(16);
    const rm = loadCheckpoint(rewardModel, { expectHead: 'score' });
    try {
      const norm = (rm.meta.extra.reward_norm as RewardNorm | undefined) ?? IDENTITY_NORM;
      const score = (rows: typeof best) =>
        Array.from(rewardScores(rm.params, rm.meta.model, { prompts: rows.map((r) => encodePrompt(rm.tokenizer, r.prompt)), responses: rows.map((r) => rm.tokenizer.encode(r.completion)) }, norm, rm.tokenizer));
      // the recorded reward is the reward model's normalised score of the kept completion
      const again = score(best);
      best.forEach((r, i) => expect(r.reward!).toBeCloseTo(again[i], 4));
      expect(mean(again)).toBeGreaterThan(mean(score(plain)));
    } finally {
      disposeParams(rm.params);
    }
  });

  it('iterated RLHF: a second round labels the PPO policy, retrains the RM on all comparisons, continues PPO', async () => {
    const loaded = loadConfig(configFile, [`run_dir=${runDir}`, 'name=rw-1', 'seed=1', 'ppo.rounds=2', 'label.num_prompts=60', 'train_reward.max_steps=20', 'ppo.iterations=3']);
    const rounds = await runRounds(loaded);
    expect(rounds.map((r) => r.round)).toEqual([1, 2]);
    expect(rounds[0].ppo).toBe('skipped'); // round 1 completed above
    const root = path.join(runDir, 'rw-1', 'round-2');
    for (const stage of ['label', 'train-reward', 'ppo']) {
      expect(JSON.parse(fs.readFileSync(path.join(root, stage, 'manifest.json'), 'utf8')).status, stage).toBe('completed');
    }
    const all = fs.readFileSync(path.join(root, 'comparisons-all.jsonl'), 'utf8').trim().split('\n');
    expect(all).toHaveLength(400 + 60);
    const ppoManifest = JSON.parse(fs.readFileSync(path.join(root, 'ppo', 'manifest.json'), 'utf8'));
    const parents = ppoManifest.parents.map((p: { path: string }) => p.path);
    expect(parents[0]).toBe(path.join(runDir, 'rw-1', 'ppo', 'final'));
    expect(readJsonl(path.join(root, 'ppo', 'metrics.jsonl'))).toHaveLength(3);
    const policies = defaultPolicies(loaded);
    expect(policies).toHaveLength(3);
    const [sft, , round2] = evaluatePolicies(loaded, policies);
    expect(round2.kl).toBeGreaterThan(sft.kl);
  }, 300_000);
});
