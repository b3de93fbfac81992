import { ConfigError, type LoadedConfig } from '../config/load.js';
import { ppoDefaults, type PpoConfig } from '../config/schema.js';
import { groupIteration, type GroupMethod } from '../grouprl/trainer.js';
import { runPpo } from './ppo.js';
import type { StageOptions, StageResult } from './supervised.js';

/**
 * `rlhf rloo` / `rlhf grpo`: the PPO stage (same rollout, reward model, KL
 * reference, checkpoints and bit-exact resume) with a value-free iteration.
 * The section's keys are PPO's; GRPO's `beta` becomes the (fixed) KL
 * coefficient, which it applies in the loss rather than to the reward.
 */
export function runGroupRl(loaded: LoadedConfig, method: GroupMethod, opts: StageOptions & { policy?: string; rewardModel?: string } = {}): Promise<StageResult> {
  const { config, file } = loaded;
  const section = config[method];
  if (!section) throw new ConfigError(`${file}: ${method}: section missing`);
  const settings: PpoConfig = { ...ppoDefaults(section.prompts), ...section, ...('beta' in section ? { kl_coef: section.beta, adaptive_kl: undefined } : {}) };
  return runPpo(loaded, {
    ...opts,
    variant: {
      stage: method,
      settings,
      groupSize: section.k,
      iterate: (models, kl, input, rng) => groupIteration(models, settings, method, section.k, kl, input, rng),
    },
  });
}
