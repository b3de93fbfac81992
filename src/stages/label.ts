import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { z } from 'zod';
import { CheckpointError, checkpointHash, loadCheckpoint, readCheckpointMeta } from '../checkpoint/checkpoint.js';
import { ConfigError, type LoadedConfig } from '../config/load.js';
import type { LabelConfig } from '../config/schema.js';
import { DataError } from '../data/corpus.js';
import { appendJsonl, readJsonl } from '../data/jsonl.js';
import { loadSourcedPrompts, type SourcedPrompt } from '../data/prompts.js';
import { COMPARISONS_FILE, SKIPPED_FILE, comparisonSchema, type Comparison } from '../label/comparisons.js';
import { goldLabeler, goldLabelerName, humanLabeler, type Labeler } from '../label/labelers.js';
import type { GptConfig } from '../model/config.js';
import { disposeParams, type Params } from '../model/gpt.js';
import { checkMemory } from '../model/memory.js';
import { createProgress, progressEnabled } from '../run/progress.js';
import { readManifest, StageRun, StageStateError, stageDir } from '../run/stage.js';
import { generate, type SamplingOptions } from '../sample/generate.js';
import { encodePrompt, stopTokenIds } from '../sample/tokens.js';
import { getTask, type Task } from '../tasks/index.js';
import type { Tokenizer } from '../tokenizer/index.js';
import { InterruptedError } from '../train/loop.js';
import { Rng } from '../util/rng.js';
import { parentCheckpoint } from './sft.js';

/**
 * `rlhf label`: collect ranked comparisons as InstructGPT did.
 *
 * For prompt slot i = 0 … num_prompts−1 (prompt i is `prompts[i mod P]`: a
 * list shorter than num_prompts is cycled, and every pass samples fresh
 * responses), K responses are sampled from the policy and the labeler ranks
 * them. Each decision is written to disk the moment it is made:
 *
 *   runs/<name>/label/comparisons.jsonl  {prompt, responses, ranking, labeler, prompt_index}
 *   runs/<name>/label/skipped.jsonl      {prompt_index, prompt, reason: "skipped" | "no_responses"}
 *   runs/<name>/label/settings.json      what the responses depend on (checked on resume)
 *
 * The recorded prompt indices always form a prefix 0 … m−1, split between the
 * two files, so the next prompt to ask is m. Undo removes the last decision's
 * line (temp file + fsync + rename), so an undone answer is gone from disk too.
 *
 * Resume: running the stage again on an unfinished label directory continues
 * at prompt m — with or without --resume (a person's answers are never thrown
 * away implicitly; --force starts over). Responses are a pure function of the
 * policy weights, the prompts, seed, batch_size, num_prompts, K and the sampling
 * settings: prompts are sampled in aligned batches [b·B, min((b+1)·B, N)) with
 * an RNG seeded from (seed, batch bounds), so a resumed run — or a person
 * undoing back into an earlier batch — sees exactly the responses an
 * uninterrupted run would, and the gold labeler's noise is drawn from an RNG
 * seeded by (seed, prompt index). Changing any of those settings (except
 * num_prompts) on resume is refused.
 */

export interface LabelOptions {
  force?: boolean;
  resume?: boolean;
  /** Human labeler input/output (default: process.stdin / process.stdout). */
  input?: Readable;
  output?: Writable;
  /** Replace the configured labeler (tests). */
  labeler?: Labeler;
}

export interface LabelResult {
  dir: string;
  comparisonsPath: string;
  /** 'stopped': the labeler quit; running the stage again continues. */
  status: 'completed' | 'stopped';
  /** Prompts decided (labeled + skipped) so far. */
  decided: number;
  total: number;
  metrics: Record<string, number>;
}

interface SkipRecord {
  prompt_index: number;
  prompt: string;
  /** "skipped": by the labeler; "no_responses": the policy gave an empty response even after retries. */
  reason: 'skipped' | 'no_responses';
}

