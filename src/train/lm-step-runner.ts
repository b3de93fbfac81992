import type { TrainStepPath } from '../backend/numerics.js';
import type { GptConfig } from '../model/config.js';
import type { Params } from '../model/gpt.js';
import type { AdamW } from './adamw.js';
import { GraphLmStep, GraphStepUnavailable, stepShapeOf, type StepShape } from './graph-step.js';
import { lmBatchLoss, type LmBatch } from './lm-loss.js';
import { optimizerStep, type StepResult } from './step.js';


/** `RLHF_TRAIN_STEP=eager` turns the graph step off; anything else (or unset) chooses automatically. */
export function graphStepWanted(setting = process.env.RLHF_TRAIN_STEP): boolean {
  return setting !== 'eager';
}

/** At most this many batch shapes get a graph each; further shapes run eagerly. */
const MAX_GRAPHS = 4;

/** A micro-batch and its dropout seed (undefined without dropout). */
export interface LmMicroBatch {
  batch: LmBatch;
  dropoutSeed?: number;
}

/**
 * Right-pads a weighted batch to T columns with zero-weight positions: the
 * causal mask keeps them from changing any real position, and zero weight keeps
 * them out of the loss, so varying-length (SFT) batches share one graph.
 */
export function padBatch(b: LmBatch, T: number): LmBatch {
  if (!b.weights || b.T >= T) return b;
  const x = new Int32Array(b.B * T);
  const y = new Int32Array(b.B * T);
  const weights = new Float32Array(b.B * T);
  for (let r = 0; r < b.B; r++) {
    x.set(b.x.subarray(r * b.T, (r + 1) * b.T), r * T);
    y.set(b.y.subarray(r * b.T, (r + 1) * b.T), r * T);
    weights.set(b.weights.subarray(r * b.T, (r + 1) * b.T), r * T);
  }
  return { x, y, weights, B: b.B, T };
}

/**
 * Runs language-model training steps as one TensorFlow graph each where that
 * was built and self-checked for the batch shape (src/train/graph-step.ts),
 * else as the eager `optimizerStep`. Records which ran.
 */
export class LmStepRunner {
  private readonly graphs = new Map<string, GraphLmStep | GraphStepUnavailable>();
  private readonly ran = new Set<'graph' | 'eager'>();
  /** Why the graph step was not used, for the log (first reason only). */
  fallbackReason: string | undefined;

  constructor(
    private readonly params: Params,
    private readonly optimizer: AdamW,
    private readonly cfg: GptConfig,
    private readonly maxGradNorm: number,
    private readonly opts: { graph: boolean; padTo?: number },
  ) {}

  /** 'graph' or 'eager' if every step so far ran that way, 'mixed' otherwise; undefined before the first step. */
  get path(): TrainStepPath | undefined {
    if (this.ran.size === 0) return undefined;
    return this.ran.size === 2 ? 'mixed' : [...this.ran][0];
  }

  async step(micro: readonly LmMicroBatch[], lr: number): Promise<StepResult> {
    const graph = await this.graphFor(micro);
    if (graph) {
      this.ran.add('graph');
      return graph.run(this.params, this.optimizer, this.padded(micro), lr);
    }
    this.ran.add('eager');
    const losses = micro.map((m) => () => lmBatchLoss(this.params, this.cfg, m.batch, true, m.dropoutSeed));
    return optimizerStep(this.params, this.optimizer, losses, lr, this.maxGradNorm);
  }

  private padded(micro: readonly LmMicroBatch[]): LmBatch[] {
    const T = this.opts.padTo;
    return micro.map((m) => (T === undefined ? m.batch : padBatch(m.batch, T)));
  }

  private async graphFor(micro: readonly LmMicroBatch[]): Promise<GraphLmStep | undefined> {
    if (!this.opts.graph || this.cfg.dropout > 0) return undefined;
    const shape: StepShape = stepShapeOf(this.padded(micro));
    const key = JSON.stringify(shape);
    let g = this.graphs.get(key);
    if (g === undefined) {
      if (this.graphs.size >= MAX_GRAPHS) return undefined;
      try {
        g = await GraphLmStep.build(this.params, this.optimizer, this.cfg, shape, this.maxGradNorm);
      } catch (err) {
        if (!(err instanceof GraphStepUnavailable)) throw err;
        g = err;
        this.fallbackReason ??= err.message;
      }
      this.graphs.set(key, g);
    }
    return g instanceof GraphLmStep ? g : undefined;
  }

  dispose(): void {
    for (const g of this.graphs.values()) if (g instanceof GraphLmStep) g.dispose();
    this.graphs.clear();
  }
}
