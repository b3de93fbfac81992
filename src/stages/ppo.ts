import path from 'node:path';
import { tf, type Tensor, type Variable } from '../backend/tf.js';
import { CheckpointError, loadCheckpoint, readCheckpointMeta, readCheckpointTokenizer, saveCheckpoint, type LoadedCheckpoint } from '../checkpoint/checkpoint.js';
import { ConfigError, type LoadedConfig } from '../config/load.js';
import type { PpoConfig } from '../config/schema.js';
import { DataError, loadCorpus } from '../data/corpus.js';
import { loadPrompts } from '../data/prompts.js';
import type { GptConfig } from '../model/config.js';
import { disposeParams, type Params } from '../model/gpt.js';
import { checkMemory, type MemoryPlan } from '../model/memory.js';
import { KlBudget } from '../ppo/kl-budget.js';
import { adaptiveKlController, fixedKlController, restoreKlController, type KlController, type KlControllerState } from '../ppo/kl-controller.js';
import { ppoIteration, type IterationInput, type PpoModels } from '../ppo/trainer.js';
import { foldRewardNorm } from '../ppo/value-init.js';
import { IDENTITY_NORM, addScalarHead, type RewardNorm } from '../reward/score.js';
import { createProgress, progressEnabled } from '../run/progress.js';
import { resumeConfigChanges } from '../run/resume-config.js';
import { latestCheckpoint, StageRun, StageStateError, stageDir } from '../run/stage.js';
import { encodePrompt, stopTokenIds } from '../sample/tokens.js';
import { getTask } from '../tasks/index.js';
import { tokenizerFingerprint, type Tokenizer } from '../tokenizer/index.js';
import { AdamW } from '../train/adamw.js';
import { graphStepWanted, StepRunners } from '../train/step-runner.js';
import { InterruptedError, interruptFlag } from '../train/loop.js';
import { Rng, type RngState } from '../util/rng.js';
import { randomWindows } from './lm-batches.js';
import { parentCheckpoint } from './sft.js';
import type { StageOptions, StageResult } from './supervised.js';

const KEEP_CHECKPOINTS = 2;

function taskOf(cfg: PpoConfig): string | undefined {
  return 'task' in cfg.prompts ? cfg.prompts.task : undefined;
}

/** Checks the policy and reward model can work together, before anything is written. */
function checkCompatible(policyDir: string, rewardDir: string): void {
  const policy = readCheckpointMeta(policyDir);
  const reward = readCheckpointMeta(rewardDir);
  if (policy.head !== 'lm') throw new CheckpointError(`${policyDir}: ppo.policy must be a language model, found a "${policy.head}" model`);
  if (reward.head !== 'score') throw new CheckpointError(`${rewardDir}: ppo.reward_model must be a reward model, found a "${reward.head}" model`);
  if (policy.tokenizer_fingerprint !== reward.tokenizer_fingerprint) {
    throw new CheckpointError(`${rewardDir}: the reward model's tokenizer does not match the policy's (${policyDir})`);
  }
}

function copyParams(params: Params): Map<string, Variable> {
  return new Map([...params].map(([k, v]) => [k, tf.variable(v.clone(), false)]));
}

function prefixed(prefix: string, tensors: Map<string, Tensor> | Params): [string, Tensor][] {
  return [...tensors].map(([k, v]) => [`${prefix}/${k}`, v]);
}

function unprefixed(prefix: string, tensors: Map<string, Tensor>): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const [k, v] of tensors) if (k.startsWith(`${prefix}/`)) out.set(k.slice(prefix.length + 1), v);
  return out;
}

function assignAll(target: Params | Map<string, Variable>, values: Map<string, Tensor>, what: string): void {
  for (const [k, v] of target) {
    const t = values.get(k);
    if (!t) throw new CheckpointError(`resume state lacks ${what} tensor ${k}`);
    v.assign(t);
  }
}

/**
 * A method that runs on PPO's stage machinery (rollout, reward model, KL
 * controller, checkpoints, resume) with its own iteration and no value model:
 * RLOO and GRPO (src/stages/group-rl.ts).
 */
export interface PpoVariant {
  stage: string;
  /** The method's section read as PPO settings (value keys unused). */
  settings: PpoConfig;
  /** Each drawn prompt is repeated this many times, consecutively. */
  groupSize: number;
  iterate(models: PpoModels, kl: KlController, input: IterationInput, rng: Rng): Promise<Record<string, number>>;
}

