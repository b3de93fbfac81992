import { describe, it, expect } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig, ConfigError } from '../src/config/load.js';
import { oneLineError } from './helpers.js';

const valid = `name: t
tokenizer: { type: char }
model:
  n_layer: 2
  n_head: 2
  d_model: 32
  context_length: 16
pretrain:
  data: { path: ../data/q.txt }
  batch_size: 4
  max_steps: 10
  lr: 0.001
`;

function write(text: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rlhf-cfg-'));
  fs.mkdirSync(path.join(dir, 'configs'));
  const file = path.join(dir, 'configs', 'exp.yaml');
  fs.writeFileSync(file, text);
  return file;
}

const errorOf = (fn: () => unknown): string => oneLineError(ConfigError, fn);

describe('config loading', () => {
  it('fills defaults and resolves paths against the config file', () => {
    const file = write(valid);
    const { config } = loadConfig(file);
    expect(config.seed).toBe(1337);
    expect(config.model.dropout).toBe(0);
    expect(config.pretrain!.grad_accum_steps).toBe(1);
    const root = path.dirname(path.dirname(file));
    expect((config.pretrain!.data as { path: string }).path).toBe(path.join(root, 'data', 'q.txt'));
    expect(config.run_dir).toBe(path.join(root, 'configs', 'runs'));
  });

  it('applies --set overrides with YAML typing', () => {
    const { config } = loadConfig(write(valid), ['pretrain.lr=3e-4', 'model.dropout=0.1', 'seed=7', 'tokenizer={type: bpe, vocab_size: 300}']);
    expect(config.pretrain!.lr).toBe(3e-4);
    expect(config.model.dropout).toBe(0.1);
    expect(config.seed).toBe(7);
    expect(config.tokenizer).toEqual({ type: 'bpe', vocab_size: 300 });
  });

  it('names file:line for malformed YAML', () => {
    const msg = errorOf(() => loadConfig(write(valid + 'sample: [unclosed\n')));
    expect(msg).toMatch(/exp\.yaml:14:\d+: invalid YAML/);
  });

  it('names the key path, line and a close match for an unknown key', () => {
    const msg = errorOf(() => loadConfig(write(valid.replace('max_steps', 'max_stpes'))));
    expect(msg).toMatch(/exp\.yaml:11: pretrain\.max_stpes: unknown key \(did you mean "max_steps"\?\)/);
  });

  it('names the key path for a wrong type, also from --set', () => {
    expect(errorOf(() => loadConfig(write(valid.replace('lr: 0.001', 'lr: fast'))))).toMatch(/exp\.yaml:12: pretrain\.lr: Expected number, received string/);
    expect(errorOf(() => loadConfig(write(valid), ['model.n_layer=two']))).toMatch(/model\.n_layer: Expected number/);
  });

  it('reports a missing required key and a bad override', () => {
    expect(errorOf(() => loadConfig(write(valid.replace('  batch_size: 4\n', ''))))).toMatch(/pretrain\.batch_size: required key is missing/);
    expect(errorOf(() => loadConfig(write(valid), ['pretrain.lr']))).toMatch(/--set pretrain\.lr: expected key\.path=value/);
    expect(errorOf(() => loadConfig('/nonexistent/x.yaml'))).toMatch(/x\.yaml: cannot read config file/);
  });

  it('takes threads as "auto" (the default) or a positive integer', () => {
    expect(loadConfig(write(valid)).config.threads).toBe('auto');
    expect(loadConfig(write(valid), ['threads=2']).config.threads).toBe(2);
    expect(errorOf(() => loadConfig(write(valid), ['threads=0']))).toMatch(/^.*exp\.yaml: threads: /);
    expect(errorOf(() => loadConfig(write(valid), ['threads=many']))).toMatch(/^.*exp\.yaml: threads: /);
  });

  it('checks model divisibility', () => {
    expect(errorOf(() => loadConfig(write(valid), ['model.n_head=3']))).toMatch(/model\.d_model: d_model must be divisible by n_head/);
  });
});
