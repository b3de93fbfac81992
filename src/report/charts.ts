import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import { fittedGain } from '../overoptimization/fit.js';
import type { OveroptimizationReport } from '../overoptimization/curves.js';
import { policyLabel, type EvalResult, type MetricRow, type RunData, type StageData } from './rundir.js';

/**
 * The report's charts: Vega-Lite specifications built from a run's metrics and
 * evaluation results, compiled to Vega and rendered to static SVG in Node at
 * report time (`View.toSVG()` with the headless `none` renderer), so the page
 * needs no script and no network to show them.
 */

export interface Chart {
  /** Unique within the report; also the prefix of the SVG's internal ids. */
  id: string;
  /** Stage id the chart belongs to (`ppo`, `round-2/ppo`, ...). */
  stage: string;
  title: string;
  caption?: string;
  spec: TopLevelSpec;
}

export interface RenderedChart extends Omit<Chart, 'spec'> {
  svg: string;
}

/** A panel of one stage kind: metrics (metrics.jsonl keys) drawn as lines against the step. */
interface Panel {
  title: string;
  y: string;
  metrics: string[];
  caption?: string;
}

const LOSS_CAPTION = 'Training loss at every logged step; held-out loss where it was evaluated (points).';

/** Which metrics each stage kind charts; a panel is drawn when at least one of its metrics was logged. */
export const PANELS: Record<string, Panel[]> = {
  pretrain: [
    { title: 'Loss', y: 'cross-entropy (nats/token)', metrics: ['loss', 'val_loss'], caption: LOSS_CAPTION },
    { title: 'Gradient norm', y: 'global L2 norm', metrics: ['grad_norm'] },
  ],
  sft: [
    { title: 'Loss', y: 'cross-entropy (nats/token)', metrics: ['loss', 'eval_loss', 'val_loss'], caption: LOSS_CAPTION },
    { title: 'Token accuracy', y: 'held-out next-token accuracy', metrics: ['mean_token_accuracy'] },
  ],
  label: [
    { title: 'Labels vs gold', y: 'agreement', metrics: ['pair_agreement', 'ranking_agreement'], caption: 'How often the recorded preferences agree with the gold scorer (pairs, whole rankings).' },
    { title: 'Gold score of sampled responses', y: 'gold score', metrics: ['gold_score_mean', 'gold_score_chosen'] },
  ],
  'train-reward': [
    { title: 'Loss', y: 'Bradley–Terry loss', metrics: ['loss', 'eval_loss'], caption: LOSS_CAPTION },
    { title: 'Reward-model accuracy', y: 'held-out pairs ranked right', metrics: ['eval_accuracy', 'eval_gold_accuracy'], caption: 'eval_accuracy: against the recorded labels; eval_gold_accuracy: against the gold scorer, on pairs it strictly orders.' },
    { title: 'Reward margin', y: 'mean r(chosen) − r(rejected)', metrics: ['eval_margin'] },
  ],
  ppo: [
    { title: 'Reward', y: 'mean per episode', metrics: ['objective/scores', 'objective/rlhf_reward', 'gold/score'], caption: 'objective/scores: the reward model (proxy); objective/rlhf_reward: score minus the KL penalty; gold/score: the gold scorer.' },
    { title: 'KL to the reference policy', y: 'nats per response', metrics: ['objective/kl'] },
    { title: 'Policy update', y: 'per PPO update', metrics: ['policy/approxkl_avg', 'policy/clipfrac_avg'] },
    { title: 'PPO losses', y: 'loss', metrics: ['loss/policy_avg', 'loss/value_avg'] },
  ],
};

/** RLOO and GRPO log PPO's names; they have no value loss (GRPO logs its KL term instead). */
const GROUP_RL_PANELS: Panel[] = [
  ...PANELS.ppo.slice(0, 3),
  { title: 'Losses', y: 'loss', metrics: ['loss/policy_avg', 'loss/kl_avg'], caption: 'loss/kl_avg (GRPO): the k3 KL term, per token, before its β.' },
];
PANELS.rloo = GROUP_RL_PANELS;
PANELS.grpo = GROUP_RL_PANELS;
PANELS.dpo = [
  { title: 'Loss', y: 'DPO loss', metrics: ['loss', 'eval_loss'], caption: `${LOSS_CAPTION} log 2 ≈ 0.693 at the start (policy = reference).` },
  { title: 'Implicit rewards', y: 'β·(log π − log π_ref)', metrics: ['rewards/chosen', 'rewards/rejected', 'eval_rewards/chosen', 'eval_rewards/rejected'], caption: "TRL's DPO rewards: the policy's log-ratio to the reference, summed over the response, times β." },
  { title: 'Preference accuracy', y: 'pairs with r(chosen) > r(rejected)', metrics: ['rewards/accuracies', 'eval_rewards/accuracies'] },
];

