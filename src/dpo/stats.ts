/** TRL's DPO metric names, in the order `dpoStats` returns them. */
export const DPO_STAT_NAMES = ['rewards/chosen', 'rewards/rejected', 'rewards/accuracies', 'rewards/margins', 'logps/chosen', 'logps/rejected'] as const;

/**
 * The six TRL statistics of N pairs from their per-pair values, laid out as
 * `dpoTerms` returns them: implicit rewards of the chosen responses, of the
 * rejected ones, then the policy's log-probs of each (N values each). Taken on the
 * host from per-pair values because accuracy is a comparison: where rewards tie
 * (every pair at the first step, when the policy is the reference), float noise
 * decides it, so a graph step cannot be checked against the eager one on it.
 */
export function dpoStats(v: ArrayLike<number>): number[] {
  const n = v.length / 4;
  let chosen = 0;
  let rejected = 0;
  let correct = 0;
  let logpChosen = 0;
  let logpRejected = 0;
  for (let i = 0; i < n; i++) {
    chosen += v[i];
    rejected += v[n + i];
    if (v[i] > v[n + i]) correct++;
    logpChosen += v[2 * n + i];
    logpRejected += v[3 * n + i];
  }
  return [chosen / n, rejected / n, correct / n, (chosen - rejected) / n, logpChosen / n, logpRejected / n];
}
