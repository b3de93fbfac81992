import { afterEach, describe, expect, it } from 'vitest';
import { GraphUnavailable } from '../src/graph/checked-graph.js';
import path from 'node:path';
import { loadConfig } from '../src/config/load.js';
import { readManifest } from '../src/run/stage.js';
import { runPretrain } from '../src/stages/pretrain.js';
import { runSft } from '../src/stages/sft.js';
import { padBatch } from '../src/train/lm-step-runner.js';
import { readJsonl, tinyRlhfConfig, writeConfig } from './helpers.js';
import { tf, type Tensor } from '../src/backend/tf.js';
import { buildGraphDef } from '../src/graph/graphdef.js';
import { GraphFunction } from '../src/graph/session.js';
import { readTensor, tensorId, traceOps, TraceError } from '../src/graph/trace.js';
import type { GptConfig } from '../src/model/config.js';
import { disposeParams, initParams, type Params } from '../src/model/gpt.js';
import { AdamW } from '../src/train/adamw.js';
import { GraphLmStep, stepShapeOf } from '../src/train/graph-step.js';
import { lmBatchLoss, type LmBatch } from '../src/train/lm-loss.js';
import { optimizerStep } from '../src/train/step.js';
import { Rng } from '../src/util/rng.js';

const CFG: GptConfig = { vocab_size: 11, n_layer: 2, n_head: 2, d_model: 16, context_length: 8, dropout: 0 };

/** Random micro-batches; the second carries SFT-style 0/1 loss weights. */
function batches(rng: Rng): LmBatch[] {
  const make = (B: number, T: number, weighted: boolean): LmBatch => {
    const x = Int32Array.from({ length: B * T }, () => rng.int(CFG.vocab_size));
    const y = Int32Array.from({ length: B * T }, () => rng.int(CFG.vocab_size));
    const weights = weighted ? Float32Array.from({ length: B * T }, (_, i) => (i % T >= 3 ? 1 : 0)) : undefined;
    return { x, y, weights, B, T };
  };
  return [make(3, 8, false), make(3, 8, true)];
}

function model(seed = 3): { params: Params; opt: AdamW } {
  const params = initParams(CFG, 'lm', new Rng(seed));
  return { params, opt: new AdamW(params, { weight_decay: 0.1 }) };
}

function maxAbsDiff(a: Params, b: Params): number {
  let m = 0;
  for (const [name, v] of a) m = Math.max(m, tf.tidy(() => tf.max(tf.abs(tf.sub(v, b.get(name)!))).dataSync()[0]));
  return m;
}

function bits(vars: Tensor[]): string {
  return vars.map((v) => Buffer.from(v.dataSync().buffer).toString('base64')).join('|');
}

describe('graph tracing', () => {
  it('a traced computation, written as a SavedModel and run in a session, computes what eager did at new inputs', async () => {
    const a = tf.tensor2d([[1, 2], [3, 4]]);
    const b = tf.tensor1d([0.5, -1]);
    const feeds = [{ key: 'a', id: tensorId(a) }, { key: 'b', id: tensorId(b) }];
    const f = (x: Tensor, y: Tensor) => tf.tidy(() => tf.split(tf.matMul(x, x).add(y).mul(2).expandDims(0).sum(1), [1, 1], 1)[1]);
    const { result, trace } = traceOps(() => f(a, b));
    expect(trace.ops.map((o) => o.op)).toContain('ExpandDims'); // an op whose type attrs the writer must infer
    const built = buildGraphDef(trace, feeds, [{ key: 'out', id: tensorId(result) }], readTensor);
    const fn = GraphFunction.load(built);
    const a2 = tf.tensor2d([[0, 1], [-2, 5]]);
    const b2 = tf.tensor1d([3, 7]);
    const out = fn.run({ a: a2, b: b2 });
    const want = f(a2, b2);
    expect(Array.from(out.out.dataSync())).toEqual(Array.from(want.dataSync()));
    fn.dispose();
    tf.dispose([a, b, a2, b2, result, out.out, want]);
  });

  it('refuses a host read-back inside the traced code', () => {
    const a = tf.scalar(2);
    expect(() => traceOps(() => a.mul(3).dataSync())).toThrow(TraceError);
    a.dispose();
  });
});

