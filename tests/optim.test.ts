import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { tf } from '../src/backend/tf.js';
import { learningRate, type LrSchedule } from '../src/train/schedule.js';
import { AdamW, decayParam, type Tensor, type Variable } from '../src/train/adamw.js';
import { clipByGlobalNorm, clipScale, globalNorm } from '../src/train/clip.js';
import { GradAccumulator } from '../src/train/accumulate.js';

const values = (t: Tensor): number[] => Array.from(t.dataSync());

function expectClose(actual: number[], expected: number[], tol: number): void {
  expect(actual.length).toBe(expected.length);
  actual.forEach((a, i) => expect(Math.abs(a - expected[i]), `index ${i}: ${a} vs ${expected[i]}`).toBeLessThanOrEqual(tol));
}

let baseline = 0;
beforeEach(() => {
  baseline = tf.memory().numTensors;
});
afterEach(() => {
  // Every test disposes what it creates.
  expect(tf.memory().numTensors).toBe(baseline);
});

describe('learningRate', () => {
  const cos: LrSchedule = { lr: 1, min_lr: 0.1, warmup_steps: 10, max_steps: 110, decay: 'cosine' };

  it('warms up linearly as lr·(step+1)/(warmup+1)', () => {
    expect(learningRate(cos, 0)).toBeCloseTo(1 / 11, 15);
    expect(learningRate(cos, 4)).toBeCloseTo(5 / 11, 15);
    expect(learningRate(cos, 9)).toBeCloseTo(10 / 11, 15);
  });

  it('peaks at the end of warm-up, then follows the cosine to min_lr', () => {
    expect(learningRate(cos, 10)).toBe(1);
    // r = 25/100: 0.1 + 0.5·(1 + cos(π/4))·0.9 = 0.1 + 0.45·1.70710678118…
    expect(learningRate(cos, 35)).toBeCloseTo(0.868198051533946, 12);
    // halfway (r = 0.5): 0.1 + 0.5·0.9
    expect(learningRate(cos, 60)).toBeCloseTo(0.55, 12);
    expect(learningRate(cos, 110)).toBeCloseTo(0.1, 15);
    expect(learningRate(cos, 111)).toBe(0.1);
    expect(learningRate(cos, 10_000)).toBe(0.1);
  });

  it('linear decay and constant', () => {
    const lin: LrSchedule = { ...cos, decay: 'linear' };
    expect(learningRate(lin, 4)).toBeCloseTo(5 / 11, 15);
    expect(learningRate(lin, 10)).toBe(1);
    expect(learningRate(lin, 35)).toBeCloseTo(0.775, 12); // 0.1 + 0.75·0.9
    expect(learningRate(lin, 60)).toBeCloseTo(0.55, 12);
    expect(learningRate(lin, 110)).toBeCloseTo(0.1, 15);
    expect(learningRate(lin, 500)).toBe(0.1);
    const cst: LrSchedule = { ...cos, decay: 'constant' };
    expect(learningRate(cst, 0)).toBeCloseTo(1 / 11, 15);
    expect(learningRate(cst, 10)).toBe(1);
    expect(learningRate(cst, 500)).toBe(1);
  });

  it('no warm-up starts at lr; warm-up equal to max_steps ends at min_lr', () => {
    expect(learningRate({ ...cos, warmup_steps: 0 }, 0)).toBe(1);
    expect(learningRate({ ...cos, warmup_steps: 0, max_steps: 100 }, 50)).toBeCloseTo(0.55, 12);
    const flat: LrSchedule = { ...cos, warmup_steps: 5, max_steps: 5 };
    expect(learningRate(flat, 4)).toBeCloseTo(5 / 6, 15);
    expect(learningRate(flat, 5)).toBe(0.1);
  });

  it('rejects invalid schedules and steps', () => {
    expect(() => learningRate(cos, -1)).toThrow(RangeError);
    expect(() => learningRate(cos, 1.5)).toThrow(/step/);
    expect(() => learningRate({ ...cos, max_steps: 5 }, 0)).toThrow(/max_steps/);
    expect(() => learningRate({ ...cos, lr: Number.NaN }, 0)).toThrow(/lr/);
    expect(() => learningRate({ ...cos, warmup_steps: -1 }, 0)).toThrow(/warmup_steps/);
  });
});

