import { describe, it, expect } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { summaryText, type RunSummary } from '../src/report/summary.js';
import { evaluationTable, producingStageWall } from '../src/stages/eval.js';
import { bestOfNMetrics, methodAggregates, methodTable, perMethodMetrics } from '../src/workflow/method-metrics.js';
import { stageMetrics } from '../src/workflow/pipeline.js';

/** Wall time per method: read from hand-made stage manifests, carried into sweep rows and tables. */
function stage(root: string, name: string, manifest: Record<string, unknown>): string {
  const dir = path.join(root, name);
  fs.mkdirSync(path.join(dir, 'final'), { recursive: true });
  fs.mkdirSync(path.join(dir, 'checkpoints', 'step-000002'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify({ stage: name, started_at: '2026-01-01T10:00:00.000Z', parents: [], ...manifest }));
  return dir;
}

describe('wall time per method', () => {
  it("a policy's wall time is its completed stage's wall_time_s, only for the stage's final checkpoint", () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'rlhf-wall-'));
    const ppo = stage(root, 'ppo', { status: 'completed', wall_time_s: 42.5 });
    const failed = stage(root, 'grpo', { status: 'failed', wall_time_s: 3 });
    expect(producingStageWall(path.join(ppo, 'final'))).toBe(42.5);
    expect(producingStageWall(`${path.join(ppo, 'final')}/`)).toBe(42.5);
    expect(producingStageWall(path.join(ppo, 'checkpoints', 'step-000002'))).toBeUndefined();
    expect(producingStageWall(path.join(failed, 'final'))).toBeUndefined();
    expect(producingStageWall(path.join(root, 'nowhere', 'final'))).toBeUndefined();
  });

  it("an eval manifest's policies give <method>/wall_s, best-of-n its sampling time; the table shows mean ± sd with the caption", () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'rlhf-wall-'));
    const evalManifest = (sftWall: number, dpoWall: number, bonWall: number) => ({
      stage: 'eval',
      status: 'completed',
      summary: {
        policies: [
          { policy: `${root}/sft/final`, gold_score: 0.5, proxy_reward: 0, kl: 0, distinct_2: 0.8, wall_s: sftWall },
          { policy: `${root}/dpo/final`, gold_score: 0.6, proxy_reward: 0.4, kl: 1.5, distinct_2: 0.7, wall_s: dpoWall },
        ],
        best_of_n: [
          { n: 1, kl: 0, d: 0, proxy_reward: 0, gold_score: 0.5 },
          { n: 4, kl: 0.636, d: 0.8, proxy_reward: 0.5, gold_score: 0.6 },
          { n: 16, kl: 1.835, d: 1.35, proxy_reward: 0.9, gold_score: 0.65 },
        ],
        best_of_n_sampling: { n: 16, wall_s: bonWall },
      },
    });
    const trials = [
      [10, 20, 4],
      [12, 26, 6],
      [14, 29, 5],
    ].map(([s, d, b], i) => {
      const dir = stage(root, `eval-${i}`, evalManifest(s, d, b));
      const metrics = Object.fromEntries(Object.entries(stageMetrics(dir)!).map(([k, v]) => [`eval/${k}`, v]));
      return { status: 'ok', params: { seed: String(i + 1) }, metrics };
    });
    const m = trials[1].metrics;
    expect(m['eval/sft/wall_s']).toBe(12);
    expect(m['eval/dpo/wall_s']).toBe(26);
    expect(m['eval/best_of_16/wall_s']).toBe(6);
    // only the n that was sampled has a time; the last-policy comparison columns stay results, not timings
    expect(m['eval/best_of_4/wall_s']).toBeUndefined();
    expect(m['eval/wall_s']).toBeUndefined();
    expect(m['eval/sft_wall_s']).toBeUndefined();

    const rows = methodAggregates(trials, ['seed']);
    const wall = (method: string) => rows.find((r) => r.method === method)!.columns.find(([c]) => c === 'wall_s')![1];
    // dpo: 20, 26, 29 → mean 25, sd √((25 + 1 + 16)/2) = √21
    expect(wall('dpo').mean).toBeCloseTo(25, 12);
    expect(wall('dpo').sd).toBeCloseTo(Math.sqrt(21), 12);
    expect(wall('best_of_16').mean).toBeCloseTo(5, 12);
    const table = methodTable(rows);
    const header = table.find((l) => l.startsWith('| method'))!;
    expect(header).toBe('| method | seeds | gold_score | proxy_reward | kl | distinct_2 | wall_s |');
    expect(table.find((l) => l.startsWith('| dpo |'))).toMatch(/\| 25\.0 ± 4\.6 \|$/);
    expect(table.join('\n')).toMatch(/PPO\/RLOO\/GRPO exclude the shared SFT, label and reward-model stages/);
  });

  it('policies without a wall time leave the column out; bestOfNMetrics ignores a sampling record for n = 1', () => {
    const m = perMethodMetrics([{ policy: 'x/sft/final', gold_score: 0.1 }, { policy: 'x/rloo/final', gold_score: 0.2 }]);
    expect(Object.keys(m).some((k) => k.endsWith('/wall_s'))).toBe(false);
    const rows = methodAggregates([1, 2].map((s) => ({ status: 'ok', params: { seed: String(s) }, metrics: Object.fromEntries(Object.entries(m).map(([k, v]) => [`eval/${k}`, v])) })), ['seed']);
    expect(methodTable(rows).join('\n')).not.toContain('wall_s');
    expect(bestOfNMetrics([{ n: 1, kl: 0, proxy_reward: 0 }], { n: 1, wall_s: 2 })).toEqual({});
  });

  it("rlhf eval's table shows each policy's wall time, '-' where there is none", () => {
    const row = { proxy_reward: 0.5, gold_score: 0.25, kl: 1, response_length: 9, distinct_1: 0.5, distinct_2: 0.75, samples: [] };
    const lines = evaluationTable([{ policy: '/r/x/ppo/final', ...row, wall_s: 42.25 }, { policy: '/r/ckpt', ...row }]).split('\n');
    expect(lines[0]).toMatch(/distinct-2 {2}wall s$/);
    expect(lines[1]).toMatch(/^x\/ppo\/final .* 42\.3$/);
    expect(lines[2]).toMatch(/ -$/);
  });

  it("rlhf report's policy table shows each policy's wall time", () => {
    const summary: RunSummary = {
      run: 'r',
      dir: '/r',
      stages: [],
      eval: [
        { policy: 'sft/final', proxy_reward: 0, kl: 0, wall_s: 12.25 },
        { policy: 'ppo/final', proxy_reward: 1, kl: 2, wall_s: 95.5 },
        { policy: 'elsewhere', proxy_reward: 1, kl: 2 },
      ],
    };
    const lines = summaryText(summary).split('\n');
    expect(lines.find((l) => l.startsWith('policy'))).toMatch(/\bwall$/);
    expect(lines.find((l) => l.startsWith('sft/final'))).toMatch(/12\.3 s$/);
    expect(lines.find((l) => l.startsWith('ppo/final'))).toMatch(/1m36s$/);
    expect(lines.find((l) => l.startsWith('elsewhere'))).toMatch(/ -$/);
  });
});
