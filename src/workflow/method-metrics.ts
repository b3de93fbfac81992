import { summarizeSeeds, type SeedSummary } from '../util/stats.js';
import { OTHER_METHODS } from './stages.js';

/**
 * Per-method numbers of an eval, for a sweep over seeds to give each method's
 * point on the gold-vs-KL frontier with its spread: `<method>/<metric>` for
 * every policy compared (SFT, PPO, RLOO, GRPO, DPO) and `best_of_<n>/<metric>`
 * for best-of-n on the SFT policy.
 */

export const FRONTIER_FILE = 'frontier.svg';

/** wall_s: the wall time of the stage that produced the policy (best-of-n: the eval's sampling and scoring). */
export const METHOD_METRICS = ['gold_score', 'proxy_reward', 'kl', 'distinct_2', 'wall_s'] as const;

/** "rloo" for runs/x/rloo/final, "round-2/ppo" for runs/x/round-2/ppo/final; the path's last part otherwise. */
export function methodLabel(policy: string): string {
  const parts = policy.split(/[\\/]+/).filter(Boolean);
  if (parts[parts.length - 1] === 'final') parts.pop();
  const last = parts[parts.length - 1] ?? policy;
  const before = parts[parts.length - 2];
  return before && /^round-\d+$/.test(before) ? `${before}/${last}` : last;
}

/** `<method>/<metric>` of each compared policy, when the eval compares another method besides PPO (else nothing: the sweep's columns stay as they were). */
export function perMethodMetrics(policies: readonly Record<string, unknown>[]): Record<string, number> {
  const labels = policies.map((p) => methodLabel(String(p.policy ?? '')));
  if (!labels.some((l) => (OTHER_METHODS as readonly string[]).includes(l))) return {};
  const out: Record<string, number> = {};
  policies.forEach((p, i) => {
    for (const m of METHOD_METRICS) if (typeof p[m] === 'number') out[`${labels[i]}/${m}`] = p[m] as number;
  });
  return out;
}

/** `best_of_<n>/{gold_score,proxy_reward,kl}` from the eval's best-of-n points, and `best_of_<n>/wall_s` for the n that was sampled. */
export function bestOfNMetrics(points: readonly { n: number; kl: number; proxy_reward: number; gold_score?: number }[], sampling?: { n: number; wall_s: number }): Record<string, number> {
  const out: Record<string, number> = {};
  if (sampling && points.some((p) => p.n === sampling.n && p.n !== 1)) out[`best_of_${sampling.n}/wall_s`] = sampling.wall_s;
  for (const p of points) {
    if (p.n === 1) continue;
    out[`best_of_${p.n}/proxy_reward`] = p.proxy_reward;
    out[`best_of_${p.n}/kl`] = p.kl;
    if (p.gold_score !== undefined) out[`best_of_${p.n}/gold_score`] = p.gold_score;
  }
  return out;
}

export interface MethodRow {
  setting: [string, string][];
  method: string;
  seeds: number;
  columns: [string, SeedSummary][];
}

/**
 * The frontier over seeds: per setting of the non-seed keys and per method,
 * mean ± sd (and 95% CI) of each METHOD_METRICS column found in the trials'
 * `eval/<method>/<metric>`. Empty unless seed is swept.
 */
export function methodAggregates(trials: readonly { status: string; params: Record<string, string>; metrics: Record<string, number> }[], keys: readonly string[]): MethodRow[] {
  if (!keys.includes('seed')) return [];
  const ok = trials.filter((t) => t.status === 'ok');
  const methodMetric = new RegExp(`^eval/(.+)/(${METHOD_METRICS.join('|')})$`);
  const methods = [...new Set(ok.flatMap((t) => Object.keys(t.metrics).map((k) => methodMetric.exec(k)?.[1]).filter((m): m is string => m !== undefined)))];
  if (!methods.some((m) => m !== 'sft')) return [];
  const others = keys.filter((k) => k !== 'seed');
  const groups = new Map<string, typeof ok>();
  for (const t of ok) {
    const id = JSON.stringify(others.map((k) => t.params[k]));
    groups.set(id, [...(groups.get(id) ?? []), t]);
  }
  const rows: MethodRow[] = [];
  for (const g of groups.values()) {
    for (const method of methods) {
      const columns = METHOD_METRICS.map((m) => `eval/${method}/${m}`)
        .filter((c) => g.every((t) => t.metrics[c] !== undefined))
        .map((c): [string, SeedSummary] => [c.split('/').pop()!, summarizeSeeds(g.map((t) => t.metrics[c]))]);
      if (columns.length) rows.push({ setting: others.map((k): [string, string] => [k, g[0].params[k]]), method, seeds: g.length, columns });
    }
  }
  return rows;
}

