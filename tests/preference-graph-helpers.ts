import { expect } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { tf, type Scalar, type Tensor } from '../src/backend/tf.js';
import { loadConfig, type LoadedConfig } from '../src/config/load.js';
import { disposeParams, type Params } from '../src/model/gpt.js';
import { readManifest } from '../src/run/stage.js';
import type { StageResult } from '../src/stages/supervised.js';
import { AdamW } from '../src/train/adamw.js';
import { StepRunner } from '../src/train/step-runner.js';
import { eagerStep, upload, type MicroInputs, type MicroLoss } from '../src/train/traced-step.js';
import { Rng } from '../src/util/rng.js';
import { randomLmCheckpoint, readJsonl, withoutWallClock, writeConfig } from './helpers.js';

/** Shared checks of the reward-model and DPO steps as traced graphs (tests/reward-graph-step.test.ts, tests/dpo-graph-step.test.ts). */

export const TOL = 1e-4;
const OPTIONS = { beta1: 0.9, beta2: 0.95, eps: 1e-8, weight_decay: 0.1 };
const CLIP = 1;
const LR = 3e-3;

/** One step's micro-batches, as drawn (eager) and padded to the stage's shape (graph). */
export interface DrawnStep {
  exact: MicroInputs[];
  padded: MicroInputs[];
}

function maxDiff(a: readonly Tensor[], b: readonly Tensor[]): number {
  return Math.max(...a.map((x, i) => tf.tidy(() => tf.max(tf.abs(tf.sub(x, b[i]))).dataSync()[0])));
}

const stateOf = (p: Params, o: AdamW): Tensor[] => [...p.values(), ...o.stateVariables];

/**
 * Runs `steps` through a graph StepRunner on the padded inputs and through the eager
 * step on the unpadded ones, from the same parameters: loss, gradient norm and statistics
 * of every step, and parameters and moments at the end, agree to < TOL; the graph is
 * built once and no step after the first leaves a tensor behind.
 */
export async function expectGraphMatchesEager(params: () => Params, loss: MicroLoss, steps: readonly DrawnStep[]): Promise<void> {
  const [pe, pg] = [params(), params()];
  const [oe, og] = [new AdamW(pe, OPTIONS), new AdamW(pg, OPTIONS)];
  const runner = new StepRunner(pg, og, CLIP, loss, { graph: true });
  for (const [i, s] of steps.entries()) {
    const e = eagerStep(pe, oe, CLIP, loss, s.exact, LR);
    const before = tf.memory().numTensors;
    const g = await runner.step(s.padded, LR);
    if (i > 0) expect(tf.memory().numTensors, `tensors after step ${i}`).toBe(before);
    expect(Math.abs(g.loss - e.loss), 'loss').toBeLessThan(TOL);
    expect(Math.abs(g.gradNorm - e.gradNorm), 'grad norm').toBeLessThan(TOL);
    expect(g.stats.length).toBe(e.stats.length);
    g.stats.forEach((x, k) => expect(maxDiff([tf.tensor(x)], [tf.tensor(e.stats[k])]), 'stats').toBeLessThan(TOL));
  }
  expect(runner.path).toBe('graph');
  expect(runner.fallbackReason).toBeUndefined();
  expect(og.step).toBe(steps.length);
  expect(maxDiff(stateOf(pg, og), stateOf(pe, oe))).toBeLessThan(TOL);
  runner.dispose();
  [oe, og].forEach((o) => o.dispose());
  [pe, pg].forEach(disposeParams);
}

/**
 * The loss and every parameter's gradient, summed over the micro-batches, on the unpadded
 * and on the padded inputs, at the same parameters: they agree to float rounding (1e-6
 * relative to the largest loss or gradient entry, at least 1e-6 absolute). (Parameters
 * after an AdamW step are not compared: its first step turns a gradient that is zero in exact
 * arithmetic into a step of noise-given size.)
 */
