import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { numericsDifference } from '../backend/numerics.js';
import { processNumerics } from '../backend/tf.js';
import { checkpointHash } from '../checkpoint/checkpoint.js';
import type { LoadedConfig } from '../config/load.js';
import type { ExperimentConfig } from '../config/schema.js';
import { UsageError, VerifyError } from './errors.js';
import { sha256OfFile } from './hash.js';
import { outputFiles, readPipelineManifest, type PipelineManifest } from './manifest.js';
import { isWallClockField } from './pipeline.js';

/**
 * `rlhf verify RUN_DIR`: checks that a run is what its manifests say and that
 * it reproduces.
 *
 * 1. Integrity (fast): every output file's sha256 recorded by the pipeline,
 *    the final checkpoint's recorded hash, and the recorded hashes of the
 *    parent checkpoints each stage read, against the bytes on disk.
 * 2. Re-run: each completed stage is run again from its own resolved
 *    config.yaml into a temporary run directory whose other stages are links
 *    to this run's (so it reads exactly the parents it read the first time),
 *    then metrics.jsonl (wall-clock fields aside) and every output file are
 *    compared. The first difference is named: file, and line/field for metrics.
 */

export interface StageCheck {
  /** Stage directory relative to the run ("ppo", "round-2/ppo"). */
  stage: string;
  integrity: 'ok' | 'failed' | 'partial' | 'not completed';
  rerun: 'identical' | 'different' | 'skipped' | 'not run';
  difference?: string;
  note?: string;
  wall_time_s?: number;
}

export interface VerifyResult {
  run: string;
  ok: boolean;
  stages: StageCheck[];
  first_difference?: string;
  wall_time_s: number;
}

export interface VerifyOptions {
  stage?: string;
  /** Integrity check only (no re-run). */
  quick?: boolean;
  /** Keep the temporary re-run directories (their paths are logged). */
  keep?: boolean;
  log?: (line: string) => void;
}

const ORDER = ['pretrain', 'sft', 'label', 'train-reward', 'ppo', 'rloo', 'grpo', 'dpo'];

/** Stage directories of a run in pipeline order: top-level stages, then round-<r>/ stages, then eval. */
export function findStageDirs(runDir: string): string[] {
  if (!fs.existsSync(runDir) || !fs.statSync(runDir).isDirectory()) throw new UsageError(`${runDir}: not a run directory`);
  const found: { rel: string; key: number }[] = [];
  const hasManifest = (d: string) => fs.existsSync(path.join(runDir, d, 'manifest.json'));
  for (const entry of fs.readdirSync(runDir)) {
    if (entry.startsWith('.')) continue;
    const round = /^round-(\d+)$/.exec(entry);
    if (round) {
      for (const s of fs.readdirSync(path.join(runDir, entry))) {
        if (hasManifest(`${entry}/${s}`)) found.push({ rel: `${entry}/${s}`, key: 10 + Number(round[1]) * 10 + Math.max(0, ORDER.indexOf(s)) });
      }
    } else if (hasManifest(entry)) {
      found.push({ rel: entry, key: entry === 'eval' ? 1e9 : ORDER.includes(entry) ? ORDER.indexOf(entry) : 1e8 });
    }
  }
  if (found.length === 0) throw new UsageError(`${runDir}: no stage directories (with manifest.json) found`);
  return found.sort((a, b) => a.key - b.key || a.rel.localeCompare(b.rel)).map((f) => f.rel);
}

/** First integrity problem of a stage directory, or undefined. */
function checkIntegrity(runDir: string, rel: string, m: PipelineManifest): string | undefined {
  const dir = path.join(runDir, rel);
  if (m.outputs) {
    for (const [file, sha] of Object.entries(m.outputs)) {
      const p = path.join(dir, file);
      if (!fs.existsSync(p)) return `${p}: missing (recorded in ${path.join(dir, 'manifest.json')})`;
      const now = sha256OfFile(p);
      if (now !== sha) return `${p}: sha256 differs from the manifest (recorded ${sha.slice(0, 12)}…, on disk ${now.slice(0, 12)}…)`;
    }
  }
  if (m.final) {
    const weights = path.join(dir, 'final', 'model.weights.bin');
    if (!fs.existsSync(weights)) return `${weights}: missing`;
    const now = checkpointHash(path.join(dir, 'final'));
    if (now !== m.final.sha256) return `${weights}: sha256 differs from the manifest (recorded ${m.final.sha256.slice(0, 12)}…, on disk ${now.slice(0, 12)}…)`;
  }
  for (const p of m.parents) {
    const weights = path.join(p.path, 'model.weights.bin');
    if (!fs.existsSync(weights)) return `${weights}: missing (a parent ${rel} read)`;
    const now = checkpointHash(p.path);
    if (now !== p.sha256) return `${weights}: changed since ${rel} read it (recorded ${p.sha256.slice(0, 12)}…, now ${now.slice(0, 12)}…)`;
  }
  return undefined;
}

