import { loadCheckpoint, saveCheckpoint, type LoadedCheckpoint } from '../checkpoint/checkpoint.js';
import type { LoadedConfig } from '../config/load.js';
import type { TrainingLoopConfig } from '../config/schema.js';
import { countParams, type GptConfig, type HeadKind } from '../model/config.js';
import { disposeParams, type Params } from '../model/gpt.js';
import { checkMemory, type MemoryPlan } from '../model/memory.js';
import { progressEnabled } from '../run/progress.js';
import { resumeConfigChanges } from '../run/resume-config.js';
import { latestCheckpoint, StageRun, StageStateError, stageDir } from '../run/stage.js';
import type { Tokenizer } from '../tokenizer/index.js';
import { AdamW } from '../train/adamw.js';
import { InterruptedError, trainLoop } from '../train/loop.js';
import type { LmBatch } from '../train/lm-loss.js';
import { graphStepWanted, LmStepRunner } from '../train/lm-step-runner.js';
import type { StepResult } from '../train/step.js';
import { StepRunner } from '../train/step-runner.js';
import { eagerStep, type MicroInputs, type MicroLoss } from '../train/traced-step.js';
import { restoreTrainingState, trainingState } from '../train/resume.js';
import { Rng } from '../util/rng.js';

export interface StageOptions {
  force?: boolean;
  resume?: boolean;
  /** On resume, continue with settings that differ from the run's config.yaml (recorded in the manifest). */
  allowConfigChange?: boolean;
}

export interface StageResult {
  dir: string;
  finalPath: string;
  metrics: Record<string, number>;
}

/**
 * A stage's micro-batches as named inputs and a loss over them (src/train/traced-step.ts),
 * so its steps run as a traced graph where that builds, else eagerly (src/train/step-runner.ts).
 */
export interface MicroStep {
  /** The micro-batch loss; a `dropoutSeed` only for eager steps (a model with dropout gets no graph). */
  loss(dropoutSeed?: number): MicroLoss;
  /** One micro-batch drawn from `rng`: its inputs as drawn (the eager step's) and padded to the stage's one shape (the graph's). */
  draw(rng: Rng): { exact: MicroInputs; padded: MicroInputs };
  /** The statistics each micro-batch's loss returned, after each step. */
  onStats?(stats: Float32Array[]): void;
}

/** What a gradient-trained stage supplies; everything else (run dir, resume, loop) is shared. */
export interface SupervisedStage {
  head: HeadKind;
  model: GptConfig;
  tokenizer: Tokenizer;
  settings: TrainingLoopConfig;
  /** Checkpoints read (hashed into the manifest). */
  parents: string[];
  tokensPerStep: number;
  /** Fresh parameters for a new run (from a parent checkpoint or random init). */
  initialParams(rng: Rng): Params;
  /**
   * How micro-batches are drawn and trained on: language-model batches (src/train/lm-step-runner.ts),
   * or named inputs and a loss over them; either may run as a graph step.
   */
  microBatch: MicroStep | { lm: (rng: Rng) => LmBatch; padTo?: number };
  evaluate(params: Params): Record<string, number>;
  /** Training metrics of the logged step beyond the loss. */
  stepMetrics?(): Record<string, number>;
  /** Facts stored with the final checkpoint (e.g. reward normalisation). */
  finalExtra?(params: Params): Record<string, unknown>;
  /** Log line fields at start. */
  describe?: Record<string, unknown>;
  /** Rows of one micro-batch, when not settings.batch_size (a reward batch holds every response of its comparisons). */
  batchRows?: number;
  /** Models held and generation run besides training `model`, for the memory estimate. */
  alsoNeeds?: Pick<MemoryPlan, 'models' | 'generate'>;
}

/** `initialParams` for a stage that starts from a loaded checkpoint's parameters: handed over once, as the trained ones. */
export function handOver(params: Params, stage: string): () => Params {
  let used = false;
  return () => {
    if (used) throw new Error(`${stage}: initial parameters requested twice`);
    used = true;
    return params;
  };
}

/** The memory a supervised stage needs: its trained model's micro-batch forward and backward, and whatever else it holds. */
export function supervisedMemoryPlan(stage: Pick<SupervisedStage, 'model' | 'head' | 'batchRows' | 'alsoNeeds'> & { settings: Pick<TrainingLoopConfig, 'batch_size'> }): MemoryPlan {
  return {
    models: [{ model: stage.model, head: stage.head, trained: true }, ...(stage.alsoNeeds?.models ?? [])],
    train: { rows: stage.batchRows ?? stage.settings.batch_size, tokens: stage.model.context_length },
    generate: stage.alsoNeeds?.generate,
  };
}

/**
 * Runs one gradient-trained stage (pretrain, sft, train-reward): validates via
 * `prepare` and the memory estimate before the stage directory is touched, resumes from the newest
 * periodic checkpoint on request, runs the shared loop, writes `final/`.
 */
