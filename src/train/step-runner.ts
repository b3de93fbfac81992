import type { TrainStepPath } from '../backend/numerics.js';
import type { Params } from '../model/gpt.js';
import type { AdamW } from './adamw.js';
import { GraphUnavailable } from '../graph/checked-graph.js';
import { eagerStep, stepKey, TracedStep, type MicroInputs, type MicroLoss, type StepOutcome } from './traced-step.js';

/** `RLHF_TRAIN_STEP=eager` turns graph steps off; anything else (or unset) chooses automatically. */
export function graphStepWanted(setting = process.env.RLHF_TRAIN_STEP): boolean {
  return setting !== 'eager';
}

/** At most this many input shapes get a graph each; further shapes run eagerly. */
const MAX_GRAPHS = 4;

/**
 * Runs one model's optimiser steps over one loss as a traced TensorFlow graph
 * per input shape where that was built and self-checked (src/train/traced-step.ts),
 * else eagerly. Records which ran, and the first reason the graph was not used.
 */
export class StepRunner {
  private readonly graphs = new Map<string, TracedStep | GraphUnavailable>();
  private readonly ran = new Set<'graph' | 'eager'>();
  /** Why the graph step was not used (first reason only). */
  fallbackReason: string | undefined;

  /** `opts.unavailable`: a reason known up front why no step of this runner can be a graph. */
  constructor(
    private readonly params: Params,
    private readonly optimizer: AdamW,
    private readonly maxGradNorm: number,
    private readonly loss: MicroLoss,
    private readonly opts: { graph: boolean; unavailable?: string },
  ) {
    if (opts.graph && opts.unavailable) this.fallbackReason = opts.unavailable;
  }

  /** 'graph' or 'eager' if every step so far ran that way, 'mixed' otherwise; undefined before the first step. */
  get path(): TrainStepPath | undefined {
    if (this.ran.size === 0) return undefined;
    return this.ran.size === 2 ? 'mixed' : [...this.ran][0];
  }

  /**
   * One step on `micro` at learning rate `lr`: the graph for its shapes, or `eager`
   * (by default the eager step on the same inputs; a caller whose graph inputs are
   * padded passes the step on the unpadded ones, the reference).
   */
  async step(micro: readonly MicroInputs[], lr: number, eager = () => eagerStep(this.params, this.optimizer, this.maxGradNorm, this.loss, micro, lr)): Promise<StepOutcome> {
    const graph = await this.graphFor(micro);
    if (graph) {
      this.ran.add('graph');
      return graph.run(this.params, this.optimizer, micro, lr);
    }
    this.ran.add('eager');
    return eager();
  }

  private async graphFor(micro: readonly MicroInputs[]): Promise<TracedStep | undefined> {
    if (!this.opts.graph || this.opts.unavailable) return undefined;
    const key = stepKey(micro);
    let g = this.graphs.get(key);
    if (g === undefined) {
      if (this.graphs.size >= MAX_GRAPHS) return undefined;
      try {
        g = await TracedStep.build(this.params, this.optimizer, this.maxGradNorm, this.loss, micro);
      } catch (err) {
        if (!(err instanceof GraphUnavailable)) throw err;
        g = err;
        this.fallbackReason ??= err.message;
      }
      this.graphs.set(key, g);
    }
    return g instanceof TracedStep ? g : undefined;
  }

  dispose(): void {
    for (const g of this.graphs.values()) if (g instanceof TracedStep) g.dispose();
    this.graphs.clear();
  }
}

/**
 * The step runners of a training loop with several optimised losses (PPO's policy
 * and value steps, a group-RL step), made on first use and kept across iterations
 * so each input shape is traced once. `graph` false runs every step eagerly.
 */
export class StepRunners {
  private readonly runners = new Map<string, StepRunner>();

  constructor(readonly graph: boolean) {}

  /** The runner called `name`, made by `make` the first time (its loss must not change between calls). */
  get(name: string, make: (graph: boolean) => StepRunner): StepRunner {
    let r = this.runners.get(name);
    if (r === undefined) this.runners.set(name, (r = make(this.graph)));
    return r;
  }

  /** 'graph' or 'eager' if every step of every runner ran that way, 'mixed' otherwise; undefined before the first step. */
  get path(): TrainStepPath | undefined {
    const paths = new Set([...this.runners.values()].map((r) => r.path).filter((p) => p !== undefined));
    if (paths.size === 0) return undefined;
    return paths.size === 1 ? [...paths][0] : 'mixed';
  }

  private reported = false;

  /** The first reason any runner gave for not using a graph, the first time there is one (for a log line); then undefined. */
  unreportedFallback(): string | undefined {
    if (this.reported) return undefined;
    const reason = [...this.runners.values()].find((r) => r.fallbackReason !== undefined)?.fallbackReason;
    if (reason !== undefined) this.reported = true;
    return reason;
  }

  dispose(): void {
    for (const r of this.runners.values()) r.dispose();
    this.runners.clear();
  }
}
