import fs from 'node:fs';
import path from 'node:path';
import type { StageManifest } from '../run/stage.js';
import type { OveroptimizationReport } from '../overoptimization/curves.js';
import { readObjectLines } from '../run/metrics-file.js';

/**
 * Reads a run directory (`runs/<name>/`) for the report: every stage directory
 * with a manifest.json — `pretrain`, `sft`, `label`, `train-reward`, `ppo`, `eval`
 * and the iterated-RLHF rounds `round-N/{label,train-reward,ppo}` — with its
 * manifest, resolved config, metrics and (eval) results and samples. Nothing
 * here loads TensorFlow, so reporting on a run is fast and works anywhere.
 */

/** Bad report input (no such directory, nothing to report): one line, exit 2, like other usage errors. */
export class ReportInputError extends Error {
  override name = 'UsageError';
}

export type MetricRow = { step: number } & Record<string, number | null>;

export interface EvalResult {
  policy: string;
  proxy_reward: number;
  gold_score?: number;
  kl: number;
  response_length?: number;
  distinct_1?: number;
  distinct_2?: number;
  /** Wall time of the stage that produced the policy. */
  wall_s?: number;
}

export interface EvalSample {
  policy: string;
  prompt: string;
  response: string;
  proxy_reward?: number;
  gold_score?: number;
}

export interface StageData {
  /** Path relative to the run directory, e.g. `ppo` or `round-2/ppo`. */
  id: string;
  /** The stage kind: `pretrain`, `sft`, `label`, `train-reward`, `ppo`, `eval`, or another name. */
  kind: string;
  /** Iterated-RLHF round (1 for the top-level stages). */
  round: number;
  dir: string;
  manifest?: StageManifest;
  /** config.yaml as written by the stage (the resolved config). */
  configText?: string;
  metrics: MetricRow[];
  /** Lines of metrics.jsonl that did not parse (e.g. a torn last line of a running stage). */
  badMetricLines: number;
  results?: EvalResult[];
  samples?: EvalSample[];
  /** eval: best-of-n and PPO curves against √KL with their fits (overoptimization.json). */
  overoptimization?: OveroptimizationReport;
  /** Number of TensorBoard event files in `<stage>/tensorboard/`. */
  tensorboardFiles: number;
}

export interface RunData {
  /** The directory reported on (absolute). */
  dir: string;
  /** The run directory `runs/<name>` (the parent of `dir` when `dir` is one stage). */
  root: string;
  name: string;
  stages: StageData[];
}

/** The order stages run in; a stage named otherwise sorts after these, by name. */
export const STAGE_ORDER = ['pretrain', 'sft', 'label', 'train-reward', 'ppo', 'rloo', 'grpo', 'dpo', 'eval'] as const;

function readText(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

function readJson<T>(file: string): T | undefined {
  const text = readText(file);
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text) as T;
  } catch {
    return undefined;
  }
}

function isStageDir(dir: string): boolean {
  return fs.existsSync(path.join(dir, 'manifest.json')) || fs.existsSync(path.join(dir, 'metrics.jsonl'));
}

function subdirs(dir: string): string[] {
  return fs
    .readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .map((e) => e.name);
}

function loadStage(runDir: string, id: string): StageData {
  const dir = path.join(runDir, id);
  const kind = path.basename(id);
  const round = Number(/^round-(\d+)\//.exec(id)?.[1] ?? 1);
  const { rows, bad } = readObjectLines(path.join(dir, 'metrics.jsonl'));
  const metrics: MetricRow[] = rows
    .filter((r) => typeof r.step === 'number')
    .map((r) => {
      const row: MetricRow = { step: r.step as number };
      for (const [k, v] of Object.entries(r)) if (k !== 'step' && (typeof v === 'number' || v === null)) row[k] = v;
      return row;
    });
  const stage: StageData = {
    id,
    kind,
    round,
    dir,
    manifest: readJson<StageManifest>(path.join(dir, 'manifest.json')),
    configText: readText(path.join(dir, 'config.yaml')),
    metrics,
    badMetricLines: bad + (rows.length - metrics.length),
    tensorboardFiles: countEventFiles(path.join(dir, 'tensorboard')),
  };
  const results = readJson<unknown>(path.join(dir, 'results.json'));
  if (Array.isArray(results)) stage.results = results.filter((r): r is EvalResult => !!r && typeof r === 'object' && typeof (r as EvalResult).policy === 'string');
  const over = readJson<OveroptimizationReport>(path.join(dir, 'overoptimization.json'));
  if (over && Array.isArray(over.best_of_n) && Array.isArray(over.rl)) stage.overoptimization = over;
  if (fs.existsSync(path.join(dir, 'samples.jsonl'))) {
    stage.samples = readObjectLines<EvalSample>(path.join(dir, 'samples.jsonl')).rows.filter((s) => typeof s.policy === 'string');
  }
  return stage;
}

function countEventFiles(dir: string): number {
  try {
    return fs.readdirSync(dir).filter((f) => f.startsWith('events.out.tfevents.')).length;
  } catch {
    return 0;
  }
}

function stageRank(s: StageData): [number, number, string] {
  const i = STAGE_ORDER.indexOf(s.kind as (typeof STAGE_ORDER)[number]);
  // eval compares the policies of every round, so it comes after all of them.
  if (s.kind === 'eval') return [Number.MAX_SAFE_INTEGER, 0, s.id];
  return [s.round, i < 0 ? STAGE_ORDER.length : i, s.id];
}

function compareStages(a: StageData, b: StageData): number {
  const [ra, ia, na] = stageRank(a);
  const [rb, ib, nb] = stageRank(b);
  return ra - rb || ia - ib || na.localeCompare(nb);
}

/**
 * Loads `runDir` (a run directory `runs/<name>`, or one stage directory).
 * Throws ReportInputError when there is no such directory or no stage in it.
 */
export function loadRun(runDir: string): RunData {
  const dir = path.resolve(runDir);
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new ReportInputError(`${runDir}: no such run directory`);
  if (isStageDir(dir)) {
    // One stage directory: report on just that stage.
    const parent = path.dirname(dir);
    const stage = loadStage(parent, path.basename(dir));
    return { dir, root: parent, name: path.basename(parent), stages: [stage] };
  }
  const ids: string[] = [];
  for (const name of subdirs(dir)) {
    const sub = path.join(dir, name);
    if (/^round-\d+$/.test(name)) {
      for (const inner of subdirs(sub)) if (isStageDir(path.join(sub, inner))) ids.push(`${name}/${inner}`);
    } else if (isStageDir(sub)) {
      ids.push(name);
    }
  }
  if (ids.length === 0) {
    throw new ReportInputError(`${runDir}: no stages found (expected stage directories such as pretrain/ with a manifest.json)`);
  }
  const stages = ids.map((id) => loadStage(dir, id)).sort(compareStages);
  return { dir, root: dir, name: path.basename(dir), stages };
}

/** A policy checkpoint path as a short label: relative to the run directory when inside it. */
export function policyLabel(policy: string, runDir: string): string {
  const rel = path.relative(runDir, policy);
  if (rel && !rel.startsWith('..') && !path.isAbsolute(rel)) return rel.split(path.sep).join('/');
  return policy.split(/[\\/]/).filter(Boolean).slice(-3).join('/');
}

/** The last non-null value of each metric in the rows (the stage's final values). */
export function finalValues(rows: readonly MetricRow[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const row of rows) {
    for (const [k, v] of Object.entries(row)) if (k !== 'step' && typeof v === 'number' && Number.isFinite(v)) out[k] = v;
  }
  return out;
}
