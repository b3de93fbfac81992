import { describe, it, expect, beforeAll, vi } from 'vitest';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConfigError, loadConfig } from '../src/config/load.js';
import { countParams } from '../src/model/config.js';
import { checkMemory, estimateMemory } from '../src/model/memory.js';
import { sampleToken } from '../src/sample/generate.js';
import { ppoMemoryPlan } from '../src/stages/ppo.js';
import { sampleCheckpoint } from '../src/stages/sample.js';
import { describeFsError, makeDirs, withPath } from '../src/util/fs.js';
import { Rng } from '../src/util/rng.js';
import { acquireStageLock, lockHolder, lockPath, procState } from '../src/workflow/lock.js';
import { expectOneLineError, oneLineError, randomLmCheckpoint, repoRoot, rlhf, runsDir, tinyPretrainConfig, writeConfig } from './helpers.js';

const MiB = 2 ** 20;

describe('memory estimate', () => {
  // V = 10, L = 1, H = 1, d = 4, context 8.
  // Parameters: per block 12d² + 13d = 244; V·d + T·d + 244 + 2d (ln_f) = 40 + 32 + 244 + 8 = 324 → 1296 bytes.
  const model = { vocab_size: 10, n_layer: 1, n_head: 1, d_model: 4, context_length: 8, dropout: 0 };

  it('training: parameters, gradients + AdamW moments, forward + backward activations', () => {
    expect(countParams(model)).toBe(324);
    const e = estimateMemory({ models: [{ model, head: 'lm', trained: true }], train: { rows: 2, tokens: 8 } });
    // 16 tokens; per layer (20 + 36)·d + 4·H·T = 224 + 32 = 256 floats a token → 4096;
    // head 3·V = 30 and embeddings 3·d = 12 a token → 672; forward 4768 floats, × 2.5 for the backward = 11920 → 47680 bytes.
    expect(e).toEqual({ runtime: 512 * MiB, params: 1296, optimizer: 3 * 1296, activations: 47680, kvCache: 0, total: 512 * MiB + 1296 + 3888 + 47680 });
  });

  it('generation: the forward over the full context plus two steps of KV cache', () => {
    const e = estimateMemory({ models: [{ model, head: 'lm' }], generate: { model, rows: 3 } });
    // 24 tokens × 256 = 6144, + 24 × 42 = 1008 → 7152 floats = 28608 bytes; cache 2 × (2·L·rows·T·d = 192) floats = 1536 bytes.
    expect(e).toEqual({ runtime: 512 * MiB, params: 1296, optimizer: 0, activations: 28608, kvCache: 1536, total: 512 * MiB + 1296 + 28608 + 1536 });
  });

  it('refuses in one line naming the source, the estimate and what is available', () => {
    const plan = { models: [{ model, head: 'lm' as const, trained: true }], train: { rows: 2, tokens: 8 } };
    const message = oneLineError(ConfigError, () => checkMemory('exp.yaml', 'pretrain', plan, { bytes: 100 * MiB, what: 'available of 1.0 GiB total' }));
    expect(message).toBe('exp.yaml: pretrain needs an estimated 513 MiB of memory (runtime 512 MiB, parameters 1 MiB, gradients and AdamW state 1 MiB, activations 1 MiB) but 100 MiB is available of 1.0 GiB total; use a smaller model or batch');
    expect(() => checkMemory('exp.yaml', 'pretrain', plan, { bytes: 600 * MiB, what: '' })).not.toThrow();
  });

  it('every shipped config needs under 1.5 GiB in any stage (far below the machines it is meant for)', () => {
    for (const name of fs.readdirSync(path.join(repoRoot, 'configs'))) {
      const { config } = loadConfig(path.join(repoRoot, 'configs', name));
      const vocab_size = config.tokenizer.type === 'bpe' ? config.tokenizer.vocab_size : 256;
      const m = { ...config.model, vocab_size };
      const batch = Math.max(config.pretrain?.batch_size ?? 0, config.sft?.batch_size ?? 0, config.train_reward ? config.train_reward.batch_size * (config.label?.k ?? 4) : 0);
      const train = estimateMemory({ models: [{ model: m, head: 'lm', trained: true }], train: { rows: batch, tokens: m.context_length } });
      expect(train.total, name).toBeLessThan(1536 * MiB);
      if (config.ppo) expect(estimateMemory(ppoMemoryPlan(config.ppo, m, m)).total, name).toBeLessThan(1536 * MiB);
    }
  });

  it('rlhf pretrain --set model.n_layer=100000 is refused before the run directory exists', async () => {
    const file = writeConfig(tinyPretrainConfig());
    const r = await rlhf('pretrain', '-c', file, '--set', 'model.n_layer=100000');
    expect(r.code).toBe(2);
    expectOneLineError(r, /exp\.yaml: pretrain needs an estimated [\d.]+ GiB of memory \(runtime .*, parameters .*, activations .*\) but [\d.]+ (GiB|MiB) is (available of|left under)/);
    expect(fs.existsSync(runsDir(file))).toBe(false);
  });
});