describe('GraphLmStep', () => {
  it('matches the eager optimizerStep (2 micro-batches, clipping active) over a 6-step loss curve, and keeps tensors flat', async () => {
    const eager = model();
    const graph = model();
    const rng = new Rng(9);
    const steps = Array.from({ length: 6 }, () => batches(rng));
    const maxNorm = 0.5; // below the initial gradient norm, so the clip factor matters
    const step = await GraphLmStep.build(graph.params, graph.opt, CFG, stepShapeOf(steps[0]), maxNorm);
    const before = tf.memory().numTensors;
    for (const [i, bs] of steps.entries()) {
      const lr = 3e-3 * (i + 1); // a changing learning rate: the AdamW scalars are graph inputs
      const e = optimizerStep(eager.params, eager.opt, bs.map((b) => () => lmBatchLoss(eager.params, CFG, b, true)), lr, maxNorm);
      const g = step.run(graph.params, graph.opt, bs, lr);
      expect(e.gradNorm).toBeGreaterThan(maxNorm);
      expect(Math.abs(g.loss - e.loss)).toBeLessThan(1e-4);
      expect(Math.abs(g.gradNorm - e.gradNorm)).toBeLessThan(1e-4);
    }
    expect(tf.memory().numTensors).toBe(before);
    expect(graph.opt.step).toBe(6);
    expect(maxAbsDiff(eager.params, graph.params)).toBeLessThan(1e-4);
    const es = eager.opt.getState();
    const gs = graph.opt.getState();
    for (const [k, v] of es.tensors) expect(tf.tidy(() => tf.max(tf.abs(tf.sub(v, gs.tensors.get(k)!))).dataSync()[0])).toBeLessThan(1e-4);
    tf.dispose([...es.tensors.values(), ...gs.tensors.values()]);
    step.dispose();
    for (const m of [eager, graph]) {
      m.opt.dispose();
      disposeParams(m.params);
    }
  });

  it('gives the same bits on a second run from the same start, and skips a step whose gradient norm is not finite', async () => {
    const rng = new Rng(4);
    const data = Array.from({ length: 3 }, () => batches(rng));
    const runs = [model(), model()];
    const step = await GraphLmStep.build(runs[0].params, runs[0].opt, CFG, stepShapeOf(data[0]), 1);
    for (const m of runs) for (const bs of data) step.run(m.params, m.opt, bs, 1e-2);
    expect(bits([...runs[0].params.values(), ...runs[0].opt.stateVariables])).toBe(bits([...runs[1].params.values(), ...runs[1].opt.stateVariables]));

    const m = runs[0];
    const ln = m.params.get('ln_f.bias')!;
    ln.assign(tf.fill(ln.shape, NaN));
    const snapshot = bits([...m.params.values(), ...m.opt.stateVariables]);
    const r = step.run(m.params, m.opt, data[0], 1e-2);
    expect(Number.isFinite(r.gradNorm)).toBe(false);
    expect(bits([...m.params.values(), ...m.opt.stateVariables])).toBe(snapshot);
    expect(m.opt.step).toBe(3);
    step.dispose();
    for (const x of runs) {
      x.opt.dispose();
      disposeParams(x.params);
    }
  });

  it('is unavailable with dropout (masks are drawn on the host each step)', async () => {
    const m = model();
    await expect(GraphLmStep.build(m.params, m.opt, { ...CFG, dropout: 0.1 }, [{ B: 2, T: 8, weights: false }], 1)).rejects.toThrow(GraphUnavailable);
    m.opt.dispose();
    disposeParams(m.params);
  });
});

describe('training stages', () => {
  afterEach(() => {
    delete process.env.RLHF_TRAIN_STEP;
  });

  it('padBatch right-pads a weighted batch with zero-weight positions and leaves unweighted ones alone', () => {
    const b: LmBatch = { x: Int32Array.of(1, 2, 3, 4), y: Int32Array.of(2, 3, 4, 5), weights: Float32Array.of(0, 1, 1, 1), B: 2, T: 2 };
    const p = padBatch(b, 3);
    expect([p.B, p.T]).toEqual([2, 3]);
    expect(Array.from(p.x)).toEqual([1, 2, 0, 3, 4, 0]);
    expect(Array.from(p.y)).toEqual([2, 3, 0, 4, 5, 0]);
    expect(Array.from(p.weights!)).toEqual([0, 1, 0, 1, 1, 0]);
    const plain = { ...b, weights: undefined };
    expect(padBatch(plain, 3)).toBe(plain);
  });

  it('pretrain and SFT (padded, 2 micro-batches) run graph steps, record it in the manifest, and follow the eager loss curve', async () => {
    const runs: Record<string, { pretrain: Record<string, number>[]; sft: Record<string, number>[] }> = {};
    for (const mode of ['eager', 'auto']) {
      process.env.RLHF_TRAIN_STEP = mode;
      const cfg = tinyRlhfConfig('graph');
      Object.assign(cfg.pretrain as object, { max_steps: 30, log_interval: 5, eval_interval: 30, checkpoint_interval: 30 });
      Object.assign(cfg.sft as object, { max_steps: 12, log_interval: 3, eval_interval: 12, checkpoint_interval: 12, grad_accum_steps: 2 });
      const loaded = loadConfig(writeConfig(cfg));
      const pre = await runPretrain(loaded);
      const sft = await runSft(loaded);
      const want = mode === 'auto' ? 'graph' : 'eager';
      for (const dir of [pre.dir, sft.dir]) expect(readManifest(dir)!.numerics!.fast_paths.train_step).toBe(want);
      runs[mode] = { pretrain: readJsonl(path.join(pre.dir, 'metrics.jsonl')), sft: readJsonl(path.join(sft.dir, 'metrics.jsonl')) };
    }
    for (const stage of ['pretrain', 'sft'] as const) {
      const [e, g] = [runs.eager[stage], runs.auto[stage]];
      expect(g.map((r) => r.step)).toEqual(e.map((r) => r.step));
      for (let i = 0; i < e.length; i++) expect(Math.abs(g[i].loss - e[i].loss)).toBeLessThan(1e-4);
    }
  });
});