/** Metric lines without the wall-clock fields. */
function metricRows(file: string): Record<string, unknown>[] {
  if (!fs.existsSync(file)) return [];
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => Object.fromEntries(Object.entries(JSON.parse(l) as Record<string, unknown>).filter(([k]) => !isWallClockField(k))));
}

/** First difference between two metrics.jsonl files: "line N, field F: a (recorded) vs b (re-run)". */
export function compareMetrics(recordedFile: string, rerunFile: string): string | undefined {
  const a = metricRows(recordedFile);
  const b = metricRows(rerunFile);
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    if (!a[i]) return `${recordedFile}: line ${i + 1}: absent from the recording, present in the re-run`;
    if (!b[i]) return `${recordedFile}: line ${i + 1}: missing from the re-run (it logged ${b.length} lines, the recording ${a.length})`;
    for (const k of [...new Set([...Object.keys(a[i]), ...Object.keys(b[i])])]) {
      if (JSON.stringify(a[i][k]) !== JSON.stringify(b[i][k])) {
        return `${recordedFile}: line ${i + 1}, field ${k}: ${JSON.stringify(a[i][k])} (recorded) vs ${JSON.stringify(b[i][k])} (re-run)`;
      }
    }
  }
  return undefined;
}

/** Files compared by content: everything the stage wrote except the bookkeeping that legitimately differs. */
function comparableFiles(dir: string): string[] {
  return outputFiles(dir).filter((f) => f !== 'config.yaml' && f !== 'metrics.jsonl' && !f.startsWith('tensorboard/'));
}

function compareFiles(recordedDir: string, rerunDir: string): string | undefined {
  const a = comparableFiles(recordedDir);
  const b = new Set(comparableFiles(rerunDir));
  for (const f of a) {
    if (!b.has(f)) return `${path.join(recordedDir, f)}: not produced by the re-run`;
    const x = sha256OfFile(path.join(recordedDir, f));
    const y = sha256OfFile(path.join(rerunDir, f));
    if (x !== y) return `${path.join(recordedDir, f)}: sha256 differs from the re-run's (recorded ${x.slice(0, 12)}…, re-run ${y.slice(0, 12)}…)`;
  }
  const extra = [...b].filter((f) => !a.includes(f));
  if (extra.length) return `${path.join(recordedDir, extra[0])}: produced by the re-run but absent from the recording`;
  return undefined;
}

/** `dst` mirrors `src` with links, except the path `skip` (relative parts), which is left for the re-run to write. */
function mirror(src: string, dst: string, skip: string[]): void {
  fs.mkdirSync(dst, { recursive: true });
  for (const entry of fs.readdirSync(src)) {
    if (entry.startsWith('.')) continue;
    if (entry === skip[0]) {
      if (skip.length > 1) mirror(path.join(src, entry), path.join(dst, entry), skip.slice(1));
      continue;
    }
    fs.symlinkSync(path.resolve(src, entry), path.join(dst, entry));
  }
}

/** Re-runs one stage directory into `tmp`; returns the re-run's stage directory. */
async function rerunStage(runDir: string, rel: string, m: PipelineManifest, tmp: string): Promise<string> {
  const dir = path.join(runDir, rel);
  const config = parseYaml(fs.readFileSync(path.join(dir, 'config.yaml'), 'utf8')) as ExperimentConfig;
  const nameRoot = config.name.split(/[\\/]/)[0];
  const expectedRel = path.relative(nameRoot, path.join(config.name, path.basename(rel)));
  if (expectedRel.split(path.sep).join('/') !== rel) throw new UsageError(`${dir}/config.yaml: name ${config.name} does not match the directory layout (${rel})`);
  mirror(runDir, path.join(tmp, nameRoot), rel.split('/'));
  const loaded: LoadedConfig = { config: { ...config, run_dir: tmp }, file: path.join(dir, 'config.yaml') };
  const parents = m.parents.map((p) => p.path);
  const force = { force: true };
  switch (m.stage) {
    case 'pretrain':
      await (await import('../stages/pretrain.js')).runPretrain(loaded, force);
      break;
    case 'sft':
      await (await import('../stages/sft.js')).runSft(loaded, force);
      break;
    case 'label':
      // The policy path is recorded in settings.json: read the same path as the original run.
      loaded.config.label = { ...loaded.config.label!, policy: parents[0] };
      await (await import('../stages/label.js')).runLabel(loaded, force);
      break;
    case 'train-reward':
      await (await import('../stages/train-reward.js')).runTrainReward(loaded, force);
      break;
    case 'ppo':
      // parents are [start policy, KL reference, reward model] (src/stages/ppo.ts); later rounds start from the previous round's policy.
      loaded.config.ppo = { ...loaded.config.ppo!, policy: parents[1], reward_model: parents[2] };
      await (await import('../stages/ppo.js')).runPpo(loaded, { ...force, stage: 'ppo', policy: parents[0], rewardModel: parents[2] });
      break;
    case 'rloo':
    case 'grpo': {
      // parents as PPO's: [start policy, KL reference, reward model]
      loaded.config[m.stage] = { ...loaded.config[m.stage]!, policy: parents[1], reward_model: parents[2] } as never;
      await (await import('../stages/group-rl.js')).runGroupRl(loaded, m.stage, { ...force, policy: parents[0], rewardModel: parents[2] });
      break;
    }
    case 'dpo':
      await (await import('../stages/dpo.js')).runDpo(loaded, force);
      break;
    case 'eval':
      await (await import('../stages/eval.js')).runEval(loaded, parents, force);
      break;
    default:
      throw new UsageError(`${dir}: unknown stage "${m.stage}"`);
  }
  return path.join(tmp, nameRoot, rel);
}