describe('--set and YAML keys cannot reach Object.prototype', () => {
  const base = tinyPretrainConfig();

  it.each([
    ['__proto__.x=1', '__proto__.x'],
    ['pretrain.__proto__.max_steps=5', 'pretrain.__proto__.max_steps'],
    ['constructor.prototype.x=1', 'constructor.prototype.x'],
    ['pretrain.data={__proto__: {x: 1}}', 'pretrain.data.__proto__'],
  ])('--set %s is a one-line ConfigError naming the key path', (assignment, keyPath) => {
    const file = writeConfig(base);
    const message = oneLineError(ConfigError, () => loadConfig(file, [assignment]));
    expect(message).toBe(`--set ${keyPath}: key "${keyPath.split('.').find((k) => ['__proto__', 'constructor', 'prototype'].includes(k))}" is not allowed (it would reach Object.prototype)`);
    expect(({} as Record<string, unknown>).x).toBeUndefined();
    expect(({} as Record<string, unknown>).max_steps).toBeUndefined();
  });

  it('a __proto__ key in the YAML file names file:line and key path', () => {
    const file = writeConfig(base);
    fs.appendFileSync(file, 'sample:\n  __proto__:\n    num: 3\n');
    const lines = fs.readFileSync(file, 'utf8').split('\n');
    const line = lines.indexOf('  __proto__:') + 1;
    expect(oneLineError(ConfigError, () => loadConfig(file))).toBe(`${file}:${line}: sample.__proto__: key "__proto__" is not allowed (it would reach Object.prototype)`);
  });

  it('an inherited name (toString) is not a section to descend into', () => {
    const file = writeConfig(base);
    expect(oneLineError(ConfigError, () => loadConfig(file, ['toString.x=1']))).toMatch(/toString: unknown key/);
  });

  it('through the CLI: exit 2, one line, nothing written', async () => {
    const file = writeConfig(base);
    const r = await rlhf('pretrain', '-c', file, '--set', 'pretrain.__proto__.max_steps=5');
    expect(r.code).toBe(2);
    expectOneLineError(r, /^rlhf: --set pretrain\.__proto__\.max_steps: key "__proto__" is not allowed/);
    expect(fs.existsSync(runsDir(file))).toBe(false);
  });
});

describe('non-finite numbers are schema errors', () => {
  it.each([
    ['.inf', 'Number must be finite'],
    ['-.inf', 'Number must be finite'],
    ['.nan', 'Expected number, received nan'],
  ])('lr: %s names the key path', (value, reason) => {
    const file = writeConfig(tinyPretrainConfig());
    fs.writeFileSync(file, fs.readFileSync(file, 'utf8').replace(/lr: 0\.003/, `lr: ${value}`));
    expect(oneLineError(ConfigError, () => loadConfig(file))).toMatch(new RegExp(`exp\\.yaml:\\d+: pretrain\\.lr: ${reason}`));
    expect(oneLineError(ConfigError, () => loadConfig(writeConfig(tinyPretrainConfig()), [`pretrain.grad_clip=${value}`]))).toMatch(`pretrain.grad_clip: ${reason}`);
  });

  it('through the CLI: exit 2 before a stage directory is written', async () => {
    const file = writeConfig(tinyPretrainConfig());
    const r = await rlhf('pretrain', '-c', file, '--set', 'pretrain.lr=.inf');
    expect(r.code).toBe(2);
    expectOneLineError(r, /pretrain\.lr: Number must be finite/);
    expect(fs.existsSync(runsDir(file))).toBe(false);
  });
});