/** Markdown lines of the frontier table (nothing when there is no row). */
export function methodTable(rows: readonly MethodRow[]): string[] {
  if (!rows.length) return [];
  const cols = METHOD_METRICS.filter((m) => rows.some((r) => r.columns.some(([c]) => c === m)));
  const cell = (r: MethodRow, m: string) => {
    const s = r.columns.find(([c]) => c === m)?.[1];
    const digits = m === 'wall_s' ? 1 : 3;
    return s ? `${s.mean.toFixed(digits)} ± ${s.sd.toFixed(digits)}` : '';
  };
  return [
    '',
    '## Methods over seeds',
    '',
    'Each method of the run (SFT, PPO, RLOO, GRPO, DPO, best-of-n on SFT): mean ± sd over seeds, KL to the SFT policy in nats (best-of-n: log n − (n−1)/n). Chart: frontier.svg.',
    ...(cols.includes('wall_s')
      ? ['', "wall_s: wall time of the stage that produced the policy, in seconds. PPO/RLOO/GRPO exclude the shared SFT, label and reward-model stages they start from; DPO excludes SFT and label; best-of-n is the eval's loading, sampling and scoring of n responses per prompt; a resumed stage counts its last part only."]
      : []),
    '',
    `| ${[...rows[0].setting.map(([k]) => k), 'method', 'seeds', ...cols].join(' | ')} |`,
    `|${[...rows[0].setting.map(() => '---'), '---', '---:', ...cols.map(() => '---:')].join('|')}|`,
    ...rows.map((r) => `| ${[...r.setting.map(([, v]) => v), r.method, String(r.seeds), ...cols.map((m) => cell(r, m))].join(' | ')} |`),
  ];
}


/**
 * Vega-Lite spec of the frontier over seeds: per method (and setting), mean
 * gold against mean KL with ±1 sd bars in both directions; undefined when no
 * row has both.
 */
export function frontierSpec(rows: readonly MethodRow[]): object | undefined {
  const points = rows.flatMap((r) => {
    const gold = r.columns.find(([c]) => c === 'gold_score')?.[1];
    const kl = r.columns.find(([c]) => c === 'kl')?.[1];
    if (!gold || !kl) return [];
    const setting = r.setting.map(([k, v]) => `${k}=${v}`).join(' ');
    return [{ method: setting ? `${r.method} (${setting})` : r.method, kl: kl.mean, klLo: kl.mean - kl.sd, klHi: kl.mean + kl.sd, gold: gold.mean, goldLo: gold.mean - gold.sd, goldHi: gold.mean + gold.sd, seeds: r.seeds }];
  });
  if (!points.length) return undefined;
  const color = { field: 'method', type: 'nominal', legend: { title: null, orient: 'bottom' } };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    description: 'Gold score against KL to the SFT policy per method: mean over seeds with ±1 sd bars',
    width: 460,
    height: 260,
    background: 'white',
    data: { values: points },
    layer: [
      { mark: { type: 'rule', opacity: 0.6 }, encoding: { x: { field: 'klLo', type: 'quantitative', title: 'KL to the SFT policy (nats), mean ± sd over seeds', scale: { zero: true } }, x2: { field: 'klHi' }, y: { field: 'gold', type: 'quantitative' }, color } },
      { mark: { type: 'rule', opacity: 0.6 }, encoding: { x: { field: 'kl', type: 'quantitative' }, y: { field: 'goldLo', type: 'quantitative', title: 'gold score, mean ± sd over seeds', scale: { zero: false } }, y2: { field: 'goldHi' }, color } },
      { mark: { type: 'point', filled: true, size: 60 }, encoding: { x: { field: 'kl', type: 'quantitative' }, y: { field: 'gold', type: 'quantitative' }, color } },
      { mark: { type: 'text', dy: -10, fontSize: 10, color: '#57606a' }, encoding: { x: { field: 'kl', type: 'quantitative' }, y: { field: 'gold', type: 'quantitative' }, text: { field: 'method' } } },
    ],
  };
}