/**
 * `rlhf ppo`: optimise the SFT policy against the reward model with PPO and a
 * KL penalty to the frozen SFT reference. Periodic checkpoints carry the policy
 * and everything else needed to resume bit-exactly (value model, both
 * optimizers, KL controller, EMA, RNG, iteration).
 */
export async function runPpo(loaded: LoadedConfig, opts: StageOptions & { stage?: string; policy?: string; rewardModel?: string; variant?: PpoVariant } = {}): Promise<StageResult> {
  const { config, file } = loaded;
  const variant = opts.variant;
  const cfg = variant?.settings ?? config.ppo;
  if (!cfg) throw new ConfigError(`${file}: ppo: section missing`);
  const stage = opts.stage ?? variant?.stage ?? 'ppo';
  const valueless = variant !== undefined;
  const referenceDir = parentCheckpoint(loaded, cfg.policy, 'sft');
  const policyDir = opts.policy ?? referenceDir;
  const rewardDir = opts.rewardModel ?? parentCheckpoint(loaded, cfg.reward_model, 'train-reward');
  checkCompatible(policyDir, rewardDir);
  const dir = stageDir(config, stage);
  const resumeFrom = opts.resume ? latestCheckpoint(dir) : undefined;
  if (opts.resume && !resumeFrom) throw new StageStateError(`${dir}: no periodic checkpoint to resume from`);
  const configChanges = resumeFrom ? resumeConfigChanges(loaded, stage, resumeFrom.step, opts.allowConfigChange ?? false) : undefined;

  const policyMeta = readCheckpointMeta(policyDir);
  const prompts = loadPrompts(cfg.prompts);
  const task = taskOf(cfg);
  if (cfg.gold_reward !== undefined && !task) throw new ConfigError(`${file}: ${stage}.gold_reward: needs ${stage}.prompts from a task, whose gold scorer scores the rollouts`);
  checkMemory(file, stage, ppoMemoryPlan(cfg, policyMeta.model, readCheckpointMeta(rewardDir).model, valueless));
  const ptxIds = cfg.ptx_coef > 0 ? ptxCorpus(loaded, readCheckpointTokenizer(policyDir, policyMeta)) : undefined;
  const run = StageRun.open(config, stage, { force: opts.force, resume: opts.resume, configChanges, echoLogs: !progressEnabled(), parents: [policyDir, referenceDir, rewardDir] });

  const ckpt: LoadedCheckpoint | undefined = resumeFrom ? loadCheckpoint(resumeFrom.path, { resume: true, expectHead: 'lm' }) : undefined;
  const policyCkpt = ckpt ?? loadCheckpoint(policyDir, { expectHead: 'lm' });
  const tokenizer = policyCkpt.tokenizer;
  if (tokenizerFingerprint(tokenizer) !== policyMeta.tokenizer_fingerprint) throw new CheckpointError(`${policyCkpt.dir}: tokenizer differs from the policy's`);
  const reference = loadCheckpoint(referenceDir, { expectHead: 'lm' });
  const reward = loadCheckpoint(rewardDir, { expectHead: 'score' });
  const rewardNorm = (reward.meta.extra.reward_norm as RewardNorm | undefined) ?? IDENTITY_NORM;
  let rng = new Rng(`${config.seed}:${stage}`);
  const policy = policyCkpt.params;
  const shared = !valueless && cfg.value_model === 'policy_head';
  const value: Params = valueless ? policy : shared ? (policy.has('score.weight') ? policy : addScalarHead(policy, policyCkpt.meta.model, rng)) : valueFromReward(rewardDir, rewardNorm);
  const adam = (params: Params) => new AdamW(params, { beta1: cfg.beta1, beta2: cfg.beta2, eps: cfg.eps, weight_decay: cfg.weight_decay });
  const models: PpoModels = {
    cfg: policyCkpt.meta.model,
    valueCfg: shared ? policyCkpt.meta.model : reward.meta.model,
    rewardCfg: reward.meta.model,
    tokenizer,
    policy,
    reference: reference.params,
    value,
    reward: reward.params,
    rewardNorm,
    policyOptimizer: adam(policy),
    valueOptimizer: shared || valueless ? undefined : adam(value),
    ema: cfg.ema_decay !== undefined ? copyParams(policy) : undefined,
    steps: new StepRunners(graphStepWanted()),
  };
  let kl: KlController = cfg.adaptive_kl ? adaptiveKlController(cfg.kl_coef, cfg.adaptive_kl.target, cfg.adaptive_kl.horizon) : fixedKlController(cfg.kl_coef);
  const budget = cfg.kl_budget !== undefined ? new KlBudget(cfg.kl_budget, policy) : undefined;
  let startIteration = 0;
  if (ckpt?.resume) {
    const state = ckpt.resume;
    const tensors = state.tensors;
    models.policyOptimizer.setState({ step: state.trainer.policy_opt_step as number, tensors: unprefixed('policy_opt', tensors) });
    if (models.valueOptimizer) {
      assignAll(models.value, unprefixed('value', tensors), 'value');
      models.valueOptimizer!.setState({ step: state.trainer.value_opt_step as number, tensors: unprefixed('value_opt', tensors) });
    }
    if (models.ema) assignAll(models.ema, unprefixed('ema', tensors), 'ema');
    budget?.restore(new Map([...unprefixed('kl_budget', tensors)].map(([k, v]) => [k, tf.clone(v)])));
    tf.dispose([...tensors.values()]);
    kl = restoreKlController(state.trainer.kl as KlControllerState, cfg.adaptive_kl?.target, cfg.adaptive_kl?.horizon);
    rng = new Rng(0, state.trainer.rng as RngState);
    startIteration = state.trainer.iteration as number;
    run.truncateMetricsAfter(startIteration);
    run.logger.info({ iteration: startIteration, checkpoint: resumeFrom!.path }, 'resumed');
  }

  const encodedPrompts = prompts.map((p) => encodePrompt(tokenizer, p));
  const promptWidth = Math.max(...encodedPrompts.map((p) => p.length));
  const stops = cfg.stop_sequences ?? (task ? (getTask(task).stopSequences ?? []) : []);
  const stopIds = stopTokenIds(tokenizer, stops);
  const gold = task ? getTask(task).goldScore.bind(getTask(task)) : undefined;

  const save = async (where: string, iteration: number, withResume: boolean): Promise<void> => {
    const optState = models.policyOptimizer.getState();
    const valueState = models.valueOptimizer?.getState();
    const tensors = new Map<string, Tensor>([
      ...prefixed('policy_opt', optState.tensors),
      ...(valueState ? prefixed('value_opt', valueState.tensors) : []),
      ...(models.valueOptimizer ? prefixed('value', models.value) : []),
      ...(models.ema ? prefixed('ema', models.ema) : []),
      ...(budget ? prefixed('kl_budget', budget.state()) : []),
    ]);
    await saveCheckpoint(where, {
      params: policy,
      head: 'lm',
      model: models.cfg,
      tokenizer,
      resume: withResume
        ? {
            trainer: { iteration, rng: rng.state(), kl: kl.state(), policy_opt_step: optState.step, value_opt_step: valueState?.step ?? 0 },
            tensors,
          }
        : undefined,
    });
    tf.dispose([...optState.tensors.values(), ...(valueState ? [...valueState.tensors.values()] : [])]);
  };

  const stopFlag = interruptFlag();
  const progress = createProgress(stage, cfg.iterations, startIteration);
  let last: Record<string, number> = {};
  let iterations = cfg.iterations;
  try {
    for (let it = startIteration; it < cfg.iterations; it++) {
      await new Promise((resolve) => setImmediate(resolve));
      if (stopFlag.raised) throw new InterruptedError(`interrupted at iteration ${it}; continue with --resume`);
      const group = variant?.groupSize ?? 1;
      const batch = Array.from({ length: cfg.rollout_batch_size / group }, () => rng.int(encodedPrompts.length)).flatMap((i) => new Array<number>(group).fill(i));
      const input: IterationInput = {
        prompts: batch.map((i) => encodedPrompts[i]),
        promptTexts: batch.map((i) => prompts[i]),
        stopIds,
        gold,
        ptxBatch: ptxIds ? () => randomWindows(ptxIds, cfg.ptx_batch_size, models.cfg.context_length, rng) : undefined,
        promptWidth,
      };
      budget?.beforeIteration();
      const metrics = await (variant ? variant.iterate(models, kl, input, rng) : ppoIteration(models, cfg, kl, input, rng));
      recordUpdatePath(run, models.steps!);
      const done = it + 1;
      const overBudget = budget?.overBudget(metrics['objective/kl']) ?? false;
      metrics.episode = done * cfg.rollout_batch_size;
      // Live tensors after the iteration: flat from one iteration to the next, or something leaks.
      metrics['debug/num_tensors'] = tf.memory().numTensors;
      run.metrics(done, metrics);
      run.logger.info({ iteration: done, ...metrics }, stage);
      progress.update(done, {
        score: metrics['objective/scores'].toFixed(3),
        kl: metrics['objective/kl'].toFixed(3),
        ...(metrics['gold/score'] !== undefined ? { gold: metrics['gold/score'].toFixed(3) } : {}),
      });
      last = metrics;
      if (overBudget) {
        // The policy now holds the weights that sampled the previous rollout (iteration done − 1's).
        iterations = done;
        run.logger.info({ iteration: done, kl: metrics['objective/kl'], kl_budget: cfg.kl_budget }, 'KL budget exceeded: stopped; the final policy is the one that sampled the previous rollout');
        break;
      }
      if (done % cfg.checkpoint_interval === 0 && done < cfg.iterations) {
        await save(run.checkpointPath(done), done, true);
        run.pruneCheckpoints(KEEP_CHECKPOINTS);
      }
    }
    progress.stop();
    await save(run.finalPath, iterations, false);
    if (models.ema) {
      await saveCheckpoint(path.join(run.dir, 'final-ema'), { params: models.ema, head: 'lm', model: models.cfg, tokenizer });
    }
    run.complete({ iterations, ...(budget ? { kl_budget_stop: iterations < cfg.iterations } : {}), ...last });
    return { dir: run.dir, finalPath: run.finalPath, metrics: last };
  } catch (err) {
    progress.stop();
    run.fail(err instanceof InterruptedError ? 'interrupted' : 'failed', (err as Error).message);
    throw err;
  } finally {
    stopFlag.release();
    budget?.dispose();
    models.policyOptimizer.dispose();
    models.valueOptimizer?.dispose();
    models.steps?.dispose();
    for (const p of new Set([policy, value, reference.params, reward.params, ...(models.ema ? [models.ema] : [])])) disposeParams(p);
  }
}

