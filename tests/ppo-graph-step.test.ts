import { afterEach, describe, expect, it } from 'vitest';
import path from 'node:path';
import { tf, type Tensor } from '../src/backend/tf.js';
import { loadConfig } from '../src/config/load.js';
import { ppoDefaults, type PpoConfig } from '../src/config/schema.js';
import { groupIteration } from '../src/grouprl/trainer.js';
import type { GptConfig } from '../src/model/config.js';
import { disposeParams, initParams, type Params } from '../src/model/gpt.js';
import { fixedKlController } from '../src/ppo/kl-controller.js';
import { ppoIteration, type IterationInput, type PpoModels } from '../src/ppo/trainer.js';
import { addScalarHead, IDENTITY_NORM } from '../src/reward/score.js';
import { readManifest } from '../src/run/stage.js';
import { runLabel } from '../src/stages/label.js';
import { runPpo } from '../src/stages/ppo.js';
import { runPretrain } from '../src/stages/pretrain.js';
import { runSft } from '../src/stages/sft.js';
import { runTrainReward } from '../src/stages/train-reward.js';
import { trainTokenizer } from '../src/tokenizer/index.js';
import { AdamW } from '../src/train/adamw.js';
import { StepRunners } from '../src/train/step-runner.js';
import { Rng } from '../src/util/rng.js';
import { readJsonl, tinyRlhfConfig, writeConfig } from './helpers.js';

/**
 * The PPO and group-RL updates as traced graph steps against the eager reference:
 * same models, prompts and seed, two iterations each (the first builds the graphs);
 * every metric, parameter and optimizer moment must agree to < 1e-4.
 */

const tokenizer = trainTokenizer({ type: 'char' }, 'abcdefgh ');
const CFG: GptConfig = { vocab_size: tokenizer.vocabSize, n_layer: 2, n_head: 2, d_model: 16, context_length: 24, dropout: 0 };
const TOL = 1e-4;

type Kind = 'separate' | 'shared' | 'grpo';

function settings(kind: Kind, extra: Partial<PpoConfig> = {}): PpoConfig {
  return {
    ...ppoDefaults({ task: 'randomwalks' }),
    rollout_batch_size: 8,
    mini_batch_size: 4,
    grad_accum_steps: 2,
    ppo_epochs: 2,
    response_length: 6,
    lr: 3e-3,
    value_lr: 1e-3,
    ent_coef: kind === 'separate' ? 0.01 : 0,
    value_model: kind === 'shared' ? 'policy_head' : 'reward',
    ...extra,
  };
}

function models(kind: Kind, s: PpoConfig, graph: boolean): PpoModels {
  const rng = new Rng(7);
  let policy = initParams(CFG, 'lm', rng);
  if (kind === 'shared') policy = addScalarHead(policy, CFG, rng);
  const reward = initParams(CFG, 'score', rng);
  const value = kind === 'separate' ? initParams(CFG, 'score', new Rng(8)) : policy;
  const adam = (p: Params) => new AdamW(p, { beta1: s.beta1, beta2: s.beta2, eps: s.eps, weight_decay: s.weight_decay });
  return {
    cfg: CFG,
    valueCfg: CFG,
    rewardCfg: CFG,
    tokenizer,
    policy,
    reference: initParams(CFG, 'lm', new Rng(7)),
    value,
    reward,
    rewardNorm: IDENTITY_NORM,
    policyOptimizer: adam(policy),
    valueOptimizer: kind === 'separate' ? adam(value) : undefined,
    steps: new StepRunners(graph),
  };
}

function input(extra: Partial<IterationInput> = {}): IterationInput {
  // prompts of different lengths, so the traced update's padding to promptWidth matters
  const texts = ['ab', 'cde', 'f', 'gha', 'bb', 'cafe', 'd', 'eh'];
  const prompts = texts.map((t) => tokenizer.encode(t));
  return { prompts, promptTexts: texts, stopIds: [tokenizer.eosId], promptWidth: 4, ...extra };
}

async function iterate(kind: Kind, m: PpoModels, s: PpoConfig, rng: Rng, inp = input()): Promise<Record<string, number>> {
  const kl = fixedKlController(0.1);
  return kind === 'grpo' ? groupIteration(m, s, 'grpo', 2, kl, inp, rng) : ppoIteration(m, s, kl, inp, rng);
}

function untimed(metrics: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(metrics).filter(([k]) => !k.startsWith('time/')));
}

