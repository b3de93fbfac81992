import { describe, it, expect } from 'vitest';
import { sampleSd, summarizeSeeds, tCritical95 } from '../src/util/stats.js';
import { evalComparison } from '../src/workflow/pipeline.js';
import { seedAggregates, type TrialRecord } from '../src/workflow/sweep.js';

describe('seed statistics', () => {
  it('mean, sample sd, t-based 95% CI and count improved, against hand-computed values', () => {
    // mean 0.125; squared deviations sum 0.0875, /3 → sd 0.170783; t(3) = 3.182 → half-width 0.271716
    const s = summarizeSeeds([0.1, 0.2, 0.3, -0.1]);
    expect(s.n).toBe(4);
    expect(s.mean).toBeCloseTo(0.125, 12);
    expect(s.sd).toBeCloseTo(0.170783, 6);
    expect(s.ci95[0]).toBeCloseTo(-0.146716, 5);
    expect(s.ci95[1]).toBeCloseTo(0.396716, 5);
    expect(s.positive).toBe(3);
    expect(sampleSd([5])).toBe(0);
    expect(Number.isNaN(summarizeSeeds([1]).ci95[0])).toBe(true);
  });

  it("Student's t quantiles: table values, and the large-df approximation approaches 1.96", () => {
    expect(tCritical95(1)).toBe(12.706);
    expect(tCritical95(9)).toBe(2.262);
    expect(tCritical95(40)).toBeCloseTo(2.021, 2);
    expect(tCritical95(1000)).toBeCloseTo(1.962, 3);
    expect(() => tCritical95(0)).toThrow(RangeError);
  });
});

describe('sweep summaries compare the final policy with SFT, per seed and over seeds', () => {
  it('evalComparison: the last policy, the first as sft_*, and the differences', () => {
    const m = evalComparison([
      { policy: 'sft/final', gold_score: 0.5, proxy_reward: 0.1, kl: 0, distinct_2: 0.8 },
      { policy: 'ppo/final', gold_score: 0.6, proxy_reward: 0.7, kl: 1.2, distinct_2: 0.6 },
    ]);
    expect(m).toMatchObject({ gold_score: 0.6, sft_gold_score: 0.5, kl: 1.2, sft_kl: 0 });
    expect(m.delta_gold).toBeCloseTo(0.1, 12);
    expect(m.delta_proxy).toBeCloseTo(0.6, 12);
    expect(m.delta_distinct_2).toBeCloseTo(-0.2, 12);
    expect(evalComparison([{ gold_score: 0.5 }])).toEqual({ gold_score: 0.5 });
  });

  it('seedAggregates: one row per setting of the other keys, over its ok trials only', () => {
    const trial = (id: string, kl: string, seed: string, delta: number | undefined, status: TrialRecord['status'] = 'ok'): TrialRecord =>
      ({ id, params: { 'ppo.kl_coef': kl, seed }, run: '', command: [], status, metrics: delta === undefined ? {} : { 'eval/delta_gold': delta } }) as TrialRecord;
    const trials = [
      trial('t1', '0.1', '1', 0.1),
      trial('t2', '0.1', '2', 0.2),
      trial('t3', '0.1', '3', 0.3),
      trial('t4', '0.1', '4', -0.1),
      trial('t5', '0.2', '1', 0.05),
      trial('t6', '0.2', '2', 0.5, 'failed'),
    ];
    const rows = seedAggregates(trials, ['ppo.kl_coef', 'seed'], ['eval/delta_gold']);
    // kl 0.2 has one ok seed: no spread to report
    expect(rows).toHaveLength(1);
    expect(rows[0].setting).toEqual([['ppo.kl_coef', '0.1']]);
    expect(rows[0].seeds).toBe(4);
    const [name, s] = rows[0].columns[0];
    expect(name).toBe('eval/delta_gold');
    expect(s.mean).toBeCloseTo(0.125, 12);
    expect(s.positive).toBe(3);
    expect(seedAggregates(trials, ['ppo.kl_coef'], ['eval/delta_gold'])).toEqual([]);
  });
});