/** Records how the update's steps ran (manifest `numerics.fast_paths.train_step`), and logs once why a graph was not used. */
function recordUpdatePath(run: StageRun, steps: StepRunners): void {
  if (steps.path) run.recordTrainStep(steps.path);
  const reason = steps.unreportedFallback();
  if (reason) run.logger.info({ reason }, 'graph training step unavailable: some update steps run eagerly');
}

/** A copy of the reward model whose head predicts normalised rewards, PPO's scale (a resume then overwrites it with the saved value model). */
function valueFromReward(rewardDir: string, norm: RewardNorm): Params {
  const params = loadCheckpoint(rewardDir, { expectHead: 'score' }).params;
  foldRewardNorm(params, norm);
  return params;
}

/**
 * What PPO holds at once: policy and value model (trained, unless the value is
 * a head on the policy), the frozen reference and reward model, the EMA copy;
 * a rollout batch generated, then micro-batches (plus the ptx batch) trained.
 */
export function ppoMemoryPlan(cfg: PpoConfig, policy: GptConfig, reward: GptConfig, valueless = false): MemoryPlan {
  const shared = !valueless && cfg.value_model === 'policy_head';
  return {
    models: [
      { model: policy, head: shared ? 'score' : 'lm', trained: true },
      { model: policy, head: 'lm' },
      { model: reward, head: 'score' },
      ...(shared || valueless ? [] : [{ model: reward, head: 'score' as const, trained: true }]),
      ...(cfg.ema_decay !== undefined ? [{ model: policy, head: 'lm' as const }] : []),
    ],
    train: { rows: cfg.mini_batch_size / cfg.grad_accum_steps + (cfg.ptx_coef > 0 ? cfg.ptx_batch_size : 0), tokens: policy.context_length },
    generate: { model: policy, rows: cfg.rollout_batch_size },
  };
}

/** Pretraining tokens for PPO-ptx, from the config's pretrain corpus. */
function ptxCorpus(loaded: LoadedConfig, tokenizer: Tokenizer): Int32Array {
  const data = loaded.config.pretrain?.data;
  if (!data) throw new ConfigError(`${loaded.file}: ppo.ptx_coef needs a pretrain.data corpus`);
  const ids = Int32Array.from(tokenizer.encode(loadCorpus(data)));
  if (ids.length <= loaded.config.model.context_length + 1) throw new DataError(`${loaded.file}: pretrain corpus too short for PPO-ptx`);
  return ids;
}
