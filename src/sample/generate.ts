import { tf, type Tensor2D, type Tensor4D } from '../backend/tf.js';
import type { GptConfig } from '../model/config.js';
import { disposeCache, forward, lmLogits, type KVCache, type Params } from '../model/gpt.js';
import { positionIdsFromMask } from '../model/masks.js';
import { maxOf } from '../util/arrays.js';
import type { Rng } from '../util/rng.js';
import { DecodeGraph, decodeGraphFor, decodeGraphWanted, decodeWidth, type DecodeInputs } from './decode-graph.js';

export interface SamplingOptions {
  maxNewTokens: number;
  /** Softmax temperature; 0 means greedy decoding (argmax), as in Hugging Face and vLLM. */
  temperature: number;
  /** Keep only the k most likely tokens (0 = off). */
  topK: number;
  /** Keep the smallest set of tokens whose probability reaches p (1 = off). */
  topP: number;
  /** Token ids that end a response (included in the output). */
  stopIds: readonly number[];
  /** Incremental decoding with the KV cache (default); false re-runs the whole sequence each token. */
  useCache?: boolean;
}

export interface Generation {
  /** Left-padded prompts followed by the generated tokens, [B, P + N] row-major. */
  prompts: number[][];
  /** Generated tokens per row, up to and including the first stop token. */
  responses: number[][];
  /** Whether each row ended with a stop token. */
  finished: boolean[];
  /** How the decode steps after the prompt ran: one TensorFlow graph each, or eager kernels (also without the cache). */
  decode: 'graph' | 'eager';
  /** Why the graph decode step was not used, when it was wanted. */
  decodeFallback?: string;
}

/**
 * How many `generate` calls in this process decoded through the graph and how many
 * eagerly, and the latest reason the graph was not used: a stage's manifest reports
 * the calls made during its run (`numerics.fast_paths.decode`, src/run/stage.ts).
 */
export const decodeTally: { graph: number; eager: number; fallback?: string } = { graph: 0, eager: 0 };

/** The decode path over the calls between two snapshots of `decodeTally`: undefined if none decoded. */
export function decodePathBetween(before: { graph: number; eager: number }, after: { graph: number; eager: number }): 'graph' | 'eager' | 'mixed' | undefined {
  const graph = after.graph > before.graph;
  const eager = after.eager > before.eager;
  if (graph && eager) return 'mixed';
  return graph ? 'graph' : eager ? 'eager' : undefined;
}

/**
 * Turns logits into a token: temperature, top-k, top-p (nucleus), then one draw
 * from the run's RNG. Done on the host: a [B, V] row is small, and a JS draw
 * keeps sampling bit-reproducible and independent of TensorFlow's RNG.
 * Temperature 0 is greedy: the most likely token (the lowest id on a tie), no draw.
 */
export function sampleToken(logits: Float32Array, opts: Pick<SamplingOptions, 'temperature' | 'topK' | 'topP'>, rng: Rng): number {
  const V = logits.length;
  if (opts.temperature === 0) return argmax(logits);
  let order = Array.from({ length: V }, (_, i) => i);
  let max = -Infinity;
  for (let i = 0; i < V; i++) max = Math.max(max, logits[i]);
  const probs = new Float64Array(V);
  let total = 0;
  for (let i = 0; i < V; i++) total += probs[i] = Math.exp((logits[i] - max) / opts.temperature);
  if (opts.topK > 0 || opts.topP < 1) {
    order.sort((a, b) => probs[b] - probs[a] || a - b);
    if (opts.topK > 0) order = order.slice(0, opts.topK);
    if (opts.topP < 1) {
      let mass = 0;
      const kept: number[] = [];
      for (const i of order) {
        kept.push(i);
        mass += probs[i] / total;
        if (mass >= opts.topP) break;
      }
      order = kept;
    }
    total = order.reduce((s, i) => s + probs[i], 0);
  }
  let u = rng.next() * total;
  for (const i of order) {
    u -= probs[i];
    if (u < 0) return i;
  }
  return order[order.length - 1];
}

function argmax(xs: Float32Array): number {
  let best = 0;
  for (let i = 1; i < xs.length; i++) if (xs[i] > xs[best]) best = i;
  return best;
}

/**
 * Batched sampling from left-padded prompts. Positions skip the padding, so a
 * row decodes exactly as it would alone. Rows that have stopped keep stepping
 * (batch shape stays fixed) but their tokens are discarded.
 */
/** The ids `generate` needs: padding, and tokens that must never be sampled (padding, unknown). */
export interface SpecialIds {
  padId: number;
  unkId?: number;
}

