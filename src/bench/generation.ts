import { tf, type Tensor2D, type Tensor4D } from '../backend/tf.js';
import { disposeCache, disposeParams, forward, initParams, lmLogits, type KVCache, type Params } from '../model/gpt.js';
import { positionIdsFromMask } from '../model/masks.js';
import { DecodeGraph, decodeGraphFor, decodeWidth, type FixedCache } from '../sample/decode-graph.js';
import { decodeInputs, generate, sampleToken, type SamplingOptions } from '../sample/generate.js';
import { withEnv } from '../util/env.js';
import { Rng } from '../util/rng.js';
import { aggregate, profileKernels, totalMs, type KernelRecord, type OpRow } from './opprofile.js';
import type { BenchShape } from './shapes.js';
import { median } from './train.js';

export interface GenOptions {
  batch: number;
  promptLen: number;
  newTokens: number;
  /** Timed `generate()` calls per mode (after one full-length warm-up call); the best is reported. */
  reps: number;
  skipNocache: boolean;
  profile: boolean;
  seed: number;
}

export interface GenMode {
  seconds: number;
  tokensPerS: number;
  msPerToken: number;
}

export interface GenResult {
  /** generate() as it runs by default: decode steps as one graph each where that builds. */
  cache: GenMode;
  /** generate() with RLHF_DECODE=eager: every decode step as eager kernels (the path before the graph). */
  cacheEager: GenMode;
  /** Which path the default generate() took ('eager' where the graph could not be built). */
  decodePath: 'graph' | 'eager';
  nocache?: GenMode;
  /** The cached decode loop re-enacted outside `generate()`, ms. */
  breakdown: {
    /** Prompt forward (B × P tokens) + last-position logits + read-back. */
    prefillMs: number;
    /** One eager decode step: upload, 1-token forward with the cache, logits, read-back (median). */
    decodeMs: number;
    /** One graph decode step: upload, TF_SessionRun, logits read-back (median); undefined without the graph. */
    graphDecodeMs?: number;
    /** Host sampling of B tokens from the read-back logits (median). */
    samplingMs: number;
    /** Kernel calls and kernel ms of one decode step. */
    decodeCalls: number;
    decodeKernelMs: number;
    /** Wall time of that profiled decode step. */
    decodeProfiledWallMs: number;
    /** Without the cache: one forward of the final length (B × (P + N − 1)) + logits + read-back. */
    nocacheLastForwardMs?: number;
  };
  decodeByKernel: OpRow[];
  nocacheByKernel: OpRow[];
}

function samplingOptions(n: number, useCache: boolean): SamplingOptions {
  // Full-softmax sampling (the HF reference runs with top_k=0, top_p=1.0); no stop tokens, so every row runs N steps.
  return { maxNewTokens: n, temperature: 1, topK: 0, topP: 1, stopIds: [], useCache };
}

/** Best wall time of `o.reps` generate() calls after a warm-up call (which also builds the decode graph), under RLHF_DECODE=`decode`. */
function timeGenerate(params: Params, shape: BenchShape, prompts: number[][], o: GenOptions, useCache: boolean, rng: Rng, decode = ''): GenMode & { path: 'graph' | 'eager' } {
  return withEnv('RLHF_DECODE', decode, () => {
    generate(params, shape.cfg, prompts, { padId: 0 }, samplingOptions(o.newTokens, useCache), rng); // warm-up: every shape once
    let best = Infinity;
    let path: 'graph' | 'eager' = 'eager';
    for (let r = 0; r < o.reps; r++) {
      const t = performance.now();
      const out = generate(params, shape.cfg, prompts, { padId: 0 }, samplingOptions(o.newTokens, useCache), rng);
      best = Math.min(best, performance.now() - t);
      path = out.decode;
      if (out.responses.some((x) => x.length !== o.newTokens)) throw new Error('bench: generate stopped early');
    }
    const tokens = o.batch * o.newTokens;
    return { seconds: best / 1000, tokensPerS: (1000 * tokens) / best, msPerToken: best / o.newTokens, path };
  });
}