export async function verifyRun(runDirArg: string, opts: VerifyOptions = {}): Promise<VerifyResult> {
  const started = performance.now();
  const log = opts.log ?? (() => {});
  const runDir = runDirArg.replace(/\/+$/, '') || runDirArg;
  let rels = findStageDirs(runDir);
  if (opts.stage) {
    const want = opts.stage.replace(/_/g, '-');
    if (!rels.includes(want)) throw new UsageError(`--stage ${opts.stage}: no such stage in ${runDir} (stages: ${rels.join(', ')})`);
    rels = [want];
  }
  const manifests = new Map(rels.map((r) => [r, readPipelineManifest(path.join(runDir, r))!]));
  // Nothing checked is not "reproduces exactly".
  if (![...manifests.values()].some((m) => m.status === 'completed')) throw new VerifyError(`${runDir}: no completed stage to verify`);
  const result: VerifyResult = { run: runDir, ok: true, stages: [], wall_time_s: 0 };
  const fail = (check: StageCheck, difference: string): void => {
    check.difference = difference;
    result.ok = false;
    result.first_difference ??= difference;
  };

  for (const rel of rels) {
    const m = manifests.get(rel)!;
    const check: StageCheck = { stage: rel, integrity: 'ok', rerun: 'not run' };
    result.stages.push(check);
    if (m.status !== 'completed') {
      check.integrity = 'not completed';
      check.rerun = 'skipped';
      check.note = `status ${m.status}`;
      continue;
    }
    const problem = checkIntegrity(runDir, rel, m);
    if (problem) {
      check.integrity = 'failed';
      fail(check, problem);
    } else if (!m.outputs) {
      check.integrity = 'partial';
      check.note = 'no output hashes recorded (not run by rlhf pipeline): final weights and parents checked';
    }
    log(`${rel}: integrity ${check.integrity}${problem ? `: ${problem}` : ''}`);
  }
  if (!result.ok || opts.quick) {
    if (!result.ok) for (const c of result.stages) if (c.rerun === 'not run') c.note ??= 'not re-run: the integrity check failed';
    result.wall_time_s = Number(((performance.now() - started) / 1000).toFixed(3));
    return result;
  }

  for (const check of result.stages) {
    if (check.integrity === 'not completed') continue;
    const rel = check.stage;
    const m = manifests.get(rel)!;
    const summary = (m.summary ?? {}) as Record<string, unknown>;
    if (m.stage === 'label' && summary.labeler === 'human') {
      check.rerun = 'skipped';
      check.note = 'human labels cannot be re-run (integrity checked only)';
      continue;
    }
    if (m.config_changes?.length) {
      const c = m.config_changes[0];
      check.rerun = 'skipped';
      fail(check, `${path.join(runDir, rel)}: its config changed mid-run (--allow-config-change: ${c.key} ${JSON.stringify(c.from)} → ${JSON.stringify(c.to)} at step ${c.at_step}${m.config_changes.length > 1 ? `, and ${m.config_changes.length - 1} more` : ''}), so a re-run from config.yaml cannot reproduce it`);
      continue;
    }
    const numerics = numericsDifference({ ...m.numerics, backend: m.backend, threads: m.threads }, processNumerics());
    if (numerics) {
      check.rerun = 'skipped';
      fail(check, `${path.join(runDir, rel)}: recorded in another numerics environment, so a re-run cannot match bit for bit: ${numerics}`);
      continue;
    }
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'rlhf-verify-'));
    const t0 = performance.now();
    log(`${rel}: re-running in ${tmp}`);
    try {
      const redo = await rerunStage(runDir, rel, m, tmp);
      const dir = path.join(runDir, rel);
      const difference = compareMetrics(path.join(dir, 'metrics.jsonl'), path.join(redo, 'metrics.jsonl')) ?? compareFiles(dir, redo);
      check.rerun = difference ? 'different' : 'identical';
      if (difference) fail(check, difference);
    } catch (err) {
      check.rerun = 'different';
      fail(check, `${path.join(runDir, rel)}: the re-run failed: ${(err as Error).message.split('\n')[0]}`);
    } finally {
      check.wall_time_s = Number(((performance.now() - t0) / 1000).toFixed(3));
      if (!opts.keep) fs.rmSync(tmp, { recursive: true, force: true });
    }
    log(`${rel}: re-run ${check.rerun} (${check.wall_time_s.toFixed(1)} s)${check.difference ? `: ${check.difference}` : ''}`);
  }
  result.wall_time_s = Number(((performance.now() - started) / 1000).toFixed(3));
  return result;
}
