import { tf, type Scalar, type Tensor, type Variable } from '../backend/tf.js';
import { GraphUnavailable } from '../graph/checked-graph.js';
import { trainFlopsPerToken } from '../model/config.js';
import { initParams, disposeParams, type Params } from '../model/gpt.js';
import { AdamW } from '../train/adamw.js';
import { clipScale, globalNorm } from '../train/clip.js';
import { GraphLmStep } from '../train/graph-step.js';
import { lmBatchLoss, type LmBatch } from '../train/lm-loss.js';
import { optimizerStep } from '../train/step.js';
import { Rng } from '../util/rng.js';
import { aggregate, profileKernels, totalMs, type KernelRecord, type OpRow } from './opprofile.js';
import type { BenchShape } from './shapes.js';

/** The reference's optimiser settings (torch_gpt_bench.py): AdamW lr 1e-3, wd 0.1, clip 1.0. */
const LR = 1e-3;
const WEIGHT_DECAY = 0.1;
const CLIP = 1.0;

export interface PhaseTimes {
  /** Forward + loss, tape off (as in evaluation). */
  forward: number;
  /** `tf.variableGrads` minus the tape-off forward: backward + the tape's own cost. */
  backward: number;
  /** Global grad norm and its read-back (needed for clipping). */
  clip: number;
  /** `AdamW.apply`. */
  adamw: number;
  /** The rest of a timed `optimizerStep`: batch upload, gradient accumulator, loss read-back. */
  other: number;
}

export interface PhaseOps {
  /** Kernel calls and kernel milliseconds (time inside TensorFlow calls) per phase, per profiled step. */
  forward: { calls: number; kernelMs: number };
  backward: { calls: number; kernelMs: number };
  clip: { calls: number; kernelMs: number };
  adamw: { calls: number; kernelMs: number };
  /** Wall time of a profiled step (variableGrads + norm + AdamW), to set the kernel time against. */
  profiledWallMs: number;
}

/** The same training step as one TensorFlow graph (src/train/graph-step.ts), timed in alternation with the eager one. */
export interface GraphTrainResult {
  msPerStep: number;
  msMedian: number;
  tokensPerS: number;
  /** Trace twice, load, self-check. */
  buildMs: number;
  nodes: number;
  /** Mean ms/step of each alternating round: [eager, graph]. */
  rounds: Array<[number, number]>;
  /**
   * Medians over instrumented steps, from graphs that stop after the loss and after
   * the gradient norm: forward (loss graph), backward (gradients graph − loss graph,
   * includes the norm), optimizer (whole step − gradients graph: clip factor, AdamW),
   * host (a `run`'s wall time − its TF_SessionRun: batch upload, feeds, read-back, assignment).
   */
  phases: { forward: number; backward: number; optimizer: number; host: number };
}

export interface TrainResult {
  params: number;
  steps: number;
  warmup: number;
  tokensPerStep: number;
  /** Mean over the timed steps (the reference's definition). */
  msPerStep: number;
  msMedian: number;
  msMin: number;
  msMax: number;
  tokensPerS: number;
  gflops: number;
  /** Medians over the instrumented steps (ms). */
  phases: PhaseTimes;
  ops: PhaseOps;
  /** Per-kernel rows of one whole step (forward+backward+clip+AdamW), when profiled. */
  stepByKernel: OpRow[];
  stepByShape: OpRow[];
  backwardByKernel: OpRow[];
  profileRuns: number;
  /** Tensors left alive by the timed loop (should be 0). */
  leakedTensors: number;
  graph?: GraphTrainResult;
  /** Why the graph step could not be built. */
  graphUnavailable?: string;
}

export interface TrainOptions {
  steps: number;
  warmup: number;
  /** Instrumented steps for the phase split. */
  phaseSteps: number;
  /** Profiled steps for the per-kernel tables (≥ 1: the kernel counts are always reported). */
  profileRuns: number;
  seed: number;
  /** Alternating eager/graph rounds (0: eager only). */
  graphRounds: number;
}

interface Batch {
  x: Int32Array;
  y: Int32Array;
}

function randomBatch(rng: Rng, n: number, vocab: number): Batch {
  const x = new Int32Array(n);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    x[i] = rng.int(vocab);
    y[i] = rng.int(vocab);
  }
  return { x, y };
}

/** The pretraining loss on one [B, T] batch, as a closure for `variableGrads` (the loss the graph step traces). */
function lossClosure(params: Params, shape: BenchShape, b: LmBatch): () => Scalar {
  return () => lmBatchLoss(params, shape.cfg, b, true);
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Gradients of `variableGrads` (keyed by tf variable name) re-keyed by parameter name. */
function byParamName(params: Params, grads: Record<string, Tensor>): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const [name, v] of params) out.set(name, grads[v.name]);
  return out;
}

