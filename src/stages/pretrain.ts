import { tf } from '../backend/tf.js';
import { loadCheckpoint, saveCheckpoint } from '../checkpoint/checkpoint.js';
import { ConfigError, type LoadedConfig } from '../config/load.js';
import { DataError, describeCorpus, loadCorpus, splitTrainVal } from '../data/corpus.js';
import { countParams, type GptConfig } from '../model/config.js';
import { disposeParams, forward, initParams, lmLogits, type Params } from '../model/gpt.js';
import { meanTokenNll } from '../model/loss.js';
import { latestCheckpoint, StageRun, StageStateError, stageDir } from '../run/stage.js';
import { progressEnabled } from '../run/progress.js';
import { trainTokenizer, type Tokenizer } from '../tokenizer/index.js';
import { AdamW } from '../train/adamw.js';
import { restoreTrainingState, trainingState } from '../train/resume.js';
import { trainLoop, InterruptedError } from '../train/loop.js';
import { Rng } from '../util/rng.js';
import { evalWindows, randomWindows, type TokenWindows } from './lm-batches.js';

export interface StageOptions {
  force?: boolean;
  resume?: boolean;
}

export interface PretrainResult {
  dir: string;
  finalPath: string;
  metrics: Record<string, number>;
}

/** Mean next-token loss of a [B, T] window batch. */
export function windowLoss(params: Params, cfg: GptConfig, w: TokenWindows, B: number, training: boolean, dropoutSeed?: number) {
  const T = w.x.length / B;
  const x = tf.tensor2d(w.x, [B, T], 'int32');
  const y = tf.tensor1d(w.y, 'int32');
  const { hidden } = forward(params, cfg, x, { training, dropoutSeed });
  return meanTokenNll(lmLogits(params, hidden), y);
}

/**
 * Validates everything a pretraining run needs (config section, corpus, sizes)
 * before the stage directory is touched, so bad input leaves no trace.
 */
function prepareData(loaded: LoadedConfig, resumeTokenizer?: Tokenizer) {
  const { config, file } = loaded;
  const cfg = config.pretrain;
  if (!cfg) throw new ConfigError(`${file}: pretrain: section missing`);
  const text = loadCorpus(cfg.data);
  const { train, val } = splitTrainVal(text, cfg.val_fraction);
  const tokenizer = resumeTokenizer ?? trainTokenizer(config.tokenizer, train);
  const trainIds = Int32Array.from(tokenizer.encode(train));
  const valIds = Int32Array.from(tokenizer.encode(val));
  const need = config.model.context_length + 1;
  for (const [split, ids] of [['train', trainIds], ['validation', valIds]] as const) {
    if (ids.length <= need) {
      throw new DataError(
        `${describeCorpus(cfg.data)}: corpus too short: the ${split} split has ${ids.length} tokens, ` +
          `more than model.context_length + 1 = ${need} are needed`,
      );
    }
  }
  const model: GptConfig = { ...config.model, vocab_size: tokenizer.vocabSize };
  return { cfg, tokenizer, trainIds, valIds, model };
}

export async function runPretrain(loaded: LoadedConfig, opts: StageOptions = {}): Promise<PretrainResult> {
  const { config } = loaded;
  const dir = stageDir(config, 'pretrain');
  const resumeFrom = opts.resume ? latestCheckpoint(dir) : undefined;
  if (opts.resume && !resumeFrom) throw new StageStateError(`${dir}: no periodic checkpoint to resume from`);
  const ckpt = resumeFrom ? loadCheckpoint(resumeFrom.path, { resume: true, expectHead: 'lm' }) : undefined;
  const data = prepareData(loaded, ckpt?.tokenizer);
  const { cfg, model, tokenizer, trainIds, valIds } = data;

  const run = StageRun.open(config, 'pretrain', { force: opts.force, resume: opts.resume, echoLogs: !progressEnabled() });
  let rng = new Rng(config.seed);
  const params = ckpt?.params ?? initParams(model, 'lm', rng);
  const optimizer = new AdamW(params, { beta1: cfg.beta1, beta2: cfg.beta2, eps: cfg.eps, weight_decay: cfg.weight_decay });
  let startStep = 0;
  if (ckpt && resumeFrom) {
    ({ step: startStep, rng } = restoreTrainingState(ckpt, optimizer, config.seed));
    run.truncateMetricsAfter(startStep);
    run.logger.info({ step: startStep, checkpoint: resumeFrom.path }, 'resumed');
  }
  run.logger.info({ params: countParams(model), train_tokens: trainIds.length, val_tokens: valIds.length, vocab: model.vocab_size }, 'start');

  const B = cfg.batch_size;
  const T = model.context_length;
  const valBatches = evalWindows(valIds, cfg.eval_batches, B, T);
  try {
    const metrics = await trainLoop({
      run,
      params,
      optimizer,
      settings: cfg,
      startStep,
      tokensPerStep: B * T * cfg.grad_accum_steps,
      microBatches: () =>
        Array.from({ length: cfg.grad_accum_steps }, () => {
          const w = randomWindows(trainIds, B, T, rng);
          const seed = model.dropout > 0 ? rng.seed() : undefined;
          return () => windowLoss(params, model, w, B, true, seed);
        }),
      evaluate: () => {
        let sum = 0;
        for (const w of valBatches) sum += tf.tidy(() => windowLoss(params, model, w, B, false)).arraySync() as number;
        return { val_loss: sum / valBatches.length };
      },
      save: (path, step, withResume) =>
        saveCheckpoint(path, {
          params,
          head: 'lm',
          model,
          tokenizer,
          resume: withResume ? trainingState(optimizer, rng, step) : undefined,
        }),
    });
    run.complete({ steps: cfg.max_steps, val_loss: metrics.val_loss, params: countParams(model) });
    return { dir: run.dir, finalPath: run.finalPath, metrics };
  } catch (err) {
    run.fail(err instanceof InterruptedError ? 'interrupted' : 'failed', (err as Error).message);
    throw err;
  } finally {
    optimizer.dispose();
    disposeParams(params);
  }
}