function maxDiff(a: readonly Tensor[], b: readonly Tensor[]): number {
  return Math.max(...a.map((x, i) => tf.tidy(() => tf.max(tf.abs(tf.sub(x, b[i]))).dataSync()[0])));
}

function state(m: PpoModels): Tensor[] {
  return [...m.policy.values(), ...m.policyOptimizer.stateVariables, ...(m.valueOptimizer ? [...m.value.values(), ...m.valueOptimizer.stateVariables] : [])];
}

function dispose(m: PpoModels): void {
  m.steps?.dispose();
  m.policyOptimizer.dispose();
  m.valueOptimizer?.dispose();
  for (const p of new Set([m.policy, m.value, m.reference, m.reward])) disposeParams(p);
}

describe('PPO-family update as a traced graph step', () => {
  for (const kind of ['separate', 'shared', 'grpo'] as const) {
    it(`${kind}: matches the eager update over two iterations (metrics, parameters, moments < 1e-4) with flat tensors`, async () => {
      const s = settings(kind);
      const eager = models(kind, s, false);
      const graph = models(kind, s, true);
      const [re, rg] = [new Rng(11), new Rng(11)];
      for (let it = 0; it < 2; it++) {
        const e = untimed(await iterate(kind, eager, s, re));
        const before = tf.memory().numTensors;
        const g = untimed(await iterate(kind, graph, s, rg));
        // graphs are built in the first iteration; later iterations leave no tensor behind
        if (it > 0) expect(tf.memory().numTensors).toBe(before);
        expect(Object.keys(g).sort()).toEqual(Object.keys(e).sort());
        for (const k of Object.keys(e)) expect(Math.abs(g[k] - e[k]), k).toBeLessThan(TOL);
      }
      expect(graph.steps!.path).toBe('graph');
      expect(eager.steps!.path).toBe('eager');
      expect(graph.policyOptimizer.step).toBe(eager.policyOptimizer.step);
      expect(maxDiff(state(graph), state(eager))).toBeLessThan(TOL);
      dispose(eager);
      dispose(graph);
    });
  }

  it('PPO-ptx runs its steps eagerly and says why; the value model still gets its graph', async () => {
    const s = settings('separate', { ptx_coef: 0.5, ptx_batch_size: 2 });
    const m = models('separate', s, true);
    const rng = new Rng(3);
    const ptxBatch = () => ({ x: Int32Array.from({ length: 2 * 8 }, () => rng.int(CFG.vocab_size)), y: Int32Array.from({ length: 2 * 8 }, () => rng.int(CFG.vocab_size)), B: 2, T: 8 });
    await iterate('separate', m, s, rng, input({ ptxBatch }));
    expect(m.steps!.path).toBe('mixed');
    expect(m.steps!.unreportedFallback()).toMatch(/PPO-ptx/);
    expect(m.steps!.unreportedFallback()).toBeUndefined();
    dispose(m);
  });
});

describe('PPO stage', () => {
  afterEach(() => {
    delete process.env.RLHF_TRAIN_STEP;
  });

  it('runs its update as graph steps, records it in the manifest, and follows the eager run (RLHF_TRAIN_STEP=eager)', async () => {
    const loaded = loadConfig(writeConfig(tinyRlhfConfig('ppo-graph')));
    process.env.RLHF_TRAIN_STEP = 'eager'; // the earlier stages' own steps are not what this test is about
    await runPretrain(loaded);
    await runSft(loaded);
    const label = await runLabel(loaded);
    // generation decodes through the graph in every stage that samples (RLHF_DECODE is unset)
    expect(readManifest(label.dir)!.numerics!.fast_paths.decode).toBe('graph');
    await runTrainReward(loaded);
    const runs: Record<string, Record<string, number>[]> = {};
    for (const mode of ['eager', 'auto']) {
      process.env.RLHF_TRAIN_STEP = mode;
      const r = await runPpo(loaded, { force: true });
      expect(readManifest(r.dir)!.numerics!.fast_paths.train_step).toBe(mode === 'auto' ? 'graph' : 'eager');
      expect(readManifest(r.dir)!.numerics!.fast_paths.decode).toBe('graph');
      runs[mode] = readJsonl(path.join(r.dir, 'metrics.jsonl'));
    }
    expect(runs.auto.length).toBe(runs.eager.length);
    runs.eager.forEach((e, i) => {
      for (const [k, v] of Object.entries(e)) if (!k.startsWith('time/')) expect(Math.abs(runs.auto[i][k] - v), k).toBeLessThan(TOL);
    });
  });
});
