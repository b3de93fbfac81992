import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { ConfigError, loadConfig, type LoadedConfig } from '../config/load.js';
import { FRONTIER_FILE, frontierSpec, methodAggregates, methodTable } from './method-metrics.js';
import { summarizeSeeds, type SeedSummary } from '../util/stats.js';
import { Rng } from '../util/rng.js';
import { UsageError, WorkflowError } from './errors.js';
import type { PipelineResult } from './pipeline.js';
import { PIPELINE_STAGES, parseStage, pipelineStages, runRoot, type PipelineStage } from './stages.js';

/**
 * `rlhf sweep`: grid or random search over config keys.
 *
 * Layout: trials live in `<run_dir>/<name>-sweep/trial-NNN/` (each a complete
 * run directory: its config is the base config + the trial's --set overrides
 * + `name=trial-NNN` + `run_dir=<sweep dir>`), with summary.csv, summary.md,
 * sweep.json and logs/ beside them.
 *
 * Reuse of upstream stages: the stages before the first swept one (e.g.
 * pretrain → train-reward when sweeping ppo.*) are run once, in the base
 * config's own run directory (`runs/<name>/`, so an existing run is reused as
 * is), by `rlhf pipeline --until <stage>`. Each trial is then
 * `rlhf pipeline ... --reuse runs/<name>`: a trial stage whose input hash
 * equals the base run's completed stage is a symlink to it (no copy, no
 * re-run); the first stage whose inputs differ, and everything after it,
 * runs in the trial's own directory. Because links are decided by content
 * hash, a trial can never reuse a stage its overrides actually change.
 *
 * Trials run as `--jobs N` child processes; a failed trial is recorded (exit
 * code, last stderr line, log file) and the others go on; the summaries are
 * rewritten each time a trial finishes.
 */

export interface SweepOptions {
  set: string[];
  grid: string[];
  random?: number;
  range: string[];
  seed: number;
  jobs: number;
  stage?: string;
  metric?: string;
  minimize?: boolean;
  out?: string;
  printCommands?: boolean;
  /** Progress lines (stderr in the CLI). */
  log?: (line: string) => void;
}

export interface TrialRecord {
  id: string;
  /** Swept key → value (as given on the command line, YAML). */
  params: Record<string, string>;
  run: string;
  command: string[];
  status: 'pending' | 'running' | 'ok' | 'failed';
  exit_code?: number;
  error?: string;
  log?: string;
  wall_time_s?: number;
  metrics: Record<string, number>;
}

export interface SweepResult {
  config: string;
  sweep_dir: string;
  base_run: string;
  /** First stage that differs between trials (stages before it are shared from base_run). */
  first_stage: string;
  metric?: string;
  minimize: boolean;
  trials: TrialRecord[];
  ok: number;
  failed: number;
  summary_csv: string;
  summary_md: string;
}

const binPath = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'rlhf.js');

interface GridParam {
  key: string;
  values: string[];
}
interface RangeParam {
  key: string;
  lo: number;
  hi: number;
  log: boolean;
  integer: boolean;
}

function splitAssignment(flag: string, spec: string): [string, string] {
  const eq = spec.indexOf('=');
  if (eq <= 0 || eq === spec.length - 1) throw new UsageError(`${flag} ${spec}: expected key.path=${flag === '--grid' ? 'v1,v2,...' : 'lo:hi'}`);
  const key = spec.slice(0, eq);
  if (!/^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$/.test(key)) throw new UsageError(`${flag} ${spec}: "${key}" is not a key path`);
  if (key === 'name' || key === 'run_dir') throw new UsageError(`${flag} ${spec}: ${key} is set per trial by the sweep`);
  return [key, spec.slice(eq + 1)];
}

/** Most values one `a..b` may stand for: a typo like 1..1e9 fails at once rather than filling memory. */
const MAX_RANGE_VALUES = 10_000;

/**
 * `a..b` or `a..b:step` (integers, inclusive, a ≤ b) → its values; undefined when `item` is no
 * range (it does not start with a number followed by `..`, e.g. `../data.jsonl`).
 */
