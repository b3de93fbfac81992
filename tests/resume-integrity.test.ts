import { describe, it, expect } from 'vitest';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { buildReport } from '../src/report/report.js';
import { expectOneLineError, readJsonl, repoRoot, rlhf, tinyPretrainConfig, withoutWallClock, writeConfig } from './helpers.js';

/** 20 steps, a periodic checkpoint at step 10, metrics every 5 steps. */
const CONFIG = tinyPretrainConfig({ max_steps: 20, checkpoint_interval: 10, eval_interval: 10, log_interval: 5, warmup_steps: 5 });

interface Interrupted {
  file: string;
  dir: string;
  /** What the uninterrupted run logged and wrote, before it was made to look interrupted. */
  fullMetrics: Record<string, number>[];
  fullWeights: Buffer;
}

/** A completed run turned into one a crash stopped after its step-10 checkpoint (as tests/pretrain.test.ts does). */
async function interruptedRun(): Promise<Interrupted> {
  const file = writeConfig(CONFIG);
  const r = await rlhf('pretrain', '-c', file);
  expect(r.code, r.stderr).toBe(0);
  const dir = path.join(path.dirname(file), 'runs', 'tiny', 'pretrain');
  const full = { fullMetrics: readJsonl(path.join(dir, 'metrics.jsonl')), fullWeights: fs.readFileSync(path.join(dir, 'final', 'model.weights.bin')) };
  fs.rmSync(path.join(dir, 'final'), { recursive: true });
  const manifestPath = path.join(dir, 'manifest.json');
  fs.writeFileSync(manifestPath, JSON.stringify({ ...JSON.parse(fs.readFileSync(manifestPath, 'utf8')), status: 'running' }));
  expect(fs.readdirSync(path.join(dir, 'checkpoints'))).toEqual(['step-000010']);
  return { file, dir, ...full };
}

/** sha256 of every file under the run directory (lock files included), by relative path. */
function snapshot(runDir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const rel of fs.readdirSync(runDir, { recursive: true, encoding: 'utf8' }).sort()) {
    const p = path.join(runDir, rel);
    if (fs.statSync(p).isFile()) out[rel] = crypto.createHash('sha256').update(fs.readFileSync(p)).digest('hex');
  }
  return out;
}

function manifestOf(dir: string): Record<string, unknown> {
  return JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as Record<string, unknown>;
}