/** Starts a process that leaves a zombie child: sh forks `sleep`, then becomes `sleep 30`, which never reaps. */
async function makeZombie(): Promise<{ zombie: number; parent: number; kill: () => void }> {
  const child = spawn('sh', ['-c', 'sleep 0.2 & echo $!; exec sleep 30'], { stdio: ['ignore', 'pipe', 'ignore'] });
  const zombie = await new Promise<number>((resolve) => child.stdout.once('data', (d: Buffer) => resolve(Number(String(d).trim()))));
  for (let i = 0; i < 100 && procState(zombie) !== 'Z'; i++) await new Promise((r) => setTimeout(r, 50));
  return { zombie, parent: child.pid!, kill: () => process.kill(child.pid!, 'SIGKILL') };
}

describe('stage lock', () => {
  it.runIf(process.platform === 'linux')('a lock naming a zombie (dead, not yet reaped) is stale and taken over', async () => {
    const z = await makeZombie();
    try {
      expect(procState(z.zombie)).toBe('Z');
      // The zombie still answers kill(pid, 0): that alone would keep the lock.
      expect(() => process.kill(z.zombie, 0)).not.toThrow();
      const stage = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'rlhf-lock-')), 'run', 'pretrain');
      fs.mkdirSync(path.dirname(stage), { recursive: true });
      fs.writeFileSync(lockPath(stage), JSON.stringify({ pid: z.zombie, host: os.hostname(), started_at: '2026-01-01T00:00:00.000Z' }) + '\n');
      expect(lockHolder(stage)).toBeUndefined();
      const release = acquireStageLock(stage);
      expect(JSON.parse(fs.readFileSync(lockPath(stage), 'utf8')).pid).toBe(process.pid);
      release();
      expect(fs.existsSync(lockPath(stage))).toBe(false);
    } finally {
      z.kill();
    }
  });

  it.runIf(process.platform === 'linux')('a lock naming a live process is still held', async () => {
    const z = await makeZombie();
    try {
      expect(procState(z.parent)).toMatch(/[RS]/);
      const stage = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'rlhf-lock-')), 'run', 'pretrain');
      fs.mkdirSync(path.dirname(stage), { recursive: true });
      fs.writeFileSync(lockPath(stage), JSON.stringify({ pid: z.parent, host: os.hostname(), started_at: '2026-01-01T00:00:00.000Z' }) + '\n');
      expect(lockHolder(stage)?.pid).toBe(z.parent);
      expect(() => acquireStageLock(stage)).toThrow(`in use by process ${z.parent}`);
    } finally {
      z.kill();
    }
  });
});

describe('rlhf verify', () => {
  it('a run with no completed stage fails: exit 2, one line', async () => {
    const run = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'rlhf-verify-empty-')), 'x');
    fs.mkdirSync(path.join(run, 'pretrain'), { recursive: true });
    const manifest = { stage: 'pretrain', status: 'failed', started_at: '2026-01-01T00:00:00.000Z', seed: 1, versions: {}, git_commit: null, backend: 'tensorflow', threads: 1, parents: [] };
    fs.writeFileSync(path.join(run, 'pretrain', 'manifest.json'), JSON.stringify(manifest));
    for (const args of [[run], [run, '--quick']]) {
      const r = await rlhf('verify', ...args);
      expect(r.code).toBe(2);
      expect(r.stderr).toBe(`rlhf: ${run}: no completed stage to verify\n`);
    }
  });
});