export function expandIntegerRange(item: string, spec: string): string[] | undefined {
  const dots = item.indexOf('..');
  if (dots <= 0 || !Number.isFinite(Number(item.slice(0, dots)))) return undefined;
  const m = /^(-?\d+)\.\.(-?\d+)(?::(\d+))?$/.exec(item);
  if (!m) throw new UsageError(`--grid ${spec}: "${item}" is not a range: expected integers a..b or a..b:step`);
  const [a, b, step] = [Number(m[1]), Number(m[2]), m[3] === undefined ? 1 : Number(m[3])];
  if (b < a) throw new UsageError(`--grid ${spec}: range ${item} ends below its start`);
  if (step < 1) throw new UsageError(`--grid ${spec}: range ${item} needs a step ≥ 1`);
  const count = Math.floor((b - a) / step) + 1;
  if (count > MAX_RANGE_VALUES) throw new UsageError(`--grid ${spec}: range ${item} has ${count} values (at most ${MAX_RANGE_VALUES})`);
  return Array.from({ length: count }, (_, i) => String(a + i * step));
}

/**
 * `key=v1,v2`, integer ranges among them (`seed=1..10`, `seed=1..9:2,20`), or, for values with
 * commas, a YAML flow list: `key=[{type: flip, rate: 0.1}, {type: none}]`.
 */
export function parseGrid(spec: string): GridParam {
  const [key, rest] = splitAssignment('--grid', spec);
  let values: string[];
  if (rest.trimStart().startsWith('[')) {
    let list: unknown;
    try {
      list = parseYaml(rest);
    } catch {
      throw new UsageError(`--grid ${spec}: invalid YAML list`);
    }
    if (!Array.isArray(list)) throw new UsageError(`--grid ${spec}: expected a list`);
    values = list.map((v) => (typeof v === 'object' && v !== null ? JSON.stringify(v) : typeof v === 'string' ? JSON.stringify(v) : String(v)));
  } else {
    values = rest.split(',').flatMap((v) => expandIntegerRange(v.trim(), spec) ?? [v.trim()]);
  }
  if (values.length === 0 || values.some((v) => v === '')) throw new UsageError(`--grid ${spec}: empty value`);
  return { key, values };
}

/** `key=lo:hi` (integers if both are, floats otherwise) or `key=lo:hi:log` (log-uniform). */
export function parseRange(spec: string): RangeParam {
  const [key, rest] = splitAssignment('--range', spec);
  const parts = rest.split(':');
  const log = parts[2] === 'log';
  if (parts.length < 2 || parts.length > 3 || (parts.length === 3 && !log)) throw new UsageError(`--range ${spec}: expected key=lo:hi or key=lo:hi:log`);
  const lo = Number(parts[0]);
  const hi = Number(parts[1]);
  if (!Number.isFinite(lo) || !Number.isFinite(hi) || !(lo < hi)) throw new UsageError(`--range ${spec}: need numbers lo < hi`);
  if (log && lo <= 0) throw new UsageError(`--range ${spec}: a log range needs lo > 0`);
  return { key, lo, hi, log, integer: !log && Number.isInteger(lo) && Number.isInteger(hi) && !/[.eE]/.test(parts[0] + parts[1]) };
}

function sampleRange(r: RangeParam, rng: Rng): string {
  if (r.integer) return String(r.lo + rng.int(r.hi - r.lo + 1));
  const u = rng.next();
  const x = r.log ? Math.exp(Math.log(r.lo) + u * (Math.log(r.hi) - Math.log(r.lo))) : r.lo + u * (r.hi - r.lo);
  return String(Number(x.toPrecision(6)));
}

/** Trial parameter sets: the grid's cartesian product, or N random draws (grid keys chosen uniformly, ranges sampled). */
export function trialParams(grid: GridParam[], ranges: RangeParam[], random: number | undefined, seed: number): Record<string, string>[] {
  const keys = [...grid.map((g) => g.key), ...ranges.map((r) => r.key)];
  const dup = keys.find((k, i) => keys.indexOf(k) !== i);
  if (dup) throw new UsageError(`${dup}: swept twice`);
  if (random === undefined) {
    if (ranges.length) throw new UsageError('--range needs --random N (the number of trials to draw)');
    if (!grid.length) throw new UsageError('nothing to sweep: give --grid key=v1,v2 and/or --random N --range key=lo:hi');
    return grid.reduce<Record<string, string>[]>((acc, g) => acc.flatMap((p) => g.values.map((v) => ({ ...p, [g.key]: v }))), [{}]);
  }
  if (!Number.isInteger(random) || random < 1) throw new UsageError('--random must be a positive integer');
  if (!grid.length && !ranges.length) throw new UsageError('--random N needs --range key=lo:hi (or --grid key=v1,v2) to draw from');
  const rng = new Rng(`sweep:${seed}`);
  return Array.from({ length: random }, () => {
    const p: Record<string, string> = {};
    for (const g of grid) p[g.key] = g.values[rng.int(g.values.length)];
    for (const r of ranges) p[r.key] = sampleRange(r, rng);
    return p;
  });
}

