import { comparisonPairs, type Comparison } from '../label/comparisons.js';

export type PairMode = 'all' | 'best_vs_rest';

/**
 * The [chosen, rejected] response indices DPO trains on from one K-ranking:
 * `all` — every pair the ranking orders (the reward model's pairs), ties
 * excluded; `best_vs_rest` — the top-ranked response against each other one,
 * ties with it excluded (K−1 pairs at most, each response once).
 */
export function preferencePairs(c: Pick<Comparison, 'ranking' | 'ties'>, mode: PairMode): [number, number][] {
  const pairs = comparisonPairs(c);
  return mode === 'all' ? pairs : pairs.filter(([better]) => better === c.ranking[0]);
}
