import { tf, type Tensor, type Tensor2D, type Tensor3D, type Tensor4D } from '../backend/tf.js';
import { GraphUnavailable, loadChecked, type TracedGraph } from '../graph/checked-graph.js';
import { buildGraphDef, type Endpoint } from '../graph/graphdef.js';
import type { GraphFunction } from '../graph/session.js';
import { readTensor, tensorId, traceOps } from '../graph/trace.js';
import { headDim, type GptConfig } from '../model/config.js';
import { forward, lmLogits, type Params } from '../model/gpt.js';

/**
 * One decode step of generation (a token per row in, next-token logits out, the
 * KV cache updated) as one traced TensorFlow graph. Eagerly a step is 100–300
 * kernel dispatches of ~20 µs each, which at the shipped model sizes costs more
 * than the arithmetic; the graph runs them in one TF_SessionRun. The cache has a
 * fixed width (`SlotCache` in src/model/gpt.ts), so one graph serves every step
 * of a generation and every generation of the same batch size and width, and it
 * stays inside the session as variables that each step writes one slot of.
 */

/** Every layer's keys and values at the full width, [B, H, width, hd]. */
export interface FixedCache {
  keys: Tensor4D[];
  values: Tensor4D[];
}

/** A decode step's host inputs. */
export interface DecodeInputs {
  /** The token fed per row, [B]. */
  ids: Int32Array;
  /** Its position per row, [B]. */
  positions: Int32Array;
  /** The cache slot it is written to. */
  slot: number;
  /** Per row and slot, 0 where the token may attend, −1e9 where not (padding, unwritten slots), [B·width]. */
  keyBias: Float32Array;
}

/** Largest |graph − eager| accepted in any logit or cache entry when the graph is built. */
const SELF_CHECK_TOLERANCE = 1e-4;

interface DeviceInputs {
  ids: Tensor2D;
  positions: Tensor2D;
  indices: Tensor3D;
  keyBias: Tensor4D;
}

function upload(x: DecodeInputs, B: number, H: number, width: number): DeviceInputs {
  const indices = new Int32Array(B * H * 3);
  for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) indices.set([b, h, x.slot], 3 * (b * H + h));
  return {
    ids: tf.tensor2d(x.ids, [B, 1], 'int32'),
    positions: tf.tensor2d(x.positions, [B, 1], 'int32'),
    indices: tf.tensor3d(indices, [B, H, 3], 'int32'),
    keyBias: tf.tensor4d(x.keyBias, [B, 1, 1, width]),
  };
}

/** The decode step on the device, eagerly: what the graph is traced from and checked against. */
function deviceStep(params: Params, cfg: GptConfig, cache: FixedCache, x: DeviceInputs): { logits: Tensor2D; cache: FixedCache } {
  const out = forward(params, cfg, x.ids, { positionIds: x.positions, slotCache: { ...cache, indices: x.indices, keyBias: x.keyBias } });
  return { logits: lmLogits(params, out.hidden), cache: out.cache! };
}

const paramKey = (i: number) => `p${i}`;
const keyKey = (i: number) => `k${i}`;
const valueKey = (i: number) => `v${i}`;

/** Inputs for trace `variant` (0 or 1): valid, and different in every value between the variants. */
function traceInputs(cfg: GptConfig, B: number, width: number, variant: number): DecodeInputs {
  const slot = variant;
  const keyBias = new Float32Array(B * width);
  for (let b = 0; b < B; b++) for (let s = 0; s < width; s++) keyBias[b * width + s] = s <= slot && (b + s + variant) % 3 !== 2 ? 0 : -1e9;
  return {
    ids: Int32Array.from({ length: B }, (_, b) => (b + 1 + variant) % cfg.vocab_size),
    positions: Int32Array.from({ length: B }, (_, b) => (b + slot) % cfg.context_length),
    slot,
    keyBias,
  };
}

function traceCache(cfg: GptConfig, B: number, width: number, variant: number): FixedCache {
  const shape: [number, number, number, number] = [B, cfg.n_head, width, headDim(cfg)];
  const make = (i: number) => tf.randomNormal(shape, 0, 1, 'float32', 1 + 2 * i + 100 * variant) as Tensor4D;
  return { keys: Array.from({ length: cfg.n_layer }, (_, i) => make(2 * i)), values: Array.from({ length: cfg.n_layer }, (_, i) => make(2 * i + 1)) };
}

function feeds(params: Params, x: DeviceInputs): Record<string, Tensor> {
  const out: Record<string, Tensor> = { ids: x.ids, positions: x.positions, indices: x.indices, key_bias: x.keyBias };
  [...params.values()].forEach((v, i) => (out[paramKey(i)] = v));
  return out;
}

function cacheByKey(cache: FixedCache): Record<string, Tensor> {
  const out: Record<string, Tensor> = {};
  cache.keys.forEach((k, i) => (out[keyKey(i)] = k));
  cache.values.forEach((v, i) => (out[valueKey(i)] = v));
  return out;
}

interface Traced extends TracedGraph {
  inputs: DecodeInputs;
  cache: FixedCache;
}

