import { tf, type Scalar, type Tensor, type Variable } from '../backend/tf.js';
import { GraphUnavailable, loadChecked, type TracedGraph } from '../graph/checked-graph.js';
import { buildGraphDef, type Endpoint } from '../graph/graphdef.js';
import type { GraphFunction } from '../graph/session.js';
import { readTensor, tensorId, traceOps } from '../graph/trace.js';
import type { Params } from '../model/gpt.js';
import { AdamW } from './adamw.js';
import { globalNorm } from './clip.js';
import { optimizerStep, summedGradients, type StepResult } from './step.js';

/**
 * One optimiser step over a caller-given loss, run as one TensorFlow graph. The
 * graph is traced from the same TypeScript code the eager step runs — the loss,
 * tfjs's own gradients, global-norm clipping, AdamW — so nothing is defined
 * twice: one eager run of the step on throwaway copies of the parameters is
 * recorded op by op (src/graph/trace.ts) and loaded as a SavedModel, and each
 * later step is a single TF_SessionRun instead of ~1,000 eager dispatches.
 *
 * A step is a list of micro-batches, each a set of named host arrays (`MicroInputs`)
 * and a loss over their tensors (`MicroLoss`), which may also return a vector of
 * statistics to fetch (PPO's clipfrac, approx-KL, …). Everything that changes from
 * step to step is a graph input: parameters and AdamW moments (fed, and fetched back
 * after the update), the micro-batches, and AdamW's host-computed scalars (step size,
 * ε̂, decay factor). The clip factor, which the eager step reads back to the host, is
 * computed in the graph (float32 instead of float64: results agree to ~1e-7
 * relative). A second trace at other inputs must give the identical graph, so no
 * per-step host value can hide in a constant.
 */

/** A host array and its shape (dtype: float32 for Float32Array, int32 for Int32Array). */
export interface HostInput {
  values: Float32Array | Int32Array;
  shape: number[];
}

/** One micro-batch's inputs by name. */
export type MicroInputs = Readonly<Record<string, HostInput>>;

/**
 * A micro-batch's loss from its inputs on the device, and optionally a 1-D vector of
 * statistics (same length for every micro-batch). Must depend on nothing but
 * `params`, `inputs` and constants: a traced graph keeps whatever else it read.
 */
export type MicroLoss = (params: Params, inputs: Record<string, Tensor>) => { loss: Scalar; stats?: Tensor };

export interface StepOutcome extends StepResult {
  /** The loss's statistics vector of each micro-batch (empty if it returns none). */
  stats: Float32Array[];
}

/**
 * How much of the step a graph holds: all of it, or (to time the phases of the
 * graph step, `npm run bench`) only up to the loss or to the gradients' norm.
 */
export type StepPart = 'step' | 'gradients' | 'loss';

const SCALARS = ['step_size', 'eps_hat', 'keep'] as const;

/** Largest |graph − eager| the build-time check accepts in any loss, norm, statistic, parameter or moment after one step. */
const SELF_CHECK_TOLERANCE = 1e-4;

/** A micro-batch's host arrays as tensors (the caller disposes them). */
export function upload(inputs: MicroInputs): Record<string, Tensor> {
  return Object.fromEntries(Object.entries(inputs).map(([k, h]) => [k, tf.tensor(h.values, h.shape)]));
}

/** What identifies the graph a step needs: every micro-batch's input names, dtypes and shapes. */
export function stepKey(micro: readonly MicroInputs[]): string {
  return JSON.stringify(micro.map((m) => Object.entries(m).map(([k, h]) => [k, h.values instanceof Int32Array ? 'i' : 'f', h.shape])));
}

/**
 * The second trace's inputs: same shapes, other values that stay valid — integer
 * arrays (token ids, positions) rotated by one element, floats mapped x → x/2 + 1/4.
 */