export async function runSupervisedStage(
  loaded: LoadedConfig,
  stage: string,
  opts: StageOptions,
  prepare: (resumed?: LoadedCheckpoint) => SupervisedStage,
): Promise<StageResult> {
  const { config } = loaded;
  const dir = stageDir(config, stage);
  const resumeFrom = opts.resume ? latestCheckpoint(dir) : undefined;
  if (opts.resume && !resumeFrom) throw new StageStateError(`${dir}: no periodic checkpoint to resume from`);
  const configChanges = resumeFrom ? resumeConfigChanges(loaded, stage, resumeFrom.step, opts.allowConfigChange ?? false) : undefined;
  const ckpt = resumeFrom ? loadCheckpoint(resumeFrom.path, { resume: true }) : undefined;
  let prepared: SupervisedStage;
  try {
    prepared = prepare(ckpt);
    checkMemory(loaded.file, stage, supervisedMemoryPlan(prepared));
  } catch (err) {
    if (ckpt) disposeParams(ckpt.params);
    throw err;
  }
  const s = prepared.settings;

  const run = StageRun.open(config, stage, { force: opts.force, resume: opts.resume, configChanges, echoLogs: !progressEnabled(), parents: prepared.parents });
  let rng = new Rng(config.seed);
  const params = ckpt?.params ?? prepared.initialParams(rng);
  const optimizer = new AdamW(params, { beta1: s.beta1, beta2: s.beta2, eps: s.eps, weight_decay: s.weight_decay });
  let startStep = 0;
  if (ckpt && resumeFrom) {
    ({ step: startStep, rng } = restoreTrainingState(ckpt, optimizer, config.seed));
    run.truncateMetricsAfter(startStep);
    run.logger.info({ step: startStep, checkpoint: resumeFrom.path }, 'resumed');
  }
  run.logger.info({ params: countParams(prepared.model, prepared.head), ...prepared.describe }, 'start');
  const mb = prepared.microBatch;
  const graph = graphStepWanted();
  const dropoutSeed = () => (prepared.model.dropout > 0 ? rng.seed() : undefined);
  const lmRunner = 'lm' in mb ? new LmStepRunner(params, optimizer, prepared.model, s.grad_clip, { graph, padTo: mb.padTo }) : undefined;
  const unavailable = prepared.model.dropout > 0 ? 'dropout masks are drawn on the host per step' : undefined;
  const microRunner = 'lm' in mb ? undefined : new StepRunner(params, optimizer, s.grad_clip, mb.loss(), { graph, unavailable });
  const runner = (lmRunner ?? microRunner)!;
  let loggedFallback = false;
  const stepOf = async (lr: number): Promise<StepResult> => {
    if ('lm' in mb) {
      const micro = Array.from({ length: s.grad_accum_steps }, () => ({ batch: mb.lm(rng), dropoutSeed: dropoutSeed() }));
      return lmRunner!.step(micro, lr);
    }
    const micro = Array.from({ length: s.grad_accum_steps }, () => ({ ...mb.draw(rng), seed: dropoutSeed() }));
    const eager = () => eagerStep(params, optimizer, s.grad_clip, micro.map((m) => mb.loss(m.seed)), micro.map((m) => m.exact), lr);
    const out = await microRunner!.step(micro.map((m) => m.padded), lr, eager);
    mb.onStats?.(out.stats);
    return { loss: out.loss, gradNorm: out.gradNorm };
  };
  const trainStep = async (lr: number): Promise<StepResult> => {
    const result = await stepOf(lr);
    run.recordTrainStep(runner.path!);
    if (runner.fallbackReason && !loggedFallback) {
      loggedFallback = true;
      run.logger.info({ reason: runner.fallbackReason }, 'graph training step unavailable: steps run eagerly');
    }
    return result;
  };
  try {
    const metrics = await trainLoop({
      run,
      settings: s,
      startStep,
      tokensPerStep: prepared.tokensPerStep,
      trainStep,
      evaluate: () => prepared.evaluate(params),
      stepMetrics: prepared.stepMetrics,
      save: (path, step, withResume) =>
        saveCheckpoint(path, {
          params,
          head: prepared.head,
          model: prepared.model,
          tokenizer: prepared.tokenizer,
          extra: withResume ? undefined : prepared.finalExtra?.(params),
          resume: withResume ? trainingState(optimizer, rng, step) : undefined,
        }),
    });
    run.complete({ steps: s.max_steps, ...metrics });
    return { dir: run.dir, finalPath: run.finalPath, metrics };
  } catch (err) {
    run.fail(err instanceof InterruptedError ? 'interrupted' : 'failed', (err as Error).message);
    throw err;
  } finally {
    runner.dispose();
    optimizer.dispose();
    disposeParams(params);
  }
}
