import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tf, type Tensor2D, type Tensor4D } from '../src/backend/tf.js';
import type { GptConfig } from '../src/model/config.js';
import { positionIdsFromMask } from '../src/model/masks.js';
import { disposeCache, disposeParams, forward, initParams, lmLogits, type KVCache, type Params } from '../src/model/gpt.js';
import { DecodeGraph, decodeGraphBytes, decodeGraphFor, decodeParts, decodeWidth, graphsToEvict, partBounds, type FixedCache } from '../src/sample/decode-graph.js';
import { decodeInputs, decodePathBetween, generate, type SamplingOptions } from '../src/sample/generate.js';
import { withEnv } from '../src/util/env.js';
import { Rng } from '../src/util/rng.js';

const CFG: GptConfig = { vocab_size: 19, n_layer: 2, n_head: 2, d_model: 16, context_length: 24, dropout: 0 };

const withDecode = <T>(setting: string | undefined, fn: () => T): T => withEnv('RLHF_DECODE', setting, fn);

describe('graph decode step: inputs', () => {
  it('feeds each row its newest token at its own position, and lets it attend only to written, unpadded slots', () => {
    // row 0 is left-padded by one token and has finished (its last token is padding, mask 0)
    const rows = [
      [0, 5, 6, 0],
      [7, 8, 9, 3],
    ];
    const mask = [
      [0, 1, 1, 0],
      [1, 1, 1, 1],
    ];
    const x = decodeInputs(rows, mask, 6);
    expect([...x.ids]).toEqual([0, 3]);
    expect([...x.positions]).toEqual([0, 3]);
    expect(x.slot).toBe(3);
    const N = -1e9;
    expect([...x.keyBias]).toEqual([N, 0, 0, N, N, N, 0, 0, 0, 0, N, N]);
  });

  it('reports the path of the generations between two tallies', () => {
    expect(decodePathBetween({ graph: 2, eager: 1 }, { graph: 2, eager: 1 })).toBeUndefined();
    expect(decodePathBetween({ graph: 2, eager: 1 }, { graph: 5, eager: 1 })).toBe('graph');
    expect(decodePathBetween({ graph: 2, eager: 1 }, { graph: 2, eager: 3 })).toBe('eager');
    expect(decodePathBetween({ graph: 2, eager: 1 }, { graph: 3, eager: 2 })).toBe('mixed');
  });

  it('rounds the cache width up to a multiple of 8 within the context', () => {
    expect(decodeWidth(17, 80)).toBe(24);
    expect(decodeWidth(40, 80)).toBe(40);
    expect(decodeWidth(73, 75)).toBe(75);
  });

  it('decodes in one part per core, of at least 8 rows, only on one intra-op thread', () => {
    expect(decodeParts(64, 1, 2)).toBe(2);
    expect(decodeParts(64, 1, 16)).toBe(8);
    expect(decodeParts(15, 1, 2)).toBe(1);
    expect(decodeParts(4, 1, 2)).toBe(1);
    expect(decodeParts(64, 2, 2)).toBe(1);
    expect(partBounds(5, 2)).toEqual([
      [0, 2],
      [2, 5],
    ]);
    expect(partBounds(64, 1)).toEqual([[0, 64]]);
  });

  it('keeps at most 8 graphs and 1 GiB of session memory, dropping the least recently used first', () => {
    const MB = 1 << 20;
    const kept: Array<[string, number]> = [
      ['a', 300 * MB],
      ['b', 300 * MB],
      ['c', 300 * MB],
    ];
    expect(graphsToEvict(kept, 100 * MB, 8, 1024 * MB)).toEqual([]);
    expect(graphsToEvict(kept, 200 * MB, 8, 1024 * MB)).toEqual(['a']);
    expect(graphsToEvict(kept, 500 * MB, 8, 1024 * MB)).toEqual(['a', 'b']);
    expect(graphsToEvict(kept, 2048 * MB, 8, 1024 * MB)).toEqual(['a', 'b', 'c']);
    expect(graphsToEvict(kept, 0, 3, 1024 * MB)).toEqual(['a']);
    // 2 layers × (keys + values) × batch 2 × 2 heads × width 16 × head dim 8, plus the weights, 4 bytes each
    const params = initParams(CFG, 'lm', new Rng(4));
    const weights = [...params.values()].reduce((n, t) => n + t.size, 0);
    expect(decodeGraphBytes(params, CFG, 2, 16)).toBe(4 * (weights + 2 * 2 * 2 * 2 * 16 * 8));
    disposeParams(params);
  });
});

