import { describe, expect, it } from 'vitest';
import { dpoInputs, dpoMicroLoss, type Pair } from '../src/dpo/micro-loss.js';
import { dpoStats } from '../src/dpo/stats.js';
import type { GptConfig } from '../src/model/config.js';
import { initParams } from '../src/model/gpt.js';
import type { SftSequence } from '../src/sft/examples.js';
import { runDpo } from '../src/stages/dpo.js';
import { Rng } from '../src/util/rng.js';
import { expectGraphMatchesEager, expectPaddingChangesNothing, expectStageRunsAsGraph, tinyPreferenceConfig, type DrawnStep } from './preference-graph-helpers.js';

/** DPO's optimiser step as a traced graph (src/dpo/micro-loss.ts through src/train/step-runner.ts) against the eager step. */

const CFG: GptConfig = { vocab_size: 11, n_layer: 1, n_head: 2, d_model: 16, context_length: 16, dropout: 0 };
const WIDTH = 12;

function sequence(rng: Rng): SftSequence {
  const promptLength = 1 + rng.int(3);
  return { ids: Array.from({ length: promptLength + 1 + rng.int(7) }, () => rng.int(CFG.vocab_size)), promptLength };
}

/** Three pairs with reference log-probs near the policy's (about −2.4 a token). */
function pairs(rng: Rng): Pair[] {
  return Array.from({ length: 3 }, () => ({ chosen: sequence(rng), rejected: sequence(rng), refChosen: -5 - 10 * rng.next(), refRejected: -5 - 10 * rng.next() }));
}

function drawn(rng: Rng, micro: number): DrawnStep {
  const batches = Array.from({ length: micro }, () => pairs(rng));
  return { exact: batches.map((p) => dpoInputs(p, 0)), padded: batches.map((p) => dpoInputs(p, 0, WIDTH)) };
}

const params = () => initParams(CFG, 'lm', new Rng(3));

describe('DPO step as a traced graph', () => {
  it("TRL's statistics from per-pair values (hand-computed)", () => {
    // chosen rewards [0.2, −0.1], rejected [0.1, 0.3], policy log-probs chosen [−4, −6], rejected [−5, −7]
    const s = dpoStats([0.2, -0.1, 0.1, 0.3, -4, -6, -5, -7]);
    const want = [0.05, 0.2, 0.5, -0.15, -5, -6];
    s.forEach((x, j) => expect(x).toBeCloseTo(want[j], 12));
  });

  for (const kind of ['sigmoid', 'ipo'] as const) {
    it(`${kind}: padding to the stage width leaves the loss and its gradients unchanged`, () => {
      expectPaddingChangesNothing(params, dpoMicroLoss(CFG, 0.5, kind), drawn(new Rng(1), 2));
    });
  }

  it('padded graph steps match unpadded eager steps over three steps of two micro-batches (< 1e-4), statistics too, tensors flat', async () => {
    const rng = new Rng(2);
    await expectGraphMatchesEager(params, dpoMicroLoss(CFG, 0.5, 'sigmoid'), [drawn(rng, 2), drawn(rng, 2), drawn(rng, 2)]);
  });

  it('rejects a sequence longer than the width', () => {
    expect(() => dpoInputs(pairs(new Rng(4)), 0, 2)).toThrow(RangeError);
  });

  it('the dpo stage runs its steps as a graph, records it, is deterministic and follows the eager run', async () => {
    const loaded = await tinyPreferenceConfig('dpo');
    await expectStageRunsAsGraph(() => runDpo(loaded, { force: true }));
  });
});
