import fs from 'node:fs';
import path from 'node:path';
import { processNumerics } from '../backend/tf.js';
import { numericsDifference } from '../backend/numerics.js';
import { checkpointHash } from '../checkpoint/checkpoint.js';
import type { LoadedConfig } from '../config/load.js';
import { UsageError } from './errors.js';
import { bestOfNMetrics, perMethodMetrics } from './method-metrics.js';
import { lockHolder } from './lock.js';
import { hashOutputs, readPipelineManifest, updateManifest, type PipelineManifest } from './manifest.js';
import { changedKeys } from './hash.js';
import {
  evalPolicies,
  inputHash,
  manifestDir,
  outputDirs,
  parseStage,
  pipelineStages,
  resolveInputs,
  runRoot,
  stageDirsOf,
  stageInputs,
  type PipelineStage,
  type ResolvedInputs,
} from './stages.js';

/**
 * `rlhf pipeline`: pretrain → sft → label → train-reward → ppo (→ rounds) →
 * eval, the stages the config has. A stage is skipped when it completed
 * before with the same input hash (resolved config section + shared keys +
 * content hashes of the checkpoints and data it reads); otherwise it re-runs
 * (with --force semantics), and so does every stage that reads its outputs.
 * The plan is made once, up front, so `--dry-run` shows exactly what a run
 * would do.
 */

export type Action = 'run' | 'skip' | 'link' | 'excluded';

export interface PlanStep {
  stage: PipelineStage;
  /** Where the stage's manifest lives. */
  dir: string;
  action: Action;
  reason: string;
  /** label only: an unfinished label run continues where it stopped (human answers are never discarded implicitly). */
  continueUnfinished?: boolean;
  /** action 'link': the base run's directories the stage's outputs are linked to. */
  linkTo?: string[];
}

export type OutcomeStatus = 'completed' | 'skipped' | 'linked' | 'excluded' | 'failed' | 'stopped' | 'not run' | 'planned';

export interface StageOutcome extends PlanStep {
  status: OutcomeStatus;
  wall_time_s?: number;
  /** Numeric summary of the stage (its manifest's summary; eval: the last policy's scores). */
  metrics?: Record<string, number>;
  error?: string;
}

export interface PipelineResult {
  config: string;
  run: string;
  ok: boolean;
  dry_run: boolean;
  stages: StageOutcome[];
  wall_time_s: number;
  error?: string;
}

export interface PipelineOptions {
  from?: string;
  until?: string;
  force?: boolean;
  dryRun?: boolean;
  /** A completed run whose stages with identical inputs are linked instead of re-run (sweep trials). */
  reuse?: string;
  /** Progress lines (human-readable). */
  log?: (line: string) => void;
  /** Called with the plan before anything runs. */
  onPlan?: (plan: readonly PlanStep[]) => void;
}

/** Fields that measure the machine, not the run. */
export function isWallClockField(key: string): boolean {
  return ['tokens_per_s', 'elapsed_s', 'responses_per_s', 'wall_time_s', 'wall_s'].includes(key) || key.startsWith('time/') || key.startsWith('debug/');
}

function stageRange(stages: PipelineStage[], opts: PipelineOptions): { first: number; last: number } {
  const index = (flag: string, name: string | undefined, fallback: number): number => {
    if (name === undefined) return fallback;
    const s = parseStage(name);
    const i = s ? stages.indexOf(s) : -1;
    if (i < 0) throw new UsageError(`${flag} ${name}: not a stage of this config (stages: ${stages.join(', ')})`);
    return i;
  };
  const first = index('--from', opts.from, 0);
  const last = index('--until', opts.until, stages.length - 1);
  if (first > last) throw new UsageError(`--from ${opts.from} comes after --until ${opts.until}`);
  return { first, last };
}

function describeChange(before: ResolvedInputs | undefined, now: ResolvedInputs): string {
  if (!before || before.version !== now.version) return 'inputs recorded in an older format';
  const parts: string[] = [];
  const keys = changedKeys(before.config, now.config);
  if (keys.length) parts.push(`config changed: ${keys.slice(0, 4).join(', ')}${keys.length > 4 ? ` (+${keys.length - 4} more)` : ''}`);
  const differ = (a: Record<string, unknown>, b: Record<string, unknown>) => [...new Set([...Object.keys(a), ...Object.keys(b)])].filter((k) => a[k] !== b[k]).sort();
  const parents = differ(before.parents, now.parents);
  if (parents.length) parts.push(`parent changed: ${parents.join(', ')}`);
  const data = differ(before.data, now.data);
  if (data.length) parts.push(`data changed: ${data.join(', ')}`);
  return parts.join('; ') || 'inputs changed';
}