/** One step split into phases, each timed on its own (TensorFlow eager is synchronous). */
function instrumentedStep(params: Params, vars: Variable[], optimizer: AdamW, loss: () => Scalar) {
  let t = performance.now();
  const l = tf.tidy(loss);
  l.dataSync();
  l.dispose();
  const forwardMs = performance.now() - t;

  t = performance.now();
  const { value, grads } = tf.variableGrads(loss, vars);
  value.dataSync();
  const fwdBwdMs = performance.now() - t;

  const named = byParamName(params, grads);
  t = performance.now();
  const normT = globalNorm(named);
  const norm = normT.dataSync()[0];
  normT.dispose();
  const clipMs = performance.now() - t;

  t = performance.now();
  optimizer.apply(named, LR, clipScale(norm, CLIP));
  const adamwMs = performance.now() - t;

  value.dispose();
  tf.dispose(grads);
  return { forwardMs, backwardMs: fwdBwdMs - forwardMs, clipMs, adamwMs };
}

const kernelKey = (k: KernelRecord) => k.name;
const shapeKey = (k: KernelRecord) => `${k.name} ${k.shapes}`;

/** Splits the kernels of a `variableGrads` call into the forward ones (matched against a tape-off forward) and the rest. */
function splitBackward(fwdBwd: readonly KernelRecord[], fwdOnly: readonly KernelRecord[]) {
  const left = new Map<string, number>();
  for (const k of fwdOnly) left.set(shapeKey(k), (left.get(shapeKey(k)) ?? 0) + 1);
  const fwd: KernelRecord[] = [];
  const bwd: KernelRecord[] = [];
  for (const k of fwdBwd) {
    const n = left.get(shapeKey(k)) ?? 0;
    if (n > 0) {
      left.set(shapeKey(k), n - 1);
      fwd.push(k);
    } else bwd.push(k);
  }
  return { fwd, bwd };
}

/** The graph step's phases, by subtraction between graphs that stop earlier (see GraphTrainResult.phases). */
async function graphPhaseSplit(
  full: GraphLmStep,
  params: Params,
  optimizer: AdamW,
  cfg: BenchShape['cfg'],
  B: number,
  steps: number,
  nextBatch: () => LmBatch,
): Promise<GraphTrainResult['phases']> {
  const shape = [{ B, T: cfg.context_length, weights: false }];
  const partial = [await GraphLmStep.build(params, optimizer, cfg, shape, CLIP, 'loss'), await GraphLmStep.build(params, optimizer, cfg, shape, CLIP, 'gradients')];
  const graphs = [...partial, full];
  const session: number[][] = graphs.map(() => []);
  const host: number[] = [];
  for (const g of graphs) g.run(params, optimizer, [nextBatch()], LR); // warm-up
  for (let i = 0; i < steps; i++) {
    graphs.forEach((g, k) => {
      const b = nextBatch();
      const t = performance.now();
      g.run(params, optimizer, [b], LR);
      session[k].push(g.lastSessionMs);
      if (g === full) host.push(performance.now() - t - g.lastSessionMs);
    });
  }
  partial.forEach((g) => g.dispose());
  const [loss, grads, step] = session.map(median);
  return { forward: loss, backward: Math.max(0, grads - loss), optimizer: Math.max(0, step - grads), host: median(host) };
}

