import { tf, type Scalar, type Tensor, type Variable } from '../backend/tf.js';
import { buildGraphDef, type BuiltGraph, type Endpoint } from '../graph/graphdef.js';
import { GraphFunction } from '../graph/session.js';
import { readTensor, tensorId, traceOps } from '../graph/trace.js';
import type { GptConfig } from '../model/config.js';
import type { Params } from '../model/gpt.js';
import { AdamW } from './adamw.js';
import { globalNorm } from './clip.js';
import { lmBatchTensors, lmTensorLoss, type LmBatch, type LmBatchTensors } from './lm-loss.js';
import { summedGradients, type StepResult } from './step.js';

/**
 * The language-model training step (`optimizerStep` over `lmBatchLoss`
 * micro-batches) run as one TensorFlow graph. The graph is traced from the same
 * TypeScript code the eager step runs — forward, tfjs's own gradients, global-norm
 * clipping, AdamW — so there is no second definition of the model: one eager run
 * of the step on throwaway copies of the parameters is recorded op by op
 * (src/graph/trace.ts) and loaded as a SavedModel, and each later step is a single
 * TF_SessionRun instead of ~1,000 eager dispatches.
 *
 * Everything that changes from step to step is a graph input: parameters and
 * AdamW moments (fed, and fetched back after the update), the batch, and AdamW's
 * host-computed scalars (step size, ε̂, decay factor). The clip factor, which the
 * eager step reads back to the host, is computed in the graph (float32 instead of
 * float64: results agree to ~1e-7 relative). A second trace at other inputs must
 * give the identical graph, so no per-step host value can hide in a constant.
 */

/** Why a graph step could not be built (the eager step then runs). */
export class GraphStepUnavailable extends Error {}

const SCALARS = ['step_size', 'eps_hat', 'keep'] as const;

/** Largest |graph − eager| the build-time check accepts in any loss, norm, parameter or moment after one step. */
const SELF_CHECK_TOLERANCE = 1e-4;

/**
 * How much of the step a graph holds: all of it, or (to time the phases of the
 * graph step, `npm run bench`) only up to the loss or to the gradients' norm.
 */
export type StepPart = 'step' | 'gradients' | 'loss';

/** The batch shapes of one step: one entry per micro-batch. */
export type StepShape = ReadonlyArray<{ B: number; T: number; weights: boolean }>;

export function stepShapeOf(batches: readonly LmBatch[]): StepShape {
  return batches.map((b) => ({ B: b.B, T: b.T, weights: b.weights !== undefined }));
}

export function sameStepShape(a: StepShape, b: StepShape): boolean {
  return a.length === b.length && a.every((s, i) => s.B === b[i].B && s.T === b[i].T && s.weights === b[i].weights);
}

/** The device side of `optimizerStep`: gradients summed over micro-batches, clip factor and AdamW in tensors. */
function deviceStep(
  params: Params,
  optimizer: AdamW,
  cfg: GptConfig,
  batches: readonly LmBatchTensors[],
  maxGradNorm: number,
  scalars: Record<(typeof SCALARS)[number], Scalar>,
  upTo: StepPart,
): { lossSum: Scalar; normOfSum?: Scalar } {
  if (upTo === 'loss') {
    const losses = batches.map((b) => lmTensorLoss(params, cfg, b, true));
    return { lossSum: tf.tidy(() => (losses.length === 1 ? losses[0] : (tf.addN(losses) as Scalar))) };
  }
  const { sum, losses } = summedGradients(
    params,
    batches.map((b) => () => lmTensorLoss(params, cfg, b, true)),
  );
  try {
    const n = batches.length;
    const normOfSum = globalNorm(sum);
    const lossSum = losses.length === 1 ? tf.clone(losses[0]) : (tf.addN(losses) as Scalar);
    if (upTo === 'gradients') return { lossSum, normOfSum };
    tf.tidy(() => {
      // clipScale() as tensor ops: min(max / (‖g‖/n + 1e-6), 1), folded with the 1/n average.
      const clip = maxGradNorm > 0 ? tf.minimum(tf.div(maxGradNorm, tf.add(tf.div(normOfSum, n), 1e-6)), 1) : tf.scalar(1);
      optimizer.applyScalars(sum, {
        stepSize: scalars.step_size,
        epsHat: scalars.eps_hat,
        keep: scalars.keep,
        gradScale: tf.div(clip, n),
      });
    });
    return { lossSum, normOfSum };
  } finally {
    tf.dispose(sum);
    tf.dispose(losses);
  }
}