describe('sampling', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await randomLmCheckpoint({ n_layer: 1, d_model: 16, context_length: 24 }, 3);
  });

  it('rlhf sample -n 200000 streams every row (no call-stack overflow, bounded batches)', async () => {
    let rows = 0;
    let last = '';
    const log = vi.spyOn(console, 'log').mockImplementation((line: string) => {
      rows++;
      last = line;
    });
    try {
      const r = await rlhf('sample', '--checkpoint', dir, '-p', 'the ', '-n', '200000', '--max-new-tokens', '1', '--json');
      expect(r).toEqual({ code: 0, stderr: '' });
    } finally {
      log.mockRestore();
    }
    expect(rows).toBe(200000);
    expect(JSON.parse(last)).toMatchObject({ prompt_index: 0, sample_index: 199999, new_tokens: 1 });
  }, 120_000);

  it('temperature 0 is greedy: the argmax, no draw', () => {
    const logits = Float32Array.from([1, 3, 2, 3, -Infinity]);
    const rng = new Rng(1);
    const before = rng.next();
    const fresh = new Rng(1);
    for (let i = 0; i < 5; i++) expect(sampleToken(logits, { temperature: 0, topK: 0, topP: 0.5 }, fresh)).toBe(1);
    expect(fresh.next()).toBe(before);
  });

  it('temperature 0 gives top-k 1 (greedy) output for any seed', () => {
    const request = (seed: number, temperature: number, topK: number) => ({ checkpoint: dir, prompts: ['the ', 'a'], num: 2, maxNewTokens: 12, temperature, topK, topP: 1, seed });
    const greedy = [...sampleCheckpoint(request(1, 1, 1))].map((r) => r.completion);
    expect([...sampleCheckpoint(request(1, 0, 0))].map((r) => r.completion)).toEqual(greedy);
    expect([...sampleCheckpoint(request(2, 0, 0))].map((r) => r.completion)).toEqual(greedy);
    expect(new Set([...sampleCheckpoint(request(2, 1, 0))].map((r) => r.completion)).size).toBeGreaterThan(1);
  });

  it('--temperature 0 is accepted by the CLI and the config; a negative one is not', async () => {
    const log = vi.spyOn(console, 'log').mockImplementation(() => {});
    try {
      expect((await rlhf('sample', '--checkpoint', dir, '-p', 'the ', '--temperature', '0', '--max-new-tokens', '3')).code).toBe(0);
      expectOneLineError(await rlhf('sample', '--checkpoint', dir, '--temperature', '-1'), /--temperature must be >= 0 \(0 = greedy\)/);
    } finally {
      log.mockRestore();
    }
    const file = writeConfig(tinyPretrainConfig());
    expect(loadConfig(file, ['sample.temperature=0', 'eval.temperature=0']).config.sample.temperature).toBe(0);
    expect(oneLineError(ConfigError, () => loadConfig(file, ['sample.temperature=-0.5']))).toMatch(/sample\.temperature: Number must be greater than or equal to 0/);
  });
});