export function expectPaddingChangesNothing(params: () => Params, loss: MicroLoss, step: DrawnStep): void {
  const p = params();
  const vars = [...p.values()];
  const gradsOf = (micro: readonly MicroInputs[]) =>
    tf.variableGrads(() => tf.addN(micro.map((m) => tf.tidy(() => loss(p, upload(m)).loss))) as Scalar, vars);
  const e = gradsOf(step.exact);
  const q = gradsOf(step.padded);
  const [le, lq] = [e.value.dataSync()[0], q.value.dataSync()[0]];
  expect(Math.abs(lq - le), 'loss').toBeLessThan(1e-6 * Math.max(1, Math.abs(le)));
  const names = Object.keys(e.grads);
  expect(Object.keys(q.grads).sort()).toEqual(names.sort());
  const largest = Math.max(1, ...names.map((n) => tf.tidy(() => e.grads[n].abs().max().dataSync()[0])));
  expect(maxDiff(names.map((n) => q.grads[n]), names.map((n) => e.grads[n])), 'gradients').toBeLessThan(1e-6 * largest);
  tf.dispose([e.value, q.value, ...Object.values(e.grads), ...Object.values(q.grads)]);
  disposeParams(p);
}

/** K random responses over `alphabet` per prompt, ranked at random, some with a tie: a comparisons.jsonl for a stage that reads one. */
function writeComparisons(dir: string, n: number, k: number, alphabet: string, seed: number): string {
  const rng = new Rng(seed);
  const text = (len: number) => Array.from({ length: len }, () => alphabet[rng.int(alphabet.length)]).join('');
  const lines = Array.from({ length: n }, (_, i) => {
    const ranking = Array.from({ length: k }, (_, j) => j);
    for (let j = k - 1; j > 0; j--) {
      const r = rng.int(j + 1);
      [ranking[j], ranking[r]] = [ranking[r], ranking[j]];
    }
    const responses = Array.from({ length: k }, () => text(2 + rng.int(9)));
    return JSON.stringify({ prompt: text(1 + rng.int(6)), responses, ranking, labeler: 'human', ...(i % 3 === 0 ? { ties: [[ranking[1], ranking[2]]] } : {}) });
  });
  const file = path.join(dir, 'comparisons.jsonl');
  fs.writeFileSync(file, lines.join('\n') + '\n');
  return file;
}

/**
 * A tiny experiment whose `section` (train_reward or dpo) starts from a random
 * language model and trains on random comparisons: 6 steps of 2 micro-batches of 3.
 */
export async function tinyPreferenceConfig(section: 'train_reward' | 'dpo', extra: Record<string, unknown> = {}): Promise<LoadedConfig> {
  const shape = { n_layer: 1, d_model: 16, context_length: 24 };
  const sft = await randomLmCheckpoint(shape, 5);
  const data = writeComparisons(fs.mkdtempSync(path.join(os.tmpdir(), 'rlhf-cmp-')), 24, 3, 'the quick brown fox', 6);
  const settings = { init_from: sft, data: { path: data }, batch_size: 3, grad_accum_steps: 2, max_steps: 6, lr: 3e-3, log_interval: 2, eval_interval: 3, checkpoint_interval: 3, ...extra };
  return loadConfig(writeConfig({ name: section, seed: 7, tokenizer: { type: 'char' }, model: { ...shape, n_head: 2, dropout: 0 }, [section]: settings }));
}

/**
 * Runs a stage twice with graph steps and once with RLHF_TRAIN_STEP=eager: the manifests
 * record each path, the two graph runs log identical metrics and weights, and the eager
 * run's metrics agree with them to < TOL.
 */
export async function expectStageRunsAsGraph(run: () => Promise<StageResult>): Promise<void> {
  const rows: Record<string, number>[][] = [];
  const weights: Buffer[] = [];
  try {
    for (const mode of ['auto', 'auto', 'eager']) {
      process.env.RLHF_TRAIN_STEP = mode;
      const r = await run();
      expect(readManifest(r.dir)!.numerics!.fast_paths.train_step).toBe(mode === 'auto' ? 'graph' : 'eager');
      rows.push(withoutWallClock(readJsonl(path.join(r.dir, 'metrics.jsonl'))));
      weights.push(fs.readFileSync(path.join(r.finalPath, 'model.weights.bin')));
    }
  } finally {
    delete process.env.RLHF_TRAIN_STEP;
  }
  expect(rows[1]).toEqual(rows[0]);
  expect(weights[1].equals(weights[0])).toBe(true);
  expect(rows[2].length).toBe(rows[0].length);
  rows[2].forEach((e, i) => {
    expect(Object.keys(rows[0][i]).sort()).toEqual(Object.keys(e).sort());
    for (const [k, v] of Object.entries(e)) expect(Math.abs(rows[0][i][k] - v), `${k} at row ${i}`).toBeLessThan(TOL);
  });
}