/** The final checkpoint still has the bytes the manifest recorded (cheap guard against edited outputs). */
function finalIntact(dir: string, m: PipelineManifest): string | undefined {
  if (!m.final) return undefined;
  const final = path.join(dir, 'final');
  const weights = path.join(final, 'model.weights.bin');
  if (!fs.existsSync(weights)) return `output missing: final/model.weights.bin`;
  return checkpointHash(final) === m.final.sha256 ? undefined : `output modified since it completed: final/model.weights.bin`;
}

/** Why a completed stage's numerics environment differs from this process's, if it does (as `rlhf verify` compares them). */
function otherNumerics(m: PipelineManifest): string | undefined {
  return numericsDifference({ ...m.numerics, backend: m.backend, threads: m.threads }, processNumerics());
}

function isInside(p: string, dir: string): boolean {
  const rel = path.relative(dir, p);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

/** Decides, for every stage, whether it runs, is skipped, excluded by --from/--until, or linked from --reuse. */
export function planPipeline(loaded: LoadedConfig, opts: PipelineOptions = {}): PlanStep[] {
  const { config } = loaded;
  const stages = pipelineStages(config);
  if (stages.length === 0) throw new UsageError(`${loaded.file}: no stage sections (pretrain, sft, label, train_reward, ppo, eval)`);
  const { first, last } = stageRange(stages, opts);
  const root = runRoot(config);
  const reuse = opts.reuse ? path.resolve(opts.reuse) : undefined;
  if (reuse && path.resolve(reuse) === path.resolve(root)) throw new UsageError(`--reuse ${opts.reuse}: is this run's own directory`);
  const rerun = new Set<PipelineStage>();
  /** Trial output dir → base dir, for stages planned as links: their contents are read from the base. */
  const linked = new Map<string, string>();
  const mapPath = (p: string): string => {
    for (const [from, to] of linked) if (isInside(p, from)) return path.join(to, path.relative(from, p));
    return p;
  };
  const plan: PlanStep[] = [];
  stages.forEach((stage, i) => {
    const dir = manifestDir(config, stage);
    const step = (action: Action, reason: string, extra: Partial<PlanStep> = {}): void => {
      plan.push({ stage, dir, action, reason, ...extra });
      if (action === 'run') rerun.add(stage);
    };
    if (i < first) return step('excluded', `before --from ${stages[first]}`);
    if (i > last) return step('excluded', `after --until ${stages[last]}`);
    if (opts.force) return step('run', '--force');
    const inputs = stageInputs(loaded, stage);
    const reads = Object.values(inputs.parents);
    const upstream = [...rerun].filter((s) => outputDirs(config, s).some((d) => reads.some((p) => isInside(p, d))));
    const manifest = readPipelineManifest(dir);
    const unfinishedLabel = stage === 'label' && manifest !== undefined && manifest.status !== 'completed';
    if (upstream.length && !manifest) return step('run', 'never run');
    const resolved = resolveInputs(inputs, mapPath);
    if (upstream.length && manifest) {
      // Parents are about to change; name this stage's own changes too.
      const own = manifest.inputs?.version === resolved.version ? describeChange(manifest.inputs, { ...resolved, parents: manifest.inputs.parents }) : '';
      return step('run', `${own && own !== 'inputs changed' ? `${own}; ` : ''}parent changed (${upstream.join(', ')} re-runs)`);
    }
    const hash = inputHash(resolved);
    if (manifest?.status === 'completed' && manifest.input_hash === hash) {
      // Same inputs but other kernels/rounding (oneDNN mode, TensorFlow, CPU, threads): not this environment's result.
      const elsewhere = otherNumerics(manifest);
      if (elsewhere) return step('run', `completed in another numerics environment: ${elsewhere}`);
      const damaged = finalIntact(dir, manifest);
      if (!damaged) return step('skip', 'completed, inputs unchanged');
      return step('run', damaged);
    }
    // Reached only when no stage this one reads re-runs (those return above), so a stage
    // after a re-run one (rloo after a changed ppo) still links when its own inputs match.
    if (reuse) {
      const baseDirs = outputDirs(config, stage).map((d) => path.join(reuse, path.relative(root, d)));
      const baseManifestDir = path.join(reuse, path.relative(root, dir));
      const base = readPipelineManifest(baseManifestDir);
      if (base?.status === 'completed' && base.input_hash === hash && !otherNumerics(base) && !finalIntact(baseManifestDir, base)) {
        outputDirs(config, stage).forEach((d, k) => linked.set(d, baseDirs[k]));
        return step('link', `same inputs as ${baseManifestDir}: reusing it`, { linkTo: baseDirs });
      }
    }
    if (!manifest) return step('run', 'never run');
    if (manifest.status === 'running' && lockHolder(dir)) return step('run', `being written by process ${lockHolder(dir)!.pid} (running it now would be refused)`);
    if (unfinishedLabel) return step('run', `unfinished (${manifest.status}): continuing where it stopped`, { continueUnfinished: true });
    if (manifest.status !== 'completed') return step('run', `unfinished (${manifest.status}): restarting`);
    if (!manifest.input_hash) return step('run', 'completed outside the pipeline (no input hash recorded)');
    return step('run', describeChange(manifest.inputs, resolved));
  });
  return plan;
}

export function formatPlan(plan: readonly PlanStep[]): string {
  const width = Math.max(...plan.map((p) => p.stage.length));
  return plan.map((p) => `  ${p.stage.padEnd(width)}  ${p.action.padEnd(8)}  ${p.reason}`).join('\n');
}

function numeric(obj: Record<string, unknown> | undefined): Record<string, number> {
  return Object.fromEntries(Object.entries(obj ?? {}).filter(([k, v]) => typeof v === 'number' && Number.isFinite(v) && !isWallClockField(k))) as Record<string, number>;
}

/**
 * An eval's numbers for a sweep row: the last policy compared (normally the
 * final PPO policy), the first (the SFT policy it started from) as `sft_*`, and
 * the differences `delta_*` — whether RLHF helped is a comparison, not a level.
 */
export function evalComparison(policies: readonly Record<string, unknown>[]): Record<string, number> {
  const last = numeric(policies[policies.length - 1]);
  if (policies.length < 2) return last;
  const first = numeric(policies[0]);
  const out: Record<string, number> = { ...last };
  for (const [k, v] of Object.entries(first)) out[`sft_${k}`] = v;
  for (const [delta, k] of [['delta_gold', 'gold_score'], ['delta_proxy', 'proxy_reward'], ['delta_distinct_2', 'distinct_2']]) {
    if (last[k] !== undefined && first[k] !== undefined) out[delta] = last[k] - first[k];
  }
  return out;
}

/** A stage's numeric results, from its manifest (eval: see evalComparison). */
export function stageMetrics(dir: string): Record<string, number> | undefined {
  const m = readPipelineManifest(dir);
  if (!m?.summary) return undefined;
  if (m.stage === 'eval' && Array.isArray(m.summary.policies)) {
    const policies = m.summary.policies as Record<string, unknown>[];
    const bon = Array.isArray(m.summary.best_of_n) ? bestOfNMetrics(m.summary.best_of_n as Parameters<typeof bestOfNMetrics>[0], m.summary.best_of_n_sampling as Parameters<typeof bestOfNMetrics>[1]) : {};
    return { ...evalComparison(policies), ...perMethodMetrics(policies), ...bon };
  }
  return numeric(m.summary);
}

function removePath(p: string): void {
  const st = fs.lstatSync(p, { throwIfNoEntry: false });
  if (!st) return;
  if (st.isSymbolicLink()) fs.unlinkSync(p);
  else fs.rmSync(p, { recursive: true, force: true });
}

/** Runs one stage in this process, with the stages' own library functions. */
async function runStage(loaded: LoadedConfig, step: PlanStep): Promise<'completed' | 'stopped'> {
  const o = { force: true };
  switch (step.stage) {
    case 'pretrain':
      await (await import('../stages/pretrain.js')).runPretrain(loaded, o);
      return 'completed';
    case 'sft':
      await (await import('../stages/sft.js')).runSft(loaded, o);
      return 'completed';
    case 'label': {
      const r = await (await import('../stages/label.js')).runLabel(loaded, { force: !step.continueUnfinished });
      return r.status;
    }
    case 'train-reward':
      await (await import('../stages/train-reward.js')).runTrainReward(loaded, o);
      return 'completed';
    case 'ppo':
      await (await import('../stages/ppo.js')).runPpo(loaded, o);
      return 'completed';
    case 'rounds': {
      // Later rounds start over: round 1 (the ppo stage) is current, rounds 2..R are re-made from it.
      const root = runRoot(loaded.config);
      if (fs.existsSync(root)) for (const d of fs.readdirSync(root)) if (/^round-\d+$/.test(d)) removePath(path.join(root, d));
      await (await import('../stages/rounds.js')).runRounds(loaded, {});
      return 'completed';
    }
    case 'rloo':
    case 'grpo':
      await (await import('../stages/group-rl.js')).runGroupRl(loaded, step.stage, o);
      return 'completed';
    case 'dpo':
      await (await import('../stages/dpo.js')).runDpo(loaded, o);
      return 'completed';
    case 'eval':
      await (await import('../stages/eval.js')).runEval(loaded, evalPolicies(loaded), { force: true });
      return 'completed';
  }
}

function fmtMetrics(m: Record<string, number> | undefined, max = 5): string {
  if (!m) return '';
  return Object.entries(m)
    .filter(([k]) => k !== 'lr' && k !== 'step' && k !== 'steps' && k !== 'iterations')
    .slice(0, max)
    .map(([k, v]) => `${k} ${Number.isInteger(v) ? v : v.toFixed(4)}`)
    .join(', ');
}

/**
 * Plans, then runs the planned stages in order. Never throws for a stage's
 * failure: the result says which stage failed and `error` carries the thrown
 * value, for the caller to report (the CLI re-throws it for its exit code).
 */
export async function runPipeline(loaded: LoadedConfig, opts: PipelineOptions = {}): Promise<{ result: PipelineResult; error?: unknown }> {
  const started = performance.now();
  const log = opts.log ?? (() => {});
  const { config } = loaded;
  const plan = planPipeline(loaded, opts);
  const result: PipelineResult = {
    config: loaded.file,
    run: runRoot(config),
    ok: true,
    dry_run: Boolean(opts.dryRun),
    stages: plan.map((p) => ({ ...p, status: opts.dryRun ? 'planned' : 'not run' })),
    wall_time_s: 0,
  };
  opts.onPlan?.(plan);
  if (opts.dryRun) return { result };
  let error: unknown;
  // A signal a stage's own loop did not see (it came after the stage's last step check,
  // or between stages) must still stop the pipeline before the next stage starts.
  const { InterruptedError, interruptFlag } = await import('../train/loop.js');
  const stop = interruptFlag();
  let previous: string | undefined;
  try {
    for (const outcome of result.stages) {
      if (error === undefined && stop.raised && previous !== undefined) {
        error = new InterruptedError(`interrupted after ${previous}; run the pipeline again to continue`);
      }
      if (error !== undefined) break;
      previous = outcome.stage;
      if (outcome.action === 'excluded') {
        outcome.status = 'excluded';
        continue;
      }
      if (outcome.action === 'skip') {
        outcome.status = 'skipped';
        outcome.metrics = stageMetrics(outcome.dir);
        log(`= ${outcome.stage}: skipped (${outcome.reason})`);
        continue;
      }
      if (outcome.action === 'link') {
        outputDirs(config, outcome.stage).forEach((d, k) => {
          removePath(d);
          fs.mkdirSync(path.dirname(d), { recursive: true });
          fs.symlinkSync(path.relative(path.dirname(d), outcome.linkTo![k]), d);
        });
        outcome.status = 'linked';
        outcome.metrics = stageMetrics(outcome.dir);
        log(`= ${outcome.stage}: linked to ${outcome.linkTo!.join(', ')}`);
        continue;
      }
      log(`> ${outcome.stage}: running (${outcome.reason})`);
      const t0 = performance.now();
      try {
        // Never write through a link into another run (a sweep's base).
        for (const d of outputDirs(config, outcome.stage)) if (fs.lstatSync(d, { throwIfNoEntry: false })?.isSymbolicLink()) fs.unlinkSync(d);
        // Hashed now that upstream stages have written what this one reads.
        const resolved = resolveInputs(stageInputs(loaded, outcome.stage));
        const status = await runStage(loaded, outcome);
        outcome.wall_time_s = Number(((performance.now() - t0) / 1000).toFixed(3));
        if (status === 'stopped') {
          outcome.status = 'stopped';
          error = new InterruptedError(`${outcome.stage} stopped before it finished; run the pipeline again to continue`);
          break;
        }
        for (const d of stageDirsOf(config, outcome.stage)) if (fs.existsSync(path.join(d, 'manifest.json'))) updateManifest(d, { outputs: hashOutputs(d) });
        updateManifest(outcome.dir, { input_hash: inputHash(resolved), inputs: resolved });
        outcome.status = 'completed';
        outcome.metrics = stageMetrics(outcome.dir);
        log(`+ ${outcome.stage}: done in ${outcome.wall_time_s.toFixed(1)} s${outcome.metrics ? `: ${fmtMetrics(outcome.metrics)}` : ''}`);
      } catch (err) {
        outcome.status = 'failed';
        outcome.wall_time_s = Number(((performance.now() - t0) / 1000).toFixed(3));
        outcome.error = (err as Error).message?.split('\n')[0] ?? String(err);
        log(`! ${outcome.stage}: failed: ${outcome.error}`);
        error = err;
      }
    }
  } finally {
    stop.release();
  }
  result.ok = error === undefined;
  if (error !== undefined) result.error = (error as Error).message?.split('\n')[0] ?? String(error);
  result.wall_time_s = Number(((performance.now() - started) / 1000).toFixed(3));
  return { result, error };
}
