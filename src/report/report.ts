import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeFileAtomic } from '../util/fs.js';
import { renderCharts, reportCharts } from './charts.js';
import { renderPage } from './html.js';
import { loadRun } from './rundir.js';
import { summarizeRun, type RunSummary } from './summary.js';

export interface ReportOptions {
  /** HTML file to write; default `<runDir>/report.html`. */
  out?: string;
  /** Eval samples shown per policy (default 4). */
  samplesPerPolicy?: number;
}

export interface ReportResult {
  out: string;
  summary: RunSummary;
  /** Ids of the charts in the page, in order. */
  charts: string[];
  bytes: number;
}

function packageVersion(): string {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
  try {
    return (JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

/** `rlhf report`: reads a run directory, renders its charts and writes the self-contained HTML page. */
export async function buildReport(runDir: string, opts: ReportOptions = {}): Promise<ReportResult> {
  const run = loadRun(runDir);
  const out = path.resolve(opts.out ?? path.join(run.dir, 'report.html'));
  const summary = summarizeRun(run);
  const charts = await renderCharts(reportCharts(run));
  const html = renderPage(run, summary, charts, {
    samplesPerPolicy: opts.samplesPerPolicy ?? 4,
    generatedAt: new Date(),
    version: packageVersion(),
  });
  fs.mkdirSync(path.dirname(out), { recursive: true });
  writeFileAtomic(out, html);
  summary.report = out;
  return { out, summary, charts: charts.map((c) => c.id), bytes: Buffer.byteLength(html) };
}
