import { describe, expect, it } from 'vitest';
import { tf } from '../src/backend/tf.js';
import type { GptConfig } from '../src/model/config.js';
import { initParams } from '../src/model/gpt.js';
import { pairwiseLoss } from '../src/reward/loss.js';
import { rewardInputs, rewardMicroLoss, type ComparisonBatch, type RewardBatchShape } from '../src/reward/micro-loss.js';
import { runTrainReward } from '../src/stages/train-reward.js';
import { Rng } from '../src/util/rng.js';
import { expectGraphMatchesEager, expectPaddingChangesNothing, expectStageRunsAsGraph, tinyPreferenceConfig, type DrawnStep } from './preference-graph-helpers.js';

/** The reward model's optimiser step as a traced graph (src/reward/micro-loss.ts through src/train/step-runner.ts) against the eager step. */

const CFG: GptConfig = { vocab_size: 11, n_layer: 1, n_head: 2, d_model: 16, context_length: 16, dropout: 0 };
const SHAPE: RewardBatchShape = { rows: 8, width: 9, pairs: 8 };
const PAD = 10;

/** Two comparisons of 2–3 responses of random lengths, pairs from random rankings (fewer rows, columns and pairs than SHAPE). */
function batch(rng: Rng): ComparisonBatch {
  const rows: number[][] = [];
  const better: number[] = [];
  const worse: number[] = [];
  for (let c = 0; c < 2; c++) {
    const k = 2 + rng.int(2);
    const offset = rows.length;
    for (let j = 0; j < k; j++) rows.push(Array.from({ length: 2 + rng.int(6) }, () => rng.int(PAD)));
    for (let j = 1; j < k; j++) {
      better.push(offset + j - 1);
      worse.push(offset + j);
    }
  }
  return { rows, better: Int32Array.from(better), worse: Int32Array.from(worse) };
}

function drawn(rng: Rng, micro: number): DrawnStep {
  const batches = Array.from({ length: micro }, () => batch(rng));
  return { exact: batches.map((b) => rewardInputs(b, PAD)), padded: batches.map((b) => rewardInputs(b, PAD, SHAPE)) };
}

const params = () => initParams(CFG, 'score', new Rng(3));

describe('reward-model step as a traced graph', () => {
  it('pairwise loss with pair weights: a zero-weight pair changes nothing (hand-computed)', () => {
    // scores [2, 0.5, -1]; real pairs (0>1), (1>2): margins 1.5, 1.5; padding pair (0, 0) of weight 0
    const loss = tf.tidy(() =>
      pairwiseLoss(tf.tensor1d([2, 0.5, -1]), tf.tensor1d([0, 1, 0], 'int32'), tf.tensor1d([1, 2, 0], 'int32'), 0.1, tf.tensor1d([1, 1, 0])).dataSync()[0],
    );
    // softplus(−1.5) + 0.1 · mean((2.5)², (−0.5)²)
    expect(loss).toBeCloseTo(Math.log1p(Math.exp(-1.5)) + 0.1 * 3.25, 6);
  });

  it('padding rows, columns and pairs to the stage shape leaves the loss and its gradients unchanged', () => {
    expectPaddingChangesNothing(params, rewardMicroLoss(CFG, 0.05), drawn(new Rng(1), 2));
  });

  it('padded graph steps match unpadded eager steps over three steps of two micro-batches (< 1e-4), tensors flat', async () => {
    const rng = new Rng(2);
    await expectGraphMatchesEager(params, rewardMicroLoss(CFG, 0.05), [drawn(rng, 2), drawn(rng, 2), drawn(rng, 2)]);
  });

  it('rejects a batch larger than the shape', () => {
    expect(() => rewardInputs(batch(new Rng(4)), PAD, { ...SHAPE, pairs: 1 })).toThrow(RangeError);
  });

  it('train-reward runs its steps as a graph, records it, is deterministic and follows the eager run', async () => {
    const loaded = await tinyPreferenceConfig('train_reward', { center_coef: 0.01, norm_samples: 4 });
    await expectStageRunsAsGraph(() => runTrainReward(loaded, { force: true }));
  });
});