describe('decayParam', () => {
  it('decays matmul weights only', () => {
    const yes = [
      'h.0.attn.c_attn.weight',
      'h.0.attn.c_proj.weight',
      'h.0.mlp.c_fc.weight',
      'h.0.mlp.c_proj.weight',
      'h.11.mlp.c_fc.weight',
      'score.weight',
      'transformer.h.3.attn.c_attn.weight',
    ];
    const no = [
      'wte.weight',
      'wpe.weight',
      'transformer.wte.weight',
      'h.0.ln_1.weight',
      'h.0.ln_1.bias',
      'h.0.ln_2.weight',
      'h.0.attn.c_attn.bias',
      'h.0.attn.c_proj.bias',
      'h.0.mlp.c_fc.bias',
      'ln_f.weight',
      'ln_f.bias',
      'score.bias',
    ];
    for (const n of yes) expect(decayParam(n), n).toBe(true);
    for (const n of no) expect(decayParam(n), n).toBe(false);
  });

  it('never decays a parameter of rank < 2 when the shape is given', () => {
    expect(decayParam('score.weight', [1, 64])).toBe(true);
    expect(decayParam('score.weight', [64])).toBe(false);
  });
});

/** PyTorch AdamW for one scalar parameter, in plain float64 JS. */
function referenceAdamW(
  p0: number,
  grads: number[],
  lrs: number[],
  o: { beta1: number; beta2: number; eps: number; weight_decay: number },
  decay: boolean,
): number[] {
  let p = p0;
  let m = 0;
  let v = 0;
  const out: number[] = [];
  grads.forEach((g, i) => {
    const t = i + 1;
    const lr = lrs[i];
    if (decay) p = p * (1 - lr * o.weight_decay);
    m = o.beta1 * m + (1 - o.beta1) * g;
    v = o.beta2 * v + (1 - o.beta2) * g * g;
    const bc1 = 1 - o.beta1 ** t;
    const bc2 = 1 - o.beta2 ** t;
    const denom = Math.sqrt(v) / Math.sqrt(bc2) + o.eps;
    p = p - (lr / bc1) * (m / denom);
    out.push(p);
  });
  return out;
}

/** A trainable variable holding a copy of `x` (the temporary tensor is disposed). */
function variableOf(x: Tensor): Variable {
  const v = tf.variable(x, true);
  x.dispose();
  return v;
}

function vars(init: Record<string, number[][] | number[]>): Map<string, Variable> {
  return new Map(Object.entries(init).map(([n, x]) => [n, variableOf(tf.tensor(x))]));
}

function disposeAll(m: Map<string, Tensor> | Record<string, Tensor>): void {
  tf.dispose(m instanceof Map ? [...m.values()] : Object.values(m));
}

