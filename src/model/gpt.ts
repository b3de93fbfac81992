import { tf, type Tensor, type Tensor1D, type Tensor2D, type Tensor3D, type Tensor4D, type Variable } from '../backend/tf.js';
import type { Rng } from '../util/rng.js';
import { GptConfig, HeadKind, headDim } from './config.js';
import { embed, gelu, layerNorm } from './kernels.js';
import { causalBias } from './masks.js';

/**
 * GPT-2's decoder, written as pure functions over a map of named variables.
 * Names, shapes and orientation follow Hugging Face `GPT2LMHeadModel` (Conv1D
 * weights are [in, out]), so exporting is a renaming-free copy.
 */
export type Params = Map<string, Variable>;

/** Keys and values of every layer for the tokens seen so far: [B, H, T_past, hd]. */
export interface KVCache {
  keys: Tensor4D[];
  values: Tensor4D[];
}

/**
 * A decode step's fixed-width cache: every layer's keys and values for all `width`
 * slots ([B, H, width, hd]). The new token's key and value overwrite the slot
 * `indices` names (one scatter, no whole-cache arithmetic); `keyBias`
 * ([B, 1, 1, width], 0 or −1e9) hides unwritten slots and padding. Shapes never
 * change from step to step, so one traced graph serves a whole generation
 * (src/sample/decode-graph.ts).
 */
export interface SlotCache {
  keys: Tensor4D[];
  values: Tensor4D[];
  /** [B, H, 3] int32: (row, head, slot) for every row and head. */
  indices: Tensor3D;
  keyBias: Tensor4D;
}

export interface ForwardOptions {
  /** [B, T_past + T]: 1 for real tokens, 0 for padding (covers cached tokens too). */
  attentionMask?: Tensor2D;
  /** [B, T]: position of each input token; defaults to T_past … T_past+T−1. */
  positionIds?: Tensor2D;
  /** Past keys/values; when given, the returned cache includes the new tokens. */
  cache?: KVCache;
  /** Return the updated cache (generation). */
  useCache?: boolean;
  /** A fixed-width cache to decode one token into (T = 1); the result's cache is that cache with the token written. */
  slotCache?: SlotCache;
  /** Dropout is active only when training and the config's dropout > 0. */
  training?: boolean;
  dropoutSeed?: number;
}

export interface ForwardResult {
  /** Final-LayerNormed hidden states, [B·T, d] (row-major over batch then time). */
  hidden: Tensor2D;
  cache?: KVCache;
}

export function parameterShapes(cfg: GptConfig, head: HeadKind): Map<string, number[]> {
  const d = cfg.d_model;
  const shapes = new Map<string, number[]>([
    ['wte.weight', [cfg.vocab_size, d]],
    ['wpe.weight', [cfg.context_length, d]],
  ]);
  for (let i = 0; i < cfg.n_layer; i++) {
    const p = `h.${i}.`;
    shapes.set(`${p}ln_1.weight`, [d]).set(`${p}ln_1.bias`, [d]);
    shapes.set(`${p}attn.c_attn.weight`, [d, 3 * d]).set(`${p}attn.c_attn.bias`, [3 * d]);
    shapes.set(`${p}attn.c_proj.weight`, [d, d]).set(`${p}attn.c_proj.bias`, [d]);
    shapes.set(`${p}ln_2.weight`, [d]).set(`${p}ln_2.bias`, [d]);
    shapes.set(`${p}mlp.c_fc.weight`, [d, 4 * d]).set(`${p}mlp.c_fc.bias`, [4 * d]);
    shapes.set(`${p}mlp.c_proj.weight`, [4 * d, d]).set(`${p}mlp.c_proj.bias`, [d]);
  }
  shapes.set('ln_f.weight', [d]).set('ln_f.bias', [d]);
  if (head === 'score') shapes.set('score.weight', [d, 1]).set('score.bias', [1]);
  return shapes;
}

/**
 * GPT-2 initialisation: N(0, 0.02) for weights and embeddings, zeros for biases,
 * ones for LayerNorm gains, and residual projections (`c_proj`) scaled by
 * 1/sqrt(2·n_layer) because each block adds two of them to the residual stream.
 */
export function initParams(cfg: GptConfig, head: HeadKind, rng: Rng): Params {
  validateConfig(cfg);
  const residualStd = 0.02 / Math.sqrt(2 * cfg.n_layer);
  const params: Params = new Map();
  for (const [name, shape] of parameterShapes(cfg, head)) {
    const value = tf.tidy(() => {
      if (/ln_\w+\.weight$|ln_f\.weight$/.test(name)) return tf.ones(shape);
      if (name.endsWith('.bias')) return tf.zeros(shape);
      const std = name.endsWith('c_proj.weight') ? residualStd : 0.02;
      return tf.randomNormal(shape, 0, std, 'float32', rng.seed());
    });
    // tfjs variable names are process-global; several models (policy, reference,
    // value) coexist, so the map key carries the name instead.
    params.set(name, tf.variable(value, true));
    value.dispose();
  }
  return params;
}

export function validateConfig(cfg: GptConfig): void {
  if (cfg.d_model % cfg.n_head !== 0) {
    throw new Error(`model.d_model (${cfg.d_model}) must be divisible by model.n_head (${cfg.n_head})`);
  }
}

export function disposeParams(params: Params): void {
  for (const v of params.values()) v.dispose();
}

function linear(x: Tensor2D, params: Params, prefix: string): Tensor2D {
  return x.matMul(params.get(`${prefix}.weight`)!).add(params.get(`${prefix}.bias`)!) as Tensor2D;
}

