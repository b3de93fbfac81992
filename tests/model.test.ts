import { describe, it, expect, afterAll } from 'vitest';
import { tf } from '../src/backend/tf.js';
import { forward, initParams, lmLogits, disposeParams, disposeCache, scalarHead } from '../src/model/gpt.js';
import { positionIdsFromMask } from '../src/model/masks.js';
import { countParams, GptConfig } from '../src/model/config.js';
import { Rng } from '../src/util/rng.js';

const cfg: GptConfig = { vocab_size: 37, n_layer: 2, n_head: 4, d_model: 32, context_length: 24, dropout: 0 };
const params = initParams(cfg, 'lm', new Rng(1));
afterAll(() => disposeParams(params));

function logitsOf(ids: number[][], opts: Parameters<typeof forward>[3] = {}): Float32Array {
  return tf.tidy(() => {
    const input = tf.tensor2d(ids, undefined, 'int32');
    return lmLogits(params, forward(params, cfg, input, opts).hidden);
  }).dataSync() as Float32Array;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

describe('GPT decoder', () => {
  it('runs on the native TensorFlow backend', () => {
    expect(tf.getBackend()).toBe('tensorflow');
  });

  it('has GPT-2 parameter names, shapes and count', () => {
    expect(params.get('h.1.attn.c_attn.weight')!.shape).toEqual([32, 96]);
    expect(params.get('h.0.mlp.c_proj.weight')!.shape).toEqual([128, 32]);
    expect(params.get('wpe.weight')!.shape).toEqual([24, 32]);
    let total = 0;
    for (const v of params.values()) total += v.size;
    expect(total).toBe(countParams(cfg));
  });

  it('initialises residual projections with std 0.02/sqrt(2·n_layer)', () => {
    const big = initParams({ ...cfg, d_model: 128, n_head: 4 }, 'lm', new Rng(3));
    const std = (name: string) => tf.tidy(() => tf.moments(big.get(name)!).variance.sqrt().dataSync()[0]);
    expect(std('h.0.mlp.c_fc.weight')).toBeCloseTo(0.02, 3);
    expect(std('h.0.mlp.c_proj.weight')).toBeCloseTo(0.02 / 2, 3);
    expect(std('h.1.attn.c_proj.weight')).toBeCloseTo(0.01, 3);
    disposeParams(big);
  });

  it('is causal: changing tokens after t never changes logits at positions <= t', () => {
    const rng = new Rng(5);
    const base = Array.from({ length: 16 }, () => rng.int(cfg.vocab_size));
    const ref = logitsOf([base]);
    for (const t of [0, 5, 14]) {
      const changed = base.map((tok, i) => (i > t ? (tok + 1 + i) % cfg.vocab_size : tok));
      const out = logitsOf([changed]);
      const upto = (t + 1) * cfg.vocab_size;
      expect(maxAbsDiff(ref.subarray(0, upto), out.subarray(0, upto))).toBe(0);
      expect(maxAbsDiff(ref.subarray(upto), out.subarray(upto))).toBeGreaterThan(1e-4);
    }
  });

  it('KV-cache decoding equals a full forward pass', () => {
    const ids = [[3, 7, 1, 9, 12, 4, 30, 2, 8, 5]];
    const full = logitsOf(ids);
    const V = cfg.vocab_size;
    const stepLogits: number[] = [];
    let cache: ReturnType<typeof forward>['cache'];
    // prompt of 4 tokens, then one token at a time
    const first = tf.tidy(() => {
      const r = forward(params, cfg, tf.tensor2d([ids[0].slice(0, 4)], undefined, 'int32'), { useCache: true });
      cache = { keys: r.cache!.keys.map((k) => tf.keep(k)), values: r.cache!.values.map((v) => tf.keep(v)) };
      return lmLogits(params, r.hidden);
    });
    stepLogits.push(...first.dataSync());
    first.dispose();
    for (let t = 4; t < ids[0].length; t++) {
      const prev = cache!;
      const out = tf.tidy(() => {
        const r = forward(params, cfg, tf.tensor2d([[ids[0][t]]], undefined, 'int32'), { cache: prev, useCache: true });
        cache = { keys: r.cache!.keys.map((k) => tf.keep(k)), values: r.cache!.values.map((v) => tf.keep(v)) };
        return lmLogits(params, r.hidden);
      });
      disposeCache(prev);
      stepLogits.push(...out.dataSync());
      out.dispose();
    }
    disposeCache(cache);
    expect(stepLogits.length).toBe(ids[0].length * V);
    expect(maxAbsDiff(full, stepLogits)).toBeLessThan(1e-4);
  });

  it('left-padded batches match unpadded rows, with and without the KV cache', () => {
    const a = [4, 8, 15, 16, 23, 2];
    const b = [11, 3];
    const pad = 0;
    const T = a.length;
    const rows = [a, [...Array(T - b.length).fill(pad), ...b]];
    const maskArr = rows.map((r, i) => r.map((_, j) => (i === 1 && j < T - b.length ? 0 : 1)));
    const pos = positionIdsFromMask(maskArr.flat(), 2, T);
    const V = cfg.vocab_size;
    const padded = tf.tidy(() => {
      const mask = tf.tensor2d(maskArr, undefined, 'float32');
      const positionIds = tf.tensor2d(pos, [2, T], 'int32');
      return lmLogits(params, forward(params, cfg, tf.tensor2d(rows, undefined, 'int32'), { attentionMask: mask, positionIds }).hidden);
    }).dataSync();
    const alone = logitsOf([b]);
    const paddedRowB = padded.subarray(T * V + (T - b.length) * V);
    expect(maxAbsDiff(alone, paddedRowB)).toBeLessThan(1e-4);
    expect(maxAbsDiff(logitsOf([a]), padded.subarray(0, T * V))).toBeLessThan(1e-4);

    // Cached: whole padded prompt minus last token, then the last token with an extended mask.
    const cachedLast = tf.tidy(() => {
      const mask = tf.tensor2d(maskArr, undefined, 'float32');
      const prefix = forward(params, cfg, tf.tensor2d(rows.map((r) => r.slice(0, T - 1)), undefined, 'int32'), {
        attentionMask: mask.slice([0, 0], [2, T - 1]) as tf.Tensor2D,
        positionIds: tf.tensor2d(pos, [2, T], 'int32').slice([0, 0], [2, T - 1]) as tf.Tensor2D,
        useCache: true,
      });
      const step = forward(params, cfg, tf.tensor2d(rows.map((r) => [r[T - 1]]), undefined, 'int32'), {
        attentionMask: mask,
        positionIds: tf.tensor2d(pos, [2, T], 'int32').slice([0, T - 1], [2, 1]) as tf.Tensor2D,
        cache: prefix.cache,
      });
      return lmLogits(params, step.hidden);
    }).dataSync();
    expect(maxAbsDiff(cachedLast.subarray(V), alone.subarray((b.length - 1) * V))).toBeLessThan(1e-4);
    expect(maxAbsDiff(cachedLast.subarray(0, V), padded.subarray((T - 1) * V, T * V))).toBeLessThan(1e-4);
  });

  it('scalar head reads one value per position', () => {
    const scorer = initParams(cfg, 'score', new Rng(9));
    const out = tf.tidy(() => scalarHead(scorer, forward(scorer, cfg, tf.tensor2d([[1, 2, 3], [4, 5, 6]], undefined, 'int32')).hidden));
    expect(out.shape).toEqual([6]);
    out.dispose();
    disposeParams(scorer);
  });
});
