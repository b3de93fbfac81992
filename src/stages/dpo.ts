import { tf } from '../backend/tf.js';
import type { LoadedConfig } from '../config/load.js';
import type { DpoConfig } from '../config/schema.js';
import { DataError } from '../data/corpus.js';
import { sequenceLogps } from '../dpo/logps.js';
import { dpoInputs, dpoMicroLoss, dpoTerms, type Pair } from '../dpo/micro-loss.js';
import { DPO_STAT_NAMES, dpoStats } from '../dpo/stats.js';
import { preferencePairs } from '../dpo/pairs.js';
import { labelComparisonsPath, readComparisons } from '../label/comparisons.js';
import type { GptConfig } from '../model/config.js';
import { disposeParams, type Params } from '../model/gpt.js';
import { sftBatch, tokenizeDemonstrations, type SftSequence } from '../sft/examples.js';
import { upload } from '../train/traced-step.js';
import { maxOf, mean, splitEveryKth } from '../util/arrays.js';
import { fineTuneStart } from './sft.js';
import { handOver, runSupervisedStage, type StageOptions, type StageResult, type SupervisedStage } from './supervised.js';

/** Summed response log-probs of `seqs` (evaluation mode), `chunk` rows at a time. */
function logpsOf(params: Params, cfg: GptConfig, seqs: readonly SftSequence[], padId: number, chunk: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < seqs.length; i += chunk) {
    const t = tf.tidy(() => sequenceLogps(params, cfg, sftBatch(seqs.slice(i, i + chunk), padId), false));
    out.push(...t.dataSync());
    t.dispose();
  }
  return out;
}

/**
 * DPO's memory beyond the supervised loop's: micro-batches of 2·batch_size rows (the chosen
 * responses, then the rejected ones), and the frozen SFT reference, a model of the policy's
 * shape. A resumed run holds it beside the policy while the reference log-probs are computed;
 * a fresh run hands its weights over as the policy's, so there the estimate is an upper bound.
 */
export function dpoMemoryNeeds(cfg: Pick<DpoConfig, 'batch_size'>, model: GptConfig): Pick<SupervisedStage, 'batchRows' | 'alsoNeeds'> {
  return { batchRows: 2 * cfg.batch_size, alsoNeeds: { models: [{ model, head: 'lm' }] } };
}

/**
 * `rlhf dpo`: Direct Preference Optimisation on the label stage's comparisons.
 * The policy starts from the SFT model, which is also the frozen reference;
 * its log-probabilities of every response are computed once, before training.
 * Pairs come from each ranking as `dpo.pairs` says, split into train and
 * held-out by comparison; the loop, checkpoints and resume are the supervised
 * stages' own.
 */
export function runDpo(loaded: LoadedConfig, opts: StageOptions = {}): Promise<StageResult> {
  return runSupervisedStage(loaded, 'dpo', opts, (resumed) => {
    // the SFT policy is loaded even on resume: it is the reference whose log-probs the pairs need
    const { settings: cfg, parent, model, start: reference } = fineTuneStart(loaded, 'dpo', 'sft');
    const dataFile = cfg.data?.path ?? labelComparisonsPath(loaded.config);
    const { tokenizer } = reference;
    let train: Pair[];
    let evaluation: Pair[];
    let comparisons: number;
    try {
      const records = readComparisons(dataFile);
      comparisons = records.length;
      const items = records
        .map(({ value: c, line }) => ({
          seqs: tokenizeDemonstrations(c.responses.map((response) => ({ prompt: c.prompt, response, source: `${dataFile}:${line}` })), tokenizer, model.context_length).sequences,
          pairs: preferencePairs(c, cfg.pairs),
        }))
        .filter((c) => c.pairs.length > 0);
      const seqs = items.flatMap((c) => c.seqs);
      const refLogps = logpsOf(reference.params, model, seqs, tokenizer.padId, cfg.batch_size);
      let offset = 0;
      const grouped = items.map((c) => {
        const base = offset;
        offset += c.seqs.length;
        return c.pairs.map(([b, w]): Pair => ({ chosen: c.seqs[b], rejected: c.seqs[w], refChosen: refLogps[base + b], refRejected: refLogps[base + w] }));
      });
      // split by comparison, so no held-out pair shares a response with a training pair
      const split = splitEveryKth(grouped, cfg.eval_fraction);
      train = split.train.flat();
      evaluation = split.evaluation.flat();
    } catch (err) {
      if (!resumed) disposeParams(reference.params);
      throw err;
    } finally {
      // resumed: the weights come from the checkpoint, the reference was only needed for its log-probs
      if (resumed) disposeParams(reference.params);
    }
    if (train.length === 0 || evaluation.length === 0) {
      if (!resumed) disposeParams(reference.params);
      throw new DataError(`${dataFile}: too few comparisons with a preference for a train/eval split`);
    }
    const B = cfg.batch_size;
    const padId = tokenizer.padId;
    // A graph step pads every batch to the longest training sequence, so one graph serves all.
    const width = maxOf(train.map((p) => Math.max(p.chosen.ids.length, p.rejected.ids.length))) - 1;
    // Statistics of the micro-batches of the last step (not a window average, so a resumed run logs the same numbers).
    let recent: number[][] = [];
    return {
      head: 'lm',
      model,
      tokenizer,
      settings: cfg,
      parents: [parent],
      tokensPerStep: Math.round(2 * B * cfg.grad_accum_steps * mean(train.map((p) => (p.chosen.ids.length + p.rejected.ids.length) / 2))),
      ...dpoMemoryNeeds(cfg, model),
      initialParams: handOver(reference.params, 'dpo'),
      microBatch: {
        loss: (seed) => dpoMicroLoss(model, cfg.beta, cfg.loss, seed),
        draw: (rng) => {
          const pairs = Array.from({ length: B }, () => train[rng.int(train.length)]);
          return { exact: dpoInputs(pairs, padId), padded: dpoInputs(pairs, padId, width) };
        },
        onStats: (stats) => (recent = stats.map(dpoStats)),
      },
      stepMetrics: () => Object.fromEntries(DPO_STAT_NAMES.map((name, j) => [name, mean(recent.map((s) => s[j]))])),
      evaluate: (params) => {
        let loss = 0;
        const sums = new Float64Array(DPO_STAT_NAMES.length);
        for (let i = 0; i < evaluation.length; i += B) {
          const part = evaluation.slice(i, i + B);
          const t = tf.tidy(() => {
            const r = dpoTerms(params, model, upload(dpoInputs(part, padId)), cfg.beta, cfg.loss, false);
            return tf.concat([r.loss.reshape([1]), r.stats]);
          });
          const v = t.dataSync();
          t.dispose();
          loss += v[0] * part.length;
          dpoStats(v.subarray(1)).forEach((x, j) => (sums[j] += x * part.length));
        }
        return { eval_loss: loss / evaluation.length, ...Object.fromEntries(DPO_STAT_NAMES.map((name, j) => [`eval_${name}`, sums[j] / evaluation.length])) };
      },
      describe: { parent, data: dataFile, comparisons, pairs: cfg.pairs, train_pairs: train.length, eval_pairs: evaluation.length, beta: cfg.beta, loss: cfg.loss },
    };
  });
}
