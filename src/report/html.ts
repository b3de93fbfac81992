import { finalValues, policyLabel, type EvalResult, type EvalSample, type RunData, type StageData } from './rundir.js';
import type { RenderedChart } from './charts.js';
import { fmt, fmtDuration, type RunSummary } from './summary.js';

/**
 * The report page: one self-contained HTML document. Charts are inline SVG,
 * styles are inline, there is no script at all, and a Content-Security-Policy
 * forbids every fetch, so the file opens the same offline, from an e-mail or a
 * CI artifact store. All text from the run directory goes through `esc`.
 */

/** Escapes text for HTML element content and double- or single-quoted attribute values. */
export function esc(value: unknown): string {
  return String(value).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string);
}

export interface PageOptions {
  /** Eval samples shown per policy. */
  samplesPerPolicy: number;
  generatedAt: Date;
  version: string;
}

const CSS = `
:root { color-scheme: light; --fg: #1f2328; --muted: #59636e; --line: #d0d7de; --bg2: #f6f8fa; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: #fff; }
main { max-width: 1240px; margin: 0 auto; padding: 24px; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 0 0 12px; display: flex; align-items: center; gap: 10px; }
h3 { font-size: 15px; margin: 18px 0 8px; }
code, pre, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12.5px; }
.muted { color: var(--muted); }
nav { margin: 12px 0 20px; display: flex; flex-wrap: wrap; gap: 6px; }
nav a { text-decoration: none; border: 1px solid var(--line); border-radius: 999px; padding: 2px 10px; color: var(--fg); font-size: 13px; }
section { border-top: 1px solid var(--line); padding: 20px 0 8px; }
.status { font-size: 12px; font-weight: 600; border-radius: 999px; padding: 1px 9px; border: 1px solid; }
.status.completed { color: #1a7f37; border-color: #4ac26b; background: #dafbe1; }
.status.running, .status.interrupted { color: #9a6700; border-color: #d4a72c; background: #fff8c5; }
.status.failed { color: #cf222e; border-color: #ff8182; background: #ffebe9; }
.status.unknown { color: var(--muted); border-color: var(--line); background: var(--bg2); }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(430px, 1fr)); gap: 14px; margin: 8px 0 12px; }
figure.chart { margin: 0; border: 1px solid var(--line); border-radius: 8px; padding: 10px; background: #fff; overflow-x: auto; }
figure.chart figcaption { font-size: 12.5px; color: var(--muted); margin-bottom: 6px; }
figure.chart figcaption strong { color: var(--fg); font-size: 14px; display: block; }
figure.chart svg { display: block; max-width: 100%; height: auto; }
table { border-collapse: collapse; margin: 6px 0 12px; font-size: 13px; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 10px 4px 0; text-align: left; vertical-align: top; }
th { font-weight: 600; color: var(--muted); }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; padding-left: 12px; }
td.text { white-space: pre-wrap; word-break: break-word; font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12.5px; max-width: 520px; }
dl.manifest { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 6px 0 12px; font-size: 13px; }
dl.manifest dt { color: var(--muted); }
dl.manifest dd { margin: 0; word-break: break-all; }
details { margin: 6px 0; }
summary { cursor: pointer; color: var(--muted); font-weight: 600; }
pre { background: var(--bg2); border: 1px solid var(--line); border-radius: 6px; padding: 10px; overflow: auto; max-height: 480px; }
.error { color: #cf222e; white-space: pre-wrap; }
footer { color: var(--muted); font-size: 12px; border-top: 1px solid var(--line); padding: 14px 0; }
`;

function statusBadge(status: string): string {
  const cls = ['completed', 'running', 'interrupted', 'failed'].includes(status) ? status : 'unknown';
  return `<span class="status ${cls}">${esc(status)}</span>`;
}

function anchor(stageId: string): string {
  return `stage-${stageId.replace(/[^A-Za-z0-9_-]+/g, '-')}`;
}

function num(v: unknown): string {
  return typeof v === 'number' ? esc(fmt(v)) : '-';
}

function chartFigure(c: RenderedChart): string {
  // The SVG comes from Vega's renderer, which escapes the text it draws.
  return `<figure class="chart" id="${esc(c.id)}"><figcaption><strong>${esc(c.title)}</strong>${c.caption ? esc(c.caption) : ''}</figcaption>${c.svg}</figure>`;
}

