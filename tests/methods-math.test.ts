import { describe, it, expect } from 'vitest';
import { tf } from '../src/backend/tf.js';
import { loadCheckpoint } from '../src/checkpoint/checkpoint.js';
import { dpoLoss } from '../src/dpo/loss.js';
import { sequenceLogps } from '../src/dpo/logps.js';
import { preferencePairs } from '../src/dpo/pairs.js';
import { grpoAdvantages, perToken, rlooAdvantages } from '../src/grouprl/advantages.js';
import { k3Penalty } from '../src/grouprl/losses.js';
import { disposeParams, forward, lmLogits } from '../src/model/gpt.js';
import { sftBatch } from '../src/sft/examples.js';
import { frontierSpec, methodAggregates, methodLabel, perMethodMetrics } from '../src/workflow/method-metrics.js';
import { renderSvg } from '../src/report/charts.js';
import { randomLmCheckpoint } from './helpers.js';

const close = (got: ArrayLike<number>, want: number[], digits = 6) => {
  expect(got.length).toBe(want.length);
  want.forEach((w, i) => expect(got[i], `[${i}]`).toBeCloseTo(w, digits));
};

describe('RLOO advantages', () => {
  it('subtract the mean of the other k−1 rewards of the group (hand-computed)', () => {
    // group 1: [1, 2, 3, 6] → baselines 11/3, 10/3, 3, 2; group 2: [0, 4, 0, 0] → 4/3, 0, 4/3, 4/3
    close(rlooAdvantages([1, 2, 3, 6, 0, 4, 0, 0], 4), [1 - 11 / 3, 2 - 10 / 3, 0, 4, -4 / 3, 4, -4 / 3, -4 / 3]);
  });

  it("a sample's baseline does not depend on its own reward; other groups are untouched", () => {
    const a = rlooAdvantages([1, 2, 3, 5, 7, 9], 3);
    const b = rlooAdvantages([1.5, 2, 3, 5, 7, 9], 3);
    expect(b[0] - a[0]).toBeCloseTo(0.5, 12);
    expect(b[1] - a[1]).toBeCloseTo(-0.25, 12);
    expect(Array.from(b.slice(3))).toEqual(Array.from(a.slice(3)));
  });

  it('refuses k < 2 (one sample has no leave-one-out baseline) and ragged groups', () => {
    expect(() => rlooAdvantages([1, 2], 1)).toThrow(/k must be an integer ≥ 2 \(got 1\)/);
    expect(() => rlooAdvantages([1, 2, 3], 2)).toThrow(/3 rewards do not split into groups of 2/);
  });
});

describe('GRPO advantages', () => {
  it('are (R − mean)/(std + eps) per group with the unbiased std (hand-computed)', () => {
    // [1, 2, 3, 6]: mean 3, Σd² 14, std √(14/3)
    const std = Math.sqrt(14 / 3);
    close(grpoAdvantages([1, 2, 3, 6], 4, 0), [-2 / std, -1 / std, 0, 3 / std], 10);
  });

  it('have mean 0 and unit std within each group', () => {
    const r = [0.3, -1.2, 2.5, 0.9, 10, 11, 13, 10.5, -4, -4.5, -3, 1];
    const a = grpoAdvantages(r, 4);
    for (let g = 0; g < r.length; g += 4) {
      const x = Array.from(a.slice(g, g + 4));
      const m = x.reduce((s, v) => s + v, 0) / 4;
      const sd = Math.sqrt(x.reduce((s, v) => s + (v - m) ** 2, 0) / 3);
      expect(m).toBeCloseTo(0, 12);
      expect(sd).toBeCloseTo(1, 3);
    }
  });

  it('equal rewards in a group give zero advantages, not 0/0', () => {
    expect(Array.from(grpoAdvantages([0.7, 0.7, 0.7, 1, 2, 3], 3).slice(0, 3))).toEqual([0, 0, 0]);
    expect(() => grpoAdvantages([1], 1)).toThrow(/k must be an integer ≥ 2/);
  });

  it('perToken spreads each response advantage over its tokens, 0 on padding', () => {
    expect(Array.from(perToken([2, -1], [2, 3], 3))).toEqual([2, 2, 0, -1, -1, -1]);
  });
});

describe("GRPO's k3 KL penalty", () => {
  it('is the masked mean of exp(u) − u − 1, u = ref − logp (hand-computed), 0 for a policy equal to the reference', () => {
    const v = (logp: number[], ref: number[], mask: number[]) => tf.tidy(() => k3Penalty(tf.tensor1d(logp), tf.tensor1d(ref), tf.tensor1d(mask)).dataSync()[0]);
    const k3 = Math.exp(-0.5) + 0.5 - 1;
    expect(v([-1, -2, -3], [-1.5, -2, 50], [1, 1, 0])).toBeCloseTo(k3 / 2, 6);
    expect(v([-1, -2], [-1.5, -2], [1, 0])).toBeCloseTo(k3, 6);
    expect(v([-1, -2], [-1, -2], [1, 1])).toBe(0);
  });
});

