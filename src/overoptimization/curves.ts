import { fitOveroptimization, type OverFit, type OverPoint } from './fit.js';

/** One best-of-n point on the reference policy (n = 1 is the policy itself). */
export interface BestOfNPoint {
  n: number;
  /** Analytic KL(best-of-n ‖ reference) = log n − (n−1)/n. */
  kl: number;
  d: number;
  proxy_reward: number;
  gold_score?: number;
}

/** One PPO iteration's rollouts: their KL to the reference, proxy reward and gold score. */
export interface RlPoint {
  step: number;
  kl: number;
  d: number;
  proxy_reward: number;
  gold_score: number;
}

export interface OveroptimizationReport {
  best_of_n: BestOfNPoint[];
  rl: RlPoint[];
  /** Gold gain over the starting policy against d, fitted per method (absent where the points do not determine a fit). */
  fits: { bon?: OverFit; rl?: OverFit };
}

/**
 * The PPO curve from a PPO stage's metrics.jsonl rows: per iteration the
 * rollouts' KL (`objective/kl`), proxy (`objective/scores`) and gold
 * (`gold/score`). Iteration 1 samples the starting policy itself (KL 0), so
 * gains are measured from it, on the same prompt distribution.
 */
export function ppoCurve(rows: readonly Record<string, number>[]): RlPoint[] {
  return rows
    .filter((r) => r['objective/kl'] !== undefined && r['gold/score'] !== undefined && r['objective/scores'] !== undefined)
    .map((r) => {
      const kl = Math.max(0, r['objective/kl']);
      return { step: r.step, kl, d: Math.sqrt(kl), proxy_reward: r['objective/scores'], gold_score: r['gold/score'] };
    });
}

function tryFit(form: 'bon' | 'rl', points: OverPoint[]): OverFit | undefined {
  try {
    return fitOveroptimization(form, points);
  } catch {
    return undefined;
  }
}

/** Fits R_bon and R_RL (src/overoptimization/fit.ts) to the gold gains of both curves. */
export function overoptimizationReport(bestOfN: readonly BestOfNPoint[], rl: readonly RlPoint[]): OveroptimizationReport {
  const fits: OveroptimizationReport['fits'] = {};
  const bonBase = bestOfN.find((p) => p.n === 1)?.gold_score;
  if (bonBase !== undefined) {
    const fit = tryFit('bon', bestOfN.filter((p) => p.gold_score !== undefined).map((p) => ({ d: p.d, gain: p.gold_score! - bonBase })));
    if (fit) fits.bon = fit;
  }
  if (rl.length >= 2) {
    const fit = tryFit('rl', rl.map((p) => ({ d: p.d, gain: p.gold_score - rl[0].gold_score })));
    if (fit) fits.rl = fit;
  }
  return { best_of_n: [...bestOfN], rl: [...rl], fits };
}