function summaryTable(summary: RunSummary): string {
  const rows = summary.stages
    .map(
      (s) =>
        `<tr><td><a href="#${esc(anchor(s.stage))}">${esc(s.stage)}</a></td><td>${statusBadge(s.status)}</td><td class="num">${esc(fmtDuration(s.wall_time_s))}</td>` +
        `<td class="num">${s.last_step ?? '-'}</td><td>${Object.entries(s.metrics)
          .map(([k, v]) => `<span class="mono">${esc(k)}</span> ${esc(fmt(v))}`)
          .join(' · ')}${s.error ? ` <span class="error">${esc(s.error.split('\n')[0])}</span>` : ''}</td></tr>`,
    )
    .join('\n');
  return `<table><thead><tr><th>stage</th><th>status</th><th class="num">wall time</th><th class="num">last step</th><th>final metrics</th></tr></thead><tbody>\n${rows}\n</tbody></table>`;
}

function manifestBlock(run: RunData, stage: StageData): string {
  const m = stage.manifest;
  if (!m) return '<p class="muted">No manifest.json (the stage did not start properly, or it was removed).</p>';
  const items: [string, string][] = [
    ['status', statusBadge(m.status)],
    ['wall time', esc(fmtDuration(typeof m.wall_time_s === 'number' ? m.wall_time_s : null))],
    ['started', esc(m.started_at ?? '-')],
    ['finished', esc(m.finished_at ?? '-')],
    ['seed', esc(m.seed)],
    ['backend', esc(m.backend)],
    ['versions', Object.entries(m.versions ?? {}).map(([k, v]) => `${esc(k)} <span class="mono">${esc(v)}</span>`).join(', ') || '-'],
    ['git commit', m.git_commit ? `<span class="mono">${esc(m.git_commit)}</span>` : '-'],
  ];
  if (m.resumed_from_step !== undefined) items.push(['resumed from step', esc(m.resumed_from_step)]);
  // config.yaml shows the settings the run started with; these replaced some of them on a resume.
  if (m.config_changes?.length) {
    items.push(['changed on resume', m.config_changes.map((c) => `<span class="mono">${esc(c.key)}</span>: ${esc(JSON.stringify(c.from))} → ${esc(JSON.stringify(c.to))} from step ${esc(c.at_step)}`).join('<br>')]);
  }
  const hash = (h: { path: string; sha256: string }) =>
    `<span class="mono">${esc(policyLabel(h.path, run.root))}</span> <span class="mono muted" title="${esc(h.sha256)}">sha256 ${esc(h.sha256.slice(0, 12))}…</span>`;
  if (m.parents?.length) items.push(['parents', m.parents.map(hash).join('<br>')]);
  if (m.final) items.push(['final checkpoint', hash(m.final)]);
  if (stage.tensorboardFiles > 0) items.push(['TensorBoard', `${stage.tensorboardFiles} event file(s) in <span class="mono">${esc(stage.id)}/tensorboard/</span>`]);
  if (stage.badMetricLines > 0) items.push(['metrics.jsonl', `${stage.badMetricLines} unreadable line(s) skipped`]);
  if (m.error) items.push(['error', `<span class="error">${esc(m.error)}</span>`]);
  return `<dl class="manifest">${items.map(([k, v]) => `<dt>${esc(k)}</dt><dd>${v}</dd>`).join('')}</dl>`;
}

function finalMetricsTable(stage: StageData): string {
  const finals = finalValues(stage.metrics);
  const entries = Object.entries(finals);
  if (entries.length === 0) return '';
  const rows = entries.map(([k, v]) => `<tr><td class="mono">${esc(k)}</td><td class="num">${esc(fmt(v))}</td></tr>`).join('');
  return `<details><summary>Final value of every metric (${entries.length}) at step ${stage.metrics[stage.metrics.length - 1].step}</summary><table><thead><tr><th>metric</th><th class="num">value</th></tr></thead><tbody>${rows}</tbody></table></details>`;
}

function resultsTable(run: RunData, stage: StageData): string {
  if (!stage.results?.length) return '';
  const cols: [string, string][] = [
    ['proxy_reward', 'proxy reward'],
    ['gold_score', 'gold score'],
    ['kl', 'KL'],
    ['response_length', 'length'],
    ['distinct_1', 'distinct-1'],
    ['distinct_2', 'distinct-2'],
  ];
  const wall = (r: EvalResult) => `<td class="num">${esc(fmtDuration(r.wall_s ?? null))}</td>`;
  const rows = stage.results
    .map((r) => `<tr><td class="mono">${esc(policyLabel(r.policy, run.root))}</td>${cols.map(([k]) => `<td class="num">${num((r as unknown as Record<string, unknown>)[k])}</td>`).join('')}${wall(r)}</tr>`)
    .join('\n');
  return `<h3>Policies</h3><table><thead><tr><th>policy</th>${cols.map(([, t]) => `<th class="num">${esc(t)}</th>`).join('')}<th class="num" title="wall time of the stage that produced the policy">wall time</th></tr></thead><tbody>\n${rows}\n</tbody></table>`;
}