/** Stage kinds whose iterations log objective/kl and objective/scores (PPO and the value-free methods on its machinery). */
const RL_KINDS = ['ppo', 'rloo', 'grpo'];

const X_TITLE: Record<string, string> = { ppo: 'PPO iteration', rloo: 'RLOO iteration', grpo: 'GRPO iteration', label: 'prompts labeled', eval: 'policy' };

/** At most this many points per series; longer series are thinned evenly (keeping the last point). */
const MAX_POINTS = 1000;
/** Series with at most this many points also get point marks (sparse eval metrics, short runs). */
const POINT_MARK_LIMIT = 40;

const WIDTH = 460;
const HEIGHT = 180;

const CONFIG = {
  font: 'system-ui, -apple-system, "Segoe UI", Roboto, sans-serif',
  background: 'white',
  view: { stroke: '#d0d7de' },
  axis: { labelFontSize: 10, titleFontSize: 11, titleFontWeight: 'normal' as const, gridColor: '#eef1f4' },
  legend: { orient: 'bottom' as const, direction: 'horizontal' as const, labelFontSize: 10, labelLimit: 260, title: null },
};

function finite(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v);
}

function thin<T>(xs: T[], max: number): T[] {
  if (xs.length <= max) return xs;
  const stride = xs.length / max;
  const out: T[] = [];
  for (let i = 0; i < max - 1; i++) out.push(xs[Math.floor(i * stride)]);
  out.push(xs[xs.length - 1]);
  return out;
}

interface Point {
  step: number;
  value: number;
  series: string;
  sparse: boolean;
}

function seriesPoints(rows: readonly MetricRow[], metrics: readonly string[]): Point[] {
  const out: Point[] = [];
  for (const metric of metrics) {
    const pts = thin(
      rows.filter((r) => finite(r[metric])).map((r) => ({ step: r.step, value: r[metric] as number })),
      MAX_POINTS,
    );
    const sparse = pts.length <= POINT_MARK_LIMIT;
    for (const p of pts) out.push({ ...p, series: metric, sparse });
  }
  return out;
}

/** A domain around the value when every point has the same one (else Vega draws a degenerate axis). */
function constantDomain(points: readonly { value: number }[]): { domain?: [number, number] } {
  if (points.length === 0 || points.some((p) => p.value !== points[0].value)) return {};
  const v = points[0].value;
  const half = v === 0 ? 1 : Math.abs(v) * 0.1;
  return { domain: [v - half, v + half] };
}

/** A layered chart of `points` with one colour per series (in `order`); x and y encodings and layers vary. */
function seriesChart(points: readonly object[], order: string[], description: string, x: object, y: object, layer: unknown[]): TopLevelSpec {
  return {
    description,
    width: WIDTH,
    height: HEIGHT,
    config: CONFIG,
    data: { values: points },
    encoding: { x, y, color: { field: 'series', type: 'nominal', sort: order, legend: { title: null } } },
    layer,
  } as TopLevelSpec;
}

function lineSpec(points: Point[], order: string[], xTitle: string, yTitle: string, description: string): TopLevelSpec {
  return seriesChart(
    points,
    order,
    description,
    { field: 'step', type: 'quantitative', title: xTitle, axis: { tickMinStep: 1 } },
    { field: 'value', type: 'quantitative', title: yTitle, scale: { zero: false, ...constantDomain(points) } },
    [
      { mark: { type: 'line', strokeWidth: 1.6, interpolate: 'linear' } },
      { transform: [{ filter: 'datum.sparse' }], mark: { type: 'point', filled: true, size: 28 } },
    ],
  );
}

