import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino, type Logger } from 'pino';
import { stringify as toYaml } from 'yaml';
import { processNumerics, tf, tfThreads } from '../backend/tf.js';
import { numericsDifference, type NumericsEnvironment, type TrainStepPath } from '../backend/numerics.js';
import { configThreads } from '../backend/threads.js';
import { checkpointHash, verifyCheckpoint } from '../checkpoint/checkpoint.js';
import { ConfigError } from '../config/load.js';
import type { ExperimentConfig } from '../config/schema.js';
import { TensorBoardWriter } from '../report/tensorboard.js';
import { removeTemporaries, withPath, writeFileAtomic } from '../util/fs.js';
import { decodePathBetween, decodeTally } from '../sample/generate.js';
import { acquireStageLock } from '../workflow/lock.js';

/** The stage directory is in a state the requested run may not overwrite. */
export class StageStateError extends Error {}

export type StageStatus = 'running' | 'completed' | 'failed' | 'interrupted';

export interface StageManifest {
  stage: string;
  status: StageStatus;
  started_at: string;
  finished_at?: string;
  wall_time_s?: number;
  seed: number;
  versions: Record<string, string>;
  git_commit: string | null;
  backend: string;
  /** TensorFlow intra-op threads the stage ran with (they change floating-point sums). */
  threads: number;
  /** oneDNN on/off, TensorFlow version, CPU and its vector extensions, fast paths taken: what else decides the bits. */
  numerics?: NumericsEnvironment;
  parents: { path: string; sha256: string }[];
  final?: { path: string; sha256: string };
  resumed_from_step?: number;
  /** Settings changed on --resume with --allow-config-change; config.yaml keeps the values the run started with. */
  config_changes?: ConfigChange[];
  error?: string;
  summary?: Record<string, unknown>;
}

/** One setting changed when a run was resumed: steps from `at_step` on ran with `to`. */
export interface ConfigChange {
  at_step: number;
  /** Dotted key path, e.g. "pretrain.lr". */
  key: string;
  from: unknown;
  to: unknown;
}

export interface OpenStageOptions {
  force?: boolean;
  resume?: boolean;
  /**
   * On resume, the result of resumeConfigChanges (src/run/resume-config.ts):
   * config.yaml is then kept as the run recorded it and these go into the manifest.
   */
  configChanges?: ConfigChange[];
  /** Checkpoints this stage reads; their hashes go into the manifest. */
  parents?: string[];
  /** Echo log lines to stderr (when no progress bar is drawn). */
  echoLogs?: boolean;
}

const projectRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