export function perturbInputs(micro: readonly MicroInputs[]): MicroInputs[] {
  return micro.map((m) =>
    Object.fromEntries(
      Object.entries(m).map(([k, h]) => {
        const v = h.values;
        const values = v instanceof Int32Array ? Int32Array.from(v, (_, i) => v[(i + 1) % v.length]) : Float32Array.from(v, (x) => x / 2 + 0.25);
        return [k, { values, shape: h.shape }];
      }),
    ),
  );
}

/**
 * The eager reference step: `optimizerStep` over the loss of each micro-batch, statistics read back afterwards.
 * `loss` may be one per micro-batch (a loss with dropout closes over its micro-batch's seed).
 */
export function eagerStep(params: Params, optimizer: AdamW, maxGradNorm: number, loss: MicroLoss | readonly MicroLoss[], micro: readonly MicroInputs[], lr: number): StepOutcome {
  const kept: Tensor[] = [];
  try {
    const closures = micro.map((m, k) => (): Scalar => {
      const out = (typeof loss === 'function' ? loss : loss[k])(params, upload(m));
      if (out.stats) kept.push(tf.keep(out.stats));
      return out.loss;
    });
    const result = optimizerStep(params, optimizer, closures, lr, maxGradNorm);
    return { ...result, stats: kept.map((t) => Float32Array.from(t.dataSync())) };
  } finally {
    tf.dispose(kept);
  }
}

interface DeviceOut {
  lossSum: Scalar;
  normOfSum?: Scalar;
  stats?: Tensor;
}

/** The device side of `optimizerStep`: gradients summed over micro-batches, clip factor and AdamW in tensors. */
function deviceStep(
  params: Params,
  optimizer: AdamW,
  maxGradNorm: number,
  loss: MicroLoss,
  inputs: readonly Record<string, Tensor>[],
  scalars: Record<(typeof SCALARS)[number], Scalar>,
  upTo: StepPart,
): DeviceOut {
  const stats: Tensor[] = [];
  const lossOf = (t: Record<string, Tensor>) => (): Scalar => {
    const out = loss(params, t);
    if (out.stats) stats.push(tf.keep(out.stats));
    return out.loss;
  };
  const stacked = (): Tensor | undefined => (stats.length ? tf.stack(stats) : undefined);
  try {
    if (upTo === 'loss') {
      const losses = inputs.map((t) => tf.tidy(lossOf(t)));
      return { lossSum: tf.tidy(() => (losses.length === 1 ? losses[0] : (tf.addN(losses) as Scalar))), stats: stacked() };
    }
    const { sum, losses } = summedGradients(params, inputs.map(lossOf));
    try {
      const n = inputs.length;
      const normOfSum = globalNorm(sum);
      const lossSum = losses.length === 1 ? tf.clone(losses[0]) : (tf.addN(losses) as Scalar);
      if (upTo === 'step') {
        tf.tidy(() => {
          // clipScale() as tensor ops: min(max / (‖g‖/n + 1e-6), 1), folded with the 1/n average.
          const clip = maxGradNorm > 0 ? tf.minimum(tf.div(maxGradNorm, tf.add(tf.div(normOfSum, n), 1e-6)), 1) : tf.scalar(1);
          optimizer.applyScalars(sum, { stepSize: scalars.step_size, epsHat: scalars.eps_hat, keep: scalars.keep, gradScale: tf.div(clip, n) });
        });
      }
      return { lossSum, normOfSum, stats: stacked() };
    } finally {
      tf.dispose(sum);
      tf.dispose(losses);
    }
  } finally {
    tf.dispose(stats);
  }
}

/**
 * AdamW's host scalars for a trace: those of a first step, scaled per variant so a
 * baked-in value would show. ε̂ is 1e-3, not ε·c: a gradient that is zero in exact
 * arithmetic (an attention key bias) is float noise, which Adam's first step with a
 * tiny ε would turn into a full-size step of noise-given sign in both the graph and
 * the eager run; the check compares the computation, not that noise.
 */
function traceScalars(optimizer: AdamW, variant: number): Record<(typeof SCALARS)[number], Scalar> {
  const s = optimizer.stepScalars(1e-3 * (1 + variant));
  return { step_size: tf.scalar(s.stepSize), eps_hat: tf.scalar(1e-3 * (1 + variant)), keep: tf.scalar(s.keep) };
}

