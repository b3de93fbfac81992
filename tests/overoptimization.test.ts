import { describe, it, expect } from 'vitest';
import { bestOfNKl, expectedBestOfN, fitOveroptimization, fittedGain } from '../src/overoptimization/fit.js';
import { Rng } from '../src/util/rng.js';

describe('over-optimisation fits (Gao et al. 2022)', () => {
  it('best-of-n form recovers α, β from exact points, peak at α/(2β)', () => {
    const alpha = 0.4;
    const beta = 0.25;
    const points = [0.3, 0.6, 0.9, 1.2, 1.5].map((d) => ({ d, gain: d * (alpha - beta * d) }));
    const fit = fitOveroptimization('bon', points);
    expect(fit.alpha).toBeCloseTo(alpha, 10);
    expect(fit.beta).toBeCloseTo(beta, 10);
    expect(fit.peak_d).toBeCloseTo(0.8, 10);
    expect(fit.peak_gain).toBeCloseTo(0.16, 10); // 0.8·(0.4 − 0.2)
    expect(fit.rmse).toBeLessThan(1e-12);
  });

  it('RL form recovers α, β, peak at exp(α/β − 1)', () => {
    const alpha = 0.2;
    const beta = 0.1;
    const points = [0.5, 1, 2, 3, 4].map((d) => ({ d, gain: d * (alpha - beta * Math.log(d)) }));
    const fit = fitOveroptimization('rl', points);
    expect(fit.alpha).toBeCloseTo(alpha, 10);
    expect(fit.beta).toBeCloseTo(beta, 10);
    expect(fit.peak_d).toBeCloseTo(Math.E, 8); // exp(2 − 1)
    expect(fittedGain(fit, 1)).toBeCloseTo(0.2, 10);
  });

  it('no over-optimisation yet (gain still rising linearly): β ≤ 0 and no peak', () => {
    const fit = fitOveroptimization('bon', [0.5, 1, 1.5].map((d) => ({ d, gain: 0.3 * d + 0.05 * d * d })));
    expect(fit.beta).toBeLessThan(0);
    expect(fit.peak_d).toBeNull();
    expect(() => fitOveroptimization('bon', [{ d: 1, gain: 0.1 }])).toThrow(/do not determine/);
  });

  it('KL of best-of-n: 0 at n = 1, log n − (n−1)/n', () => {
    expect(bestOfNKl(1)).toBe(0);
    expect(bestOfNKl(2)).toBeCloseTo(Math.log(2) - 0.5, 12);
    expect(bestOfNKl(16)).toBeCloseTo(2.7726 - 0.9375, 4);
  });

  it('expected best-of-n over all subsets equals brute-force enumeration', () => {
    const rng = new Rng('bon');
    const N = 7;
    const scores = Array.from({ length: N }, () => rng.next());
    const values = Array.from({ length: N }, () => rng.next());
    const subsets = (n: number, start = 0): number[][] => (n === 0 ? [[]] : Array.from({ length: N - start }, (_, k) => start + k).flatMap((i) => subsets(n - 1, i + 1).map((s) => [i, ...s])));
    for (const n of [1, 2, 3, 7]) {
      const all = subsets(n);
      const brute = all.reduce((s, sub) => s + values[sub.reduce((b, i) => (scores[i] > scores[b] ? i : b), sub[0])], 0) / all.length;
      expect(expectedBestOfN(scores, values, n)).toBeCloseTo(brute, 12);
    }
    // n = 1 is the plain mean; n = N picks the top-scored sample
    expect(expectedBestOfN([3, 1, 2], [10, 20, 30], 1)).toBeCloseTo(20, 12);
    expect(expectedBestOfN([3, 1, 2], [10, 20, 30], 3)).toBeCloseTo(10, 12);
    expect(() => expectedBestOfN([1, 2], [1, 2], 3)).toThrow(RangeError);
  });
});
