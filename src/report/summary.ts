import { finalValues, policyLabel, type EvalResult, type RunData, type StageData } from './rundir.js';

/**
 * The compact per-stage summary: status, wall time and the key final metrics of
 * each stage, and the evaluated policies. Printed by `rlhf report` and emitted
 * as JSON with `--json`.
 */

/** The metrics shown for each stage kind, in this order, when present (manifest summary, else the last logged value). */
export const KEY_METRICS: Record<string, string[]> = {
  pretrain: ['loss', 'val_loss', 'tokens_per_s'],
  sft: ['loss', 'eval_loss', 'mean_token_accuracy'],
  label: ['pairs', 'pair_agreement', 'gold_score_mean', 'gold_score_chosen'],
  'train-reward': ['loss', 'eval_loss', 'eval_accuracy', 'eval_gold_accuracy'],
  ppo: ['objective/scores', 'gold/score', 'objective/kl', 'objective/rlhf_reward'],
  rloo: ['objective/scores', 'gold/score', 'objective/kl', 'objective/rlhf_reward'],
  grpo: ['objective/scores', 'gold/score', 'objective/kl', 'objective/rlhf_reward'],
  dpo: ['loss', 'eval_loss', 'eval_rewards/accuracies', 'eval_rewards/margins'],
};

export interface StageSummary {
  stage: string;
  status: string;
  wall_time_s: number | null;
  started_at: string | null;
  finished_at: string | null;
  /** Last logged step (or iteration) in metrics.jsonl. */
  last_step: number | null;
  metrics: Record<string, number>;
  error?: string;
}

/** One policy's row of the eval results (results.json). */
export type PolicySummary = EvalResult;

export interface RunSummary {
  run: string;
  dir: string;
  stages: StageSummary[];
  /** Results of the eval stage, when there is one. */
  eval?: PolicySummary[];
  /** The HTML report written (set by the report command). */
  report?: string;
}

function stageSummary(stage: StageData): StageSummary {
  const m = stage.manifest;
  const finals = finalValues(stage.metrics);
  const fromManifest = (m?.summary ?? {}) as Record<string, unknown>;
  const metrics: Record<string, number> = {};
  for (const key of KEY_METRICS[stage.kind] ?? []) {
    // The manifest's summary first: for label it holds run-wide aggregates, where the last line is one batch.
    const v = typeof fromManifest[key] === 'number' ? fromManifest[key] : finals[key];
    if (typeof v === 'number' && Number.isFinite(v)) metrics[key] = v;
  }
  const summary: StageSummary = {
    stage: stage.id,
    status: m?.status ?? 'unknown',
    wall_time_s: typeof m?.wall_time_s === 'number' ? m.wall_time_s : null,
    started_at: m?.started_at ?? null,
    finished_at: m?.finished_at ?? null,
    last_step: stage.metrics.length ? stage.metrics[stage.metrics.length - 1].step : null,
    metrics,
  };
  if (m?.error) summary.error = m.error;
  return summary;
}

export function summarizeRun(run: RunData): RunSummary {
  const summary: RunSummary = { run: run.name, dir: run.dir, stages: run.stages.map(stageSummary) };
  const evalStage = [...run.stages].reverse().find((s) => s.kind === 'eval' && s.results?.length);
  if (evalStage?.results) {
    summary.eval = evalStage.results.map((r) => {
      const p: PolicySummary = { policy: policyLabel(r.policy, run.root), proxy_reward: r.proxy_reward, kl: r.kl };
      if (typeof r.gold_score === 'number') p.gold_score = r.gold_score;
      for (const k of ['response_length', 'distinct_1', 'distinct_2', 'wall_s'] as const) if (typeof r[k] === 'number') p[k] = r[k];
      return p;
    });
  }
  return summary;
}

// ---------------------------------------------------------------- terminal text

/** Colour on a TTY unless NO_COLOR is set to a non-empty value (https://no-color.org). */
export function useColor(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return false;
  return stream.isTTY === true;
}

type Paint = (code: string, s: string) => string;

/** Formats a number in at most ~5 significant characters: 0.4678, 12.35, 9000, 1.2e-5. */
export function fmt(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  if (Number.isInteger(v)) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e6)) return v.toExponential(2);
  if (a >= 100) return v.toFixed(1);
  return v.toFixed(4);
}

export function fmtDuration(s: number | null): string {
  if (s === null) return '-';
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(Math.round(s - m * 60)).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

const STATUS_COLOR: Record<string, string> = { completed: '32', running: '33', interrupted: '33', failed: '31' };

/** The summary as aligned text lines (no trailing newline). */
export function summaryText(summary: RunSummary, color = false): string {
  const paint: Paint = color ? (code, s) => `\x1b[${code}m${s}\x1b[0m` : (_c, s) => s;
  const lines: string[] = [`${paint('1', `run ${summary.run}`)}  ${summary.dir}`];
  const rows = summary.stages.map((s) => [
    s.stage,
    s.status,
    fmtDuration(s.wall_time_s),
    Object.entries(s.metrics)
      .map(([k, v]) => `${k} ${fmt(v)}`)
      .join('  ') + (s.error ? `${Object.keys(s.metrics).length ? '  ' : ''}error: ${s.error.split('\n')[0]}` : ''),
  ]);
  const header = ['stage', 'status', 'wall', 'final metrics'];
  const widths = [0, 1, 2].map((i) => Math.max(header[i].length, ...rows.map((r) => r[i].length)));
  const pad = (cells: string[], paintStatus: boolean) =>
    cells
      .map((c, i) => {
        if (i === 3) return c;
        const padded = i === 2 ? c.padStart(widths[i]) : c.padEnd(widths[i]);
        return paintStatus && i === 1 ? paint(STATUS_COLOR[c] ?? '0', padded) : padded;
      })
      .join('  ')
      .trimEnd();
  lines.push(paint('2', pad(header, false)));
  for (const r of rows) lines.push(pad(r, true));
  if (summary.eval?.length) {
    const cols = ['policy', 'proxy', 'gold', 'kl', 'length', 'distinct-2', 'wall'];
    const evalRows = summary.eval.map((p) => [
      p.policy,
      fmt(p.proxy_reward),
      p.gold_score !== undefined ? fmt(p.gold_score) : '-',
      fmt(p.kl),
      p.response_length !== undefined ? fmt(p.response_length) : '-',
      p.distinct_2 !== undefined ? fmt(p.distinct_2) : '-',
      fmtDuration(p.wall_s ?? null),
    ]);
    const w = cols.map((c, i) => Math.max(c.length, ...evalRows.map((r) => r[i].length)));
    const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(w[i]) : c.padStart(w[i]))).join('  ');
    lines.push('', paint('2', line(cols)), ...evalRows.map(line));
  }
  return lines.join('\n');
}
