import fs from 'node:fs';
import path from 'node:path';
import { ConfigError, type LoadedConfig } from '../config/load.js';
import type { ExperimentConfig } from '../config/schema.js';
import { readManifest, stageDir } from '../run/stage.js';
import { runLabel } from './label.js';
import { runPpo } from './ppo.js';
import type { StageOptions, StageResult } from './supervised.js';
import { runTrainReward } from './train-reward.js';

export interface RoundResult {
  round: number;
  dir: string;
  ppo: StageResult | 'skipped';
}

/** runs/<name>/round-<r>/ for r ≥ 2; round 1 is the top-level label/train-reward/ppo. */
export function roundRoot(config: ExperimentConfig, round: number): string {
  return round === 1 ? path.join(config.run_dir, config.name) : path.join(config.run_dir, config.name, `round-${round}`);
}

function completed(dir: string): boolean {
  return readManifest(dir)?.status === 'completed';
}

/** The experiment seen from inside round r: its stages live under round-r/ and read the right parents. */
function roundConfig(loaded: LoadedConfig, round: number, comparisons: string): LoadedConfig {
  const { config } = loaded;
  const sftFinal = path.join(stageDir(config, 'sft'), 'final');
  const previousPpo = path.join(roundRoot(config, round - 1), 'ppo', 'final');
  return {
    file: loaded.file,
    config: {
      ...config,
      // name may hold a path here: the round's stages go to run_dir/<name>/round-r/<stage>
      name: path.join(config.name, `round-${round}`),
      seed: config.seed + round - 1,
      label: { ...config.label!, policy: previousPpo },
      train_reward: { ...config.train_reward!, init_from: sftFinal, data: { path: comparisons } },
      ppo: { ...config.ppo!, policy: sftFinal },
    },
  };
}

/** Concatenates every round's comparisons so far: the reward model of round r learns from all of them. */
function gatherComparisons(config: ExperimentConfig, upTo: number, into: string): void {
  const parts = Array.from({ length: upTo }, (_, i) => fs.readFileSync(path.join(roundRoot(config, i + 1), 'label', 'comparisons.jsonl'), 'utf8'));
  fs.writeFileSync(into, parts.map((p) => (p.endsWith('\n') || p === '' ? p : `${p}\n`)).join(''));
}

/**
 * Iterated RLHF (InstructGPT repeats steps 2–3): after round 1's PPO, each
 * round labels samples of the current policy, retrains the reward model from
 * SFT on all comparisons so far, and continues PPO from the current policy
 * (the KL reference stays the SFT model). Completed stages are kept unless
 * --force, so an interrupted sequence of rounds continues where it stopped.
 */
export async function runRounds(loaded: LoadedConfig, opts: StageOptions = {}): Promise<RoundResult[]> {
  const { config, file } = loaded;
  const rounds = config.ppo?.rounds ?? 1;
  if (rounds > 1 && (!config.label || !config.train_reward)) {
    throw new ConfigError(`${file}: ppo.rounds: iterated RLHF needs label and train_reward sections`);
  }
  const results: RoundResult[] = [];
  const firstPpo = stageDir(config, 'ppo');
  results.push({ round: 1, dir: firstPpo, ppo: completed(firstPpo) && !opts.force ? 'skipped' : await runPpo(loaded, opts) });
  for (let r = 2; r <= rounds; r++) {
    const root = roundRoot(config, r);
    fs.mkdirSync(root, { recursive: true });
    const comparisons = path.join(root, 'comparisons-all.jsonl');
    const round = roundConfig(loaded, r, comparisons);
    const labelDir = stageDir(round.config, 'label');
    // an unfinished label stage continues where it stopped (runLabel's own resume)
    if (opts.force || !completed(labelDir)) await runLabel(round, { force: opts.force });
    if (opts.force || !completed(stageDir(round.config, 'train-reward'))) {
      gatherComparisons(config, r, comparisons);
      await runTrainReward(round, { force: true });
    }
    const ppoDir = stageDir(round.config, 'ppo');
    const ppo = completed(ppoDir) && !opts.force ? 'skipped' : await runPpo(round, { force: true, policy: path.join(roundRoot(config, r - 1), 'ppo', 'final') });
    results.push({ round: r, dir: ppoDir, ppo });
  }
  return results;
}