/** Index (in `stages`) of the first stage a key affects: its own section's stage; shared keys (seed, model, tokenizer, threads) affect the first. */
function stageOfKey(key: string, stages: PipelineStage[]): number {
  const head = key.split('.')[0];
  // No pipeline stage reads these: trials may share every stage but the last.
  if (head === 'sample' || head === 'tensorboard') return stages.length - 1;
  const own = key === 'ppo.rounds' ? 'rounds' : parseStage(head);
  if (!own) return 0;
  const order: readonly string[] = PIPELINE_STAGES;
  const i = stages.findIndex((s) => order.indexOf(s) >= order.indexOf(own));
  return i < 0 ? stages.length - 1 : i;
}

export function shellQuote(arg: string): string {
  return /^[A-Za-z0-9_\/.,:=@%+-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

function backendArgs(): string[] {
  return process.env.RLHF_BACKEND && process.env.RLHF_BACKEND !== 'tensorflow' ? ['--backend', process.env.RLHF_BACKEND] : [];
}

function csvCell(v: unknown): string {
  const s = v === undefined || v === null ? '' : String(v);
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

function mdCell(v: unknown): string {
  return (v === undefined || v === null ? '' : String(v)).replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

function fmt(v: number | undefined): string {
  if (v === undefined) return '';
  return Number.isInteger(v) ? String(v) : Math.abs(v) >= 1e-3 && Math.abs(v) < 1e5 ? v.toFixed(4) : v.toExponential(3);
}

function sortTrials(trials: TrialRecord[], metric: string | undefined, minimize: boolean): TrialRecord[] {
  const rank = (t: TrialRecord) => (t.status === 'ok' ? (metric && t.metrics[metric] !== undefined ? 0 : 1) : t.status === 'failed' ? 3 : 2);
  return [...trials].sort((a, b) => {
    const r = rank(a) - rank(b);
    if (r !== 0) return r;
    if (rank(a) === 0 && metric) {
      const d = minimize ? a.metrics[metric] - b.metrics[metric] : b.metrics[metric] - a.metrics[metric];
      if (d !== 0) return d;
    }
    return a.id.localeCompare(b.id);
  });
}

function chooseMetric(trials: TrialRecord[], wanted: string | undefined): string | undefined {
  if (wanted) return wanted;
  const have = new Set(trials.flatMap((t) => Object.keys(t.metrics)));
  return ['eval/gold_score', 'eval/proxy_reward'].find((m) => have.has(m));
}

function metricColumns(trials: TrialRecord[]): string[] {
  const all = [...new Set(trials.flatMap((t) => Object.keys(t.metrics)))];
  const order = ['eval', 'rounds', 'ppo', 'train-reward', 'label', 'sft', 'pretrain'];
  const group = (k: string) => {
    const i = order.indexOf(k.split('/')[0]);
    return i < 0 ? order.length : i;
  };
  return all.sort((a, b) => group(a) - group(b) || a.localeCompare(b));
}

/** summary.csv (every metric), summary.md (the sort metric and the most telling ones), sweep.json (everything). */
function writeSummaries(result: SweepResult, keys: string[]): void {
  const metric = (result.metric = chooseMetric(result.trials, result.metric));
  const sorted = sortTrials(result.trials, metric, result.minimize);
  const metrics = metricColumns(result.trials);
  const csvHead = ['rank', 'trial', 'status', 'exit_code', 'wall_time_s', ...keys, ...metrics, 'error'];
  const csv = [csvHead, ...sorted.map((t, i) => [i + 1, t.id, t.status, t.exit_code, t.wall_time_s, ...keys.map((k) => t.params[k]), ...metrics.map((m) => t.metrics[m]), t.error])];
  const write = (file: string, text: string) => {
    fs.writeFileSync(`${file}.tmp`, text);
    fs.renameSync(`${file}.tmp`, file);
  };
  write(result.summary_csv, csv.map((row) => row.map(csvCell).join(',')).join('\n') + '\n');

  const shown = shownColumns(metrics, metric);
  const done = result.trials.filter((t) => t.status === 'ok' || t.status === 'failed').length;
  const lines = [
    `# Sweep of ${path.basename(result.config)}`,
    '',
    `${result.trials.length} trials: ${result.ok} ok, ${result.failed} failed, ${result.trials.length - done} not finished. ` +
      `Shared upstream stages: ${result.base_run} (trials differ from ${result.first_stage} on). ` +
      (metric ? `Sorted by ${metric} (${result.minimize ? 'lower' : 'higher'} is better).` : 'No metric to sort by yet.'),
    '',
    `| rank | trial | status | ${[...keys, ...shown].map(mdCell).join(' | ')} |`,
    `|---:|---|---|${[...keys, ...shown].map((_, i) => (i < keys.length ? '---' : '---:')).join('|')}|`,
    ...sorted.map((t, i) => `| ${i + 1} | ${t.id} | ${t.status}${t.exit_code ? ` (exit ${t.exit_code})` : ''} | ${[...keys.map((k) => mdCell(t.params[k])), ...shown.map((m) => fmt(t.metrics[m]))].join(' | ')} |`),
  ];
  const overSeeds = seedAggregates(result.trials, keys, shown);
  if (overSeeds.length) {
    lines.push(
      '',
      '## Over seeds',
      '',
      'Per setting of the other keys: mean ± sd over its seeds, the 95% confidence interval of the mean (t), and how many seeds improved (Δ > 0).',
      '',
      `| ${[...overSeeds[0].setting.map(([k]) => k), 'seeds', ...overSeeds[0].columns.map(([m]) => m)].map(mdCell).join(' | ')} |`,
      `|${[...overSeeds[0].setting.map(() => '---'), '---:', ...overSeeds[0].columns.map(() => '---:')].join('|')}|`,
      ...overSeeds.map((g) => `| ${[...g.setting.map(([, v]) => mdCell(v)), String(g.seeds), ...g.columns.map(([m, s]) => aggregateCell(m, s))].join(' | ')} |`),
    );
  }
  lines.push(...methodTable(methodAggregates(result.trials, keys)));
  const failed = sorted.filter((t) => t.status === 'failed');
  if (failed.length) {
    lines.push('', '## Failed trials', '');
    for (const t of failed) lines.push(`- ${t.id} (exit ${t.exit_code}): ${mdCell(t.error)} — log: ${t.log}`);
  }
  write(result.summary_md, lines.join('\n') + '\n');
  write(path.join(result.sweep_dir, 'sweep.json'), JSON.stringify({ ...result, trials: sorted, over_seeds: overSeeds }, null, 2) + '\n');
}

/** What an RLHF sweep is read by: SFT gold, final gold, Δgold, proxy Δ, KL, distinct-2. */
const RLHF_COLUMNS = ['eval/sft_gold_score', 'eval/gold_score', 'eval/delta_gold', 'eval/delta_proxy', 'eval/kl', 'eval/distinct_2'];

/** summary.md's metric columns: the sort metric, then the RLHF comparison when the trials have one, else the last stage's metrics. */
function shownColumns(metrics: string[], sortMetric: string | undefined): string[] {
  const have = new Set(metrics);
  const rlhf = RLHF_COLUMNS.filter((m) => have.has(m));
  const evalCols = metrics.filter((m) => m.startsWith('eval/'));
  const lastStage = metrics.length ? metrics[metrics.length - 1].split('/')[0] : '';
  const rest = rlhf.length ? rlhf : evalCols.length ? evalCols : metrics.filter((m) => m.startsWith(`${lastStage}/`));
  return [...new Set([...(sortMetric ? [sortMetric] : []), ...rest])].slice(0, 8);
}

export interface SeedAggregate {
  /** The grid point: every swept key but seed. */
  setting: [string, string][];
  seeds: number;
  columns: [string, SeedSummary][];
}

/** One row per setting of the non-seed keys, summarising its ok trials over seeds; empty when seed is not swept. */
export function seedAggregates(trials: readonly TrialRecord[], keys: readonly string[], columns: readonly string[]): SeedAggregate[] {
  if (!keys.includes('seed')) return [];
  const others = keys.filter((k) => k !== 'seed');
  const groups = new Map<string, TrialRecord[]>();
  for (const t of trials.filter((x) => x.status === 'ok')) {
    const id = JSON.stringify(others.map((k) => t.params[k]));
    groups.set(id, [...(groups.get(id) ?? []), t]);
  }
  return [...groups.values()]
    .filter((g) => g.length >= 2)
    .map((g) => ({
      setting: others.map((k): [string, string] => [k, g[0].params[k]]),
      seeds: g.length,
      columns: columns.filter((m) => g.every((t) => t.metrics[m] !== undefined)).map((m): [string, SeedSummary] => [m, summarizeSeeds(g.map((t) => t.metrics[m]))]),
    }));
}

/** "0.052 ± 0.031 [0.020, 0.085]", with "5/6 > 0" for differences. */
function aggregateCell(metric: string, s: SeedSummary): string {
  const f = (x: number) => x.toFixed(3);
  const improved = /\/delta_/.test(metric) ? `, ${s.positive}/${s.n} > 0` : '';
  return `${f(s.mean)} ± ${f(s.sd)} [${f(s.ci95[0])}, ${f(s.ci95[1])}]${improved}`;
}

/**
 * Loads every trial's config (base + --set + its swept values) before anything runs or is
 * written: a bad value fails the sweep with one line and leaves an existing sweep directory as it was.
 */
function validateTrials(configFile: string, set: readonly string[], trials: readonly TrialRecord[], sweepDir: string): void {
  for (const t of trials) {
    try {
      loadConfig(configFile, [...set, ...Object.entries(t.params).map(([k, v]) => `${k}=${v}`), `name=${t.id}`, `run_dir=${sweepDir}`]);
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      const values = Object.entries(t.params).map(([k, v]) => `${k}=${v}`).join(' ');
      throw new ConfigError(`sweep ${t.id} (${values}): ${err.message}`);
    }
  }
}

/** Runs one child process; resolves with its exit code, stdout, and the last non-empty stderr line. */
function runChild(args: string[], logFile: string): Promise<{ code: number; stdout: string; lastLine: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const log = fs.createWriteStream(logFile);
    let stdout = '';
    let tail = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      log.write(d);
      tail = (tail + d.toString()).slice(-4000);
    });
    const finish = (code: number, extra = '') => {
      if (extra) tail += `\n${extra}`;
      log.end(`\n--- stdout ---\n${stdout}`);
      const lastLine = tail.split('\n').map((l) => l.trim()).filter(Boolean).pop() ?? '';
      resolve({ code, stdout, lastLine });
    };
    child.on('error', (err) => finish(127, `spawn failed: ${err.message}`));
    child.on('close', (code, signal) => finish(code ?? 128, signal ? `killed by ${signal}` : ''));
  });
}