const skipSchema = z.object({
  prompt_index: z.number().int().nonnegative(),
  prompt: z.string(),
  reason: z.enum(['skipped', 'no_responses']),
});

type Entry = { kind: 'answer'; comparison: Comparison } | { kind: 'skip'; skip: SkipRecord };

/** What the sampled responses and labels depend on; a resumed run must match it. */
interface LabelSettings {
  policy: string;
  policy_sha256: string;
  prompts_sha256: string;
  k: number;
  seed: number;
  batch_size: number;
  labeler: string;
  max_new_tokens: number;
  temperature: number;
  top_k: number;
  top_p: number;
}

const SETTINGS_FILE = 'settings.json';
/** Extra sampling rounds for responses that came out empty before a prompt is given up ("no_responses"). */
const EMPTY_RETRIES = 4;

function taskOrConfigError(name: string, key: string, file: string): Task {
  try {
    return getTask(name);
  } catch (e) {
    throw new ConfigError(`${file}: ${key}: ${(e as Error).message}`);
  }
}

/** The response text up to and including the first stop sequence (SFT demonstrations end with it: "81\n", " fresh."). */
export function cutAfterStop(text: string, stops: readonly string[]): string {
  let end = text.length;
  for (const s of stops) {
    const i = s ? text.indexOf(s) : -1;
    if (i >= 0 && i + s.length < end) end = i + s.length;
  }
  return text.slice(0, end);
}

function sha256(text: string): string {
  return crypto.createHash('sha256').update(text).digest('hex');
}