/** Largest |graph − eager| over every fetch, both fed the inputs of trace variant 0 (fresh moments). */
function selfCheck(fn: GraphFunction, traced: TracedStep, params: Params, optimizer: AdamW, cfg: GptConfig, shape: StepShape): number {
  const fresh = new AdamW(params, optimizer.options); // zero moments, like the trace's optimiser; params are only read
  const { batches, scalars } = traceInputs(fresh, cfg, shape, 0);
  const vars = [...params.values(), ...fresh.stateVariables];
  const feeds: Record<string, Tensor> = { ...scalars };
  vars.forEach((v, i) => (feeds[i < params.size ? `p${i}` : `s${i - params.size}`] = v));
  batches.forEach((b, k) => {
    feeds[`x${k}`] = b.x;
    feeds[`y${k}`] = b.y;
    if (b.weights) feeds[`w${k}`] = b.weights;
  });
  const out = fn.run(feeds);
  let worst = 0;
  for (const [key, want] of traced.eager) {
    const got = out[key].dataSync();
    for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]));
  }
  tf.dispose([...Object.values(out), ...batches.flatMap((b) => [b.x, b.y, ...(b.weights ? [b.weights] : [])]), ...Object.values(scalars)]);
  fresh.dispose();
  return Number.isNaN(worst) ? Infinity : worst;
}

/** Valid placeholder batches of a step shape (token 0 everywhere, every weight 1): tracing needs values, not these. */
function exampleBatches(shape: StepShape, fill: number): LmBatch[] {
  return shape.map(({ B, T, weights }) => ({
    B,
    T,
    x: new Int32Array(B * T).fill(fill),
    y: new Int32Array(B * T).fill(fill),
    weights: weights ? new Float32Array(B * T).fill(1) : undefined,
  }));
}

function batchEndpoints(ts: readonly LmBatchTensors[]): Endpoint[] {
  return ts.flatMap((t, k) => [
    { key: `x${k}`, id: tensorId(t.x) },
    { key: `y${k}`, id: tensorId(t.y) },
    ...(t.weights ? [{ key: `w${k}`, id: tensorId(t.weights) }] : []),
  ]);
}

/**
 * Traces one step on copies of `params` (sharing their data, never written) and
 * a fresh optimiser with `optimizer`'s settings, at the given host scalars and
 * batch contents. Feeds: p<i> parameters, s<i> moments, batch, scalars; fetches:
 * the same parameters and moments after the update, `loss_sum`, `norm_of_sum`.
 */
interface TracedStep {
  built: BuiltGraph;
  /** What the eager run computed for each fetch, to check the loaded graph against. */
  eager: Map<string, Float32Array>;
}

/** The trace's inputs for `variant` (batch contents and AdamW scalars differ between variants). */
function traceInputs(optimizer: AdamW, cfg: GptConfig, shape: StepShape, variant: number) {
  const batches = exampleBatches(shape, variant % Math.max(1, cfg.vocab_size)).map(lmBatchTensors);
  const s = optimizer.stepScalars(1e-3 * (1 + variant));
  const scalars = { step_size: tf.scalar(s.stepSize), eps_hat: tf.scalar(s.epsHat * (1 + variant)), keep: tf.scalar(s.keep) };
  return { batches, scalars };
}

