import { availableParallelism } from 'node:os';
import { threadsInEffect } from '../backend/threads.js';
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
 *
 * On one intra-op thread the rows are decoded in independent parts, one per
 * core: TensorFlow's executor runs the parts' kernels side by side, which keeps
 * the cores busy where one small kernel at a time cannot (and at batch 64 a
 * matmul shared by two intra-op threads runs only ~1.2× faster than on one).
 * Each row's arithmetic is the same in any part.
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

/** Row ranges [start, end) of the parts, as even as possible. */
export function partBounds(batch: number, parts: number): Array<[number, number]> {
  return Array.from({ length: parts }, (_, p) => [Math.floor((p * batch) / parts), Math.floor(((p + 1) * batch) / parts)]);
}

/**
 * Parts to decode `batch` rows in: on one intra-op thread, one part per core, each of at
 * least 8 rows (a floor, not tuned: the gain needs kernels big enough to outweigh handing
 * work to another thread, and at ci.yaml's model even 32-row parts gain little). With several
 * intra-op threads each kernel already spreads over the cores, and parts measured no
 * faster (gpt-10m, 2 threads: 22.5 vs 22.0 ms per step; on one thread 15.5 vs 24.5 ms).
 */
export function decodeParts(batch: number, threads = threadsInEffect(), cores = availableParallelism()): number {
  if (threads > 1) return 1;
  return Math.max(1, Math.min(cores, Math.floor(batch / 8)));
}

function upload(x: DecodeInputs, bounds: ReadonlyArray<[number, number]>, H: number, width: number): DeviceInputs {
  const B = x.ids.length;
  const indices = new Int32Array(B * H * 3);
  // scatter indices address a row within its part's cache
  for (const [lo, hi] of bounds) for (let b = lo; b < hi; b++) for (let h = 0; h < H; h++) indices.set([b - lo, h, x.slot], 3 * (b * H + h));
  return {
    ids: tf.tensor2d(x.ids, [B, 1], 'int32'),
    positions: tf.tensor2d(x.positions, [B, 1], 'int32'),
    indices: tf.tensor3d(indices, [B, H, 3], 'int32'),
    keyBias: tf.tensor4d(x.keyBias, [B, 1, 1, width]),
  };
}

/** The decode step on the device, eagerly, one forward per part: what the graph is traced from and checked against. */
function deviceStep(params: Params, cfg: GptConfig, caches: readonly FixedCache[], x: DeviceInputs, bounds: ReadonlyArray<[number, number]>): { logits: Tensor2D; caches: FixedCache[] } {
  const B = x.ids.shape[0];
  const logits: Tensor2D[] = [];
  const out = bounds.map(([lo, hi], p) => {
    const rows = <T extends Tensor>(t: T): T => (hi - lo === B ? t : (t.slice([lo, ...t.shape.slice(1).map(() => 0)], [hi - lo, ...t.shape.slice(1)]) as T));
    const o = forward(params, cfg, rows(x.ids), { positionIds: rows(x.positions), slotCache: { ...caches[p], indices: rows(x.indices), keyBias: rows(x.keyBias) } });
    logits.push(lmLogits(params, o.hidden));
    return o.cache!;
  });
  return { logits: logits.length === 1 ? logits[0] : tf.concat(logits, 0), caches: out };
}

const paramKey = (i: number) => `p${i}`;
const keyKey = (i: number, part: number) => `k${i}_${part}`;
const valueKey = (i: number, part: number) => `v${i}_${part}`;

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

/** `cache` cut into the parts' rows (new tensors, or `cache` itself for one part). */
function splitCache(cache: FixedCache, bounds: ReadonlyArray<[number, number]>): FixedCache[] {
  if (bounds.length === 1) return [cache];
  const rows = (t: Tensor4D, lo: number, hi: number) => t.slice([lo, 0, 0, 0], [hi - lo, -1, -1, -1]);
  return bounds.map(([lo, hi]) => ({ keys: cache.keys.map((k) => rows(k, lo, hi)), values: cache.values.map((v) => rows(v, lo, hi)) }));
}

function feeds(x: DeviceInputs): Record<string, Tensor> {
  return { ids: x.ids, positions: x.positions, indices: x.indices, key_bias: x.keyBias };
}

