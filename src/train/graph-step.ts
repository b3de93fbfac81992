import type { Tensor1D, Tensor2D } from '../backend/tf.js';
import type { GptConfig } from '../model/config.js';
import type { Params } from '../model/gpt.js';
import type { AdamW } from './adamw.js';
import { lmTensorLoss, type LmBatch } from './lm-loss.js';
import type { StepResult } from './step.js';
import { GraphUnavailable } from '../graph/checked-graph.js';
import { TracedStep, type MicroInputs, type MicroLoss, type StepPart } from './traced-step.js';

/**
 * The language-model training step (`optimizerStep` over `lmBatchLoss`
 * micro-batches) as one traced TensorFlow graph (src/train/traced-step.ts):
 * the micro-batches' x, y and loss weights are its inputs.
 */

export type { StepPart } from './traced-step.js';

/** The batch shapes of one step: one entry per micro-batch. */
export type StepShape = ReadonlyArray<{ B: number; T: number; weights: boolean }>;

export function stepShapeOf(batches: readonly LmBatch[]): StepShape {
  return batches.map((b) => ({ B: b.B, T: b.T, weights: b.weights !== undefined }));
}

export function sameStepShape(a: StepShape, b: StepShape): boolean {
  return a.length === b.length && a.every((s, i) => s.B === b[i].B && s.T === b[i].T && s.weights === b[i].weights);
}

/** A language-modelling batch as traced-step inputs: x [B, T], y and weights [B·T]. */
export function lmInputs(b: LmBatch): MicroInputs {
  return {
    x: { values: b.x, shape: [b.B, b.T] },
    y: { values: b.y, shape: [b.B * b.T] },
    ...(b.weights ? { w: { values: b.weights, shape: [b.B * b.T] } } : {}),
  };
}

/** `lmBatchLoss` (training mode, no dropout) over `lmInputs`. */
export function lmMicroLoss(cfg: GptConfig): MicroLoss {
  return (params, t) => ({ loss: lmTensorLoss(params, cfg, { x: t.x as Tensor2D, y: t.y as Tensor1D, weights: t.w as Tensor1D | undefined }, true) });
}

/** Valid placeholder batches of a step shape (tokens cycling through the vocabulary, every weight 1): tracing needs values, not these. */
function exampleBatches(shape: StepShape, vocab: number): LmBatch[] {
  return shape.map(({ B, T, weights }) => ({
    B,
    T,
    x: Int32Array.from({ length: B * T }, (_, i) => i % vocab),
    y: Int32Array.from({ length: B * T }, (_, i) => (i + 1) % vocab),
    weights: weights ? new Float32Array(B * T).fill(1) : undefined,
  }));
}

export class GraphLmStep {
  private constructor(
    private readonly step: TracedStep,
    readonly shape: StepShape,
  ) {}

  /** Wall time of the last `run`'s TF_SessionRun (tfjs-node's predict), without feeding, read-back and assignment. */
  get lastSessionMs(): number {
    return this.step.lastSessionMs;
  }

  /** Number of nodes in the step's graph. */
  get nodes(): number {
    return this.step.nodes;
  }

  get upTo(): StepPart {
    return this.step.upTo;
  }

  /**
   * Traces, loads and self-checks the step for batches of `shape` (TracedStep.build).
   * Throws GraphUnavailable (with the reason) with dropout (its masks are drawn
   * on the host per step) and wherever TracedStep.build does.
   */
  static async build(params: Params, optimizer: AdamW, cfg: GptConfig, shape: StepShape, maxGradNorm: number, upTo: StepPart = 'step'): Promise<GraphLmStep> {
    if (cfg.dropout > 0) throw new GraphUnavailable('dropout masks are drawn on the host per step');
    const example = exampleBatches(shape, Math.max(1, cfg.vocab_size)).map(lmInputs);
    return new GraphLmStep(await TracedStep.build(params, optimizer, maxGradNorm, lmMicroLoss(cfg), example, upTo), shape);
  }

  /**
   * One optimiser step on `batches` (shaped like `this.shape`) at learning rate
   * `lr`: the same update as `optimizerStep(params, optimizer, batches.map(lmBatchLoss), lr, maxGradNorm)`.
   * A non-finite gradient norm leaves parameters and optimiser untouched, as there.
   * A partial graph (`upTo` 'loss' or 'gradients') updates nothing (gradNorm NaN without gradients).
   */
  run(params: Params, optimizer: AdamW, batches: readonly LmBatch[], lr: number): StepResult {
    if (!sameStepShape(stepShapeOf(batches), this.shape)) throw new RangeError('GraphLmStep.run: batches do not match the traced shape');
    const { loss, gradNorm } = this.step.run(params, optimizer, batches.map(lmInputs), lr);
    return { loss, gradNorm };
  }

  dispose(): void {
    this.step.dispose();
  }
}