describe('--resume checks the config against the one the run recorded', () => {
  it('refuses a changed setting, naming the key, and writes nothing; --allow-config-change records it in the manifest', async () => {
    const run = await interruptedRun();
    const runDir = path.dirname(run.dir);
    const before = snapshot(runDir);
    const configYaml = fs.readFileSync(path.join(run.dir, 'config.yaml'));

    const refused = await rlhf('pretrain', '-c', run.file, '--resume', '--set', 'pretrain.lr=1e-3');
    expect(refused.code).toBe(2);
    expectOneLineError(
      refused,
      new RegExp(`^rlhf: ${run.dir}: --resume with a changed config: pretrain\\.lr was 0\\.003, now 0\\.001 \\(pass --allow-config-change to continue with it anyway\\)$`),
    );
    expect(snapshot(runDir)).toEqual(before);

    const allowed = await rlhf('pretrain', '-c', run.file, '--resume', '--set', 'pretrain.lr=1e-3', '--allow-config-change');
    expect(allowed.code, allowed.stderr).toBe(0);
    expect(fs.readFileSync(path.join(run.dir, 'config.yaml')).equals(configYaml)).toBe(true);
    const manifest = manifestOf(run.dir);
    expect(manifest.status).toBe('completed');
    expect(manifest.resumed_from_step).toBe(10);
    expect(manifest.config_changes).toEqual([{ at_step: 10, key: 'pretrain.lr', from: 0.003, to: 0.001 }]);
    // The steps before the checkpoint are the original run's; the ones after ran with the new rate.
    const metrics = withoutWallClock(readJsonl(path.join(run.dir, 'metrics.jsonl')));
    const full = withoutWallClock(run.fullMetrics);
    expect(metrics.slice(0, 2)).toEqual(full.slice(0, 2));
    expect(metrics[2].step).toBe(15);
    expect(metrics[2].lr).toBeLessThan(full[2].lr);
    // The report shows config.yaml, so it shows the change next to it.
    const { out } = await buildReport(runDir, { out: path.join(path.dirname(run.file), 'report.html') });
    expect(fs.readFileSync(out, 'utf8')).toContain('changed on resume</dt><dd><span class="mono">pretrain.lr</span>: 0.003 → 0.001 from step 10');
    // verify cannot re-run a run whose config changed midway from its config.yaml, and says so
    const verified = await rlhf('verify', runDir);
    expect(verified.code).toBe(2);
    expect(verified.stderr.trim().split('\n').pop()).toMatch(/^rlhf: verify failed: .*pretrain: its config changed mid-run \(--allow-config-change: pretrain\.lr 0\.003 → 0\.001 at step 10\), so a re-run from config\.yaml cannot reproduce it/);

    // Interrupted again at the same checkpoint: the recorded change is the run's setting now.
    fs.rmSync(path.join(run.dir, 'final'), { recursive: true });
    fs.writeFileSync(path.join(run.dir, 'manifest.json'), JSON.stringify({ ...manifest, status: 'running' }));
    const again = snapshot(runDir);
    const back = await rlhf('pretrain', '-c', run.file, '--resume');
    expectOneLineError(back, /pretrain\.lr was 0\.001, now 0\.003 \(pass --allow-config-change/);
    expect(snapshot(runDir)).toEqual(again);
    const same = await rlhf('pretrain', '-c', run.file, '--resume', '--set', 'pretrain.lr=1e-3');
    expect(same.code, same.stderr).toBe(0);
    expect(manifestOf(run.dir).config_changes).toEqual([{ at_step: 10, key: 'pretrain.lr', from: 0.003, to: 0.001 }]);
    expect(fs.readFileSync(path.join(run.dir, 'config.yaml')).equals(configYaml)).toBe(true);
  });

  it('refuses keys the saved state depends on even with --allow-config-change, leaving the manifest as it was', async () => {
    const run = await interruptedRun();
    const runDir = path.dirname(run.dir);
    const before = snapshot(runDir);
    const otherCorpus = path.join(path.dirname(run.file), 'other.txt');
    fs.copyFileSync(path.join(repoRoot, 'data', 'quickstart.txt'), otherCorpus);
    const cases: [string[], RegExp][] = [
      [['model.d_model=96'], /model\.d_model was 64, now 96, which cannot change mid-run \(start over with --force instead\)$/],
      [['tokenizer={type: bpe, vocab_size: 300}'], /tokenizer\.type was "char", now "bpe"; tokenizer\.vocab_size was \(unset\), now 300, which cannot change mid-run/],
      [['seed=12', 'pretrain.lr=1e-3'], /seed was 11, now 12, which cannot change mid-run/],
      [[`pretrain.data.path=${otherCorpus}`], /pretrain\.data\.path was ".*quickstart\.txt", now ".*other\.txt", which cannot change mid-run/],
    ];
    for (const [sets, message] of cases) {
      const r = await rlhf('pretrain', '-c', run.file, '--resume', '--allow-config-change', ...sets.flatMap((s) => ['--set', s]));
      expect(r.code, sets.join(' ')).toBe(2);
      expectOneLineError(r, new RegExp(`^rlhf: ${run.dir}: --resume with a changed config: ${message.source}`));
      expect(snapshot(runDir), sets.join(' ')).toEqual(before);
    }
    expect(manifestOf(run.dir).status).toBe('running');
  });

  it('a setting another stage reads does not block the resume', async () => {
    const run = await interruptedRun();
    const r = await rlhf('pretrain', '-c', run.file, '--resume', '--set', 'sample.temperature=0.5');
    expect(r.code, r.stderr).toBe(0);
    expect(manifestOf(run.dir).config_changes).toBeUndefined();
    expect(withoutWallClock(readJsonl(path.join(run.dir, 'metrics.jsonl')))).toEqual(withoutWallClock(run.fullMetrics));
  });
});

describe('--resume checks the numerics environment the run began in', () => {
  it('a run begun with oneDNN in the other mode is refused, naming it, and nothing is written', async () => {
    const run = await interruptedRun();
    const manifest = manifestOf(run.dir) as { numerics: { onednn: boolean | null } };
    if (manifest.numerics.onednn === null) return; // a build where oneDNN's state cannot be told: nothing to compare
    fs.writeFileSync(path.join(run.dir, 'manifest.json'), JSON.stringify({ ...manifest, numerics: { ...manifest.numerics, onednn: !manifest.numerics.onednn } }));
    const before = snapshot(path.dirname(run.dir));
    const r = await rlhf('pretrain', '-c', run.file, '--resume');
    expect(r.code).toBe(2);
    const was = manifest.numerics.onednn ? 'off' : 'on';
    expectOneLineError(r, new RegExp(`pretrain: began in another numerics environment \\(oneDNN ${was} there, ${manifest.numerics.onednn ? 'on' : 'off'} here \\(TF_ENABLE_ONEDNN_OPTS=${was === 'on' ? 1 : 0} reproduces it\\)\\); resume it there$`));
    expect(snapshot(path.dirname(run.dir))).toEqual(before);
  });
});

describe('--resume repairs what a kill mid-write left', () => {
  it('drops a half-written last metrics line and stale temporary checkpoint folders; the result equals the uninterrupted run', async () => {
    const run = await interruptedRun();
    const metricsFile = path.join(run.dir, 'metrics.jsonl');
    const text = fs.readFileSync(metricsFile, 'utf8');
    fs.writeFileSync(metricsFile, text.slice(0, text.length - 20)); // killed in the middle of the last line
    const temporaries = [
      path.join(run.dir, 'checkpoints', '.step-000020.tmp-4194301-1764495000000'),
      path.join(run.dir, '.final.tmp-4194301-1764495000001'),
      path.join(run.dir, 'manifest.json.tmp-4194301'),
    ];
    fs.mkdirSync(temporaries[0]);
    fs.writeFileSync(path.join(temporaries[0], 'model.weights.bin'), 'half');
    fs.mkdirSync(temporaries[1]);
    fs.writeFileSync(temporaries[2], '{"stage": "pre');

    const r = await rlhf('pretrain', '-c', run.file, '--resume');
    expect(r.code, r.stderr).toBe(0);
    expect(withoutWallClock(readJsonl(metricsFile))).toEqual(withoutWallClock(run.fullMetrics));
    expect(fs.readFileSync(path.join(run.dir, 'final', 'model.weights.bin')).equals(run.fullWeights)).toBe(true);
    for (const t of temporaries) expect(fs.existsSync(t), t).toBe(false);
    expect(fs.readdirSync(path.join(run.dir, 'checkpoints'))).toEqual(['step-000010']);
    expect(manifestOf(run.dir).status).toBe('completed');
    const warnings = readJsonl(path.join(run.dir, 'log.jsonl')).filter((l) => (l as unknown as { msg: string }).msg === 'repaired what an interrupted write left');
    expect(warnings).toHaveLength(2);
  });

  it('a corrupt line before the last is a one-line error naming file:line, and nothing is written', async () => {
    const run = await interruptedRun();
    const metricsFile = path.join(run.dir, 'metrics.jsonl');
    const lines = fs.readFileSync(metricsFile, 'utf8').split('\n');
    lines[1] = lines[1].slice(0, 12);
    fs.writeFileSync(metricsFile, lines.join('\n'));
    const runDir = path.dirname(run.dir);
    const before = snapshot(runDir);
    const r = await rlhf('pretrain', '-c', run.file, '--resume');
    expect(r.code).toBe(2);
    expectOneLineError(r, new RegExp(`^rlhf: ${metricsFile}:2: not a metrics line \\(\\{"step": N, \\.\\.\\.\\}\\); only a partly written last line can be dropped on --resume$`));
    expect(snapshot(runDir)).toEqual(before);
    expect(manifestOf(run.dir).status).toBe('running');
  });
});