/** Median wall time of one graph decode step (inputs as generate() makes them, logits read back), or undefined where the graph does not build. */
function graphDecodeStepMs(params: Params, shape: BenchShape, prompts: number[][], o: GenOptions): number | undefined {
  const { cfg } = shape;
  const width = decodeWidth(o.promptLen + o.newTokens, cfg.context_length);
  const graph = decodeGraphFor(params, cfg, o.batch, width);
  if (!(graph instanceof DecodeGraph)) return undefined;
  const shape4 = [o.batch, cfg.n_head, width, cfg.d_model / cfg.n_head] as [number, number, number, number];
  const zeros = (): Tensor4D[] => Array.from({ length: cfg.n_layer }, () => tf.zeros(shape4) as Tensor4D);
  const start: FixedCache = { keys: zeros(), values: zeros() };
  graph.start(params, start);
  tf.dispose([...start.keys, ...start.values]);
  const rows = prompts.map((p) => [...p]);
  const mask = prompts.map((p) => p.map(() => 1));
  const times: number[] = [];
  for (let i = 0; i < o.newTokens - 1; i++) {
    rows.forEach((r) => r.push(1));
    mask.forEach((m) => m.push(1));
    const t = performance.now();
    const { logits } = graph.step(decodeInputs(rows, mask, width));
    logits.dataSync();
    times.push(performance.now() - t);
    logits.dispose();
  }
  return median(times);
}

/** Inputs of one forward the way `generate()` builds them (mask and positions over the whole row). */
function stepInputs(rows: number[][], feedFrom: number) {
  const B = rows.length;
  const L = rows[0].length;
  const mask = new Float32Array(B * L).fill(1);
  const positions = positionIdsFromMask(mask, B, L);
  return {
    ids: tf.tensor2d(rows.map((r) => r.slice(feedFrom)), undefined, 'int32'),
    attentionMask: tf.tensor2d(mask, [B, L], 'float32'),
    positionIds: tf.tensor2d(positions, [B, L], 'int32').slice([0, feedFrom], [B, L - feedFrom]) as Tensor2D,
  };
}

function lastLogits(params: Params, hidden: Tensor2D, B: number): Tensor2D {
  const T = hidden.shape[0] / B;
  const last = hidden.reshape([B, T, -1]).slice([0, T - 1, 0], [B, 1, -1]).reshape([B, -1]) as Tensor2D;
  return lmLogits(params, last);
}

/** The cached decode loop, phase by phase: where a generated token's time goes. */
async function decodeBreakdown(params: Params, shape: BenchShape, prompts: number[][], o: GenOptions, rng: Rng) {
  const { cfg } = shape;
  const B = o.batch;
  const V = cfg.vocab_size;
  const rows = prompts.map((p) => [...p]);
  const sampling = samplingOptions(o.newTokens, true);
  let cache: KVCache | undefined;
  const decodeTimes: number[] = [];
  const sampleTimes: number[] = [];
  let prefillMs = 0;
  let decodeKernels: KernelRecord[] = [];
  let decodeProfiledWallMs = 0;
  const step = () => {
    const feedFrom = cache ? rows[0].length - 1 : 0;
    const logits = tf.tidy(() => {
      const inp = stepInputs(rows, feedFrom);
      const out = forward(params, cfg, inp.ids, { attentionMask: inp.attentionMask, positionIds: inp.positionIds, cache, useCache: true });
      const prev = cache;
      cache = { keys: out.cache!.keys.map((k) => tf.keep(k)), values: out.cache!.values.map((v) => tf.keep(v)) };
      disposeCache(prev);
      return lastLogits(params, out.hidden, B);
    });
    const data = logits.dataSync() as Float32Array;
    logits.dispose();
    return data;
  };
  try {
    for (let i = 0; i < o.newTokens; i++) {
      let data: Float32Array = new Float32Array(0);
      const t = performance.now();
      if (i === o.newTokens - 1 && i > 0) {
        const p = await profileKernels(() => {
          data = step();
        });
        decodeKernels = p.kernels;
        decodeProfiledWallMs = p.wallMs;
      } else {
        data = step();
        if (i === 0) prefillMs = performance.now() - t;
        else decodeTimes.push(performance.now() - t);
      }
      const s = performance.now();
      for (let b = 0; b < B; b++) rows[b].push(sampleToken(data.subarray(b * V, (b + 1) * V), sampling, rng));
      sampleTimes.push(performance.now() - s);
    }
  } finally {
    disposeCache(cache);
  }
  return {
    prefillMs,
    decodeMs: decodeTimes.length ? median(decodeTimes) : 0,
    samplingMs: median(sampleTimes),
    decodeKernels,
    decodeProfiledWallMs,
    finalRows: rows,
  };
}