/** x = KL, y = proxy and gold reward: the reward over-optimisation picture (Gao et al. 2022). */
function rewardVsKlSpec(points: { kl: number; value: number; series: string; label?: string }[], order: string[], description: string, perPolicy: boolean): TopLevelSpec {
  // Policies (eval: SFT, each method's final, best-of-n) are labelled points — different methods, not one path; iterations are a cloud of points.
  const layers: unknown[] = [{ mark: { type: 'point', filled: true, size: perPolicy ? 44 : 26, opacity: perPolicy ? 1 : 0.7 } }];
  if (perPolicy) {
    layers.push({
      transform: [{ filter: `datum.series === ${JSON.stringify(order[order.length - 1])}` }],
      mark: { type: 'text', dy: -10, fontSize: 10, limit: 160, color: '#57606a' },
      encoding: { text: { field: 'label', type: 'nominal' }, color: { value: '#57606a' } },
    });
  }
  return seriesChart(
    points,
    order,
    description,
    { field: 'kl', type: 'quantitative', title: 'KL to the reference policy (nats)', scale: { zero: true, nice: true } },
    { field: 'value', type: 'quantitative', title: 'reward', scale: { zero: false } },
    layers,
  );
}

function chartId(stage: string, title: string): string {
  return `c-${stage}-${title}`.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/-+$/, '');
}

function stageCharts(run: RunData, stage: StageData): Chart[] {
  const charts: Chart[] = [];
  const xTitle = X_TITLE[stage.kind] ?? 'step';
  for (const panel of PANELS[stage.kind] ?? []) {
    const present = panel.metrics.filter((m) => stage.metrics.some((r) => finite(r[m])));
    if (present.length === 0) continue;
    charts.push({
      id: chartId(stage.id, panel.title),
      stage: stage.id,
      title: panel.title,
      caption: panel.caption,
      spec: lineSpec(seriesPoints(stage.metrics, present), present, xTitle, panel.y, `${stage.id}: ${panel.title} (${present.join(', ')}) by ${xTitle}`),
    });
  }
  if (RL_KINDS.includes(stage.kind)) {
    const rows = stage.metrics.filter((r) => finite(r['objective/kl']));
    const series = ['objective/scores', 'gold/score'].filter((m) => rows.some((r) => finite(r[m])));
    if (rows.length > 0 && series.length > 0) {
      const points = series.flatMap((m) => rows.filter((r) => finite(r[m])).map((r) => ({ kl: r['objective/kl'] as number, value: r[m] as number, series: m })));
      charts.push({
        id: chartId(stage.id, 'reward vs kl'),
        stage: stage.id,
        title: 'Proxy and gold reward vs KL',
        caption: 'Each point is one iteration. A proxy reward that keeps rising while the gold score flattens or falls is reward over-optimisation.',
        spec: rewardVsKlSpec(thin(points, MAX_POINTS * 2), series, `${stage.id}: proxy and gold reward against KL, one point per iteration`, false),
      });
    }
  }
  if (stage.kind === 'eval' && stage.results?.length) charts.push(...evalCharts(run, stage, stage.results));
  const over = stage.kind === 'eval' && stage.overoptimization ? overoptimizationChart(stage, stage.overoptimization) : undefined;
  if (over) charts.push(over);
  return charts;
}

/**
 * Gao et al.'s picture: gold and proxy gain over the starting policy against
 * d = √KL, for best-of-n on the SFT policy and for PPO's iterations, with the
 * fitted gold curves R_bon(d) = d(α − βd) and R_RL(d) = d(α − β log d).
 */
