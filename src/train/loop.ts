import type { TrainingLoopConfig } from '../config/schema.js';
import { createProgress } from '../run/progress.js';
import type { StageRun } from '../run/stage.js';
import { learningRate } from './schedule.js';
import type { StepResult } from './step.js';

/** Raised when the user interrupts training; the last periodic checkpoint stays valid for --resume. */
export class InterruptedError extends Error {}

export interface TrainingLoop {
  run: StageRun;
  settings: TrainingLoopConfig;
  /** First step to run (0, or the step after a resumed checkpoint). */
  startStep: number;
  /** Tokens consumed per optimiser step, for throughput. */
  tokensPerStep: number;
  /** One optimiser step at learning rate `lr` (draws its data from the run's RNG). */
  trainStep(lr: number): StepResult | Promise<StepResult>;
  /** Training metrics of the logged step beyond the loss (e.g. DPO's rewards/*). */
  stepMetrics?(): Record<string, number>;
  /** Held-out metrics, e.g. `{ val_loss }`. Must not consume the run's RNG. */
  evaluate(): Record<string, number>;
  /** Writes a checkpoint; `withResumeState` adds optimizer and RNG state. */
  save(dir: string, step: number, withResumeState: boolean): Promise<void>;
}

const KEEP_CHECKPOINTS = 2;

/**
 * Ctrl-C / SIGTERM during training raise a flag that loops check between
 * steps, so the process stops at a step boundary with checkpoints intact.
 */
export function interruptFlag(): { readonly raised: boolean; release(): void } {
  let raised = false;
  const raise = (): void => {
    raised = true;
  };
  process.once('SIGINT', raise);
  process.once('SIGTERM', raise);
  return {
    get raised() {
      return raised;
    },
    release() {
      process.off('SIGINT', raise);
      process.off('SIGTERM', raise);
    },
  };
}

/**
 * The loop shared by supervised stages: schedule → micro-batches → clipped
 * AdamW step → metrics/progress → periodic eval and atomic checkpoints. Step
 * numbers in metrics count completed optimiser steps (1-based).
 */
export async function trainLoop(t: TrainingLoop): Promise<Record<string, number>> {
  const s = t.settings;
  const stop = interruptFlag();
  const progress = createProgress(t.run.stage, s.max_steps, t.startStep);
  const wallStart = performance.now();
  let windowStart = performance.now();
  let windowSteps = 0;
  let last: Record<string, number> = {};
  try {
    for (let step = t.startStep; step < s.max_steps; step++) {
      if (stop.raised) throw new InterruptedError(`interrupted at step ${step}; continue with --resume`);
      // Let the event loop breathe (signals, progress redraws, test runners' heartbeats).
      if (step % 10 === 0) await new Promise((resolve) => setImmediate(resolve));
      const lr = learningRate(s, step);
      const { loss, gradNorm } = await t.trainStep(lr);
      if (!Number.isFinite(loss)) throw new Error(`loss became ${loss} at step ${step + 1}; lower the learning rate`);
      windowSteps++;
      const done = step + 1;
      const isLast = done === s.max_steps;
      if (done % s.log_interval === 0 || isLast || done % s.eval_interval === 0) {
        const seconds = (performance.now() - windowStart) / 1000;
        const metrics: Record<string, number> = { loss, lr, grad_norm: gradNorm, ...t.stepMetrics?.() };
        if (done % s.eval_interval === 0 || isLast) Object.assign(metrics, t.evaluate());
        metrics.tokens_per_s = Math.round((windowSteps * t.tokensPerStep) / seconds);
        metrics.elapsed_s = Number(((performance.now() - wallStart) / 1000).toFixed(3));
        t.run.metrics(done, metrics);
        t.run.logger.info({ step: done, ...metrics }, 'train');
        progress.update(done, {
          loss: loss.toFixed(4),
          ...(metrics.val_loss !== undefined ? { val: metrics.val_loss.toFixed(4) } : {}),
          'tok/s': String(metrics.tokens_per_s),
        });
        windowStart = performance.now();
        windowSteps = 0;
        last = metrics;
      }
      if (done % s.checkpoint_interval === 0 && !isLast) {
        await t.save(t.run.checkpointPath(done), done, true);
        t.run.pruneCheckpoints(KEEP_CHECKPOINTS);
      }
    }
  } finally {
    progress.stop();
    stop.release();
  }
  await t.save(t.run.finalPath, s.max_steps, false);
  return last;
}