function traceDecode(params: Params, cfg: GptConfig, B: number, width: number, variant: number): Traced {
  const inputs = traceInputs(cfg, B, width, variant);
  const cache = traceCache(cfg, B, width, variant);
  const x = upload(inputs, B, cfg.n_head, width);
  let out: { logits: Tensor2D; cache: FixedCache } | undefined;
  try {
    const fed = feeds(params, x);
    const { result, trace } = traceOps(() => deviceStep(params, cfg, cache, x));
    out = result;
    const fetches: Endpoint[] = [
      { key: 'logits', id: tensorId(out.logits) },
      ...out.cache.keys.map((k, i) => ({ key: keyKey(i), id: tensorId(k) })),
      ...out.cache.values.map((v, i) => ({ key: valueKey(i), id: tensorId(v) })),
    ];
    // The cache lives in the session: each step writes one slot in place instead of being fed and copied.
    const variables = Object.entries(cacheByKey(cache)).map(([key, t]) => ({ key, id: tensorId(t) }));
    const built = buildGraphDef(trace, Object.entries(fed).map(([key, t]) => ({ key, id: tensorId(t) })), fetches, readTensor, variables);
    return { built, eager: new Map(fetches.map((f) => [f.key, Float32Array.from(readTensor(f.id))])), inputs, cache };
  } finally {
    if (out) tf.dispose([out.logits, ...out.cache.keys, ...out.cache.values]);
    tf.dispose(Object.values(x));
  }
}

export class DecodeGraph {
  private constructor(
    private readonly fn: GraphFunction,
    readonly batch: number,
    private readonly heads: number,
    readonly width: number,
  ) {}

  /**
   * Traces the decode step for `batch` rows and a cache `width` slots wide (twice,
   * at different inputs, which must give the identical graph), loads it, and checks
   * one run against the eager step it was traced from. Throws GraphUnavailable (with
   * the reason) where it cannot stand in for the eager step.
   */
  static build(params: Params, cfg: GptConfig, batch: number, width: number): DecodeGraph {
    if (tf.getBackend() !== 'tensorflow') throw new GraphUnavailable('the graph decode step needs the native TensorFlow backend');
    let first: Traced | undefined;
    let second: Traced | undefined;
    try {
      try {
        first = traceDecode(params, cfg, batch, width, 0);
        second = traceDecode(params, cfg, batch, width, 1);
      } catch (err) {
        throw new GraphUnavailable(`tracing failed: ${(err as Error).message}`);
      }
      const check = first;
      const fn = loadChecked(
        first,
        second,
        (f) => {
          const x = upload(check.inputs, batch, cfg.n_head, width);
          try {
            f.assign(cacheByKey(check.cache));
            return f.run(feeds(params, x));
          } finally {
            tf.dispose(Object.values(x));
          }
        },
        SELF_CHECK_TOLERANCE,
      );
      return new DecodeGraph(fn, batch, cfg.n_head, width);
    } finally {
      for (const t of [first, second]) if (t) tf.dispose([...t.cache.keys, ...t.cache.values]);
    }
  }

  /** Starts a generation: the session's cache becomes `cache` (copied; the caller keeps ownership). */
  start(cache: FixedCache): void {
    this.fn.assign(cacheByKey(cache));
  }

  /**
   * One decode step on the session's cache, which it updates: the last position's
   * logits [B, V], and with `withCache` a copy of the updated cache (new tensors).
   */
  step(params: Params, inputs: DecodeInputs, withCache = false): { logits: Tensor2D; cache?: FixedCache } {
    const x = upload(inputs, this.batch, this.heads, this.width);
    try {
      const out = this.fn.run(feeds(params, x), withCache ? undefined : ['logits']);
      const n = (this.fn.graph.outputs.length - 1) / 2;
      const cache = withCache
        ? { keys: Array.from({ length: n }, (_, i) => out[keyKey(i)] as Tensor4D), values: Array.from({ length: n }, (_, i) => out[valueKey(i)] as Tensor4D) }
        : undefined;
      return { logits: out.logits as Tensor2D, ...(cache ? { cache } : {}) };
    } finally {
      tf.dispose(Object.values(x));
    }
  }

  dispose(): void {
    this.fn.dispose();
  }
}

/** `RLHF_DECODE=eager` turns graph decoding off; anything else (or unset) chooses automatically. */
export function decodeGraphWanted(setting = process.env.RLHF_DECODE): boolean {
  return setting !== 'eager';
}

/**
 * Cache width for a generation of `total` tokens: rounded up to a multiple of 8 (within
 * the context), so few widths, and graphs, occur while attention and the cache carry at
 * most 7 unused slots.
 */
export function decodeWidth(total: number, contextLength: number): number {
  return Math.min(contextLength, Math.ceil(total / 8) * 8);
}

/** Most graphs kept loaded; the least recently used goes first. */
const MAX_GRAPHS = 8;
const graphs = new Map<string, DecodeGraph | GraphUnavailable>();

/**
 * The decode graph for a model of config `cfg` at `batch` rows and cache `width`,
 * built on first use and kept (it holds no weights: they are fed each step), or
 * GraphUnavailable with the reason it could not be built.
 */
export function decodeGraphFor(params: Params, cfg: GptConfig, batch: number, width: number): DecodeGraph | GraphUnavailable {
  const key = JSON.stringify([cfg.vocab_size, cfg.n_layer, cfg.n_head, cfg.d_model, cfg.context_length, [...params.keys()], batch, width]);
  let g = graphs.get(key);
  if (g === undefined) {
    try {
      g = DecodeGraph.build(params, cfg, batch, width);
    } catch (err) {
      if (!(err instanceof GraphUnavailable)) throw err;
      g = err;
    }
    if (graphs.size >= MAX_GRAPHS) {
      const [oldestKey, oldest] = graphs.entries().next().value!;
      if (oldest instanceof DecodeGraph) oldest.dispose();
      graphs.delete(oldestKey);
    }
  } else {
    graphs.delete(key);
  }
  graphs.set(key, g);
  return g;
}
