import { describe, it, expect } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { tf } from '../src/backend/tf.js';
import { loadConfig } from '../src/config/load.js';
import { runPretrain } from '../src/stages/pretrain.js';
import { readJsonl, tinyPretrainConfig, withoutWallClock, writeConfig } from './helpers.js';

// Unigram character entropy of data/quickstart.txt, −Σ p ln p (measured: 3.0943 nats).
const UNIGRAM_ENTROPY = 3.0943;

describe('pretrain', () => {
  it('learns the quickstart corpus: val loss far below the unigram entropy', async () => {
    const file = writeConfig(tinyPretrainConfig());
    const result = await runPretrain(loadConfig(file));
    const rows = readJsonl(path.join(result.dir, 'metrics.jsonl'));
    const val = rows.filter((r) => r.val_loss !== undefined).map((r) => r.val_loss);
    expect(val).toHaveLength(3);
    expect(val[2]).toBeLessThan(val[0]);
    // Measured 1.984 nats after 300 steps (seed 11); the unigram model scores 3.094.
    expect(val[2]).toBeLessThan(2.05);
    expect(val[2]).toBeLessThan(UNIGRAM_ENTROPY - 1.0);
    // run directory layout
    for (const f of ['config.yaml', 'manifest.json', 'metrics.jsonl', 'log.jsonl', 'final/model.json', 'final/model.weights.bin', 'final/tokenizer.json']) {
      expect(fs.existsSync(path.join(result.dir, f)), f).toBe(true);
    }
    const manifest = JSON.parse(fs.readFileSync(path.join(result.dir, 'manifest.json'), 'utf8'));
    expect(manifest.status).toBe('completed');
    expect(manifest.backend).toBe('tensorflow');
    expect(manifest.final.sha256).toMatch(/^[0-9a-f]{64}$/);
  });

  it('same config and seed give identical metrics and weights', async () => {
    const cfg = tinyPretrainConfig({ max_steps: 30, eval_interval: 15, checkpoint_interval: 15 });
    const a = await runPretrain(loadConfig(writeConfig(cfg)));
    const b = await runPretrain(loadConfig(writeConfig(cfg)));
    const ma = withoutWallClock(readJsonl(path.join(a.dir, 'metrics.jsonl')));
    const mb = withoutWallClock(readJsonl(path.join(b.dir, 'metrics.jsonl')));
    expect(ma.length).toBe(4); // steps 10, 15 (eval), 20, 30
    expect(mb).toEqual(ma);
    const wa = fs.readFileSync(path.join(a.finalPath, 'model.weights.bin'));
    const wb = fs.readFileSync(path.join(b.finalPath, 'model.weights.bin'));
    expect(wb.equals(wa)).toBe(true);
  });

  it('refuses to overwrite a completed stage without --force', async () => {
    const file = writeConfig(tinyPretrainConfig({ max_steps: 2, eval_interval: 2, warmup_steps: 0 }));
    const first = await runPretrain(loadConfig(file));
    const before = fs.readFileSync(path.join(first.finalPath, 'model.weights.bin'));
    await expect(runPretrain(loadConfig(file))).rejects.toThrow(/holds a completed run; pass --force/);
    expect(fs.readFileSync(path.join(first.finalPath, 'model.weights.bin')).equals(before)).toBe(true);
    await expect(runPretrain(loadConfig(file), { force: true })).resolves.toBeDefined();
  });

  it('refuses a thread count other than the one TensorFlow loaded with, before touching the run directory', async () => {
    const loaded = loadConfig(writeConfig(tinyPretrainConfig({ max_steps: 2, eval_interval: 2, warmup_steps: 0 })), ['threads=3', 'name=threads-mismatch']);
    await expect(runPretrain(loaded)).rejects.toThrow(/^threads: the config asks for 3 TensorFlow thread\(s\) but this process loaded TensorFlow with 1 /);
    expect(fs.existsSync(path.join(loaded.config.run_dir, 'threads-mismatch'))).toBe(false);
  });

  it('resuming from a periodic checkpoint reproduces the uninterrupted run', async () => {
    const cfg = tinyPretrainConfig({ max_steps: 40, eval_interval: 20, checkpoint_interval: 20 });
    const full = await runPretrain(loadConfig(writeConfig(cfg)));
    // Simulate a crash after step 20: keep the step-20 checkpoint, drop what came after.
    const file = writeConfig(cfg);
    const crashed = await runPretrain(loadConfig(file));
    fs.rmSync(crashed.finalPath, { recursive: true });
    const manifestPath = path.join(crashed.dir, 'manifest.json');
    fs.writeFileSync(manifestPath, JSON.stringify({ ...JSON.parse(fs.readFileSync(manifestPath, 'utf8')), status: 'running' }));
    const resumed = await runPretrain(loadConfig(file), { resume: true });
    expect(withoutWallClock(readJsonl(path.join(resumed.dir, 'metrics.jsonl')))).toEqual(withoutWallClock(readJsonl(path.join(full.dir, 'metrics.jsonl'))));
    expect(fs.readFileSync(path.join(resumed.finalPath, 'model.weights.bin')).equals(fs.readFileSync(path.join(full.finalPath, 'model.weights.bin')))).toBe(true);
  });

  it('keeps tf.memory().numTensors flat across training steps', async () => {
    const counts: number[] = [];
    const { optimizerStep } = await import('../src/train/step.js');
    const { initParams, forward, lmLogits, disposeParams } = await import('../src/model/gpt.js');
    const { meanTokenNll } = await import('../src/model/loss.js');
    const { AdamW } = await import('../src/train/adamw.js');
    const { randomWindows } = await import('../src/stages/lm-batches.js');
    const { Rng } = await import('../src/util/rng.js');
    const cfg = { vocab_size: 50, n_layer: 2, n_head: 2, d_model: 32, context_length: 16, dropout: 0.1 };
    const rng = new Rng(1);
    const params = initParams(cfg, 'lm', rng);
    const opt = new AdamW(params, {});
    const ids = Int32Array.from({ length: 2000 }, (_, i) => (i * 7) % 50);
    for (let step = 1; step <= 50; step++) {
      const w = randomWindows(ids, 4, 16, rng);
      const seed = rng.seed();
      optimizerStep(params, opt, [() => meanTokenNll(lmLogits(params, forward(params, cfg, tf.tensor2d(w.x, [4, 16], 'int32'), { training: true, dropoutSeed: seed }).hidden), tf.tensor1d(w.y, 'int32'))], 1e-3, 1);
      if (step === 10 || step === 50) counts.push(tf.memory().numTensors);
    }
    expect(counts[1]).toBe(counts[0]);
    opt.dispose();
    disposeParams(params);
  });
});