describe('AdamW', () => {
  const hyper = { beta1: 0.9, beta2: 0.99, eps: 1e-3, weight_decay: 0.5 };

  it('matches PyTorch AdamW computed by hand for 3 steps, decay only where asked', () => {
    // w: 2-D matmul weight (decayed); b: bias (not decayed).
    const params = vars({ 'h.0.mlp.c_fc.weight': [[1.0, -2.0]], 'h.0.mlp.c_fc.bias': [0.5, 0.25] });
    const opt = new AdamW(params, hyper);
    expect(opt.decays('h.0.mlp.c_fc.weight')).toBe(true);
    expect(opt.decays('h.0.mlp.c_fc.bias')).toBe(false);
    const gw = [
      [0.5, 0.5, -0.25],
      [-1.0, 2.0, 0.0],
    ]; // per element, per step
    const gb = [
      [0.1, -0.3, 0.2],
      [0.0, 0.0, 0.0],
    ];
    const lrs = [0.1, 0.05, 0.2];
    for (let s = 0; s < 3; s++) {
      const grads = {
        'h.0.mlp.c_fc.weight': tf.tensor([[gw[0][s], gw[1][s]]]),
        'h.0.mlp.c_fc.bias': tf.tensor([gb[0][s], gb[1][s]]),
      };
      opt.apply(grads, lrs[s]);
      disposeAll(grads);
    }
    expect(opt.step).toBe(3);
    const w = values(params.get('h.0.mlp.c_fc.weight')!);
    const b = values(params.get('h.0.mlp.c_fc.bias')!);
    expectClose(w, [referenceAdamW(1.0, gw[0], lrs, hyper, true)[2], referenceAdamW(-2.0, gw[1], lrs, hyper, true)[2]], 1e-6);
    expectClose(b, [referenceAdamW(0.5, gb[0], lrs, hyper, false)[2], referenceAdamW(0.25, gb[1], lrs, hyper, false)[2]], 1e-6);
    // A zero gradient leaves a non-decayed parameter exactly where it was.
    expect(b[1]).toBe(0.25);
    opt.dispose();
    tf.dispose([...params.values()]);
  });

  it('first step is p·(1 − lr·λ) − lr·g/(|g| + ε) (bias correction cancels)', () => {
    // Hand arithmetic: 1·(1 − 0.1·0.5) − 0.1·0.5/(0.5 + 0.001) = 0.95 − 0.0998003992…
    const params = vars({ 'h.0.attn.c_proj.weight': [[1.0]], 'ln_f.bias': [1.0] });
    const opt = new AdamW(params, hyper);
    const grads = new Map<string, Tensor>([
      ['h.0.attn.c_proj.weight', tf.tensor([[0.5]])],
      ['ln_f.bias', tf.tensor([-2.0])],
    ]);
    opt.apply(grads, 0.1);
    expectClose(values(params.get('h.0.attn.c_proj.weight')!), [0.8501996008], 1e-6);
    // 1 + 0.1·2/(2 + 0.001) = 1.0999500250
    expectClose(values(params.get('ln_f.bias')!), [1.099950025], 1e-6);
    disposeAll(grads);
    opt.dispose();
    tf.dispose([...params.values()]);
  });

  it('gradScale multiplies the gradients', () => {
    const a = vars({ 'h.0.mlp.c_fc.weight': [[1.0, -1.0]] });
    const b = vars({ 'h.0.mlp.c_fc.weight': [[1.0, -1.0]] });
    const oa = new AdamW(a, hyper);
    const ob = new AdamW(b, hyper);
    const g = { 'h.0.mlp.c_fc.weight': tf.tensor([[0.4, 0.1]]) };
    const g2 = { 'h.0.mlp.c_fc.weight': tf.tensor([[0.1, 0.025]]) };
    for (let i = 0; i < 3; i++) {
      oa.apply(g, 0.1, 0.25);
      ob.apply(g2, 0.1);
    }
    expect(values(a.get('h.0.mlp.c_fc.weight')!)).toEqual(values(b.get('h.0.mlp.c_fc.weight')!));
    disposeAll(g);
    disposeAll(g2);
    oa.dispose();
    ob.dispose();
    tf.dispose([...a.values(), ...b.values()]);
  });

  it('updating parameters together equals updating them one by one', () => {
    // Same-shaped small parameters are updated as one concatenated tensor.
    const names = ['h.0.ln_1.weight', 'h.0.ln_1.bias', 'h.0.attn.c_attn.bias', 'h.0.mlp.c_fc.weight', 'h.0.mlp.c_proj.weight'];
    const shapes = [[8], [8], [24], [8, 32], [32, 8]];
    const init = names.map((_, i) => tf.randomNormal(shapes[i], 0, 1, 'float32', 1 + i));
    const together = new Map(names.map((n, i) => [n, tf.variable(init[i], true)]));
    const apart = names.map((n, i) => new Map([[n, tf.variable(init[i], true)]]));
    const optT = new AdamW(together, hyper);
    const optA = apart.map((p) => new AdamW(p, hyper));
    for (let s = 0; s < 3; s++) {
      const grads = Object.fromEntries(names.map((n, i) => [n, tf.randomNormal(shapes[i], 0, 1, 'float32', 1 + 100 * s + i)]));
      optT.apply(grads, 0.01);
      optA.forEach((o, i) => o.apply({ [names[i]]: grads[names[i]] }, 0.01));
      disposeAll(grads);
    }
    names.forEach((n, i) => expect(values(together.get(n)!), n).toEqual(values(apart[i].get(n)!)));
    optT.dispose();
    optA.forEach((o) => o.dispose());
    tf.dispose([...init, ...together.values(), ...apart.flatMap((m) => [...m.values()])]);
  });

  it('keeps the tensor count flat across 20 applies', () => {
    const params = vars({ 'h.0.mlp.c_fc.weight': [[1, 2], [3, 4]], 'h.0.mlp.c_fc.bias': [1, 2], 'h.0.ln_1.bias': [3, 4] });
    const opt = new AdamW(params, hyper);
    const grads = {
      'h.0.mlp.c_fc.weight': tf.ones([2, 2]),
      'h.0.mlp.c_fc.bias': tf.ones([2]),
      'h.0.ln_1.bias': tf.ones([2]),
    };
    opt.apply(grads, 0.1);
    const before = tf.memory().numTensors;
    for (let i = 0; i < 20; i++) opt.apply(grads, 0.1, i % 2 ? 0.5 : 1);
    expect(tf.memory().numTensors).toBe(before);
    disposeAll(grads);
    opt.dispose();
    tf.dispose([...params.values()]);
  });

  it('getState/setState continues bit-exactly', () => {
    const shapes: Record<string, number[]> = {
      'wte.weight': [16, 8],
      'h.0.ln_1.weight': [8],
      'h.0.ln_1.bias': [8],
      'h.0.attn.c_attn.weight': [8, 24],
      'h.0.attn.c_attn.bias': [24],
      'h.0.mlp.c_fc.weight': [300, 256], // large enough to be updated on its own
    };
    const names = Object.keys(shapes);
    const init = names.map((n, i) => tf.randomNormal(shapes[n], 0, 1, 'float32', 7 + i));
    const gradsAt = (s: number) =>
      Object.fromEntries(names.map((n, i) => [n, tf.randomNormal(shapes[n], 0, 1, 'float32', 1 + 1000 * s + i)]));
    const lrs = [0.01, 0.02, 0.03, 0.02, 0.01, 0.005];

    // Uninterrupted run.
    const full = new Map(names.map((n, i) => [n, tf.variable(init[i], true)]));
    const optFull = new AdamW(full, { weight_decay: 0.1 });
    lrs.forEach((lr, s) => {
      const g = gradsAt(s);
      optFull.apply(g, lr);
      disposeAll(g);
    });

    // Interrupted after 3 steps; resumed into a fresh optimizer over fresh variables.
    const first = new Map(names.map((n, i) => [n, tf.variable(init[i], true)]));
    const optFirst = new AdamW(first, { weight_decay: 0.1 });
    lrs.slice(0, 3).forEach((lr, s) => {
      const g = gradsAt(s);
      optFirst.apply(g, lr);
      disposeAll(g);
    });
    const saved = optFirst.getState();
    expect(saved.step).toBe(3);
    expect([...saved.tensors.keys()].sort()).toEqual(names.flatMap((n) => [`m/${n}`, `v/${n}`]).sort());
    for (const n of names) expect(saved.tensors.get(`m/${n}`)!.shape).toEqual(shapes[n]);
    // Simulate a save/load round trip through plain arrays.
    const loaded = {
      step: saved.step,
      tensors: new Map([...saved.tensors].map(([k, t]) => [k, tf.tensor(t.dataSync(), t.shape, 'float32')])),
    };
    const resumed = new Map(names.map((n) => [n, variableOf(tf.tensor(first.get(n)!.dataSync(), shapes[n]))]));
    optFirst.dispose();
    const optResumed = new AdamW(resumed, { weight_decay: 0.1 });
    optResumed.setState(loaded);
    disposeAll(saved.tensors);
    disposeAll(loaded.tensors); // setState copies
    expect(optResumed.step).toBe(3);
    lrs.slice(3).forEach((lr, i) => {
      const g = gradsAt(3 + i);
      optResumed.apply(g, lr);
      disposeAll(g);
    });

    for (const n of names) expect(values(resumed.get(n)!), n).toEqual(values(full.get(n)!));
    const a = optFull.getState();
    const b = optResumed.getState();
    expect(b.step).toBe(a.step);
    for (const [k, t] of a.tensors) expect(values(b.tensors.get(k)!), k).toEqual(values(t));
    disposeAll(a.tensors);
    disposeAll(b.tensors);
    optFull.dispose();
    optResumed.dispose();
    tf.dispose([...init, ...full.values(), ...first.values(), ...resumed.values()]);
  });

  it('rejects missing, unknown and mis-shaped gradients before changing anything', () => {
    const params = vars({ 'h.0.mlp.c_fc.weight': [[1, 2]], 'h.0.mlp.c_fc.bias': [1] });
    const opt = new AdamW(params);
    const ok = { 'h.0.mlp.c_fc.weight': tf.ones([1, 2]), 'h.0.mlp.c_fc.bias': tf.ones([1]) };
    expect(() => opt.apply({ 'h.0.mlp.c_fc.weight': ok['h.0.mlp.c_fc.weight'] }, 0.1)).toThrow(/no gradient.*c_fc.bias/);
    expect(() => opt.apply({ ...ok, 'wte.weight': ok['h.0.mlp.c_fc.bias'] }, 0.1)).toThrow(/unknown parameter "wte.weight"/);
    expect(() => opt.apply({ ...ok, 'h.0.mlp.c_fc.bias': ok['h.0.mlp.c_fc.weight'] }, 0.1)).toThrow(/shape/);
    expect(() => opt.apply(ok, Number.NaN)).toThrow(/lr/);
    expect(opt.step).toBe(0);
    expect(values(params.get('h.0.mlp.c_fc.weight')!)).toEqual([1, 2]);
    expect(() => new AdamW(params, { beta2: 1 })).toThrow(/beta2/);
    const w = params.get('h.0.mlp.c_fc.weight')!;
    expect(() => new AdamW(new Map([['wte.weight', w], ['lm_head.weight', w]]))).toThrow(/same variable/);
    disposeAll(ok);
    opt.dispose();
    expect(() => opt.apply(ok, 0.1)).toThrow(/dispose/);
    tf.dispose([...params.values()]);
  });
});

