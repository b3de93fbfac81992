import fs from 'node:fs';
import path from 'node:path';
import type { LoadedConfig } from '../config/load.js';
import type { CorpusConfig, DataSource, ExperimentConfig } from '../config/schema.js';
import { loadCorpus } from '../data/corpus.js';
import { stageDir } from '../run/stage.js';
import { configThreads } from '../backend/threads.js';
import { getTask } from '../tasks/index.js';
import { canonicalJson, contentHash, sha256, sha256OfFile } from './hash.js';

/**
 * The pipeline's view of an experiment: which stages it has, what each one
 * reads, and the content hash of those inputs (recorded in the stage's
 * manifest when it completes, compared on the next run to decide whether the
 * stage can be skipped).
 *
 * What a stage reads mirrors the stages' own defaults (src/stages/*): a
 * stage's parent defaults to the previous stage's `final/` in the same run
 * directory; `rounds` (ppo.rounds > 1) is label → train-reward → ppo repeated
 * in runs/<name>/round-<r>/.
 */

export const PIPELINE_STAGES = ['pretrain', 'sft', 'label', 'train-reward', 'ppo', 'rounds', 'rloo', 'grpo', 'dpo', 'eval'] as const;
export type PipelineStage = (typeof PIPELINE_STAGES)[number];

/** Config section of each stage (rounds iterates label/train_reward/ppo; its count is ppo.rounds). */
export const STAGE_SECTION: Record<PipelineStage, 'pretrain' | 'sft' | 'label' | 'train_reward' | 'ppo' | 'rloo' | 'grpo' | 'dpo' | 'eval'> = {
  pretrain: 'pretrain',
  sft: 'sft',
  label: 'label',
  'train-reward': 'train_reward',
  ppo: 'ppo',
  rounds: 'ppo',
  rloo: 'rloo',
  grpo: 'grpo',
  dpo: 'dpo',
  eval: 'eval',
};

/** Bumped when the meaning of the recorded inputs changes, so old records no longer match. */
const INPUTS_VERSION = 1;

export function runRoot(config: ExperimentConfig): string {
  return path.join(config.run_dir, config.name);
}

export function roundCount(config: ExperimentConfig): number {
  return config.ppo?.rounds ?? 1;
}

/** The stages present in a config, in pipeline order. */
export function pipelineStages(config: ExperimentConfig): PipelineStage[] {
  return PIPELINE_STAGES.filter((s) => (s === 'rounds' ? config.ppo !== undefined && roundCount(config) > 1 : config[STAGE_SECTION[s]] !== undefined));
}

/** Accepts stage names as written in the CLI or the config (train-reward / train_reward). */
export function parseStage(name: string): PipelineStage | undefined {
  const n = name.replace(/_/g, '-');
  return (PIPELINE_STAGES as readonly string[]).includes(n) ? (n as PipelineStage) : undefined;
}

/** The directory whose manifest.json carries the stage's pipeline record (rounds: the last round's ppo). */
export function manifestDir(config: ExperimentConfig, stage: PipelineStage): string {
  if (stage === 'rounds') return path.join(runRoot(config), `round-${roundCount(config)}`, 'ppo');
  return stageDir(config, stage);
}

/** Directories a stage writes: its stage directory, or every round-<r>/ (r ≥ 2) for rounds. */
export function outputDirs(config: ExperimentConfig, stage: PipelineStage): string[] {
  if (stage !== 'rounds') return [stageDir(config, stage)];
  return Array.from({ length: roundCount(config) - 1 }, (_, i) => path.join(runRoot(config), `round-${i + 2}`));
}

/** Stage directories (with a manifest) inside a stage's outputs: for rounds, round-<r>/{label,train-reward,ppo}. */
export function stageDirsOf(config: ExperimentConfig, stage: PipelineStage): string[] {
  if (stage !== 'rounds') return [stageDir(config, stage)];
  return outputDirs(config, stage).flatMap((root) => ['label', 'train-reward', 'ppo'].map((s) => path.join(root, s)));
}

export type DataKind = 'corpus' | 'demonstrations' | 'prompts';
export interface DataRef {
  kind: DataKind;
  source: CorpusConfig | DataSource;
}

/** What a stage reads, before hashing: config values, parent checkpoints/files (paths), data sources. */
export interface StageInputs {
  config: Record<string, unknown>;
  parents: Record<string, string>;
  data: Record<string, DataRef>;
}