export async function benchTraining(shape: BenchShape, o: TrainOptions, log: (msg: string) => void): Promise<TrainResult> {
  const { cfg, batch: B } = shape;
  const tokensPerStep = B * cfg.context_length;
  const rng = new Rng(o.seed);
  const params = initParams(cfg, 'lm', rng);
  const vars = [...params.values()];
  const optimizer = new AdamW(params, { weight_decay: WEIGHT_DECAY });
  const nextBatch = (): LmBatch => ({ ...randomBatch(rng, tokensPerStep, cfg.vocab_size), B, T: cfg.context_length });
  const nextLoss = () => lossClosure(params, shape, nextBatch());
  try {
    log(`training: ${o.warmup} warm-up + ${o.steps} timed steps`);
    for (let i = 0; i < o.warmup; i++) optimizerStep(params, optimizer, [nextLoss()], LR, CLIP);
    let graph: GraphLmStep | undefined;
    let graphUnavailable: string | undefined;
    let buildMs = 0;
    if (o.graphRounds > 0) {
      log('training: building the graph step (two traces, load, self-check)');
      const t = performance.now();
      try {
        graph = await GraphLmStep.build(params, optimizer, cfg, [{ B, T: cfg.context_length, weights: false }], CLIP);
      } catch (err) {
        if (!(err instanceof GraphUnavailable)) throw err;
        graphUnavailable = err.message;
      }
      buildMs = performance.now() - t;
      if (graph) for (let i = 0; i < o.warmup; i++) graph.run(params, optimizer, [nextBatch()], LR);
    }
    const tensorsBefore = tf.memory().numTensors;
    // Eager and graph steps alternate in rounds on the same model, so both see the same machine load.
    const rounds = graph ? o.graphRounds : 1;
    const times: number[] = [];
    const graphTimes: number[] = [];
    const roundMs: Array<[number, number]> = [];
    for (let r = 0; r < rounds; r++) {
      const n = Math.max(1, Math.round(o.steps / rounds));
      const e0 = times.length;
      for (let i = 0; i < n; i++) {
        const loss = nextLoss(); // host-side random data is not part of the step
        const t = performance.now();
        optimizerStep(params, optimizer, [loss], LR, CLIP);
        times.push(performance.now() - t);
      }
      if (!graph) break;
      const g0 = graphTimes.length;
      for (let i = 0; i < n; i++) {
        const b = nextBatch();
        const t = performance.now();
        graph.run(params, optimizer, [b], LR);
        graphTimes.push(performance.now() - t);
      }
      const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
      roundMs.push([mean(times.slice(e0)), mean(graphTimes.slice(g0))]);
    }
    const leakedTensors = tf.memory().numTensors - tensorsBefore;
    let graphPhases: GraphTrainResult['phases'] | undefined;
    if (graph) {
      log(`training: graph phase split over ${o.phaseSteps} steps (two more graphs)`);
      graphPhases = await graphPhaseSplit(graph, params, optimizer, cfg, B, o.phaseSteps, nextBatch);
      graph.dispose();
    }
    const msPerStep = times.reduce((a, b) => a + b, 0) / times.length;
    const tokensPerS = (1000 * tokensPerStep) / msPerStep;
    let graphResult: GraphTrainResult | undefined;
    if (graph) {
      const gms = graphTimes.reduce((a, b) => a + b, 0) / graphTimes.length;
      graphResult = { msPerStep: gms, msMedian: median(graphTimes), tokensPerS: (1000 * tokensPerStep) / gms, buildMs, nodes: graph.nodes, rounds: roundMs, phases: graphPhases! };
    }

    log(`training: phase split over ${o.phaseSteps} steps`);
    const split = Array.from({ length: o.phaseSteps }, () => instrumentedStep(params, vars, optimizer, nextLoss()));
    const fwd = median(split.map((s) => s.forwardMs));
    const bwd = median(split.map((s) => s.backwardMs));
    const clip = median(split.map((s) => s.clipMs));
    const adamw = median(split.map((s) => s.adamwMs));

    log(`training: kernel profile over ${o.profileRuns} step(s)`);
    const all: KernelRecord[] = [];
    const backward: KernelRecord[] = [];
    const ops: PhaseOps = {
      forward: { calls: 0, kernelMs: 0 },
      backward: { calls: 0, kernelMs: 0 },
      clip: { calls: 0, kernelMs: 0 },
      adamw: { calls: 0, kernelMs: 0 },
      profiledWallMs: 0,
    };
    const add = (phase: Exclude<keyof PhaseOps, 'profiledWallMs'>, ks: readonly KernelRecord[]) => {
      ops[phase].calls += ks.length / o.profileRuns;
      ops[phase].kernelMs += totalMs(ks) / o.profileRuns;
    };
    for (let r = 0; r < o.profileRuns; r++) {
      const loss = nextLoss();
      const fwdOnly = await profileKernels(() => tf.dispose(tf.tidy(loss)));
      let grads: Record<string, Tensor> = {};
      let value: Scalar | undefined;
      const fb = await profileKernels(() => {
        ({ value, grads } = tf.variableGrads(loss, vars));
      });
      const named = byParamName(params, grads);
      let norm = 0;
      const cl = await profileKernels(() => {
        const n = globalNorm(named);
        norm = n.dataSync()[0];
        n.dispose();
      });
      const ad = await profileKernels(() => optimizer.apply(named, LR, clipScale(norm, CLIP)));
      tf.dispose([value as Scalar, ...Object.values(grads)]);
      const { fwd: f, bwd: b } = splitBackward(fb.kernels, fwdOnly.kernels);
      add('forward', f);
      add('backward', b);
      add('clip', cl.kernels);
      add('adamw', ad.kernels);
      ops.profiledWallMs += (fb.wallMs + cl.wallMs + ad.wallMs) / o.profileRuns;
      all.push(...fb.kernels, ...cl.kernels, ...ad.kernels);
      backward.push(...b);
    }

    return {
      params: vars.reduce((s, v) => s + v.size, 0),
      steps: o.steps,
      warmup: o.warmup,
      tokensPerStep,
      msPerStep,
      msMedian: median(times),
      msMin: Math.min(...times),
      msMax: Math.max(...times),
      tokensPerS,
      gflops: (trainFlopsPerToken(cfg) * tokensPerS) / 1e9,
      phases: { forward: fwd, backward: bwd, clip, adamw, other: Math.max(0, msPerStep - fwd - bwd - clip - adamw) },
      ops,
      stepByKernel: aggregate(all, o.profileRuns, kernelKey),
      stepByShape: aggregate(all, o.profileRuns, shapeKey),
      backwardByKernel: aggregate(backward, o.profileRuns, kernelKey),
      profileRuns: o.profileRuns,
      leakedTensors,
      graph: graphResult,
      graphUnavailable,
    };
  } finally {
    optimizer.dispose();
    disposeParams(params);
  }
}