/** Rewrites `file` without its last line, durably (temp file, fsync, rename, fsync of the folder). */
function dropLastLine(file: string, expectIndex: number): void {
  const lines = fs.readFileSync(file, 'utf8').split('\n').filter((l) => l.trim() !== '');
  const last = lines.pop();
  if (last === undefined || (JSON.parse(last) as { prompt_index?: number }).prompt_index !== expectIndex) {
    throw new Error(`${file}: last line is not the record of prompt ${expectIndex + 1}; not undoing`);
  }
  const tmp = `${file}.tmp-${process.pid}`;
  const fd = fs.openSync(tmp, 'w');
  try {
    fs.writeSync(fd, lines.map((l) => l + '\n').join(''));
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
  const dirFd = fs.openSync(path.dirname(file), 'r');
  try {
    fs.fsyncSync(dirFd);
  } finally {
    fs.closeSync(dirFd);
  }
}

function readRecords<T>(file: string, schema: z.ZodType<T> | ((json: unknown) => z.ZodType<T>)): { value: T; line: number }[] {
  if (!fs.existsSync(file) || fs.readFileSync(file, 'utf8').trim() === '') return [];
  return readJsonl(file, schema);
}

/**
 * Reads what an unfinished run recorded, checking it against the prompts and
 * settings: every prompt index 0 … m−1 exactly once, prompts and K matching.
 */
function readRecorded(dir: string, prompts: readonly SourcedPrompt[], k: number): Entry[] {
  const entries: (Entry | undefined)[] = [];
  const put = (index: number, entry: Entry, where: string, prompt: string): void => {
    if (entries[index]) throw new DataError(`${where}: prompt ${index + 1} is recorded twice (in ${COMPARISONS_FILE} or ${SKIPPED_FILE}); remove one line`);
    if (prompt !== prompts[index % prompts.length].text) {
      throw new DataError(`${where}: prompt differs from prompt ${index + 1} of label.prompts (did the prompts change? --force starts over)`);
    }
    entries[index] = entry;
  };
  const comparisonsFile = path.join(dir, COMPARISONS_FILE);
  for (const { value, line } of readRecords(comparisonsFile, comparisonSchema)) {
    const where = `${comparisonsFile}:${line}`;
    if (value.prompt_index === undefined) throw new DataError(`${where}: prompt_index: missing field`);
    if (value.responses.length !== k) throw new DataError(`${where}: ${value.responses.length} responses but label.k is ${k}`);
    put(value.prompt_index, { kind: 'answer', comparison: value }, where, value.prompt);
  }
  const skippedFile = path.join(dir, SKIPPED_FILE);
  for (const { value, line } of readRecords(skippedFile, skipSchema)) {
    put(value.prompt_index, { kind: 'skip', skip: value }, `${skippedFile}:${line}`, value.prompt);
  }
  const missing = entries.findIndex((e) => e === undefined);
  if (missing >= 0) {
    throw new DataError(`${dir}: prompt ${missing + 1} has no record but later prompts do (${COMPARISONS_FILE} or ${SKIPPED_FILE} was edited?)`);
  }
  return entries as Entry[];
}

function checkSettings(dir: string, now: LabelSettings, recorded: number): void {
  const file = path.join(dir, SETTINGS_FILE);
  let before: Partial<LabelSettings>;
  try {
    before = JSON.parse(fs.readFileSync(file, 'utf8')) as Partial<LabelSettings>;
  } catch {
    if (recorded === 0) return;
    throw new DataError(`${file}: missing or unreadable, so the recorded answers cannot be matched to these settings; --force starts over`);
  }
  for (const key of Object.keys(now) as (keyof LabelSettings)[]) {
    if (key === 'policy') continue;
    if (JSON.stringify(before[key]) !== JSON.stringify(now[key])) {
      const what =
        key === 'policy_sha256'
          ? `the policy checkpoint ${now.policy} has different weights`
          : key === 'prompts_sha256'
            ? 'label.prompts holds different prompts'
            : `label.${key === 'labeler' ? 'labeler/noise' : key} changed (${JSON.stringify(before[key])} → ${JSON.stringify(now[key])})`;
      throw new ConfigError(`${dir}: ${what} since this label run began (${recorded} prompts recorded); restore it, or pass --force to start over`);
    }
  }
}

interface Policy {
  params: Params;
  model: GptConfig;
  tokenizer: Tokenizer;
}

/** Samples K responses for each prompt slot of [start, end); null for a slot whose responses stayed empty. */
function sampleBatch(
  policy: Policy,
  promptIds: readonly number[][],
  start: number,
  end: number,
  cfg: LabelConfig,
  stops: readonly string[],
): (string[] | null)[] {
  const { tokenizer } = policy;
  const rows: number[] = [];
  for (let i = start; i < end; i++) for (let s = 0; s < cfg.k; s++) rows.push(i);
  // Single-token stop sequences end generation early; longer ones are cut from the text.
  const stopIds = stopTokenIds(tokenizer, stops);
  const opts: SamplingOptions = {
    maxNewTokens: cfg.max_new_tokens,
    temperature: cfg.temperature,
    topK: cfg.top_k,
    topP: cfg.top_p,
    stopIds,
  };
  const decode = (ids: number[]): string => {
    const body = ids.length && ids[ids.length - 1] === tokenizer.eosId ? ids.slice(0, -1) : ids;
    return cutAfterStop(tokenizer.decode(body), stops);
  };
  const texts = new Array<string>(rows.length).fill('');
  let todo = rows.map((_, j) => j);
  for (let attempt = 0; attempt <= EMPTY_RETRIES && todo.length > 0; attempt++) {
    const rng = new Rng(`label/${cfg.seed}/${start}-${end}${attempt ? `/retry-${attempt}` : ''}`);
    const out = generate(policy.params, policy.model, todo.map((j) => promptIds[rows[j]]), tokenizer, opts, rng);
    todo.forEach((j, r) => (texts[j] = decode(out.responses[r])));
    todo = todo.filter((j) => texts[j] === '');
  }
  const result: (string[] | null)[] = [];
  for (let i = start; i < end; i++) {
    const own = texts.slice((i - start) * cfg.k, (i - start + 1) * cfg.k);
    result.push(own.every((t) => t !== '') ? own : null);
  }
  return result;
}

/** Agreement of recorded rankings with the gold order, and gold scores, over some entries. */
function goldStats(entries: readonly Entry[], task: Task): Record<string, number> {
  let agree = 0;
  let pairs = 0;
  let consistent = 0;
  let ranked = 0;
  let chosen = 0;
  let all = 0;
  let responses = 0;
  let answers = 0;
  for (const e of entries) {
    if (e.kind !== 'answer') continue;
    const c = e.comparison;
    const scores = c.responses.map((r) => task.goldScore(c.prompt, r));
    answers++;
    chosen += scores[c.ranking[0]];
    for (const s of scores) all += s;
    responses += scores.length;
    let promptPairs = 0;
    let promptAgree = 0;
    for (let a = 0; a < c.ranking.length; a++) {
      for (let b = a + 1; b < c.ranking.length; b++) {
        const better = scores[c.ranking[a]];
        const worse = scores[c.ranking[b]];
        if (better === worse) continue; // gold has no preference
        promptPairs++;
        if (better > worse) promptAgree++;
      }
    }
    pairs += promptPairs;
    agree += promptAgree;
    if (promptPairs > 0) {
      ranked++;
      if (promptAgree === promptPairs) consistent++;
    }
  }
  if (answers === 0) return {};
  const out: Record<string, number> = { gold_score_mean: all / responses, gold_score_chosen: chosen / answers };
  if (pairs > 0) out.pair_agreement = agree / pairs;
  if (ranked > 0) out.ranking_agreement = consistent / ranked;
  return out;
}

function round(values: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(values).map(([k, v]) => [k, Number.isInteger(v) ? v : Number(v.toFixed(6))]));
}