/** The same with contents hashed: this is what a manifest records and `input_hash` hashes. */
export interface ResolvedInputs {
  version: number;
  config: Record<string, unknown>;
  /** label → content hash (null: missing). */
  parents: Record<string, string | null>;
  /** label → "<source kind>:<content hash>". */
  data: Record<string, string>;
}

function without<T extends object>(section: T, keys: readonly string[]): Record<string, unknown> {
  return Object.fromEntries(Object.entries(section).filter(([k]) => !keys.includes(k)));
}

function finalOf(config: ExperimentConfig, stage: string): string {
  return path.join(stageDir(config, stage), 'final');
}

/** The methods besides PPO whose final policies eval compares, in the order they are listed. */
export const OTHER_METHODS = ['rloo', 'grpo', 'dpo'] as const;

/**
 * The policies the pipeline's eval compares: eval.policies, else the reference
 * (SFT), the RLOO, GRPO and DPO finals, and every PPO round's final (last, as
 * the sweep's `delta_*` columns compare the last policy with the first).
 */
export function evalPolicies(loaded: LoadedConfig): string[] {
  const { config, file } = loaded;
  if (config.eval?.policies?.length) return config.eval.policies.map((p) => path.resolve(path.dirname(file), p));
  const out = [config.ppo?.policy ?? finalOf(config, 'sft')];
  for (const m of OTHER_METHODS) if (config[m]) out.push(finalOf(config, m));
  if (config.ppo) {
    out.push(finalOf(config, 'ppo'));
    for (let r = 2; r <= roundCount(config); r++) out.push(path.join(runRoot(config), `round-${r}`, 'ppo', 'final'));
  }
  return out;
}

/** Label of a path inside the run ("ppo/final"), or the path itself. */
function relLabel(config: ExperimentConfig, p: string): string {
  const rel = path.relative(runRoot(config), p);
  return rel.startsWith('..') || path.isAbsolute(rel) ? p : rel.split(path.sep).join('/');
}

/**
 * What `stage` reads under `config`. Shared keys that shape every stage's
 * results (seed, tokenizer, model, threads) are included everywhere; name and run_dir
 * are not (they only say where the run lives); path-valued keys are replaced
 * by the content hash of what they point at (parents and data).
 */
