import { beforeAll, describe, it, expect } from 'vitest';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { readManifest } from '../src/run/stage.js';
import { expectOneLineError, rlhf, tinyRlhfConfig, writeConfig } from './helpers.js';

/**
 * Bad input never costs a completed stage: checkpoints are checked (shapes
 * against their model config, tokenizer, size, recorded sha256) and eval
 * policies validated before a stage directory is touched, also under --force.
 * Built on tinyRlhfConfig's randomwalks experiment (a few seconds a stage).
 */
const file = writeConfig(tinyRlhfConfig('integrity'));
const scratch = path.dirname(file);
const run = path.join(scratch, 'runs', 'integrity');

/** Every file under `dir` (recursively) with the sha256 of its bytes. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const rel of fs.readdirSync(dir, { recursive: true }) as string[]) {
    const full = path.join(dir, rel);
    if (fs.statSync(full).isFile()) out[rel] = crypto.createHash('sha256').update(fs.readFileSync(full)).digest('hex');
  }
  return out;
}

/** Asserts `fn` leaves the completed stage byte-identical (and still completed). */
async function keepsStage(stage: string, fn: () => Promise<void>, mustHold: string[]): Promise<void> {
  const dir = path.join(run, stage);
  const before = snapshot(dir);
  for (const f of mustHold) expect(Object.keys(before), f).toContain(f);
  await fn();
  expect(snapshot(dir)).toEqual(before);
  expect(readManifest(dir)?.status).toBe('completed');
}

interface MetaJson {
  model: Record<string, number>;
  weightsManifest: { weights: { name: string; shape: number[] }[] }[];
}

/** A copy of a checkpoint whose model.json is changed by `edit`. */
function editedCopy(from: string, name: string, edit: (meta: MetaJson) => void): string {
  const to = path.join(scratch, name);
  fs.cpSync(from, to, { recursive: true });
  const meta = JSON.parse(fs.readFileSync(path.join(to, 'model.json'), 'utf8')) as MetaJson;
  edit(meta);
  fs.writeFileSync(path.join(to, 'model.json'), JSON.stringify(meta));
  return to;
}

/** A copy (under `name`/) of a whole completed stage whose final/model.weights.bin has one bit flipped. */
function flippedStageCopy(stage: string, name: string): string {
  const to = path.join(scratch, name, stage);
  fs.cpSync(path.join(run, stage), to, { recursive: true });
  const bin = path.join(to, 'final', 'model.weights.bin');
  const bytes = fs.readFileSync(bin);
  bytes[100] ^= 1;
  fs.writeFileSync(bin, bytes);
  return path.join(to, 'final');
}

const SFT_FILES = ['metrics.jsonl', 'manifest.json', 'final/model.weights.bin', 'final/model.json'];
const PPO_FILES = ['metrics.jsonl', 'manifest.json', 'final/model.weights.bin'];
const EVAL_FILES = ['results.json', 'samples.jsonl', 'metrics.jsonl', 'manifest.json'];