export async function runLabel(loaded: LoadedConfig, opts: LabelOptions = {}): Promise<LabelResult> {
  const { config, file } = loaded;
  const cfg = config.label;
  if (!cfg) throw new ConfigError(`${file}: label: section missing`);
  const dir = stageDir(config, 'label');
  if (opts.force && opts.resume) throw new StageStateError(`${dir}: --force (start over) and --resume (continue) contradict each other`);

  // --- Validate everything before the stage directory is touched.
  const goldName = /^gold:(.+)$/.exec(cfg.labeler)?.[1];
  const promptTask = 'task' in cfg.prompts ? cfg.prompts.task : undefined;
  const task = goldName ? taskOrConfigError(goldName, 'label.labeler', file) : promptTask ? getTask(promptTask) : undefined;
  if (goldName && promptTask && goldName !== promptTask) {
    throw new ConfigError(`${file}: label.labeler: gold:${goldName} scores a different task than label.prompts.task (${promptTask})`);
  }
  const stops = task?.stopSequences ?? [];

  const policyDir = parentCheckpoint(loaded, cfg.policy, 'sft');
  if (!cfg.policy && !fs.existsSync(path.join(policyDir, 'model.json'))) {
    throw new CheckpointError(`${policyDir}: no SFT checkpoint to sample from (run "rlhf sft" first, or set label.policy)`);
  }
  const meta = readCheckpointMeta(policyDir);
  if (meta.head !== 'lm') throw new CheckpointError(`${policyDir}: holds a "${meta.head}" model; label.policy must be a language model`);
  // a batch of prompts, K responses each, is generated at once
  checkMemory(file, 'label', { models: [{ model: meta.model, head: 'lm' }], generate: { model: meta.model, rows: cfg.batch_size * cfg.k } });

  const prompts = loadSourcedPrompts(cfg.prompts);
  const total = cfg.num_prompts;
  const labelerName = goldName ? goldLabelerName(goldName, cfg.noise) : cfg.labeler;
  const settings: LabelSettings = {
    policy: policyDir,
    policy_sha256: checkpointHash(policyDir),
    prompts_sha256: sha256(JSON.stringify(prompts.map((p) => p.text))),
    k: cfg.k,
    seed: cfg.seed,
    batch_size: cfg.batch_size,
    labeler: labelerName,
    max_new_tokens: cfg.max_new_tokens,
    temperature: cfg.temperature,
    top_k: cfg.top_k,
    top_p: cfg.top_p,
  };

  const previous = readManifest(dir);
  const resume = !opts.force && (opts.resume === true || (previous !== undefined && previous.status !== 'completed'));
  let entries: Entry[] = [];
  if (resume && previous) {
    entries = readRecorded(dir, prompts, cfg.k);
    checkSettings(dir, settings, entries.length);
  }

  const ckpt = loadCheckpoint(policyDir, { expectHead: 'lm' });
  const policy: Policy = { params: ckpt.params, model: ckpt.meta.model, tokenizer: ckpt.tokenizer };
  const { labeler, run, promptIds } = ((): { labeler: Labeler; run: StageRun; promptIds: number[][] } => {
    let made: Labeler | undefined;
    try {
      const context = policy.model.context_length;
      const encoded = prompts.map((p, i) => {
        const ids = encodePrompt(policy.tokenizer, p.text);
        if (ids.length >= context && i < total) {
          throw new DataError(`${p.source}: prompt is ${ids.length} tokens; the policy's context_length ${context} leaves no room for a response`);
        }
        return ids;
      });
      made =
        opts.labeler ??
        (goldName
          ? goldLabeler(task!, cfg.noise, (index) => new Rng(`label/${cfg.seed}/noise/${index}`))
          : humanLabeler(opts.input ?? process.stdin, opts.output ?? process.stdout));
      const opened = StageRun.open(config, 'label', { force: opts.force, resume, parents: [policyDir], echoLogs: !made.interactive && !progressEnabled() });
      return { labeler: made, run: opened, promptIds: Array.from({ length: total }, (_, i) => encoded[i % prompts.length]) };
    } catch (err) {
      made?.close?.();
      disposeParams(policy.params);
      throw err;
    }
  })();

  const comparisonsPath = path.join(run.dir, COMPARISONS_FILE);
  const skippedPath = path.join(run.dir, SKIPPED_FILE);
  const stop = { signal: false };
  const onSignal = (): void => {
    stop.signal = true;
    labeler.close?.();
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const progress = labeler.interactive ? undefined : createProgress('label', total, Math.min(entries.length, total));
  try {
    fs.writeFileSync(path.join(run.dir, SETTINGS_FILE), JSON.stringify(settings, null, 2) + '\n');
    fs.appendFileSync(comparisonsPath, '');
    const counts = (): { labeled: number; skipped: number } => ({
      labeled: entries.filter((e) => e.kind === 'answer').length,
      skipped: entries.filter((e) => e.kind === 'skip').length,
    });
    run.logger.info(
      { policy: policyDir, prompts: prompts.length, num_prompts: total, k: cfg.k, labeler: labelerName, resumed_at: resume ? entries.length : undefined },
      resume ? 'resumed' : 'start',
    );
    if (total > prompts.length) run.logger.info({ prompts: prompts.length, num_prompts: total }, 'fewer prompts than num_prompts: cycling through them');
    if (labeler.interactive) {
      const c = counts();
      labeler.note?.(
        `Labeling ${total} prompts, ${cfg.k} responses each; every answer is saved to ${comparisonsPath} as you give it.` +
          (entries.length > 0 && entries.length < total ? ` Continuing at prompt ${Math.min(entries.length, total) + 1} (${c.labeled} labeled, ${c.skipped} skipped).` : '') +
          ' Type ? for help.',
      );
    }

    const B = cfg.batch_size;
    let batch: { start: number; end: number; responses: (string[] | null)[]; startedMs: number } | undefined;
    const wallStart = performance.now();
    let i = entries.length;
    let quit = false;
    while (i < total) {
      // Let signal handlers run between prompts (the gold path never waits on I/O otherwise).
      await new Promise((resolve) => setImmediate(resolve));
      if (stop.signal) throw new InterruptedError(`interrupted at prompt ${i + 1} of ${total}; run the same command again to continue`);
      const start = Math.floor(i / B) * B;
      const end = Math.min(start + B, total);
      if (batch?.start !== start || batch.end !== end) {
        if (labeler.interactive) labeler.note?.(`(sampling responses for prompts ${start + 1}–${end} …)`);
        batch = { start, end, responses: sampleBatch(policy, promptIds, start, end, cfg, stops), startedMs: performance.now() };
      }
      const prompt = prompts[i % prompts.length].text;
      const responses = batch.responses[i - start];
      if (responses === null) {
        const skip: SkipRecord = { prompt_index: i, prompt, reason: 'no_responses' };
        appendJsonl(skippedPath, skip);
        entries.push({ kind: 'skip', skip });
        run.logger.warn({ prompt_index: i }, 'empty responses after retries: prompt skipped');
      } else {
        const decision = await labeler.rank(prompt, responses, { index: i, total, ...counts() });
        if (stop.signal) continue; // the loop head reports the interruption
        if (decision === 'quit') {
          quit = true;
          break;
        }
        if (decision === 'undo') {
          // Step back over automatic skips to the last decision the labeler made.
          let j = i - 1;
          while (j >= 0 && entries[j].kind === 'skip' && (entries[j] as { skip: SkipRecord }).skip.reason === 'no_responses') j--;
          if (j < 0) {
            labeler.note?.('  nothing to undo');
            continue;
          }
          for (let x = i - 1; x >= j; x--) dropLastLine(entries[x].kind === 'answer' ? comparisonsPath : skippedPath, x);
          const undone = entries[j];
          entries.length = j;
          i = j;
          run.logger.info({ prompt_index: j, undone: undone.kind }, 'undo');
          labeler.note?.(`  undone: the ${undone.kind === 'answer' ? 'ranking' : 'skip'} of prompt ${j + 1}`);
          continue;
        }
        if (decision === 'skip') {
          const skip: SkipRecord = { prompt_index: i, prompt, reason: 'skipped' };
          appendJsonl(skippedPath, skip);
          entries.push({ kind: 'skip', skip });
        } else {
          const ties = labeler.ties?.(prompt, responses) ?? [];
          const comparison: Comparison = { prompt, responses, ranking: decision, labeler: labeler.name, prompt_index: i, ...(ties.length ? { ties } : {}) };
          appendJsonl(comparisonsPath, comparison);
          entries.push({ kind: 'answer', comparison });
        }
      }
      i++;
      progress?.update(i, {});
      if (i === end) {
        // Per batch: the policy's gold score and the labels' agreement with gold (when a task is known).
        const c = counts();
        const values: Record<string, number> = { ...(task ? goldStats(entries.slice(start, end), task) : {}), labeled: c.labeled, skipped: c.skipped };
        if (!labeler.interactive) values.responses_per_s = ((end - start) * cfg.k) / ((performance.now() - batch.startedMs) / 1000);
        values.elapsed_s = (performance.now() - wallStart) / 1000;
        run.metrics(end, round(values));
      }
    }

    const c = counts();
    const summary = round({
      prompts: total,
      decided: entries.length,
      labeled: c.labeled,
      skipped: c.skipped,
      k: cfg.k,
      pairs: c.labeled * ((cfg.k * (cfg.k - 1)) / 2),
      ...(task ? goldStats(entries, task) : {}),
    });
    if (quit || entries.length < total) {
      run.logger.info(summary, 'stopped');
      run.fail('interrupted', `stopped by the labeler at prompt ${i + 1} of ${total}; run the same command again to continue`);
      return { dir: run.dir, comparisonsPath, status: 'stopped', decided: entries.length, total, metrics: summary };
    }
    run.logger.info(summary, 'completed');
    run.complete({ ...summary, labeler: labelerName, comparisons: comparisonsPath });
    return { dir: run.dir, comparisonsPath, status: 'completed', decided: entries.length, total, metrics: summary };
  } catch (err) {
    run.fail(err instanceof InterruptedError ? 'interrupted' : 'failed', (err as Error).message);
    throw err;
  } finally {
    progress?.stop();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    labeler.close?.();
    disposeParams(policy.params);
  }
}