/** One full-length no-cache forward (the last and largest step of no-cache generation). */
function nocacheForward(params: Params, shape: BenchShape, rows: number[][]): void {
  const B = rows.length;
  const logits = tf.tidy(() => {
    const inp = stepInputs(rows.map((r) => r.slice(0, -1)), 0);
    const out = forward(params, shape.cfg, inp.ids, { attentionMask: inp.attentionMask, positionIds: inp.positionIds });
    return lastLogits(params, out.hidden, B);
  });
  logits.dataSync();
  logits.dispose();
}

export async function benchGeneration(shape: BenchShape, o: GenOptions, log: (msg: string) => void): Promise<GenResult> {
  const rng = new Rng(o.seed);
  const params = initParams(shape.cfg, 'lm', rng);
  const prompts = Array.from({ length: o.batch }, () => Array.from({ length: o.promptLen }, () => rng.int(shape.cfg.vocab_size)));
  try {
    log(`generation: batch ${o.batch}, ${o.newTokens} new tokens, with the KV cache`);
    const cache = timeGenerate(params, shape, prompts, o, true, rng);
    log(`generation: the same with eager decode steps (RLHF_DECODE=eager)`);
    const cacheEager = timeGenerate(params, shape, prompts, o, true, rng, 'eager');
    log('generation: decode-step breakdown');
    const bd = await decodeBreakdown(params, shape, prompts, o, rng);
    const graphDecodeMs = graphDecodeStepMs(params, shape, prompts, o);
    let nocache: GenMode | undefined;
    let nocacheLastForwardMs: number | undefined;
    let nocacheKernels: KernelRecord[] = [];
    if (!o.skipNocache) {
      log(`generation: batch ${o.batch}, ${o.newTokens} new tokens, without the cache`);
      nocache = timeGenerate(params, shape, prompts, o, false, rng);
      nocacheForward(params, shape, bd.finalRows); // warm
      const t = performance.now();
      nocacheForward(params, shape, bd.finalRows);
      nocacheLastForwardMs = performance.now() - t;
      if (o.profile) nocacheKernels = (await profileKernels(() => nocacheForward(params, shape, bd.finalRows))).kernels;
    }
    return {
      cache,
      cacheEager,
      decodePath: cache.path,
      nocache,
      breakdown: {
        prefillMs: bd.prefillMs,
        decodeMs: bd.decodeMs,
        graphDecodeMs,
        samplingMs: bd.samplingMs,
        decodeCalls: bd.decodeKernels.length,
        decodeKernelMs: totalMs(bd.decodeKernels),
        decodeProfiledWallMs: bd.decodeProfiledWallMs,
        nocacheLastForwardMs,
      },
      decodeByKernel: aggregate(bd.decodeKernels, 1, (k) => k.name),
      nocacheByKernel: aggregate(nocacheKernels, 1, (k) => k.name),
    };
  } finally {
    disposeParams(params);
  }
}