export function generate(params: Params, cfg: GptConfig, promptIds: readonly number[][], specials: SpecialIds, opts: SamplingOptions, rng: Rng): Generation {
  const { padId } = specials;
  // Padding and <unk> are bookkeeping tokens: sampling them would produce text
  // that does not round-trip (and unk would poison comparisons data).
  // GPT-2's vocabulary pads with its end-of-text token: a stop token stays sampleable.
  const banned = [padId, ...(specials.unkId !== undefined ? [specials.unkId] : [])].filter((id) => !opts.stopIds.includes(id));
  const B = promptIds.length;
  const P = maxOf(promptIds.map((p) => p.length));
  if (P === 0) throw new Error('generate: every prompt is empty (prepend a start token)');
  const maxNew = Math.min(opts.maxNewTokens, cfg.context_length - P);
  if (maxNew <= 0) throw new Error(`prompt of ${P} tokens leaves no room in model.context_length ${cfg.context_length}`);
  const rows = promptIds.map((p) => [...Array(P - p.length).fill(padId), ...p]);
  const mask = promptIds.map((p) => [...Array(P - p.length).fill(0), ...Array(p.length).fill(1)]);
  const responses: number[][] = promptIds.map(() => []);
  const finished = promptIds.map(() => false);
  const stop = new Set(opts.stopIds);
  const useCache = opts.useCache ?? true;
  const width = decodeWidth(P + maxNew, cfg.context_length);
  const graph = useCache && maxNew > 1 && decodeGraphWanted() ? decodeGraphFor(params, cfg, B, width) : undefined;
  const decoder = graph instanceof DecodeGraph ? graph : undefined;
  let cache: KVCache | undefined;
  try {
    for (let step = 0; step < maxNew && !finished.every(Boolean); step++) {
      let logits: Tensor2D;
      if (decoder && step > 0) {
        logits = decoder.step(decodeInputs(rows, mask, width)).logits;
      } else {
        const L = rows[0].length;
        const feedFrom = useCache && cache ? L - 1 : 0;
        const T = L - feedFrom;
        logits = tf.tidy(() => {
          const ids = tf.tensor2d(rows.map((r) => r.slice(feedFrom)), undefined, 'int32');
          const flatMask = mask.flat();
          const positions = positionIdsFromMask(flatMask, B, L);
          const fed = new Int32Array(B * T);
          for (let b = 0; b < B; b++) fed.set(positions.subarray(b * L + feedFrom, (b + 1) * L), b * T);
          const out = forward(params, cfg, ids, {
            // an all-ones mask adds exact zeros: leave it out (fewer kernels per step)
            attentionMask: flatMask.includes(0) ? tf.tensor2d(flatMask, [B, L], 'float32') : undefined,
            positionIds: tf.tensor2d(fed, [B, T], 'int32'),
            cache,
            useCache,
          });
          if (decoder) {
            // the decode graph's session cache: the prompt's keys and values, zeros in the slots to come
            const pad = (t: Tensor4D) => tf.pad(t, [[0, 0], [0, 0], [0, width - L], [0, 0]]) as Tensor4D;
            decoder.start(params, { keys: out.cache!.keys.map(pad), values: out.cache!.values.map(pad) });
          } else if (useCache) {
            const prev = cache;
            cache = { keys: out.cache!.keys.map((k) => tf.keep(k)), values: out.cache!.values.map((v) => tf.keep(v)) };
            disposeCache(prev);
          }
          const last = T === 1 ? out.hidden : (out.hidden.reshape([B, T, -1]).slice([0, T - 1, 0], [B, 1, -1]).reshape([B, -1]) as Tensor2D);
          return lmLogits(params, last);
        });
      }
      const data = logits.dataSync() as Float32Array;
      logits.dispose();
      const V = cfg.vocab_size;
      for (const id of banned) for (let b = 0; b < B; b++) data[b * V + id] = -Infinity;
      for (let b = 0; b < B; b++) {
        const token = finished[b] ? padId : sampleToken(data.subarray(b * V, (b + 1) * V), opts, rng);
        rows[b].push(token);
        mask[b].push(finished[b] ? 0 : 1);
        if (!finished[b]) {
          responses[b].push(token);
          if (stop.has(token)) finished[b] = true;
        }
      }
    }
  } finally {
    disposeCache(cache);
  }
  const fallback = graph && !(graph instanceof DecodeGraph) ? graph.message : undefined;
  decodeTally[decoder ? 'graph' : 'eager']++;
  if (fallback) decodeTally.fallback = fallback;
  return { prompts: rows.map((r) => r.slice(0, P)), responses, finished, decode: decoder ? 'graph' : 'eager', ...(fallback ? { decodeFallback: fallback } : {}) };
}

/** The graph decode step's inputs for the newest token of each row: its id and position, its slot, and which slots it may attend to. */
export function decodeInputs(rows: readonly number[][], mask: readonly number[][], width: number): DecodeInputs {
  const B = rows.length;
  const L = rows[0].length;
  const positions = positionIdsFromMask(mask.flat(), B, L);
  const keyBias = new Float32Array(B * width).fill(-1e9);
  for (let b = 0; b < B; b++) for (let s = 0; s < L; s++) if (mask[b][s] !== 0) keyBias[b * width + s] = 0;
  return {
    ids: Int32Array.from(rows, (r) => r[L - 1]),
    positions: Int32Array.from({ length: B }, (_, b) => positions[b * L + L - 1]),
    slot: L - 1,
    keyBias,
  };
}
