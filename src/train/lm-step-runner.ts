import type { TrainStepPath } from '../backend/numerics.js';
import type { GptConfig } from '../model/config.js';
import type { Params } from '../model/gpt.js';
import type { AdamW } from './adamw.js';
import { lmInputs, lmMicroLoss } from './graph-step.js';
import { lmBatchLoss, type LmBatch } from './lm-loss.js';
import { optimizerStep, type StepResult } from './step.js';
import { StepRunner } from './step-runner.js';

export { graphStepWanted } from './step-runner.js';

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
 * was built and self-checked for the batch shape (src/train/step-runner.ts),
 * else as the eager `optimizerStep` (on the unpadded batches, with dropout).
 * Records which ran.
 */
export class LmStepRunner {
  private readonly runner: StepRunner;

  constructor(
    private readonly params: Params,
    private readonly optimizer: AdamW,
    private readonly cfg: GptConfig,
    private readonly maxGradNorm: number,
    private readonly opts: { graph: boolean; padTo?: number },
  ) {
    const unavailable = cfg.dropout > 0 ? 'dropout masks are drawn on the host per step' : undefined;
    this.runner = new StepRunner(params, optimizer, maxGradNorm, lmMicroLoss(cfg), { graph: opts.graph, unavailable });
  }

  /** 'graph' or 'eager' if every step so far ran that way, 'mixed' otherwise; undefined before the first step. */
  get path(): TrainStepPath | undefined {
    return this.runner.path;
  }

  /** Why the graph step was not used, for the log (first reason only). */
  get fallbackReason(): string | undefined {
    return this.runner.fallbackReason;
  }

  async step(micro: readonly LmMicroBatch[], lr: number): Promise<StepResult> {
    const T = this.opts.padTo;
    const inputs = micro.map((m) => lmInputs(T === undefined ? m.batch : padBatch(m.batch, T)));
    const eager = () => {
      const losses = micro.map((m) => () => lmBatchLoss(this.params, this.cfg, m.batch, true, m.dropoutSeed));
      return { ...optimizerStep(this.params, this.optimizer, losses, lr, this.maxGradNorm), stats: [] };
    };
    const { loss, gradNorm } = await this.runner.step(inputs, lr, eager);
    return { loss, gradNorm };
  }

  dispose(): void {
    this.runner.dispose();
  }
}
