import path from 'node:path';
import { readCheckpointMeta, loadCheckpoint, type LoadedCheckpoint } from '../checkpoint/checkpoint.js';
import { ConfigError, type LoadedConfig } from '../config/load.js';
import type { DataSource, ExperimentConfig } from '../config/schema.js';
import type { GptConfig } from '../model/config.js';
import { DataError } from '../data/corpus.js';
import { stageDir } from '../run/stage.js';
import { readDemonstrations, sftBatch, tokenizeDemonstrations, type Demonstration } from '../sft/examples.js';
import { getTask } from '../tasks/index.js';
import { evaluateLm, type LmBatch } from '../train/lm-loss.js';
import { handOver, runSupervisedStage, type StageOptions, type StageResult } from './supervised.js';
import { splitEveryKth } from '../util/arrays.js';

export function loadDemonstrations(source: DataSource): Demonstration[] {
  if ('path' in source) return readDemonstrations(source.path);
  return getTask(source.task)
    .sftExamples()
    .map((d, i) => ({ ...d, source: `task:${source.task}#${i + 1}` }));
}

/** `init_from` if set, else the previous stage's `final/`. */
export function parentCheckpoint(loaded: LoadedConfig, initFrom: string | undefined, previousStage: string): string {
  return initFrom ?? path.join(stageDir(loaded.config, previousStage), 'final');
}

/**
 * Where a stage that fine-tunes a language model (sft, dpo) starts: its config section, the
 * parent checkpoint, the parent's model shape, and the parent loaded (or `reuse`, e.g. a
 * resumed run's checkpoint, instead). Here beside parentCheckpoint, which other stages import
 * from this file too (supervised.ts would make an import cycle with it).
 */
export function fineTuneStart<S extends 'sft' | 'dpo'>(
  loaded: LoadedConfig,
  section: S,
  previousStage: string,
  reuse?: LoadedCheckpoint,
): { settings: NonNullable<ExperimentConfig[S]>; parent: string; model: GptConfig; start: LoadedCheckpoint } {
  const settings = loaded.config[section];
  if (!settings) throw new ConfigError(`${loaded.file}: ${section}: section missing`);
  const parent = parentCheckpoint(loaded, settings.init_from, previousStage);
  const model = readCheckpointMeta(parent).model;
  return { settings, parent, model, start: reuse ?? loadCheckpoint(parent, { expectHead: 'lm' }) };
}

/**
 * Supervised fine-tuning from a pretrain checkpoint: loss on response tokens
 * (and the appended EOS) only. The tokenizer travels with the checkpoint.
 */
export function runSft(loaded: LoadedConfig, opts: StageOptions = {}): Promise<StageResult> {
  return runSupervisedStage(loaded, 'sft', opts, (resumed) => {
    const { settings: cfg, parent, model, start: init } = fineTuneStart(loaded, 'sft', 'pretrain', resumed);
    const { tokenizer } = init;
    const demos = loadDemonstrations(cfg.data);
    const { sequences, truncated } = tokenizeDemonstrations(demos, tokenizer, model.context_length);
    const { train, evaluation } = splitEveryKth(sequences, cfg.eval_fraction);
    if (train.length === 0 || evaluation.length === 0) {
      throw new DataError(`${'path' in cfg.data ? cfg.data.path : cfg.data.task}: too few demonstrations (${sequences.length}) for a train/eval split`);
    }
    const B = cfg.batch_size;
    const evalBatches: LmBatch[] = [];
    for (let i = 0; i < evaluation.length; i += B) evalBatches.push(sftBatch(evaluation.slice(i, i + B), tokenizer.padId));
    const meanLength = train.reduce((s, q) => s + q.ids.length - 1, 0) / train.length;
    return {
      head: 'lm',
      model,
      tokenizer,
      settings: cfg,
      parents: [parent],
      tokensPerStep: Math.round(B * meanLength * cfg.grad_accum_steps),
      initialParams: handOver(init.params, 'sft'),
      microBatch: {
        // Drawn with replacement from the RNG alone, so a resumed run continues exactly.
        lm: (rng) => sftBatch(Array.from({ length: B }, () => train[rng.int(train.length)]), tokenizer.padId),
        // A graph step pads every batch to the longest training sequence, so one graph serves all.
        padTo: train.reduce((m, q) => Math.max(m, q.ids.length), 0) - 1,
      },
      evaluate: (params) => {
        const { loss, accuracy } = evaluateLm(params, model, evalBatches);
        return { eval_loss: loss, mean_token_accuracy: accuracy };
      },
      describe: { parent, demonstrations: sequences.length, eval: evaluation.length, truncated_prompts: truncated },
    };
  });
}