/** The session's variables by key: the weights (read) and each part's cache (one slot written per step). */
function sessionValues(params: Params, caches: readonly FixedCache[]): Record<string, Tensor> {
  const out: Record<string, Tensor> = {};
  [...params.values()].forEach((v, i) => (out[paramKey(i)] = v));
  caches.forEach((cache, p) => {
    cache.keys.forEach((k, i) => (out[keyKey(i, p)] = k));
    cache.values.forEach((v, i) => (out[valueKey(i, p)] = v));
  });
  return out;
}

/** Every layer's keys or values of the parts' caches in the fetched outputs. */
function fetchedCache(out: Record<string, Tensor>, layers: number, parts: number, key: (i: number, part: number) => string): Tensor4D[][] {
  return Array.from({ length: layers }, (_, i) => Array.from({ length: parts }, (_, p) => out[key(i, p)] as Tensor4D));
}

interface Traced extends TracedGraph {
  inputs: DecodeInputs;
  /** The trace's cache, per part. */
  caches: FixedCache[];
}

function traceDecode(params: Params, cfg: GptConfig, B: number, width: number, bounds: ReadonlyArray<[number, number]>, variant: number): Traced {
  const inputs = traceInputs(cfg, B, width, variant);
  const caches = bounds.map(([lo, hi], p) => traceCache(cfg, hi - lo, width, 2 * p + variant));
  const x = upload(inputs, bounds, cfg.n_head, width);
  let out: { logits: Tensor2D; caches: FixedCache[] } | undefined;
  try {
    const fed = feeds(x);
    const { result, trace } = traceOps(() => deviceStep(params, cfg, caches, x, bounds));
    out = result;
    const fetches: Endpoint[] = [
      { key: 'logits', id: tensorId(out.logits) },
      ...out.caches.flatMap((c, p) => [...c.keys.map((k, i) => ({ key: keyKey(i, p), id: tensorId(k) })), ...c.values.map((v, i) => ({ key: valueKey(i, p), id: tensorId(v) }))]),
    ];
    // Weights and cache live in the session: a step feeds only its few host inputs, and
    // writes one cache slot in place instead of being fed the whole cache and copying it.
    const variables = Object.entries(sessionValues(params, caches)).map(([key, t]) => ({ key, id: tensorId(t) }));
    const built = buildGraphDef(trace, Object.entries(fed).map(([key, t]) => ({ key, id: tensorId(t) })), fetches, readTensor, variables);
    return { built, eager: new Map(fetches.map((f) => [f.key, Float32Array.from(readTensor(f.id))])), inputs, caches };
  } finally {
    if (out) tf.dispose([out.logits, ...out.caches.flatMap((c) => [...c.keys, ...c.values])]);
    tf.dispose(Object.values(x));
  }
}

export class DecodeGraph {
  private constructor(
    private readonly fn: GraphFunction,
    private readonly cfg: GptConfig,
    readonly width: number,
    /** Row ranges of the parts decoded side by side. */
    readonly bounds: ReadonlyArray<[number, number]>,
  ) {}

  get batch(): number {
    return this.bounds[this.bounds.length - 1][1];
  }

  /**
   * Traces the decode step for `batch` rows in `parts` parts and a cache `width` slots
   * wide (twice, at different inputs, which must give the identical graph), loads it,
   * and checks one run against the eager step it was traced from. Throws
   * GraphUnavailable (with the reason) where it cannot stand in for the eager step.
   */
  static build(params: Params, cfg: GptConfig, batch: number, width: number, parts = decodeParts(batch)): DecodeGraph {
    if (tf.getBackend() !== 'tensorflow') throw new GraphUnavailable('the graph decode step needs the native TensorFlow backend');
    const bounds = partBounds(batch, parts);
    let first: Traced | undefined;
    let second: Traced | undefined;
    try {
      try {
        first = traceDecode(params, cfg, batch, width, bounds, 0);
        second = traceDecode(params, cfg, batch, width, bounds, 1);
      } catch (err) {
        throw new GraphUnavailable(`tracing failed: ${(err as Error).message}`);
      }
      const check = first;
      const fn = loadChecked(
        first,
        second,
        (f) => {
          const x = upload(check.inputs, bounds, cfg.n_head, width);
          try {
            f.assign(sessionValues(params, check.caches));
            return f.run(feeds(x));
          } finally {
            tf.dispose(Object.values(x));
          }
        },
        SELF_CHECK_TOLERANCE,
      );
      return new DecodeGraph(fn, cfg, width, bounds);
    } finally {
      for (const t of [first, second]) if (t) tf.dispose(t.caches.flatMap((c) => [...c.keys, ...c.values]));
    }
  }

