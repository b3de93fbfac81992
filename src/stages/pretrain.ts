import { ConfigError, type LoadedConfig } from '../config/load.js';
import { DataError, describeCorpus, loadCorpus, splitTrainVal } from '../data/corpus.js';
import type { GptConfig } from '../model/config.js';
import { initParams } from '../model/gpt.js';
import { trainTokenizer } from '../tokenizer/index.js';
import { evaluateLm } from '../train/lm-loss.js';
import { evalWindows, randomWindows } from './lm-batches.js';
import { runSupervisedStage, type StageOptions, type StageResult } from './supervised.js';

/** Pretraining: next-token prediction on random windows of a corpus; fits the tokenizer first. */
export function runPretrain(loaded: LoadedConfig, opts: StageOptions = {}): Promise<StageResult> {
  const { config, file } = loaded;
  return runSupervisedStage(loaded, 'pretrain', opts, (resumed) => {
    const cfg = config.pretrain;
    if (!cfg) throw new ConfigError(`${file}: pretrain: section missing`);
    const text = loadCorpus(cfg.data);
    const { train, val } = splitTrainVal(text, cfg.val_fraction);
    const tokenizer = resumed?.tokenizer ?? trainTokenizer(config.tokenizer, train);
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
    const B = cfg.batch_size;
    const T = model.context_length;
    const valBatches = evalWindows(valIds, cfg.eval_batches, B, T);
    return {
      head: 'lm',
      model,
      tokenizer,
      settings: cfg,
      parents: [],
      tokensPerStep: B * T * cfg.grad_accum_steps,
      initialParams: (rng) => initParams(model, 'lm', rng),
      microBatch: { lm: (rng) => randomWindows(trainIds, B, T, rng) },
      evaluate: (params) => ({ val_loss: evaluateLm(params, model, valBatches).loss }),
      describe: { train_tokens: trainIds.length, val_tokens: valIds.length, vocab: model.vocab_size },
    };
  });
}
