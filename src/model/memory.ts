import fs from 'node:fs';
import os from 'node:os';
import { ConfigError } from '../config/load.js';
import { countParams, type GptConfig, type HeadKind } from './config.js';

/**
 * Memory a stage needs, estimated before anything is allocated, so a config
 * that cannot fit (`--set model.n_layer=10000`) is refused in one line instead
 * of swapping the machine to a halt. Every tensor is float32.
 */

const FLOAT_BYTES = 4;

/**
 * Upper estimates of what one forward pass keeps alive per token and layer
 * (autodiff's tape, or the tf.tidy scope a generation step runs in), after
 * forward() in gpt.ts and the kernels it calls:
 * - attention, in units of d: ln_1, c_attn's matmul and bias add (3d each),
 *   the q/k/v transpose and split (3d each), the scaled q, the heads and their
 *   transpose, c_proj's matmul and bias add, the residual add, dropout: 20;
 * - attention scores [B, H, T, T], per token H·T each: raw, plus the causal
 *   bias, softmax, dropout: 4 copies;
 * - MLP, in units of d: c_fc's matmul and bias add and GELU's six
 *   intermediates, all 4d wide (32), plus ln_2, c_proj's output and the
 *   residual (4): 36.
 */
const ATTENTION_WIDTH = 20;
const SCORE_COPIES = 4;
const MLP_WIDTH = 36;
/** Per token at the head: the logits, their cross-entropy gradient, and the gradient flowing back (V each). */
const LOGIT_COPIES = 3;
/** Per token at the embeddings: token and position rows and their sum (d each). */
const EMBEDDING_WIDTH = 3;
/** Gradients plus AdamW's two moments, each the size of the parameters. */
const TRAINING_STATE_COPIES = 3;
/**
 * A training step holds the forward's tensors plus the backward's temporaries,
 * which tfjs frees only when the whole gradient computation ends. Measured: peak
 * RSS of `pretrain -c configs/ci.yaml` grows 13.7 MiB per layer at n_layer 100
 * and 200, 2.3× the forward count above; 2.5 keeps the estimate an upper one.
 */
const TRAINING_ACTIVATION_FACTOR = 2.5;
/** Node, TensorFlow and the data before the first tensor (the same runs: about 430 MiB). */
const RUNTIME_BYTES = 512 * 2 ** 20;

export interface MemoryPlan {
  /** Models the stage holds at once; trained ones also carry gradients and AdamW moments. */
  models: { model: GptConfig; head: HeadKind; trained?: boolean }[];
  /** One training micro-batch (rows × tokens), run forward and backward through every trained model. */
  train?: { rows: number; tokens: number };
  /** Generation: `rows` sequences decoded at once by `model` up to its context length. */
  generate?: { model: GptConfig; rows: number };
}

/** Bytes by kind at the stage's peak (activations and KV cache of its larger phase); `total` sums them. */
export interface MemoryEstimate {
  runtime: number;
  params: number;
  optimizer: number;
  activations: number;
  kvCache: number;
  total: number;
}

/** Floats one forward pass over rows × tokens keeps alive. */
function forwardFloats(m: GptConfig, head: HeadKind, rows: number, tokens: number): number {
  const n = rows * tokens;
  const perLayer = n * ((ATTENTION_WIDTH + MLP_WIDTH) * m.d_model + SCORE_COPIES * m.n_head * tokens);
  const headWidth = head === 'lm' ? LOGIT_COPIES * m.vocab_size : LOGIT_COPIES;
  return m.n_layer * perLayer + n * (EMBEDDING_WIDTH * m.d_model + headWidth);
}

/**
 * Peak memory of a stage: the runtime, every model's parameters, training state of the
 * trained ones, and the larger of the two phases' activations: training
 * (forward + backward through each trained model) or generation (the forward
 * over the full context, as the uncached path runs it, plus the KV cache of
 * the previous and the current step).
 */