describe('clipping', () => {
  const make = () => ({ a: tf.tensor([3]), b: tf.tensor([[4]]), c: tf.tensor([0, 12]) });

  it('globalNorm of 3-4-12 is 13', () => {
    const g = make();
    const n = globalNorm(g);
    expect(n.rank).toBe(0);
    expect(n.dataSync()[0]).toBeCloseTo(13, 5);
    n.dispose();
    disposeAll(g);
  });

  it('scales to maxNorm when above it and returns the pre-clip norm', () => {
    const g = make();
    const { grads, norm } = clipByGlobalNorm(g, 6.5);
    expect(norm).toBeCloseTo(13, 5);
    const s = 6.5 / (13 + 1e-6);
    expectClose(values(grads.a), [3 * s], 1e-6);
    expectClose(values(grads.b), [4 * s], 1e-6);
    expectClose(values(grads.c), [0, 12 * s], 1e-6);
    const after = globalNorm(grads);
    expect(Math.abs(after.dataSync()[0] - 6.5)).toBeLessThan(1e-5);
    expect(values(g.c)).toEqual([0, 12]); // inputs untouched
    tf.dispose([after, ...Object.values(grads)]);
    disposeAll(g);
  });

  it('leaves gradients unchanged below maxNorm (as new tensors)', () => {
    const g = new Map(Object.entries(make()));
    const { grads, norm } = clipByGlobalNorm(g, 20);
    expect(norm).toBeCloseTo(13, 5);
    expect(values(grads.a)).toEqual([3]);
    expect(values(grads.b)).toEqual([4]);
    expect(values(grads.c)).toEqual([0, 12]);
    expect(grads.a).not.toBe(g.get('a'));
    disposeAll(grads);
    disposeAll(g);
  });

  it('clipScale follows PyTorch', () => {
    expect(clipScale(13, 20)).toBe(1);
    expect(clipScale(13, 6.5)).toBe(6.5 / (13 + 1e-6));
    expect(clipScale(0, 1)).toBe(1);
    expect(() => clipScale(1, 0)).toThrow(/maxNorm/);
  });
});

