import { expect, vi } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { main } from '../src/cli/main.js';
import { saveCheckpoint } from '../src/checkpoint/checkpoint.js';
import { disposeParams, initParams } from '../src/model/gpt.js';
import { trainTokenizer } from '../src/tokenizer/index.js';
import { Rng } from '../src/util/rng.js';

export const repoRoot = path.resolve(import.meta.dirname, '..');

/** Writes an experiment YAML into a fresh temp folder (runs go under it) and returns its path. */
export function writeConfig(config: Record<string, unknown>, name = 'exp.yaml'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rlhf-test-'));
  const file = path.join(dir, name);
  fs.writeFileSync(file, stringify({ run_dir: path.join(dir, 'runs'), ...config }));
  return file;
}

const WALL_CLOCK = new Set(['tokens_per_s', 'elapsed_s']);

/** Metric rows without the wall-clock fields, which differ between otherwise identical runs. */
export function withoutWallClock(rows: Record<string, number>[]): Record<string, number>[] {
  return rows.map((r) => Object.fromEntries(Object.entries(r).filter(([k]) => !WALL_CLOCK.has(k))));
}

export function readJsonl(file: string): Record<string, number>[] {
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, number>);
}

/** A tiny char-level model pretraining on the shipped quickstart corpus. */
export function tinyPretrainConfig(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    name: 'tiny',
    seed: 11,
    tokenizer: { type: 'char' },
    model: { n_layer: 2, n_head: 2, d_model: 64, context_length: 32, dropout: 0 },
    pretrain: {
      data: { path: path.join(repoRoot, 'data', 'quickstart.txt') },
      batch_size: 16,
      max_steps: 300,
      lr: 3e-3,
      min_lr: 3e-4,
      warmup_steps: 20,
      log_interval: 10,
      eval_interval: 100,
      eval_batches: 4,
      checkpoint_interval: 100,
      ...overrides,
    },
  };
}

/** Every stage of a tiny randomwalks experiment (pretrain → eval), each a few seconds. */
export function tinyRlhfConfig(name: string): Record<string, unknown> {
  return {
    name,
    seed: 5,
    tokenizer: { type: 'char' },
    model: { n_layer: 1, n_head: 2, d_model: 32, context_length: 32, dropout: 0 },
    // trained far enough that some walks are valid: the labels must hold a preference (ties teach nothing)
    pretrain: { data: { task: 'randomwalks' }, batch_size: 8, max_steps: 400, lr: 3e-3, log_interval: 100, eval_interval: 200, eval_batches: 2, checkpoint_interval: 200 },
    sft: { data: { task: 'randomwalks' }, batch_size: 8, max_steps: 80, lr: 1e-3, log_interval: 20, eval_interval: 40, checkpoint_interval: 40 },
    label: { prompts: { task: 'randomwalks' }, num_prompts: 32, k: 3, labeler: 'gold:randomwalks', max_new_tokens: 20 },
    train_reward: { batch_size: 8, max_steps: 20, lr: 3e-4, log_interval: 5, eval_interval: 10, checkpoint_interval: 10, norm_samples: 16 },
    ppo: { prompts: { task: 'randomwalks' }, iterations: 3, rollout_batch_size: 16, mini_batch_size: 8, ppo_epochs: 1, response_length: 20, kl_coef: 0.1, lr: 2e-4, checkpoint_interval: 2 },
    eval: { prompts: { task: 'randomwalks' }, num_prompts: 8, samples_per_prompt: 2, max_new_tokens: 20 },
  };
}

/** Runs `fn`, asserts it throws an instance of `kind` with a one-line message, and returns the message. */
export function oneLineError(kind: abstract new (...args: never[]) => Error, fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(kind);
    expect((e as Error).message.split('\n')).toHaveLength(1);
    return (e as Error).message;
  }
  throw new Error(`expected a ${kind.name}`);
}

/** Runs the CLI in-process; returns exit code and what it wrote to stderr. */
export async function rlhf(...args: string[]): Promise<{ code: number; stderr: string }> {
  let stderr = '';
  const spy = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stderr += String(chunk);
    return true;
  });
  try {
    const code = await main(['node', 'rlhf', ...args]);
    return { code, stderr };
  } finally {
    spy.mockRestore();
  }
}

export function expectOneLineError(r: { code: number; stderr: string }, pattern: RegExp): void {
  expect(r.code).not.toBe(0);
  const lines = r.stderr.trim().split('\n');
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^rlhf: /);
  expect(lines[0]).toMatch(pattern);
}

export function runsDir(configFile: string): string {
  return path.join(path.dirname(configFile), 'runs');
}

/** A randomly initialised char-level language-model checkpoint (no training), for sampling tests; returns its directory. */
export async function randomLmCheckpoint(shape: { n_layer: number; d_model: number; context_length: number }, seed: number): Promise<string> {
  const tokenizer = trainTokenizer({ type: 'char' }, 'the quick brown fox jumps over the lazy dog.\n');
  const cfg = { vocab_size: tokenizer.vocabSize, n_head: 2, dropout: 0, ...shape };
  const params = initParams(cfg, 'lm', new Rng(seed));
  const dir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'rlhf-ckpt-')), 'ckpt');
  await saveCheckpoint(dir, { params, head: 'lm', model: cfg, tokenizer });
  disposeParams(params);
  return dir;
}