export function stageInputs(loaded: LoadedConfig, stage: PipelineStage): StageInputs {
  const { config } = loaded;
  const shared = { seed: config.seed, tokenizer: config.tokenizer, model: config.model, threads: configThreads(config) };
  const sftFinal = finalOf(config, 'sft');
  switch (stage) {
    case 'pretrain': {
      const cfg = config.pretrain!;
      return { config: { ...shared, pretrain: without(cfg, ['data']) }, parents: {}, data: { 'pretrain.data': { kind: 'corpus', source: cfg.data } } };
    }
    case 'sft': {
      const cfg = config.sft!;
      return {
        config: { ...shared, sft: without(cfg, ['init_from', 'data']) },
        parents: { 'sft.init_from': cfg.init_from ?? finalOf(config, 'pretrain') },
        data: { 'sft.data': { kind: 'demonstrations', source: cfg.data } },
      };
    }
    case 'label': {
      const cfg = config.label!;
      return {
        config: { ...shared, label: without(cfg, ['policy', 'prompts']) },
        parents: { 'label.policy': cfg.policy ?? sftFinal },
        data: { 'label.prompts': { kind: 'prompts', source: cfg.prompts } },
      };
    }
    case 'train-reward': {
      const cfg = config.train_reward!;
      return {
        config: { ...shared, train_reward: without(cfg, ['init_from', 'data']) },
        parents: {
          'train_reward.init_from': cfg.init_from ?? sftFinal,
          'train_reward.data': cfg.data?.path ?? path.join(stageDir(config, 'label'), 'comparisons.jsonl'),
        },
        data: {},
      };
    }
    case 'ppo': {
      const cfg = config.ppo!;
      const ptx: Record<string, DataRef> = cfg.ptx_coef > 0 && config.pretrain ? { 'pretrain.data': { kind: 'corpus', source: config.pretrain.data } } : {};
      return {
        // rounds is not an input of the first round's PPO: changing it re-runs only the later rounds.
        config: { ...shared, ppo: without(cfg, ['policy', 'reward_model', 'prompts', 'rounds']) },
        parents: { 'ppo.policy': cfg.policy ?? sftFinal, 'ppo.reward_model': cfg.reward_model ?? finalOf(config, 'train-reward') },
        data: { 'ppo.prompts': { kind: 'prompts', source: cfg.prompts }, ...ptx },
      };
    }
    case 'rounds': {
      const ppo = config.ppo!;
      const label = config.label;
      const tr = config.train_reward;
      const ptx: Record<string, DataRef> = ppo.ptx_coef > 0 && config.pretrain ? { 'pretrain.data': { kind: 'corpus', source: config.pretrain.data } } : {};
      return {
        config: {
          ...shared,
          label: label ? without(label, ['policy', 'prompts']) : undefined,
          train_reward: tr ? without(tr, ['init_from', 'data']) : undefined,
          ppo: without(ppo, ['policy', 'reward_model', 'prompts']),
        },
        // src/stages/rounds.ts: later rounds start from the SFT model in this run and round 1's PPO policy.
        parents: {
          'sft/final': sftFinal,
          'ppo/final': finalOf(config, 'ppo'),
          'label/comparisons.jsonl': path.join(stageDir(config, 'label'), 'comparisons.jsonl'),
        },
        data: { ...(label ? { 'label.prompts': { kind: 'prompts' as const, source: label.prompts } } : {}), 'ppo.prompts': { kind: 'prompts', source: ppo.prompts }, ...ptx },
      };
    }
    case 'rloo':
    case 'grpo': {
      const cfg = config[stage]!;
      return {
        config: { ...shared, [stage]: without(cfg, ['policy', 'reward_model', 'prompts']) },
        parents: { [`${stage}.policy`]: cfg.policy ?? sftFinal, [`${stage}.reward_model`]: cfg.reward_model ?? finalOf(config, 'train-reward') },
        data: { [`${stage}.prompts`]: { kind: 'prompts', source: cfg.prompts } },
      };
    }
    case 'dpo': {
      const cfg = config.dpo!;
      return {
        config: { ...shared, dpo: without(cfg, ['init_from', 'data']) },
        parents: { 'dpo.init_from': cfg.init_from ?? sftFinal, 'dpo.data': cfg.data?.path ?? path.join(stageDir(config, 'label'), 'comparisons.jsonl') },
        data: {},
      };
    }
    case 'eval': {
      const cfg = config.eval!;
      const prompts = cfg.prompts ?? config.ppo?.prompts ?? config.label?.prompts;
      const parents: Record<string, string> = {
        'eval.reference': config.ppo?.policy ?? sftFinal,
        'eval.reward_model': config.ppo?.reward_model ?? finalOf(config, 'train-reward'),
      };
      for (const p of evalPolicies(loaded)) parents[`eval.policy ${relLabel(config, p)}`] = p;
      return {
        config: { ...shared, eval: without(cfg, ['prompts', 'policies']) },
        parents,
        data: prompts ? { 'eval.prompts': { kind: 'prompts', source: prompts } } : {},
      };
    }
  }
}

/** "<source kind>:<sha256 of the content>" of a data source (task data is generated deterministically: its text is hashed). */
export function dataHash(ref: DataRef): string {
  const src = ref.source as Record<string, string>;
  if (typeof src.path === 'string') {
    return fs.existsSync(src.path) ? `file:${sha256OfFile(src.path)}` : 'file:missing';
  }
  if (typeof src.source === 'string') return `builtin:${src.source}:${sha256(loadCorpus(ref.source as CorpusConfig))}`;
  const task = getTask(src.task);
  const content = ref.kind === 'corpus' ? task.pretrainCorpus() : ref.kind === 'demonstrations' ? canonicalJson(task.sftExamples()) : canonicalJson(task.rlPrompts());
  return `task:${src.task}:${sha256(content)}`;
}

/**
 * Hashes the contents a stage reads. `mapPath` redirects a path before it is
 * read (a sweep trial's stage that will be linked to the base run's).
 */
export function resolveInputs(inputs: StageInputs, mapPath: (p: string) => string = (p) => p): ResolvedInputs {
  return {
    version: INPUTS_VERSION,
    config: JSON.parse(canonicalJson(inputs.config)) as Record<string, unknown>,
    parents: Object.fromEntries(Object.entries(inputs.parents).map(([k, p]) => [k, contentHash(mapPath(p)) ?? null])),
    data: Object.fromEntries(Object.entries(inputs.data).map(([k, d]) => [k, dataHash(d)])),
  };
}

export function inputHash(resolved: ResolvedInputs): string {
  return sha256(canonicalJson(resolved));
}