describe('DPO loss', () => {
  const run = (pc: number[], pr: number[], rc: number[], rr: number[], beta: number, kind: 'sigmoid' | 'ipo') =>
    tf.tidy(() => {
      const r = dpoLoss({ policyChosen: tf.tensor1d(pc), policyRejected: tf.tensor1d(pr), refChosen: tf.tensor1d(rc), refRejected: tf.tensor1d(rr) }, beta, kind);
      return { loss: r.loss.dataSync()[0], chosen: Array.from(r.chosenRewards.dataSync()), rejected: Array.from(r.rejectedRewards.dataSync()) };
    });

  it('sigmoid and IPO against hand-computed values; implicit rewards β·(log π − log π_ref)', () => {
    // h = (−3 − −4) − (−5 − −4) = 2
    const s = run([-3], [-5], [-4], [-4], 0.5, 'sigmoid');
    expect(s.loss).toBeCloseTo(Math.log1p(Math.exp(-1)), 6);
    close(s.chosen, [0.5]);
    close(s.rejected, [-0.5]);
    // (h − 1/(2β))² = (2 − 1)²
    expect(run([-3], [-5], [-4], [-4], 0.5, 'ipo').loss).toBeCloseTo(1, 6);
  });

  it('with the policy equal to the reference: loss log 2, rewards 0', () => {
    const s = run([-3, -7], [-5, -1], [-3, -7], [-5, -1], 0.1, 'sigmoid');
    expect(s.loss).toBeCloseTo(Math.LN2, 6);
    expect([...s.chosen, ...s.rejected]).toEqual([0, 0, 0, 0]);
  });

  it("sequence log-probs sum log π over the response and EOS only, whatever the batch's padding", async () => {
    const ckpt = loadCheckpoint(await randomLmCheckpoint({ n_layer: 1, d_model: 16, context_length: 16 }, 3));
    const cfg = ckpt.meta.model;
    const seqs = [
      { ids: [5, 6, 7, 8, 2], promptLength: 2 },
      { ids: [9, 10, 11], promptLength: 1 },
    ];
    const batched = tf.tidy(() => sequenceLogps(ckpt.params, cfg, sftBatch(seqs, 0), false)).dataSync();
    // by hand: each row alone, Σ over targets at positions ≥ promptLength of log softmax
    const alone = seqs.map((s) =>
      tf.tidy(() => {
        const input = s.ids.slice(0, -1);
        const { hidden } = forward(ckpt.params, cfg, tf.tensor2d([input], [1, input.length], 'int32'));
        const logp = tf.logSoftmax(lmLogits(ckpt.params, hidden)).arraySync() as number[][];
        let sum = 0;
        for (let t = s.promptLength - 1; t < input.length; t++) sum += logp[t][s.ids[t + 1]];
        return sum;
      }),
    );
    close(batched, alone, 4);
    disposeParams(ckpt.params);
  });
});

describe('DPO pairs from a K-ranking', () => {
  it('all: every ordered pair less ties; best_vs_rest: the top response against each other one', () => {
    expect(preferencePairs({ ranking: [1, 2, 0] }, 'all')).toEqual([[1, 2], [1, 0], [2, 0]]);
    expect(preferencePairs({ ranking: [1, 2, 0] }, 'best_vs_rest')).toEqual([[1, 2], [1, 0]]);
    expect(preferencePairs({ ranking: [2, 0, 1], ties: [[0, 1]] }, 'all')).toEqual([[2, 0], [2, 1]]);
    expect(preferencePairs({ ranking: [2, 0, 1], ties: [[2, 0]] }, 'best_vs_rest')).toEqual([[2, 1]]);
  });
});

describe('per-method eval metrics for sweeps', () => {
  it('labels policies by stage, aggregates each method over seeds and charts the frontier', async () => {
    expect(methodLabel('/r/x/rloo/final')).toBe('rloo');
    expect(methodLabel('runs/x/round-2/ppo/final')).toBe('round-2/ppo');
    expect(perMethodMetrics([{ policy: 'x/sft/final', gold_score: 0.1 }, { policy: 'x/ppo/final', gold_score: 0.2 }])).toEqual({});
    const policies = (g: number) => [
      { policy: 'x/sft/final', gold_score: 0.1, kl: 0 },
      { policy: 'x/dpo/final', gold_score: g, kl: 1 },
    ];
    const m = perMethodMetrics(policies(0.3));
    expect(m).toEqual({ 'sft/gold_score': 0.1, 'sft/kl': 0, 'dpo/gold_score': 0.3, 'dpo/kl': 1 });
    const trial = (seed: string, g: number) => ({ status: 'ok', params: { seed }, metrics: Object.fromEntries(Object.entries(perMethodMetrics(policies(g))).map(([k, v]) => [`eval/${k}`, v])) });
    const rows = methodAggregates([trial('1', 0.2), trial('2', 0.4)], ['seed']);
    const dpo = rows.find((r) => r.method === 'dpo')!;
    expect(dpo.seeds).toBe(2);
    const gold = dpo.columns.find(([c]) => c === 'gold_score')![1];
    expect(gold.mean).toBeCloseTo(0.3, 12);
    expect(gold.sd).toBeCloseTo(Math.SQRT2 * 0.1, 12);
    const svg = await renderSvg(frontierSpec(rows) as Parameters<typeof renderSvg>[0]);
    expect(svg).toMatch(/^<svg/);
    expect(svg).toContain('>dpo<');
    expect(frontierSpec([])).toBeUndefined();
  });
});