/** Up to `n` samples, one per prompt before a second for any (several samples per prompt are common). */
function spreadOverPrompts(samples: EvalSample[], n: number): EvalSample[] {
  const byPrompt = new Map<string, EvalSample[]>();
  for (const s of samples) byPrompt.set(s.prompt, [...(byPrompt.get(s.prompt) ?? []), s]);
  const groups = [...byPrompt.values()];
  const out: EvalSample[] = [];
  for (let i = 0; out.length < n && groups.some((g) => g.length > i); i++) {
    for (const g of groups) if (g.length > i && out.length < n) out.push(g[i]);
  }
  return out;
}

function samplesTables(run: RunData, samples: EvalSample[], perPolicy: number): string {
  if (samples.length === 0 || perPolicy <= 0) return '';
  const byPolicy = new Map<string, EvalSample[]>();
  for (const s of samples) byPolicy.set(s.policy, [...(byPolicy.get(s.policy) ?? []), s]);
  const blocks = [...byPolicy].map(([policy, all]) => {
    const list = spreadOverPrompts(all, perPolicy);
    const rows = list
      .map((s) => `<tr><td class="text">${esc(s.prompt ?? '')}</td><td class="text">${esc(s.response ?? '')}</td><td class="num">${num(s.proxy_reward)}</td><td class="num">${num(s.gold_score)}</td></tr>`)
      .join('\n');
    return (
      `<h3>Samples: <span class="mono">${esc(policyLabel(policy, run.root))}</span> <span class="muted">(${list.length} of ${all.length})</span></h3>` +
      `<table class="samples"><thead><tr><th>prompt</th><th>response</th><th class="num">proxy</th><th class="num">gold</th></tr></thead><tbody>\n${rows}\n</tbody></table>`
    );
  });
  return blocks.join('\n');
}

function stageSection(run: RunData, stage: StageData, charts: RenderedChart[], opts: PageOptions): string {
  const parts = [
    `<section class="stage" id="${esc(anchor(stage.id))}">`,
    `<h2>${esc(stage.id)} ${statusBadge(stage.manifest?.status ?? 'unknown')}</h2>`,
  ];
  if (charts.length) parts.push(`<div class="charts">${charts.map(chartFigure).join('\n')}</div>`);
  else if (stage.kind !== 'eval') parts.push(`<p class="muted">${stage.metrics.length ? 'No charted metrics for this stage.' : 'No metrics logged yet.'}</p>`);
  parts.push(resultsTable(run, stage));
  if (stage.samples) parts.push(samplesTables(run, stage.samples, opts.samplesPerPolicy));
  parts.push('<h3>Manifest</h3>', manifestBlock(run, stage), finalMetricsTable(stage));
  if (stage.configText !== undefined) parts.push(`<details><summary>Resolved config (config.yaml)</summary><pre>${esc(stage.configText)}</pre></details>`);
  parts.push('</section>');
  return parts.filter(Boolean).join('\n');
}

export function renderPage(run: RunData, summary: RunSummary, charts: RenderedChart[], opts: PageOptions): string {
  const byStage = new Map<string, RenderedChart[]>();
  for (const c of charts) byStage.set(c.stage, [...(byStage.get(c.stage) ?? []), c]);
  const nav = run.stages.map((s) => `<a href="#${esc(anchor(s.id))}">${esc(s.id)}</a>`).join('');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="rlhf-lab ${esc(opts.version)}">
<title>${esc(`RLHF report: ${run.name}`)}</title>
<style>${CSS}</style>
</head>
<body>
<main>
<header>
<h1>RLHF run <code>${esc(run.name)}</code></h1>
<div class="muted"><span class="mono">${esc(run.dir)}</span> · ${run.stages.length} stage(s) · ${charts.length} chart(s) · generated ${esc(opts.generatedAt.toISOString())} by rlhf-lab ${esc(opts.version)}</div>
</header>
<nav>${nav}</nav>
<section id="summary">
<h2>Summary</h2>
${summaryTable(summary)}
</section>
${run.stages.map((s) => stageSection(run, s, byStage.get(s.id) ?? [], opts)).join('\n')}
<footer>Charts: Vega-Lite specifications rendered to SVG when this report was built. Metric names follow TRL where one exists.</footer>
</main>
</body>
</html>
`;
}