describe('GradAccumulator', () => {
  it('mean equals the average of the micro-batch gradients', () => {
    const acc = new GradAccumulator();
    const batches = [
      { w: tf.tensor([[1, 2]]), b: tf.tensor([0.5]) },
      { w: tf.tensor([[3, -2]]), b: tf.tensor([1.5]) },
      { w: tf.tensor([[5, 6]]), b: tf.tensor([-1]) },
      { w: tf.tensor([[-1, 2]]), b: tf.tensor([3]) },
    ];
    for (const g of batches) {
      acc.add(g);
      disposeAll(g); // the accumulator does not depend on the caller's tensors
    }
    expect(acc.count).toBe(4);
    const mean = acc.mean();
    expect(values(mean.w)).toEqual([2, 2]);
    expect(values(mean.b)).toEqual([1]);
    const sum = acc.sum();
    expect(values(sum.w)).toEqual([8, 8]);
    disposeAll(mean);
    disposeAll(sum);
    const bad = { w: tf.zeros([2, 1]), b: tf.zeros([1]) };
    expect(() => acc.add(bad)).toThrow(/"w" is float32\[2,1\], expected float32\[1,2\]/);
    disposeAll(bad);
    acc.reset();
    expect(acc.count).toBe(0);
    expect(() => acc.mean()).toThrow(/nothing added/);
    acc.dispose();
  });

  it('mean of one micro-batch is the batch itself; no leaks over many adds', () => {
    const acc = new GradAccumulator();
    const g = { w: tf.tensor([1, 2, 3]) };
    acc.add(g);
    const one = acc.mean();
    expect(values(one.w)).toEqual([1, 2, 3]);
    disposeAll(one);
    acc.add(g);
    const before = tf.memory().numTensors;
    for (let i = 0; i < 20; i++) acc.add(g);
    expect(tf.memory().numTensors).toBe(before);
    const mean = acc.mean();
    expectClose(values(mean.w), [1, 2, 3], 1e-6);
    disposeAll(mean);
    acc.dispose();
    disposeAll(g);
  });
});