export function estimateMemory(plan: MemoryPlan): MemoryEstimate {
  let params = 0;
  let optimizer = 0;
  let trainFloats = 0;
  for (const { model, head, trained } of plan.models) {
    const n = countParams(model, head);
    params += n * FLOAT_BYTES;
    if (!trained) continue;
    optimizer += TRAINING_STATE_COPIES * n * FLOAT_BYTES;
    if (plan.train) trainFloats += TRAINING_ACTIVATION_FACTOR * forwardFloats(model, head, plan.train.rows, plan.train.tokens);
  }
  const g = plan.generate;
  const generateBytes = g ? forwardFloats(g.model, 'lm', g.rows, g.model.context_length) * FLOAT_BYTES : 0;
  // keys and values of every layer, for the previous step and the one being built
  const cacheBytes = g ? 2 * (2 * g.model.n_layer * g.rows * g.model.context_length * g.model.d_model) * FLOAT_BYTES : 0;
  const trainBytes = trainFloats * FLOAT_BYTES;
  const [activations, kvCache] = trainBytes >= generateBytes + cacheBytes ? [trainBytes, 0] : [generateBytes, cacheBytes];
  return { runtime: RUNTIME_BYTES, params, optimizer, activations, kvCache, total: RUNTIME_BYTES + params + optimizer + activations + kvCache };
}

export function formatBytes(bytes: number): string {
  const gib = bytes / 2 ** 30;
  return gib >= 1 ? `${gib.toFixed(1)} GiB` : `${Math.ceil(bytes / 2 ** 20)} MiB`;
}

function readNumber(file: string): number | undefined {
  try {
    const n = Number(fs.readFileSync(file, 'utf8').trim());
    return Number.isFinite(n) ? n : undefined; // cgroup v2 writes "max" for no limit
  } catch {
    return undefined;
  }
}

function statField(file: string, field: string): number {
  try {
    const m = new RegExp(`^${field} (\\d+)$`, 'm').exec(fs.readFileSync(file, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/**
 * Room left under this process's cgroup memory limit (v2, else v1), if one is
 * set. Reclaimable page cache (inactive files) counts as room, as Docker and
 * Kubernetes count it.
 */
function cgroupHeadroom(): number | undefined {
  const layouts = [
    { limit: 'memory.max', usage: 'memory.current', stat: 'memory.stat', inactive: 'inactive_file', root: '/sys/fs/cgroup' },
    { limit: 'memory.limit_in_bytes', usage: 'memory.usage_in_bytes', stat: 'memory.stat', inactive: 'total_inactive_file', root: '/sys/fs/cgroup/memory' },
  ];
  for (const l of layouts) {
    const limit = readNumber(`${l.root}/${l.limit}`);
    const usage = readNumber(`${l.root}/${l.usage}`);
    // v1 reports "no limit" as a huge number near 2^63
    if (limit === undefined || usage === undefined || limit >= 2 ** 60) continue;
    return Math.max(0, limit - usage + statField(`${l.root}/${l.stat}`, l.inactive));
  }
  return undefined;
}

/** Memory a new allocation can use: the system's available memory, or less if a cgroup limit is tighter. */
export function availableMemory(): { bytes: number; what: string } {
  const free = os.freemem();
  const cgroup = cgroupHeadroom();
  if (cgroup !== undefined && cgroup < free) return { bytes: cgroup, what: `left under this process's cgroup memory limit` };
  return { bytes: free, what: `available of ${formatBytes(os.totalmem())} total` };
}

/**
 * Refuses a stage whose estimated peak memory exceeds what is available, in
 * one line naming the source (config file or checkpoint), the estimate and
 * its parts. Call before the stage writes anything.
 */
export function checkMemory(source: string, what: string, plan: MemoryPlan, available = availableMemory()): void {
  const e = estimateMemory(plan);
  if (e.total <= available.bytes) return;
  const parts = [
    `runtime ${formatBytes(e.runtime)}`,
    `parameters ${formatBytes(e.params)}`,
    ...(e.optimizer ? [`gradients and AdamW state ${formatBytes(e.optimizer)}`] : []),
    `activations ${formatBytes(e.activations)}`,
    ...(e.kvCache ? [`KV cache ${formatBytes(e.kvCache)}`] : []),
  ];
  throw new ConfigError(
    `${source}: ${what} needs an estimated ${formatBytes(e.total)} of memory (${parts.join(', ')}) but ${formatBytes(available.bytes)} is ${available.what}; use a smaller model or batch`,
  );
}