function overoptimizationChart(stage: StageData, over: OveroptimizationReport): Chart | undefined {
  const bonBase = over.best_of_n.find((p) => p.n === 1);
  const rlBase = over.rl[0];
  const points: { d: number; value: number; series: string; kind: 'point' | 'fit' }[] = [];
  if (bonBase) {
    for (const p of over.best_of_n) {
      points.push({ d: p.d, value: p.proxy_reward - bonBase.proxy_reward, series: 'best-of-n proxy', kind: 'point' });
      if (finite(p.gold_score) && finite(bonBase.gold_score)) points.push({ d: p.d, value: p.gold_score - bonBase.gold_score, series: 'best-of-n gold', kind: 'point' });
    }
  }
  if (rlBase) {
    for (const p of thin(over.rl, MAX_POINTS)) {
      points.push({ d: p.d, value: p.proxy_reward - rlBase.proxy_reward, series: 'PPO proxy', kind: 'point' });
      points.push({ d: p.d, value: p.gold_score - rlBase.gold_score, series: 'PPO gold', kind: 'point' });
    }
  }
  const captions: string[] = [];
  for (const [name, fit, pts] of [['best-of-n', over.fits.bon, over.best_of_n], ['PPO', over.fits.rl, over.rl]] as const) {
    if (!fit || pts.length === 0) continue;
    const maxD = Math.max(...pts.map((p) => p.d), fit.peak_d ?? 0);
    for (let i = 0; i <= 40; i++) points.push({ d: (maxD * i) / 40, value: fittedGain(fit, (maxD * i) / 40), series: `${name} gold fit`, kind: 'fit' });
    captions.push(`${name}: α ${fit.alpha.toFixed(3)}, β ${fit.beta.toFixed(3)}, ${fit.peak_d === null ? 'no peak yet' : `gold peaks at d ${fit.peak_d.toFixed(2)} (KL ${(fit.peak_d ** 2).toFixed(2)} nats)`}`);
  }
  if (points.length === 0) return undefined;
  const order = ['best-of-n gold', 'best-of-n gold fit', 'best-of-n proxy', 'PPO gold', 'PPO gold fit', 'PPO proxy'].filter((x) => points.some((p) => p.series === x));
  return {
    id: chartId(stage.id, 'overoptimization'),
    stage: stage.id,
    title: 'Over-optimisation: gain vs √KL (Gao et al. 2022)',
    caption: `Gain over the starting policy; points measured, lines fitted to gold. ${captions.join('; ')}.`,
    spec: seriesChart(
      points,
      order,
      `${stage.id}: gold and proxy gain against the square root of KL, best-of-n and PPO, with fitted gold curves`,
      { field: 'd', type: 'quantitative', title: 'd = √KL (√nats)', scale: { zero: true, nice: true } },
      { field: 'value', type: 'quantitative', title: 'gain over the starting policy', scale: { zero: false } },
      [
        { transform: [{ filter: "datum.kind === 'point'" }], mark: { type: 'point', filled: true, size: 30, opacity: 0.8 } },
        { transform: [{ filter: "datum.kind === 'fit'" }], mark: { type: 'line', strokeWidth: 1.6, strokeDash: [5, 3] } },
      ],
    ),
  };
}

function evalCharts(run: RunData, stage: StageData, results: EvalResult[]): Chart[] {
  const rows = results.filter((r) => finite(r.kl));
  const series = (['proxy_reward', 'gold_score'] as const).filter((m) => rows.some((r) => finite(r[m])));
  if (rows.length === 0 || series.length === 0) return [];
  const points = series.flatMap((m) =>
    rows.filter((r) => finite(r[m])).map((r) => ({ kl: r.kl, value: r[m] as number, series: m, label: policyLabel(r.policy, run.root).replace(/\/final$/, '') })),
  );
  // best-of-n on the SFT policy, at its analytic KL log n − (n−1)/n
  for (const p of stage.overoptimization?.best_of_n ?? []) {
    if (p.n === 1) continue;
    for (const m of series) if (finite(p[m])) points.push({ kl: p.kl, value: p[m], series: m, label: `best-of-${p.n}` });
  }
  return [
    {
      id: chartId(stage.id, 'gold vs proxy vs kl'),
      stage: stage.id,
      title: 'Gold vs proxy reward vs KL',
      caption: 'One point per evaluated policy (SFT, PPO, RLOO, GRPO, DPO as run) and per best-of-n on the SFT policy: the methods side by side on the gold-vs-KL frontier. The gap between the proxy (reward model) and the gold score as the policy moves away from the reference is reward over-optimisation.',
      spec: rewardVsKlSpec(points, [...series], `${stage.id}: proxy reward and gold score of each policy against its KL to the reference`, true),
    },
  ];
}

/** Every chart of the report, in stage order. */
export function reportCharts(run: RunData): Chart[] {
  return run.stages.flatMap((s) => stageCharts(run, s));
}

/**
 * Vega's SVG uses document-wide ids (clip paths, gradients); with many charts
 * inlined in one page they would collide, so each chart's ids get its prefix.
 */
function scopeIds(svg: string, prefix: string): string {
  return svg.replace(/\bid="([^"]+)"/g, `id="${prefix}-$1"`).replace(/url\(#([^)]+)\)/g, `url(#${prefix}-$1)`).replace(/(xlink:)?href="#([^"]+)"/g, (_m, x: string | undefined, id: string) => `${x ?? ''}href="#${prefix}-${id}"`);
}

/** Compiles a Vega-Lite spec and renders it to an SVG string, headless. */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const compiled = compile(spec).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

export async function renderCharts(charts: readonly Chart[]): Promise<RenderedChart[]> {
  const out: RenderedChart[] = [];
  for (const { spec, ...chart } of charts) out.push({ ...chart, svg: scopeIds(await renderSvg(spec), chart.id) });
  return out;
}