  /** Starts a generation with weights `params`: the session's weights and cache are set from them (the caller keeps ownership). */
  start(params: Params, cache: FixedCache): void {
    const caches = splitCache(cache, this.bounds);
    try {
      this.fn.assign(sessionValues(params, caches));
    } finally {
      if (caches.length > 1) tf.dispose(caches.flatMap((c) => [...c.keys, ...c.values]));
    }
  }

  /**
   * One decode step on the session's cache, which it updates: the last position's
   * logits [B, V], and with `withCache` a copy of the updated cache (new tensors).
   */
  step(inputs: DecodeInputs, withCache = false): { logits: Tensor2D; cache?: FixedCache } {
    const x = upload(inputs, this.bounds, this.cfg.n_head, this.width);
    try {
      const out = this.fn.run(feeds(x), withCache ? undefined : ['logits']);
      if (!withCache) return { logits: out.logits as Tensor2D };
      const join = (parts: Tensor4D[]): Tensor4D => {
        if (parts.length === 1) return parts[0];
        const whole = tf.concat(parts, 0);
        tf.dispose(parts);
        return whole;
      };
      const { n_layer: layers } = this.cfg;
      const parts = this.bounds.length;
      return {
        logits: out.logits as Tensor2D,
        cache: { keys: fetchedCache(out, layers, parts, keyKey).map(join), values: fetchedCache(out, layers, parts, valueKey).map(join) },
      };
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

/** Most graphs kept loaded, and most bytes their sessions may hold (weights and cache); the least recently used goes first. */
const MAX_GRAPHS = 8;
const MAX_GRAPH_BYTES = 1 << 30;
const graphs = new Map<string, { graph: DecodeGraph | GraphUnavailable; bytes: number }>();

/** Bytes a decode graph's session holds: a copy of the weights and every part's cache. */
export function decodeGraphBytes(params: Params, cfg: GptConfig, batch: number, width: number): number {
  const weights = [...params.values()].reduce((n, t) => n + t.size, 0);
  return 4 * (weights + 2 * cfg.n_layer * batch * cfg.n_head * width * headDim(cfg));
}

/**
 * Keys of the graphs to drop, oldest first, before one of `incoming` bytes joins `kept`
 * (least recently used first): enough that at most `maxCount` graphs and `maxBytes`
 * remain, or every one when the newcomer alone is larger.
 */
export function graphsToEvict(kept: ReadonlyArray<[string, number]>, incoming: number, maxCount: number, maxBytes: number): string[] {
  let count = kept.length + 1;
  let bytes = kept.reduce((n, [, b]) => n + b, incoming);
  const out: string[] = [];
  for (const [key, b] of kept) {
    if (count <= maxCount && bytes <= maxBytes) break;
    out.push(key);
    count--;
    bytes -= b;
  }
  return out;
}

/**
 * The decode graph for a model of config `cfg` at `batch` rows and cache `width`,
 * built on first use and kept (its weights are set at the start of each generation), or
 * GraphUnavailable with the reason it could not be built.
 */
export function decodeGraphFor(params: Params, cfg: GptConfig, batch: number, width: number): DecodeGraph | GraphUnavailable {
  const key = JSON.stringify([cfg.vocab_size, cfg.n_layer, cfg.n_head, cfg.d_model, cfg.context_length, [...params.keys()], batch, width]);
  let entry = graphs.get(key);
  if (entry === undefined) {
    const bytes = decodeGraphBytes(params, cfg, batch, width);
    // dropped before building, so the old sessions and the new one are not held at once
    for (const old of graphsToEvict([...graphs].map(([k, e]) => [k, e.bytes]), bytes, MAX_GRAPHS, MAX_GRAPH_BYTES)) {
      const { graph } = graphs.get(old)!;
      if (graph instanceof DecodeGraph) graph.dispose();
      graphs.delete(old);
    }
    let graph: DecodeGraph | GraphUnavailable;
    try {
      graph = DecodeGraph.build(params, cfg, batch, width);
    } catch (err) {
      if (!(err instanceof GraphUnavailable)) throw err;
      graph = err;
    }
    entry = { graph, bytes: graph instanceof DecodeGraph ? bytes : 0 };
  } else {
    graphs.delete(key);
  }
  graphs.set(key, entry);
  return entry.graph;
}