class Dropout {
  private calls = 0;
  constructor(
    private readonly rate: number,
    private readonly seed: number | undefined,
  ) {}
  apply<T extends Tensor>(x: T): T {
    if (this.rate <= 0 || this.seed === undefined) return x;
    return tf.dropout(x, this.rate, undefined, this.seed + 7919 * this.calls++) as T;
  }
}

/**
 * Additive attention bias [B or 1, 1, T, T_past + T]: −1e9 where a query may not
 * look (future positions, padding keys). Finite, so a fully masked row (a
 * left-pad query) stays a harmless uniform softmax instead of NaN. Undefined
 * when nothing is masked: a single new token with no padding sees every key.
 */
function attentionBias(T: number, tPast: number, mask: Tensor2D | undefined): Tensor | undefined {
  const causal = T === 1 ? undefined : causalBias(T, tPast);
  if (!mask) return causal;
  const [B, tTotal] = mask.shape;
  const keyPad = tf.sub(1, mask).mul(-1e9).reshape([B, 1, 1, tTotal]);
  return causal ? keyPad.add(causal) : keyPad;
}

export function forward(
  params: Params,
  cfg: GptConfig,
  inputIds: Tensor2D,
  opts: ForwardOptions = {},
): ForwardResult {
  const [B, T] = inputIds.shape;
  const H = cfg.n_head;
  const hd = headDim(cfg);
  const d = cfg.d_model;
  const slots = opts.slotCache;
  if (slots && (T !== 1 || opts.cache)) throw new Error('forward: a slot cache decodes one token at a time, without a growing cache');
  const tPast = opts.cache ? opts.cache.keys[0].shape[2] : 0;
  if (tPast + T > cfg.context_length) {
    throw new Error(`sequence of ${tPast + T} tokens exceeds model.context_length ${cfg.context_length}`);
  }
  const dropout = new Dropout(opts.training ? cfg.dropout : 0, opts.dropoutSeed);

  const positions = opts.positionIds ?? tf.range(tPast, tPast + T, 1, 'int32').reshape([1, T]);
  const tokEmb = embed(params.get('wte.weight')!, inputIds.reshape([B * T]) as Tensor1D);
  const posEmb = embed(params.get('wpe.weight')!, positions.reshape([-1]) as Tensor1D);
  let x = (opts.positionIds ? tokEmb.add(posEmb) : tokEmb.reshape([B, T, d]).add(posEmb).reshape([B * T, d])) as Tensor2D;
  x = dropout.apply(x);

  const bias = slots ? slots.keyBias : attentionBias(T, tPast, opts.attentionMask);
  const scale = 1 / Math.sqrt(hd);
  const newCache: KVCache | undefined = opts.useCache || slots ? { keys: [], values: [] } : undefined;

  for (let i = 0; i < cfg.n_layer; i++) {
    const p = `h.${i}`;
    const a = layerNorm(x, params.get(`${p}.ln_1.weight`)!, params.get(`${p}.ln_1.bias`)!);
    // [B·T, 3d] → [B, 3H, T, hd] → q, k, v each [B, H, T, hd]; with T = 1 the transposes are reshapes (a decode step)
    const fused = linear(a, params, `${p}.attn.c_attn`);
    const qkv = T === 1 ? fused.reshape([B, 3 * H, 1, hd]) : fused.reshape([B, T, 3 * H, hd]).transpose([0, 2, 1, 3]);
    let [q, k, v] = tf.split(qkv, 3, 1) as Tensor4D[];
    if (opts.cache) {
      k = tf.concat([opts.cache.keys[i], k], 2);
      v = tf.concat([opts.cache.values[i], v], 2);
    }
    if (slots) {
      k = tf.tensorScatterUpdate(slots.keys[i], slots.indices, k.reshape([B, H, hd]));
      v = tf.tensorScatterUpdate(slots.values[i], slots.indices, v.reshape([B, H, hd]));
    }
    if (newCache) {
      newCache.keys.push(k);
      newCache.values.push(v);
    }
    const raw = tf.matMul(q.mul(scale), k, false, true);
    const probs = dropout.apply(tf.softmax(bias ? raw.add(bias) : raw));
    const heads = tf.matMul(probs, v);
    const y = (T === 1 ? heads.reshape([B, d]) : heads.transpose([0, 2, 1, 3]).reshape([B * T, d])) as Tensor2D;
    x = x.add(dropout.apply(linear(y, params, `${p}.attn.c_proj`)));

    const m = layerNorm(x, params.get(`${p}.ln_2.weight`)!, params.get(`${p}.ln_2.bias`)!);
    const h = gelu(linear(m, params, `${p}.mlp.c_fc`)) as Tensor2D;
    x = x.add(dropout.apply(linear(h, params, `${p}.mlp.c_proj`)));
  }
  const hidden = layerNorm(x, params.get('ln_f.weight')!, params.get('ln_f.bias')!);
  return { hidden, cache: newCache };
}

/** LM head tied to the token embedding: [N, d] → [N, vocab]. */
export function lmLogits(params: Params, hidden: Tensor2D): Tensor2D {
  return tf.matMul(hidden, params.get('wte.weight')!, false, true);
}

/** Scalar head (reward/value): [N, d] → [N]. */
export function scalarHead(params: Params, hidden: Tensor2D): Tensor1D {
  return linear(hidden, params, 'score').reshape([-1]) as Tensor1D;
}

export function disposeCache(cache: KVCache | undefined): void {
  if (!cache) return;
  tf.dispose([...cache.keys, ...cache.values]);
}