describe('graph decode step against the eager cache', () => {
  let params: Params;
  beforeAll(() => {
    params = initParams(CFG, 'lm', new Rng(4));
  });
  afterAll(() => disposeParams(params));

  it.each([1, 2])('gives the eager logits token by token and keeps the eager cache in the session, with a left-padded row (%i part(s))', (parts) => {
    const B = 2;
    const width = 16;
    const graph = DecodeGraph.build(params, CFG, B, width, parts);
    expect(graph.bounds).toHaveLength(parts);
    const rows = [
      [0, 0, 3, 4],
      [5, 6, 7, 8],
    ];
    const mask = rows.map((r, b) => r.map((_, i) => (b === 0 && i < 2 ? 0 : 1)));
    const eagerLogits = (ids: number[][], cache: KVCache | undefined): { logits: Float32Array; cache: KVCache } => {
      const L = mask[0].length;
      const T = ids[0].length;
      return tf.tidy(() => {
        const all = positionIdsFromMask(mask.flat(), B, L);
        const positions = Int32Array.from({ length: B * T }, (_, i) => all[Math.floor(i / T) * L + L - T + (i % T)]);
        const out = forward(params, CFG, tf.tensor2d(ids, undefined, 'int32'), {
          attentionMask: tf.tensor2d(mask.flat(), [B, L]),
          positionIds: tf.tensor2d(positions, [B, T], 'int32'),
          cache,
          useCache: true,
        });
        const last = out.hidden.reshape([B, T, -1]).slice([0, T - 1, 0], [B, 1, -1]).reshape([B, -1]) as Tensor2D;
        const keep = { keys: out.cache!.keys.map((k) => tf.keep(k)), values: out.cache!.values.map((v) => tf.keep(v)) };
        return { logits: lmLogits(params, last).dataSync() as Float32Array, cache: keep };
      });
    };
    let eager = eagerLogits(rows, undefined);
    const pad = (t: Tensor4D) => tf.pad(t, [[0, 0], [0, 0], [0, width - 4], [0, 0]]) as Tensor4D;
    const start: FixedCache = { keys: eager.cache.keys.map(pad), values: eager.cache.values.map(pad) };
    graph.start(params, start);
    tf.dispose([...start.keys, ...start.values]);
    const next = [
      [11, 12],
      [13, 14],
      [15, 16],
    ];
    let worst = 0;
    for (const tokens of next) {
      rows.forEach((r, b) => r.push(tokens[b]));
      mask.forEach((m) => m.push(1));
      const prev = eager.cache;
      eager = eagerLogits(
        rows.map((r) => [r[r.length - 1]]),
        prev,
      );
      disposeCache(prev);
      const out = graph.step(decodeInputs(rows, mask, width), true);
      const fixed = out.cache!;
      const got = out.logits.dataSync();
      out.logits.dispose();
      for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i] - eager.logits[i]));
      // the session's cache holds exactly the eager cache in the written slots; the rest are still zero
      const L = rows[0].length;
      for (let l = 0; l < CFG.n_layer; l++) {
        const written = tf.tidy(() => fixed.keys[l].slice([0, 0, 0, 0], [-1, -1, L, -1]).sub(eager.cache.keys[l]).abs().max().dataSync()[0]);
        const rest = tf.tidy(() => fixed.values[l].slice([0, 0, L, 0], [-1, -1, -1, -1]).abs().max().dataSync()[0]);
        expect(written).toBeLessThan(1e-5);
        expect(rest).toBe(0);
      }
      tf.dispose([...fixed.keys, ...fixed.values]);
    }
    expect(worst).toBeLessThan(1e-4);
    disposeCache(eager.cache);
    graph.dispose();
  });

  it('generate() decodes through the graph and samples what eager decoding samples, stop tokens and padding included', () => {
    const prompts = [[1, 2, 3], [4], [5, 6], [7, 8, 9, 10]];
    const opts: SamplingOptions = { maxNewTokens: 12, temperature: 0, topK: 0, topP: 1, stopIds: [3] };
    const graph = withDecode(undefined, () => generate(params, CFG, prompts, { padId: 0 }, opts, new Rng(1)));
    const eager = withDecode('eager', () => generate(params, CFG, prompts, { padId: 0 }, opts, new Rng(1)));
    expect(graph.decode).toBe('graph');
    expect(graph.decodeFallback).toBeUndefined();
    expect(eager.decode).toBe('eager');
    expect(graph.responses).toEqual(eager.responses);
    expect(graph.finished).toEqual(eager.finished);
    // at temperature 1 the draws see the same logits to ~1e-6, so the same seed samples the same text
    const hot = { ...opts, temperature: 1, stopIds: [] };
    const a = withDecode(undefined, () => generate(params, CFG, prompts, { padId: 0 }, hot, new Rng(2)));
    const b = withDecode('eager', () => generate(params, CFG, prompts, { padId: 0 }, hot, new Rng(2)));
    expect(a.responses).toEqual(b.responses);
    // the same graph serves other weights (a policy after an update): they are set at the start of each generation
    const updated = initParams(CFG, 'lm', new Rng(5));
    try {
      const c = withDecode(undefined, () => generate(updated, CFG, prompts, { padId: 0 }, hot, new Rng(2)));
      const d = withDecode('eager', () => generate(updated, CFG, prompts, { padId: 0 }, hot, new Rng(2)));
      expect(c.decode).toBe('graph');
      expect(c.responses).toEqual(d.responses);
      expect(c.responses).not.toEqual(a.responses);
    } finally {
      disposeParams(updated);
    }
  });

  it('keeps one graph per batch and width, and no tensors across generations', () => {
    const prompts = [[1, 2], [3, 4]];
    const opts: SamplingOptions = { maxNewTokens: 6, temperature: 1, topK: 0, topP: 1, stopIds: [] };
    const g = decodeGraphFor(params, CFG, 2, 16);
    expect(g).toBeInstanceOf(DecodeGraph);
    expect(decodeGraphFor(params, CFG, 2, 16)).toBe(g);
    generate(params, CFG, prompts, { padId: 0 }, opts, new Rng(3));
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) generate(params, CFG, prompts, { padId: 0 }, opts, new Rng(4 + i));
    expect(tf.memory().numTensors).toBe(before);
  });
});