const varKey = (i: number, np: number) => (i < np ? `p${i}` : `s${i - np}`);
const inputKey = (k: number, name: string) => `m${k}_${name}`;

/**
 * Traces one step on copies of `params` (sharing their data, never written) and a
 * fresh optimiser with `optimizer`'s settings, at `micro`. Feeds: p<i> parameters,
 * s<i> moments, m<k>_<name> inputs, AdamW scalars; fetches: the same parameters and
 * moments after the update, `loss_sum`, `norm_of_sum`, `stats` ([micro-batches, S]).
 */
function traceStep(params: Params, optimizer: AdamW, maxGradNorm: number, loss: MicroLoss, micro: readonly MicroInputs[], variant: number, upTo: StepPart): TracedGraph {
  const copies: Params = new Map([...params].map(([n, v]) => [n, tf.variable(v, true)]));
  const opt = new AdamW(copies, optimizer.options);
  const inputs = micro.map(upload);
  const scalars = traceScalars(opt, variant);
  const vars = () => [...copies.values(), ...opt.stateVariables];
  let out: DeviceOut | undefined;
  try {
    const feeds: Endpoint[] = [
      ...vars().map((v, i) => ({ key: varKey(i, copies.size), id: tensorId(v) })),
      ...inputs.flatMap((t, k) => Object.entries(t).map(([name, x]) => ({ key: inputKey(k, name), id: tensorId(x) }))),
      ...SCALARS.map((k) => ({ key: k, id: tensorId(scalars[k]) })),
    ];
    const { result, trace } = traceOps(() => deviceStep(copies, opt, maxGradNorm, loss, inputs, scalars, upTo));
    out = result;
    const fetches: Endpoint[] = [
      ...(upTo === 'step' ? vars().map((v, i) => ({ key: varKey(i, copies.size), id: tensorId(v) })) : []),
      { key: 'loss_sum', id: tensorId(out.lossSum) },
      ...(out.normOfSum ? [{ key: 'norm_of_sum', id: tensorId(out.normOfSum) }] : []),
      ...(out.stats ? [{ key: 'stats', id: tensorId(out.stats) }] : []),
    ];
    const built = buildGraphDef(trace, feeds, fetches, readTensor);
    return { built, eager: new Map(fetches.map((f) => [f.key, Float32Array.from(readTensor(f.id))])) };
  } finally {
    if (out) tf.dispose([out.lossSum, ...(out.normOfSum ? [out.normOfSum] : []), ...(out.stats ? [out.stats] : [])]);
    tf.dispose(inputs.flatMap((t) => Object.values(t)));
    tf.dispose(Object.values(scalars));
    opt.dispose();
    for (const v of copies.values()) v.dispose();
  }
}

/** One TF_SessionRun of a step graph at the given state, inputs and scalars: every fetch (the caller disposes them) and the run's wall time. */
function session(fn: GraphFunction, params: Params, optimizer: AdamW, micro: readonly MicroInputs[], scalars: Record<string, Tensor>): { out: Record<string, Tensor>; ms: number } {
  const feeds: Record<string, Tensor> = { ...scalars };
  [...params.values(), ...optimizer.stateVariables].forEach((v, i) => (feeds[varKey(i, params.size)] = v));
  const owned: Tensor[] = [];
  micro.forEach((m, k) => {
    // Only the inputs the graph reads (the loss may ignore some) are uploaded.
    for (const [name, h] of Object.entries(m)) {
      const key = inputKey(k, name);
      if (fn.graph.inputs.some((p) => p.key === key)) owned.push((feeds[key] = tf.tensor(h.values, h.shape)));
    }
  });
  const t0 = performance.now();
  try {
    return { out: fn.run(feeds), ms: performance.now() - t0 };
  } finally {
    tf.dispose(owned);
  }
}

export class TracedStep {
  /** Wall time of the last `run`'s TF_SessionRun (tfjs-node's predict), without feeding, read-back and assignment. */
  lastSessionMs = 0;