function packageVersion(): string {
  try {
    return (JSON.parse(fs.readFileSync(path.join(projectRoot, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

function gitCommit(): string | null {
  try {
    return execFileSync('git', ['rev-parse', 'HEAD'], { cwd: projectRoot, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
  } catch {
    return null;
  }
}

export function stageDir(config: ExperimentConfig, stage: string): string {
  return path.join(config.run_dir, config.name, stage);
}

/** Newest periodic checkpoint of a stage directory, for --resume. */
export function latestCheckpoint(dir: string): { path: string; step: number } | undefined {
  const root = path.join(dir, 'checkpoints');
  if (!fs.existsSync(root)) return undefined;
  const steps = fs
    .readdirSync(root)
    .map((n) => /^step-(\d+)$/.exec(n))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => Number(m[1]))
    .sort((a, b) => b - a);
  return steps.length ? { path: path.join(root, checkpointName(steps[0])), step: steps[0] } : undefined;
}

function checkpointName(step: number): string {
  return `step-${String(step).padStart(6, '0')}`;
}

export function readManifest(dir: string): StageManifest | undefined {
  try {
    return JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as StageManifest;
  } catch {
    return undefined;
  }
}

/**
 * Where the partly written last line of a metrics.jsonl starts, if a process
 * killed mid-write left one. An unreadable line before the last is corruption,
 * not an interrupted write: a one-line error naming file:line.
 */
function partialLastLine(file: string): { line: number; offset: number } | undefined {
  // latin1: one character per byte, so string offsets are file offsets.
  const text = fs.existsSync(file) ? fs.readFileSync(file, 'latin1') : '';
  let offset = 0;
  const lines = text.split('\n').map((line, i) => {
    const entry = { text: line, number: i + 1, offset };
    offset += line.length + 1;
    return entry;
  });
  const written = lines.filter((l) => l.text !== '');
  for (const [i, l] of written.entries()) {
    if (metricsStep(l.text) !== undefined) continue;
    if (i === written.length - 1) return { line: l.number, offset: l.offset };
    throw new StageStateError(`${file}:${l.number}: not a metrics line ({"step": N, ...}); only a partly written last line can be dropped on --resume`);
  }
  return undefined;
}

function metricsStep(line: string): number | undefined {
  try {
    const step = (JSON.parse(line) as { step?: unknown }).step;
    return typeof step === 'number' ? step : undefined;
  } catch {
    return undefined;
  }
}

/** A resumed run continues the train_step and decode records of the run it resumes. */
function withResumedFastPaths(numerics: NumericsEnvironment, previous: StageManifest | undefined): NumericsEnvironment {
  const was = previous?.numerics?.fast_paths;
  const kept = { ...(was?.train_step ? { train_step: was.train_step } : {}), ...(was?.decode ? { decode: was.decode } : {}) };
  return { ...numerics, fast_paths: { ...numerics.fast_paths, ...kept } };
}

/**
 * One run of one stage in `runs/<name>/<stage>/`: resolved config, manifest,
 * metrics.jsonl, log.jsonl, periodic checkpoints and `final/`. Opening it is
 * the first side effect a stage has, so every input must be validated before.
 */
export class StageRun {
  readonly logger: Logger;
  private readonly startedMs = Date.now();
  /** `generate` calls made before this run, to tell its own from them. */
  private readonly decodeAtOpen = { ...decodeTally };
  private manifest: StageManifest;
  private readonly metricsFd: number;
  /** Releases the stage directory's lock (see src/workflow/lock.ts); called when the run ends. */
  private releaseLock?: () => void;
  /** Mirrors metrics.jsonl as TensorBoard event files when the config has `tensorboard: true`. */
  private tensorboard?: TensorBoardWriter;

  private constructor(
    readonly dir: string,
    readonly stage: string,
    manifest: StageManifest,
    echoLogs: boolean,
  ) {
    this.manifest = manifest;
    const streams: pino.StreamEntry[] = [{ stream: pino.destination({ dest: path.join(dir, 'log.jsonl'), sync: true, append: true }) }];
    // RLHF_LOG_STDERR=0 keeps stderr quiet (the test suite sets it); log.jsonl is always written.
    if (echoLogs && process.env.RLHF_LOG_STDERR !== '0') streams.push({ stream: pino.destination({ dest: 2, sync: true }) });
    this.logger = pino({ base: { stage }, level: 'info' }, pino.multistream(streams));
    this.metricsFd = fs.openSync(path.join(dir, 'metrics.jsonl'), 'a');
  }

  /**
   * Opens the stage directory for writing. A lock file (pid, O_EXCL) makes a
   * second process writing the same directory refuse before it touches
   * anything; the lock goes when the run completes or fails, or the process exits.
   */
  static open(config: ExperimentConfig, stage: string, opts: OpenStageOptions = {}): StageRun {
    checkThreads(config);
    const release = acquireStageLock(stageDir(config, stage));
    try {
      const run = StageRun.create(config, stage, opts);
      run.releaseLock = release;
      return run;
    } catch (err) {
      release();
      throw err;
    }
  }

  private static create(config: ExperimentConfig, stage: string, opts: OpenStageOptions): StageRun {
    const dir = stageDir(config, stage);
    // Every parent checkpoint is checked (and hashed for the manifest) before the
    // stage directory changes: a bad input must not cost a completed run under --force.
    const parents = (opts.parents ?? []).map((p) => ({ path: p, sha256: verifyCheckpoint(p) }));
    const previous = readManifest(dir);
    const repairs: Record<string, unknown>[] = [];
    if (opts.resume) {
      if (!previous) throw new StageStateError(`${dir}: nothing to resume (no manifest.json)`);
      if (previous.status === 'completed') throw new StageStateError(`${dir}: already completed; nothing to resume`);
      // A run continued under other kernels would be a mix its manifest could not describe.
      const numerics = previous.numerics && numericsDifference(previous.numerics, processNumerics());
      if (numerics) throw new StageStateError(`${dir}: began in another numerics environment (${numerics}); resume it there`);
      const metricsFile = path.join(dir, 'metrics.jsonl');
      const partial = partialLastLine(metricsFile);
      // Checks passed: undo what a kill mid-write left (we hold the lock, so no writer is alive).
      if (partial) {
        fs.truncateSync(metricsFile, partial.offset);
        repairs.push({ dropped_partial_line: `${metricsFile}:${partial.line}` });
      }
      const removed = [dir, path.join(dir, 'checkpoints')].flatMap(removeTemporaries);
      if (removed.length > 0) repairs.push({ removed_temporaries: removed });
    } else if (fs.existsSync(dir) && fs.readdirSync(dir).length > 0) {
      if (!opts.force) {
        const what = previous?.status === 'completed' ? 'holds a completed run' : 'holds an unfinished run (use --resume to continue it)';
        throw new StageStateError(`${dir}: ${what}; pass --force to overwrite it`);
      }
      fs.rmSync(dir, { recursive: true, force: true });
    }
    fs.mkdirSync(path.join(dir, 'checkpoints'), { recursive: true });
    if (!opts.configChanges) fs.writeFileSync(path.join(dir, 'config.yaml'), toYaml(config));
    const manifest: StageManifest = {
      stage,
      status: 'running',
      started_at: new Date().toISOString(),
      seed: config.seed,
      versions: { 'rlhf-lab': packageVersion(), node: process.version, tfjs: tf.version.tfjs },
      git_commit: gitCommit(),
      backend: tf.getBackend(),
      threads: tfThreads,
      numerics: withResumedFastPaths(processNumerics(), opts.resume ? previous : undefined),
      parents,
      ...(opts.configChanges?.length ? { config_changes: opts.configChanges } : {}),
    };
    const run = new StageRun(dir, stage, manifest, opts.echoLogs ?? false);
    for (const r of repairs) run.logger.warn(r, 'repaired what an interrupted write left');
    if (config.tensorboard) run.tensorboard = TensorBoardWriter.open(path.join(dir, 'tensorboard'), run.logger);
    run.writeManifest();
    return run;
  }

  private writeManifest(): void {
    writeFileAtomic(path.join(this.dir, 'manifest.json'), JSON.stringify(this.manifest, null, 2) + '\n');
  }

  /** Appends one `{step, ...metrics}` line (synchronously: a crash keeps every line written). */
  metrics(step: number, values: Record<string, number>): void {
    try {
      fs.writeSync(this.metricsFd, JSON.stringify({ step, ...values }) + '\n');
    } catch (err) {
      throw withPath(err, path.join(this.dir, 'metrics.jsonl'));
    }
    this.tensorboard?.scalars(step, values);
  }

  checkpointPath(step: number): string {
    return path.join(this.dir, 'checkpoints', checkpointName(step));
  }

  get finalPath(): string {
    return path.join(this.dir, 'final');
  }

  /** On resume: drop metric lines logged after the checkpoint, which the resumed run will log again. */
  truncateMetricsAfter(step: number): void {
    const file = path.join(this.dir, 'metrics.jsonl');
    const kept = fs
      .readFileSync(file, 'utf8')
      .split('\n')
      .filter((line) => line && (JSON.parse(line) as { step: number }).step <= step);
    fs.ftruncateSync(this.metricsFd, 0);
    fs.writeSync(this.metricsFd, kept.map((l) => l + '\n').join(''), 0);
    this.manifest.resumed_from_step = step;
    this.writeManifest();
  }

  /**
   * Records how this run's training steps ran (`numerics.fast_paths.train_step`);
   * a value other than the one recorded so far (also before a --resume) makes it `mixed`.
   */
  recordTrainStep(path: TrainStepPath): void {
    this.recordFastPath('train_step', path);
  }

  private recordFastPath(kind: 'train_step' | 'decode', path: TrainStepPath): void {
    const fast = this.manifest.numerics?.fast_paths;
    if (!fast) return;
    const merged = fast[kind] === undefined || fast[kind] === path ? path : 'mixed';
    if (merged === fast[kind]) return;
    fast[kind] = merged;
    this.writeManifest();
  }

  /** Records how the generations made during this run decoded, and logs why the graph was not used if it was not. */
  private recordDecode(): void {
    const path = decodePathBetween(this.decodeAtOpen, decodeTally);
    if (path === undefined) return;
    if (path !== 'graph' && decodeTally.fallback) this.logger.info({ reason: decodeTally.fallback }, 'graph decode step unavailable: generation decoded eagerly');
    this.recordFastPath('decode', path);
  }

  /** Keep only the newest `keep` periodic checkpoints. */
  pruneCheckpoints(keep: number): void {
    const root = path.join(this.dir, 'checkpoints');
    const names = fs.readdirSync(root).filter((n) => /^step-\d+$/.test(n)).sort();
    for (const n of names.slice(0, Math.max(0, names.length - keep))) fs.rmSync(path.join(root, n), { recursive: true, force: true });
  }

  complete(summary: Record<string, unknown>): void {
    this.manifest.status = 'completed';
    this.manifest.summary = summary;
    if (fs.existsSync(this.finalPath)) this.manifest.final = { path: this.finalPath, sha256: checkpointHash(this.finalPath) };
    this.end();
  }

  fail(status: 'failed' | 'interrupted', error?: string): void {
    this.manifest.status = status;
    if (error) this.manifest.error = error;
    this.end();
  }

  private end(): void {
    this.recordDecode();
    this.manifest.finished_at = new Date().toISOString();
    this.manifest.wall_time_s = (Date.now() - this.startedMs) / 1000;
    this.writeManifest();
    fs.closeSync(this.metricsFd);
    this.tensorboard?.close();
    this.logger.flush();
    this.releaseLock?.();
  }
}

/**
 * The thread count is part of the config (it changes floating-point sums), and
 * TensorFlow fixed it when it loaded: refuse to write a run that would claim
 * the config's count while running another. The CLI sets it from the config
 * before TensorFlow loads; library callers use configureThreads() first.
 */
function checkThreads(config: ExperimentConfig): void {
  if (tf.getBackend() !== 'tensorflow') return;
  const wanted = configThreads(config);
  if (wanted !== tfThreads) {
    throw new ConfigError(
      `threads: the config asks for ${wanted} TensorFlow thread(s) but this process loaded TensorFlow with ${tfThreads} ` +
        `(fixed on load: call configureThreads(${wanted}) before importing TensorFlow, or set threads: ${tfThreads})`,
    );
  }
}