export async function runSweep(loaded: LoadedConfig, configFile: string, opts: SweepOptions): Promise<SweepResult> {
  const log = opts.log ?? (() => {});
  const { config } = loaded;
  const grid = opts.grid.map(parseGrid);
  const ranges = opts.range.map(parseRange);
  const params = trialParams(grid, ranges, opts.random, opts.seed);
  const keys = [...grid.map((g) => g.key), ...ranges.map((r) => r.key)];
  if (!Number.isInteger(opts.jobs) || opts.jobs < 1) throw new UsageError('--jobs must be a positive integer');

  const stages = pipelineStages(config);
  if (!stages.length) throw new UsageError(`${configFile}: no stage sections to sweep over`);
  let first: number;
  if (opts.stage) {
    const s = parseStage(opts.stage);
    first = s ? stages.indexOf(s) : -1;
    if (first < 0) throw new UsageError(`--stage ${opts.stage}: not a stage of this config (stages: ${stages.join(', ')})`);
    const earliest = Math.min(stages.length - 1, ...keys.map((k) => stageOfKey(k, stages)));
    if (earliest < first) log(`sweep: note: swept keys change ${stages[earliest]}, before --stage ${stages[first]}; trials re-run from ${stages[earliest]} on (the base run's later shared stages go unused)`);
  } else {
    first = Math.min(stages.length - 1, ...keys.map((k) => stageOfKey(k, stages)));
  }
  const baseRun = runRoot(config);
  const sweepDir = path.resolve(opts.out ?? path.join(config.run_dir, `${config.name}-sweep`));
  const width = Math.max(3, String(params.length).length);
  const common = [binPath, ...backendArgs(), 'pipeline', '-c', path.resolve(configFile), ...opts.set.flatMap((s) => ['--set', s])];
  const trials: TrialRecord[] = params.map((p, i) => {
    const id = `trial-${String(i + 1).padStart(width, '0')}`;
    const command = [...common, ...Object.entries(p).flatMap(([k, v]) => ['--set', `${k}=${v}`]), '--set', `name=${id}`, '--set', `run_dir=${sweepDir}`, '--reuse', baseRun];
    return { id, params: p, run: path.join(sweepDir, id), command, status: 'pending', metrics: {} };
  });
  validateTrials(configFile, opts.set, trials, sweepDir);
  const baseCommand = first > 0 ? [...common, '--until', stages[first - 1]] : undefined;
  const result: SweepResult = {
    config: path.resolve(configFile),
    sweep_dir: sweepDir,
    base_run: baseRun,
    first_stage: stages[first],
    metric: opts.metric,
    minimize: Boolean(opts.minimize),
    trials,
    ok: 0,
    failed: 0,
    summary_csv: path.join(sweepDir, 'summary.csv'),
    summary_md: path.join(sweepDir, 'summary.md'),
  };
  const quoted = (args: string[]) => ['node', ...args].map(shellQuote).join(' ');

  if (opts.printCommands) {
    if (baseCommand) log(`# run the shared upstream stages once first:\n${quoted(baseCommand)}`);
    return result;
  }

  fs.mkdirSync(path.join(sweepDir, 'logs'), { recursive: true });
  writeSummaries(result, keys);
  if (baseCommand) {
    log(`sweep: shared stages ${stages.slice(0, first).join(' → ')} in ${baseRun}: ${quoted(baseCommand)}`);
    const base = await runChild(baseCommand, path.join(sweepDir, 'logs', 'base.log'));
    if (base.code !== 0) throw new WorkflowError(`the shared upstream stages failed (exit ${base.code}, log ${path.join(sweepDir, 'logs', 'base.log')}): ${base.lastLine}`);
  }
  log(`sweep: ${trials.length} trials from ${stages[first]} on, ${opts.jobs} at a time → ${sweepDir}`);
  let next = 0;
  let finished = 0;
  const worker = async (): Promise<void> => {
    while (next < trials.length) {
      const t = trials[next++];
      t.status = 'running';
      t.log = path.join(sweepDir, 'logs', `${t.id}.log`);
      const t0 = performance.now();
      const child = await runChild([...t.command, '--json'], t.log);
      t.wall_time_s = Number(((performance.now() - t0) / 1000).toFixed(1));
      t.exit_code = child.code;
      let pipeline: PipelineResult | undefined;
      try {
        pipeline = JSON.parse(child.stdout.trim().split('\n').pop() ?? '') as PipelineResult;
      } catch {
        pipeline = undefined;
      }
      for (const s of pipeline?.stages ?? []) for (const [k, v] of Object.entries(s.metrics ?? {})) t.metrics[`${s.stage}/${k}`] = v;
      if (child.code === 0 && pipeline?.ok) {
        t.status = 'ok';
        result.ok++;
      } else {
        t.status = 'failed';
        t.error = child.lastLine || pipeline?.error || `exit ${child.code}`;
        result.failed++;
      }
      finished++;
      writeSummaries(result, keys);
      const m = result.metric && t.metrics[result.metric] !== undefined ? `, ${result.metric} ${fmt(t.metrics[result.metric])}` : '';
      log(`[${finished}/${trials.length}] ${t.id} ${Object.entries(t.params).map(([k, v]) => `${k}=${v}`).join(' ')}: ${t.status === 'ok' ? 'ok' : `FAILED (exit ${t.exit_code}): ${t.error}`} (${t.wall_time_s} s${m})`);
    }
  };
  await Promise.all(Array.from({ length: Math.min(opts.jobs, trials.length) }, worker));
  await writeFrontierChart(result, keys);
  result.trials = sortTrials(trials, result.metric, result.minimize);
  return result;
}

/** frontier.svg: each method's gold vs KL over seeds (when seed is swept and the runs compare methods). */
async function writeFrontierChart(result: SweepResult, keys: string[]): Promise<void> {
  const spec = frontierSpec(methodAggregates(result.trials, keys));
  if (!spec) return;
  const { renderSvg } = await import('../report/charts.js');
  const file = path.join(result.sweep_dir, FRONTIER_FILE);
  fs.writeFileSync(`${file}.tmp`, await renderSvg(spec as Parameters<typeof renderSvg>[0]));
  fs.renameSync(`${file}.tmp`, file);
}

/** One shell command per trial (for Slurm arrays, GNU parallel, ...). */
export function trialCommands(result: SweepResult): string[] {
  return result.trials.map((t) => ['node', ...t.command].map(shellQuote).join(' '));
}