  private constructor(
    private readonly fn: GraphFunction,
    readonly key: string,
    readonly upTo: StepPart,
  ) {}

  /** Number of nodes in the step's graph. */
  get nodes(): number {
    return this.fn.graph.nodes;
  }

  /**
   * Traces and loads the step for micro-batches shaped like `example`, then runs the
   * loaded graph once on `example` and compares every output with what the eager run
   * computed. Throws GraphUnavailable (with the reason) where the graph cannot
   * reproduce the eager step: a host read-back inside the step, a host value that
   * differs between two traces, a graph TensorFlow will not load, or a self-check
   * difference ≥ 1e-4.
   */
  static async build(params: Params, optimizer: AdamW, maxGradNorm: number, loss: MicroLoss, example: readonly MicroInputs[], upTo: StepPart = 'step'): Promise<TracedStep> {
    if (tf.getBackend() !== 'tensorflow') throw new GraphUnavailable('the graph step needs the native TensorFlow backend');
    let first: TracedGraph;
    let second: TracedGraph;
    try {
      first = traceStep(params, optimizer, maxGradNorm, loss, example, 0, upTo);
      second = traceStep(params, optimizer, maxGradNorm, loss, perturbInputs(example), 1, upTo);
    } catch (err) {
      throw new GraphUnavailable(`tracing failed: ${(err as Error).message}`);
    }
    // The check feeds the inputs of trace variant 0 with fresh moments, like the trace's optimiser; params are only read.
    const fresh = new AdamW(params, optimizer.options);
    const scalars = traceScalars(fresh, 0);
    try {
      const fn = loadChecked(first, second, (f) => session(f, params, fresh, example, scalars).out, SELF_CHECK_TOLERANCE);
      return new TracedStep(fn, stepKey(example), upTo);
    } finally {
      tf.dispose(Object.values(scalars));
      fresh.dispose();
    }
  }

  /**
   * One optimiser step on `micro` (shaped like the traced example) at learning rate
   * `lr`: the same update as `eagerStep`. A non-finite gradient norm leaves
   * parameters and optimiser untouched, as there. A partial graph (`upTo` 'loss' or
   * 'gradients') updates nothing (gradNorm NaN without gradients).
   */
  run(params: Params, optimizer: AdamW, micro: readonly MicroInputs[], lr: number): StepOutcome {
    if (stepKey(micro) !== this.key) throw new RangeError('TracedStep.run: inputs do not match the traced shapes');
    if (!(Number.isFinite(lr) && lr >= 0)) throw new RangeError(`TracedStep.run: lr must be a finite number >= 0 (got ${lr})`);
    const s = optimizer.stepScalars(lr);
    const scalars = { step_size: tf.scalar(s.stepSize), eps_hat: tf.scalar(s.epsHat), keep: tf.scalar(s.keep) };
    let out: Record<string, Tensor>;
    try {
      const run = session(this.fn, params, optimizer, micro, scalars);
      out = run.out;
      this.lastSessionMs = run.ms;
    } finally {
      tf.dispose(Object.values(scalars));
    }
    const n = micro.length;
    const normOfSum = out.norm_of_sum ? out.norm_of_sum.dataSync()[0] : NaN;
    const lossSum = out.loss_sum.dataSync()[0];
    const flat = out.stats ? Float32Array.from(out.stats.dataSync()) : new Float32Array(0);
    const width = flat.length / n;
    const stats = out.stats ? Array.from({ length: n }, (_, k) => flat.slice(k * width, (k + 1) * width)) : [];
    if (this.upTo === 'step' && Number.isFinite(normOfSum)) {
      const vars: Variable[] = [...params.values(), ...optimizer.stateVariables];
      vars.forEach((v, i) => v.assign(out[varKey(i, params.size)]));
      optimizer.countStep();
    }
    tf.dispose(Object.values(out));
    return { loss: lossSum / n, gradNorm: normOfSum / n, stats };
  }

  dispose(): void {
    this.fn.dispose();
  }
}