describe('file-system refusals', () => {
  it.each([
    [{ code: 'ENOSPC', syscall: 'write', path: 'runs/x/pretrain/checkpoints' }, 'runs/x/pretrain/checkpoints: no space left on device (ENOSPC)'],
    [{ code: 'EROFS', syscall: 'open', path: '/mnt/ro/runs' }, '/mnt/ro/runs: read-only file system (EROFS)'],
    [{ code: 'EACCES', syscall: 'mkdir', path: '/root/runs' }, '/root/runs: permission denied (EACCES)'],
    [{ code: 'EDQUOT', syscall: 'write', path: 'runs/x/metrics.jsonl' }, 'runs/x/metrics.jsonl: disk quota exceeded (EDQUOT)'],
    [{ code: 'ENOSPC', syscall: 'write' }, '(write call): no space left on device (ENOSPC)'],
  ])('%o → %s', (fields, line) => {
    expect(describeFsError(Object.assign(new Error('x'), fields))).toBe(line);
  });

  it('other errors are not file-system refusals', () => {
    expect(describeFsError(new Error('boom'))).toBeUndefined();
    expect(describeFsError(Object.assign(new Error('x'), { code: 'ERR_INVALID_ARG_TYPE' }))).toBeUndefined();
    expect(describeFsError(undefined)).toBeUndefined();
  });

  it.runIf(fs.existsSync('/dev/full'))('a real ENOSPC from write(2) has no path until the write site names it', () => {
    const fd = fs.openSync('/dev/full', 'w');
    let err: NodeJS.ErrnoException | undefined;
    try {
      fs.writeSync(fd, 'x');
    } catch (e) {
      err = e as NodeJS.ErrnoException;
    } finally {
      fs.closeSync(fd);
    }
    expect(err?.code).toBe('ENOSPC');
    expect(err?.path).toBeUndefined();
    expect(describeFsError(withPath(err, 'runs/x/pretrain/metrics.jsonl'))).toBe('runs/x/pretrain/metrics.jsonl: no space left on device (ENOSPC)');
    // a temporary sibling's path is replaced by the destination's
    const tmpErr = Object.assign(new Error('x'), { code: 'ENOSPC', path: 'runs/x/.final.tmp-1/model.weights.bin' });
    expect(describeFsError(withPath(tmpErr, 'runs/x/final', 'runs/x/.final.tmp-1'))).toBe('runs/x/final: no space left on device (ENOSPC)');
  });

  it("makeDirs surfaces the real cause where Node's recursive mkdir says ENOENT (EROFS)", () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'rlhf-mkdirs-'));
    const target = path.join(root, 'a', 'b');
    const erofs = (p: fs.PathLike) => Object.assign(new Error(`EROFS: read-only file system, mkdir '${p}'`), { code: 'EROFS', syscall: 'mkdir', path: String(p) });
    const mkdir = vi.spyOn(fs, 'mkdirSync').mockImplementation((p: fs.PathLike, opts?: unknown) => {
      if ((opts as { recursive?: boolean } | undefined)?.recursive) throw Object.assign(new Error('ENOENT'), { code: 'ENOENT', syscall: 'mkdir', path: String(p) });
      throw erofs(p);
    });
    try {
      expect(() => makeDirs(target)).toThrow(`EROFS: read-only file system, mkdir '${path.join(root, 'a')}'`);
    } finally {
      mkdir.mockRestore();
    }
    makeDirs(target);
    expect(fs.statSync(target).isDirectory()).toBe(true);
  });

  it('run_dir under a regular file: exit 3, one line naming the path, nothing else written', async () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'rlhf-enotdir-'));
    const blocker = path.join(root, 'not-a-dir');
    fs.writeFileSync(blocker, 'a file\n');
    const file = writeConfig({ ...tinyPretrainConfig(), run_dir: path.join(blocker, 'runs') });
    const r = await rlhf('pretrain', '-c', file);
    expect(r.code).toBe(3);
    expectOneLineError(r, new RegExp(`^rlhf: ${blocker}/runs/tiny: a component of the path is not a directory \\(ENOTDIR\\)$`));
    expect(fs.readFileSync(blocker, 'utf8')).toBe('a file\n');
    expect(fs.readdirSync(root)).toEqual(['not-a-dir']);
  });

  it.runIf(canBindMountReadOnly())('run_dir on a read-only mount: exit 3, EROFS naming the directory', async () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'rlhf-erofs-'));
    const ro = path.join(root, 'ro');
    fs.mkdirSync(ro);
    execFileSync('mount', ['--bind', ro, ro]);
    try {
      execFileSync('mount', ['-o', 'remount,bind,ro', ro]);
      const file = writeConfig({ ...tinyPretrainConfig(), run_dir: ro });
      const r = await rlhf('pretrain', '-c', file);
      expect(r.code).toBe(3);
      expectOneLineError(r, new RegExp(`^rlhf: ${ro}/tiny: read-only file system \\(EROFS\\)$`));
    } finally {
      execFileSync('umount', [ro]);
    }
    expect(fs.readdirSync(ro)).toEqual([]);
  });
});

/** Whether this process may bind-mount (root with CAP_SYS_ADMIN, as in some containers): probed once. */
function canBindMountReadOnly(): boolean {
  if (process.platform !== 'linux') return false;
  const probe = fs.mkdtempSync(path.join(os.tmpdir(), 'rlhf-mount-probe-'));
  try {
    execFileSync('mount', ['--bind', probe, probe], { stdio: 'ignore' });
    execFileSync('umount', [probe], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  } finally {
    fs.rmSync(probe, { recursive: true, force: true });
  }
}