describe('bad input leaves completed stages untouched', () => {
  beforeAll(async () => {
    for (const stage of ['pretrain', 'sft', 'label', 'train-reward', 'ppo', 'eval']) {
      const r = await rlhf(stage, '-c', file);
      expect(r.code, `${stage}: ${r.stderr}`).toBe(0);
    }
  }, 300_000);

  it('eval --policy with a reward model refuses before touching the eval stage', async () => {
    const reward = path.join(run, 'train-reward', 'final');
    await keepsStage(
      'eval',
      async () => {
        // without --force a completed eval is kept whatever the arguments; with it, the bad policy is still refused first
        expectOneLineError(await rlhf('eval', '-c', file), /\/eval: holds a completed run; pass --force to overwrite it$/);
        const r = await rlhf('eval', '-c', file, '--force', '--policy', path.join(run, 'sft', 'final'), '--policy', reward);
        expectOneLineError(r, /train-reward\/final: holds a "score" model \(a reward model\?\); a policy to evaluate must be a language model$/);
        expect(r.code).toBe(2);
      },
      EVAL_FILES,
    );
  });

  it('eval --policy with shapes that do not match the weights names the tensor', async () => {
    // c_attn's shape transposed: the byte count still fits, so only a per-tensor check catches it.
    const bad = editedCopy(path.join(run, 'sft', 'final'), 'transposed', (meta) => {
      meta.weightsManifest[0].weights.find((w) => w.name === 'h.0.attn.c_attn.weight')!.shape = [96, 32];
    });
    await keepsStage(
      'eval',
      async () => {
        const r = await rlhf('eval', '-c', file, '--force', '--policy', bad);
        expectOneLineError(r, /transposed\/model\.json: h\.0\.attn\.c_attn\.weight has shape \[32,96\] in this model config but the weights file holds 3072 floats \[96,32\] for it$/);
        expect(r.code).toBe(2);
      },
      EVAL_FILES,
    );
  });

  it('sft --force from a parent whose model config does not fit its weights keeps the completed sft', async () => {
    const bad = editedCopy(path.join(run, 'pretrain', 'final'), 'narrow', (meta) => {
      meta.model.d_model = 16;
    });
    await keepsStage(
      'sft',
      async () => {
        const r = await rlhf('sft', '-c', file, '--force', '--set', `sft.init_from=${bad}`);
        expectOneLineError(r, /narrow\/model\.json: wte\.weight has shape \[\d+,16\] in this model config but the weights file holds \d+ floats \[\d+,32\] for it$/);
        expect(r.code).toBe(2);
      },
      SFT_FILES,
    );
  });

  it('a model config needing a tensor the weights lack is a one-line error, not a crash in the forward pass', async () => {
    const bad = editedCopy(path.join(run, 'sft', 'final'), 'deeper', (meta) => {
      meta.model.n_layer = 2;
    });
    const r = await rlhf('sample', '--checkpoint', bad, '-n', '1', '--max-new-tokens', '4');
    expectOneLineError(r, /deeper\/model\.json: h\.1\.ln_1\.weight: this model config needs it but the weights file holds no such tensor$/);
    expect(r.code).toBe(2);
  });

  it('sft --force from a parent final/ whose weights no longer match its manifest sha256 keeps the completed sft', async () => {
    const flipped = flippedStageCopy('pretrain', 'flipped');
    const recorded = readManifest(path.dirname(flipped))!.final!.sha256;
    await keepsStage(
      'sft',
      async () => {
        const r = await rlhf('sft', '-c', file, '--force', '--set', `sft.init_from=${flipped}`);
        expectOneLineError(r, new RegExp(`flipped/pretrain/final/model\\.weights\\.bin: sha256 is [0-9a-f]{64} but .*flipped/pretrain/manifest\\.json recorded ${recorded} \\(modified since its stage completed\\)$`));
        expect(r.code).toBe(2);
      },
      SFT_FILES,
    );
    // loading it anywhere else refuses too
    expectOneLineError(await rlhf('sample', '--checkpoint', flipped, '-n', '1', '--max-new-tokens', '4'), /model\.weights\.bin: sha256 is [0-9a-f]{64} but .* recorded/);
  });

  it('ppo --force from a bit-flipped policy keeps the completed ppo: parents are checked before the stage is replaced', async () => {
    // ppo loads its checkpoints after opening the stage; StageRun.open checks them first.
    const flipped = flippedStageCopy('sft', 'flipped-policy');
    await keepsStage(
      'ppo',
      async () => {
        const r = await rlhf('ppo', '-c', file, '--force', '--set', `ppo.policy=${flipped}`);
        expectOneLineError(r, /flipped-policy\/sft\/final\/model\.weights\.bin: sha256 is [0-9a-f]{64} but .*flipped-policy\/sft\/manifest\.json recorded [0-9a-f]{64} \(modified since its stage completed\)$/);
        expect(r.code).toBe(2);
      },
      PPO_FILES,
    );
  });

  it('ppo --force with a missing PPO-ptx corpus keeps the completed ppo', async () => {
    await keepsStage(
      'ppo',
      async () => {
        const r = await rlhf('ppo', '-c', file, '--force', '--set', 'ppo.ptx_coef=0.1', '--set', 'pretrain.data={path: /nonexistent/ptx.txt}');
        expectOneLineError(r, /\/nonexistent\/ptx\.txt: file not found/);
        expect(r.code).toBe(2);
      },
      PPO_FILES,
    );
  });
});
