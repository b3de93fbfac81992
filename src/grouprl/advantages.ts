/**
 * Per-response advantages of the value-free policy-gradient methods, from the
 * rewards of B = G·k responses laid out group by group (responses g·k … g·k+k−1
 * answer the same prompt). Host-side, float64.
 */

function checkGroups(rewards: ArrayLike<number>, k: number, what: string): void {
  if (!Number.isInteger(k) || k < 2) throw new RangeError(`${what}: k must be an integer ≥ 2 (got ${k}): a group of one has no baseline`);
  if (rewards.length % k !== 0) throw new RangeError(`${what}: ${rewards.length} rewards do not split into groups of ${k}`);
}

/**
 * RLOO (Ahmadian et al. 2024): A_i = R_i − mean of the other k−1 rewards of its
 * group, i.e. k/(k−1)·(R_i − group mean). The baseline leaves the sample out,
 * so it does not depend on the sample's own action.
 */
export function rlooAdvantages(rewards: ArrayLike<number>, k: number): Float64Array {
  checkGroups(rewards, k, 'rlooAdvantages');
  const out = new Float64Array(rewards.length);
  for (let g = 0; g < rewards.length; g += k) {
    let sum = 0;
    for (let i = g; i < g + k; i++) sum += rewards[i];
    for (let i = g; i < g + k; i++) out[i] = rewards[i] - (sum - rewards[i]) / (k - 1);
  }
  return out;
}

/**
 * GRPO (Shao et al. 2024): A_i = (R_i − group mean) / (group std + eps), the
 * std unbiased (÷(k−1)) as torch.std in TRL. A group of equal rewards gives
 * zero advantages (nothing to prefer), not 0/0.
 */
export function grpoAdvantages(rewards: ArrayLike<number>, k: number, eps = 1e-4): Float64Array {
  checkGroups(rewards, k, 'grpoAdvantages');
  const out = new Float64Array(rewards.length);
  for (let g = 0; g < rewards.length; g += k) {
    // mean as first + mean offset: exact when every reward is equal, so such a group gets exact zeros
    let offset = 0;
    for (let i = g; i < g + k; i++) offset += rewards[i] - rewards[g];
    const mean = rewards[g] + offset / k;
    let sq = 0;
    for (let i = g; i < g + k; i++) sq += (rewards[i] - mean) ** 2;
    const std = Math.sqrt(sq / (k - 1));
    for (let i = g; i < g + k; i++) out[i] = (rewards[i] - mean) / (std + eps);
  }
  return out;
}

/** One advantage per response spread over its tokens: [B·R], 0 on padding. */
export function perToken(advantages: ArrayLike<number>, lengths: readonly number[], R: number): Float32Array {
  const out = new Float32Array(lengths.length * R);
  lengths.forEach((L, b) => out.fill(advantages[b], b * R, b * R + L));
  return out;
}