function traceStep(params: Params, optimizer: AdamW, cfg: GptConfig, shape: StepShape, maxGradNorm: number, variant: number, upTo: StepPart): TracedStep {
  const copies: Params = new Map([...params].map(([n, v]) => [n, tf.variable(v, true)]));
  const opt = new AdamW(copies, optimizer.options);
  const { batches, scalars } = traceInputs(opt, cfg, shape, variant);
  const vars = () => [...copies.values(), ...opt.stateVariables];
  let out: { lossSum: Scalar; normOfSum?: Scalar } | undefined;
  try {
    const feeds: Endpoint[] = [
      ...vars().map((v, i) => ({ key: i < copies.size ? `p${i}` : `s${i - copies.size}`, id: tensorId(v) })),
      ...batchEndpoints(batches),
      ...SCALARS.map((k) => ({ key: k, id: tensorId(scalars[k]) })),
    ];
    const { result, trace } = traceOps(() => deviceStep(copies, opt, cfg, batches, maxGradNorm, scalars, upTo));
    out = result;
    const fetches: Endpoint[] = [
      ...(upTo === 'step' ? vars().map((v, i) => ({ key: i < copies.size ? `p${i}` : `s${i - copies.size}`, id: tensorId(v) })) : []),
      { key: 'loss_sum', id: tensorId(out.lossSum) },
      ...(out.normOfSum ? [{ key: 'norm_of_sum', id: tensorId(out.normOfSum) }] : []),
    ];
    const built = buildGraphDef(trace, feeds, fetches, readTensor);
    return { built, eager: new Map(fetches.map((f) => [f.key, Float32Array.from(readTensor(f.id))])) };
  } finally {
    if (out) tf.dispose([out.lossSum, ...(out.normOfSum ? [out.normOfSum] : [])]);
    tf.dispose(batches.flatMap((b) => [b.x, b.y, ...(b.weights ? [b.weights] : [])]));
    tf.dispose(Object.values(scalars));
    opt.dispose();
    for (const v of copies.values()) v.dispose();
  }
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

export class GraphLmStep {
  /** Wall time of the last `run`'s TF_SessionRun (tfjs-node's predict), without feeding, read-back and assignment. */
  lastSessionMs = 0;

  private constructor(
    private readonly fn: GraphFunction,
    readonly shape: StepShape,
    readonly upTo: StepPart,
  ) {}

  /** Number of nodes in the step's graph. */
  get nodes(): number {
    return this.fn.graph.nodes;
  }

  /**
   * Traces and loads the step for batches of `shape`, then runs the loaded graph
   * once on the first trace's inputs and compares every output with what the eager
   * run computed. Throws GraphStepUnavailable (with the reason) where the graph
   * cannot reproduce the eager step: dropout (its masks are drawn on the host per
   * step), a host read-back inside the step, a host value that differs between two
   * traces, a graph TensorFlow will not load, or a self-check difference ≥ 1e-4.
   */
  static async build(
    params: Params,
    optimizer: AdamW,
    cfg: GptConfig,
    shape: StepShape,
    maxGradNorm: number,
    upTo: StepPart = 'step',
  ): Promise<GraphLmStep> {
    if (tf.getBackend() !== 'tensorflow') throw new GraphStepUnavailable('the graph step needs the native TensorFlow backend');
    if (cfg.dropout > 0) throw new GraphStepUnavailable('dropout masks are drawn on the host per step');
    let first: TracedStep;
    let second: TracedStep;
    try {
      first = traceStep(params, optimizer, cfg, shape, maxGradNorm, 0, upTo);
      second = traceStep(params, optimizer, cfg, shape, maxGradNorm, 1, upTo);
    } catch (err) {
      throw new GraphStepUnavailable(`tracing failed: ${(err as Error).message}`);
    }
    if (!equalBytes(first.built.bytes, second.built.bytes)) {
      throw new GraphStepUnavailable('two traces at different inputs gave different graphs (a per-step host value would be baked in)');
    }
    let fn: GraphFunction;
    try {
      fn = await GraphFunction.load(first.built);
    } catch (err) {
      throw new GraphStepUnavailable(`TensorFlow did not load the traced graph: ${(err as Error).message.split('\n')[0]}`);
    }
    const worst = selfCheck(fn, first, params, optimizer, cfg, shape);
    if (!(worst < SELF_CHECK_TOLERANCE)) {
      fn.dispose();
      throw new GraphStepUnavailable(`the graph's first step differs from the eager step by ${worst} (tolerance ${SELF_CHECK_TOLERANCE})`);
    }
    return new GraphLmStep(fn, shape, upTo);
  }

  /**
   * One optimiser step on `batches` (shaped like `this.shape`) at learning rate
   * `lr`: the same update as `optimizerStep(params, optimizer, batches.map(lmBatchLoss), lr, maxGradNorm)`.
   * A non-finite gradient norm leaves parameters and optimiser untouched, as there.
   * A partial graph (`upTo` 'loss' or 'gradients') updates nothing (gradNorm NaN without gradients).
   */
  run(params: Params, optimizer: AdamW, batches: readonly LmBatch[], lr: number): StepResult {
    if (!sameStepShape(stepShapeOf(batches), this.shape)) throw new RangeError('GraphLmStep.run: batches do not match the traced shape');
    if (!(Number.isFinite(lr) && lr >= 0)) throw new RangeError(`GraphLmStep.run: lr must be a finite number >= 0 (got ${lr})`);
    const s = optimizer.stepScalars(lr);
    const vars: Variable[] = [...params.values(), ...optimizer.stateVariables];
    const np = params.size;
    const key = (i: number) => (i < np ? `p${i}` : `s${i - np}`);
    const owned: Tensor[] = [];
    const feeds: Record<string, Tensor> = {};
    vars.forEach((v, i) => (feeds[key(i)] = v));
    batches.forEach((b, k) => {
      const t = lmBatchTensors(b);
      owned.push(t.x, t.y);
      feeds[`x${k}`] = t.x;
      feeds[`y${k}`] = t.y;
      if (t.weights) owned.push((feeds[`w${k}`] = t.weights));
    });
    owned.push((feeds.step_size = tf.scalar(s.stepSize)), (feeds.eps_hat = tf.scalar(s.epsHat)), (feeds.keep = tf.scalar(s.keep)));
    let out: Record<string, Tensor>;
    const t0 = performance.now();
    try {
      out = this.fn.run(feeds);
    } finally {
      this.lastSessionMs = performance.now() - t0;
      tf.dispose(owned);
    }
    const n = batches.length;
    const normOfSum = out.norm_of_sum ? out.norm_of_sum.dataSync()[0] : NaN;
    const lossSum = out.loss_sum.dataSync()[0];
    if (this.upTo === 'step' && Number.isFinite(normOfSum)) {
      vars.forEach((v, i) => v.assign(out[key(i)]));
      optimizer.countStep();
    }
    tf.dispose(Object.values(out));
    return { loss: lossSum / n, gradNorm: normOfSum / n };
  }

  dispose(): void {
    this.fn.dispose();
  }
}
