import { tf, type Tensor2D } from '../backend/tf.js';
import { disposeCache, disposeParams, forward, initParams, lmLogits, type KVCache, type Params } from '../model/gpt.js';
import { positionIdsFromMask } from '../model/masks.js';
import { generate, sampleToken, type SamplingOptions } from '../sample/generate.js';
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
  cache: GenMode;
  nocache?: GenMode;
  /** The cached decode loop re-enacted outside `generate()`, ms. */
  breakdown: {
    /** Prompt forward (B × P tokens) + last-position logits + read-back. */
    prefillMs: number;
    /** One decode step: upload, 1-token forward with the cache, logits, read-back (median). */
    decodeMs: number;
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

function timeGenerate(params: Params, shape: BenchShape, prompts: number[][], o: GenOptions, useCache: boolean, rng: Rng): GenMode {
  generate(params, shape.cfg, prompts, { padId: 0 }, samplingOptions(o.newTokens, useCache), rng); // warm-up: every shape once
  let best = Infinity;
  for (let r = 0; r < o.reps; r++) {
    const t = performance.now();
    const out = generate(params, shape.cfg, prompts, { padId: 0 }, samplingOptions(o.newTokens, useCache), rng);
    best = Math.min(best, performance.now() - t);
    if (out.responses.some((x) => x.length !== o.newTokens)) throw new Error('bench: generate stopped early');
  }
  const tokens = o.batch * o.newTokens;
  return { seconds: best / 1000, tokensPerS: (1000 * tokens) / best, msPerToken: best / o.newTokens };
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
    log('generation: decode-step breakdown');
    const bd = await decodeBreakdown(params, shape, prompts, o, rng);
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
      nocache,
      breakdown: {
        prefillMs: bd.prefillMs,
        decodeMs: bd.decodeMs,
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
