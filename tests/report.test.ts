import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium, type Browser } from 'playwright-core';
import { stringify } from 'yaml';
import { main } from '../src/cli/main.js';
import { loadConfig } from '../src/config/load.js';
import { summaryText, useColor, type RunSummary } from '../src/report/summary.js';
import { runPretrain } from '../src/stages/pretrain.js';
import { readJsonl, tinyPretrainConfig, writeConfig } from './helpers.js';

/**
 * `rlhf report` on a synthesized run directory (every stage kind, an iterated-RLHF
 * round, a failed stage, hostile text), opened in headless Chromium; and
 * TensorBoard event files written by a real (tiny) training stage.
 */

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

// Text that must come out as text, never as markup.
const HOSTILE = `</td></table><script>document.title='pwned'</script><img src=x onerror="document.title='pwned'"> & "quotes" 'single'`;
// The same without "/", for a policy directory name (it becomes a label inside an SVG chart).
const HOSTILE_NAME = `<img src=x onerror="document.title='pwned'"> & "quotes" <b>`;

// ---------------------------------------------------------------- fixture

function write(file: string, text: string): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, text);
}

const jsonl = (rows: object[]) => rows.map((r) => JSON.stringify(r)).join('\n') + '\n';
const range = (n: number) => Array.from({ length: n }, (_, i) => i + 1);

function manifest(stage: string, status: string, wall: number, summary: Record<string, unknown>, extra: Record<string, unknown> = {}) {
  return JSON.stringify({
    stage,
    status,
    started_at: '2026-01-01T10:00:00.000Z',
    ...(status === 'running' ? {} : { finished_at: '2026-01-01T10:01:00.000Z', wall_time_s: wall }),
    seed: 5,
    versions: { 'rlhf-lab': '0.1.0', node: 'v20.20.2', tfjs: '4.22.0' },
    git_commit: '0123456789abcdef0123456789abcdef01234567',
    backend: 'tensorflow',
    parents: [{ path: '/elsewhere/sft/final', sha256: 'ab'.repeat(32) }],
    summary,
    ...extra,
  });
}

function stage(root: string, id: string, m: string, metrics: object[], config = `name: fixture\nseed: 5\n`): void {
  write(path.join(root, id, 'manifest.json'), m);
  write(path.join(root, id, 'metrics.jsonl'), jsonl(metrics));
  write(path.join(root, id, 'config.yaml'), config);
  write(path.join(root, id, 'log.jsonl'), '');
}

const pretrainRows = range(30).map((i) => ({ step: i * 10, loss: 3 / (1 + i / 5), lr: 1e-3, grad_norm: 1 + Math.sin(i), tokens_per_s: 9000, ...(i % 10 === 0 ? { val_loss: 3.1 / (1 + i / 5) } : {}) }));
const sftRows = range(10).map((i) => ({ step: i * 5, loss: 1 / i, lr: 1e-4, grad_norm: 0.5, tokens_per_s: 5000, ...(i % 5 === 0 ? { eval_loss: 1.1 / i, mean_token_accuracy: 0.8 + i / 100 } : {}) }));
const labelRows = range(6).map((i) => ({ step: i * 32, gold_score_mean: 0.5, gold_score_chosen: 0.8, pair_agreement: 0.9, ranking_agreement: 0.6, labeled: i * 32, skipped: 0 }));
const rmRows = range(8).map((i) => ({ step: i * 25, loss: 0.7 - i / 100, lr: 3e-4, grad_norm: 2, ...(i % 4 === 0 ? { eval_loss: 0.69 - i / 100, eval_accuracy: 0.6 + i / 50, eval_margin: i / 10, eval_gold_accuracy: 0.7 + i / 50 } : {}) }));
const ppoRows = (n: number) =>
  range(n).map((i) => ({
    step: i,
    'objective/kl': i / 10,
    'objective/entropy': 2,
    'objective/rlhf_reward': i / 20 - 0.01 * i,
    'objective/scores': i / 20,
    'gold/score': 0.5 + Math.min(i, 10) / 50 - Math.max(0, i - 10) / 40,
    'policy/approxkl_avg': 0.01,
    'policy/clipfrac_avg': 0.1,
    'loss/policy_avg': -0.01,
    'loss/value_avg': 1 / i,
    'val/ratio': 1,
    episode: i * 32,
  }));

/** A run directory as the stages write it: 9 stages, 25 charts. */
function makeRunDir(): string {
  const root = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'rlhf-report-')), 'runs', 'fixture');
  stage(root, 'pretrain', manifest('pretrain', 'completed', 95.5, { steps: 300, loss: 0.55, val_loss: 0.6 }), pretrainRows);
  stage(root, 'sft', manifest('sft', 'completed', 12, { steps: 50 }), sftRows, `name: fixture\nnote: "${HOSTILE}"\n`);
  stage(root, 'label', manifest('label', 'completed', 7.5, { pairs: 9000, pair_agreement: 0.91, gold_score_mean: 0.51 }), labelRows);
  stage(root, 'train-reward', manifest('train-reward', 'completed', 16, {}), rmRows);
  stage(root, 'ppo', manifest('ppo', 'completed', 61, {}), ppoRows(30));
  // A torn last line, as a crash mid-write leaves it: skipped, noted in the page.
  fs.appendFileSync(path.join(root, 'ppo', 'metrics.jsonl'), '{"step":31,"objective/kl":');
  stage(root, 'round-2/label', manifest('label', 'completed', 2, { pairs: 900 }), labelRows.slice(0, 2));
  stage(root, 'round-2/train-reward', manifest('train-reward', 'completed', 3, {}), rmRows.slice(0, 4));
  stage(root, 'round-2/ppo', manifest('ppo', 'failed', 4, {}, { error: `CUDA? no: ${HOSTILE}` }), ppoRows(3));
  const policies = [path.join(root, 'sft', 'final'), path.join(root, 'ppo', 'final'), `/elsewhere/${HOSTILE_NAME}/final`];
  const results = policies.map((policy, i) => ({ policy, proxy_reward: 0.1 + i, gold_score: [0.5, 0.62, 0.4][i], kl: [0, 1.1, 3][i], response_length: 12, distinct_1: 0.3, distinct_2: 0.5 }));
  const samples = policies.flatMap((policy) => range(6).map((j) => ({ policy, prompt: `prompt ${j % 3}: `, response: j === 1 ? HOSTILE : `response ${j}`, proxy_reward: j / 10, gold_score: 1 - j / 10 })));
  stage(root, 'eval', manifest('eval', 'completed', 3.2, { policies: results }), results.map(({ policy, ...r }, i) => ({ step: i, ...r })));
  write(path.join(root, 'eval', 'results.json'), JSON.stringify(results, null, 2));
  write(path.join(root, 'eval', 'samples.jsonl'), jsonl(samples));
  return root;
}

// pretrain: loss, grad norm; sft: loss, token accuracy; label: agreement, gold score;
// train-reward: loss, accuracy, margin; ppo: reward, KL, policy update, losses, reward vs KL;
// the same again for round 2; eval: gold vs proxy vs KL.
const EXPECTED_CHARTS = 2 + 2 + 2 + 3 + 5 + (2 + 3 + 5) + 1;

// ---------------------------------------------------------------- CLI in-process

async function rlhf(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const log = vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => {
    stdout += a.join(' ') + '\n';
  });
  const err = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stderr += String(chunk);
    return true;
  });
  try {
    return { code: await main(['node', 'rlhf', ...args]), stdout, stderr };
  } finally {
    log.mockRestore();
    err.mockRestore();
  }
}

// ---------------------------------------------------------------- tests

describe('rlhf report', () => {
  let runDir: string;
  let browser: Browser;

  beforeAll(async () => {
    runDir = makeRunDir();
    if (!fs.existsSync(CHROMIUM)) {
      throw new Error(
        `headless Chromium not found at ${CHROMIUM}: run "npm run setup" (as root it installs Debian's chromium with apt-get), ` +
          'or "apt-get install -y chromium", or set CHROMIUM_PATH to a Chromium/Chrome binary',
      );
    }
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 60_000 });
  }, 90_000);

  afterAll(async () => {
    await browser?.close();
  });

  it('writes one self-contained page that renders in headless Chromium with every chart and no errors', async () => {
    const t0 = performance.now();
    const { code, stdout, stderr } = await rlhf('report', runDir);
    const buildMs = performance.now() - t0;
    expect(code, stderr).toBe(0);
    const out = path.join(runDir, 'report.html');
    expect(stdout).toContain(`report → ${out}`);
    const html = fs.readFileSync(out, 'utf8');
    // Self-contained: no script, no external reference of any kind.
    expect(html).not.toMatch(/<script/i);
    expect(html).not.toMatch(/\b(src|href)\s*=\s*["']?(https?:|\/\/)/i);
    expect(html).not.toMatch(/@import|url\(\s*["']?https?:/i);

    const page = await browser.newPage();
    const problems: string[] = [];
    const requests: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') problems.push(`console ${m.type()}: ${m.text()}`);
    });
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('request', (r) => requests.push(r.url()));
    page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()}`));
    const url = pathToFileURL(out).href;
    await page.goto(url, { waitUntil: 'load' });

    const dom = await page.evaluate(() => {
      const charts = [...document.querySelectorAll('figure.chart')].map((f) => {
        const svg = f.querySelector(':scope > svg');
        const box = svg?.getBoundingClientRect();
        return {
          id: f.id,
          svg: !!svg,
          width: box?.width ?? 0,
          height: box?.height ?? 0,
          // Vega draws lines and points as paths inside marks groups.
          marks: svg ? svg.querySelectorAll('g.mark-line path, g.mark-symbol path').length : 0,
          axes: svg ? svg.querySelectorAll('g.role-axis').length : 0,
        };
      });
      return {
        title: document.title,
        charts,
        svgs: document.querySelectorAll('svg').length,
        scripts: document.scripts.length,
        images: document.images.length,
        sections: [...document.querySelectorAll('section.stage h2')].map((h) => h.firstChild?.textContent?.trim()),
        statuses: [...document.querySelectorAll('section.stage h2 .status')].map((s) => s.textContent),
        cells: [...document.querySelectorAll('td')].map((td) => td.textContent ?? ''),
        configs: [...document.querySelectorAll('pre')].map((p) => p.textContent ?? ''),
        errors: [...document.querySelectorAll('.error')].map((e) => e.textContent ?? ''),
      };
    });
    await page.close();

    expect(problems).toEqual([]);
    expect(requests).toEqual([url]); // the page itself, nothing else
    expect(dom.title).toBe('RLHF report: fixture');
    expect(dom.scripts).toBe(0);
    expect(dom.images).toBe(0);
    expect(dom.charts).toHaveLength(EXPECTED_CHARTS);
    expect(dom.svgs).toBe(EXPECTED_CHARTS);
    for (const c of dom.charts) {
      expect(c.svg, c.id).toBe(true);
      expect(c.width, c.id).toBeGreaterThan(200);
      expect(c.height, c.id).toBeGreaterThan(100);
      expect(c.marks, c.id).toBeGreaterThan(0);
      expect(c.axes, c.id).toBeGreaterThanOrEqual(2); // x and y (plus their grids)
    }
    expect(new Set(dom.charts.map((c) => c.id)).size).toBe(EXPECTED_CHARTS);
    expect(dom.sections).toEqual(['pretrain', 'sft', 'label', 'train-reward', 'ppo', 'round-2/label', 'round-2/train-reward', 'round-2/ppo', 'eval']);
    expect(dom.statuses).toEqual([...Array(7).fill('completed'), 'failed', 'completed']);
    // Hostile text arrives as text in sample tables, the config and the error.
    expect(dom.cells.some((t) => t === HOSTILE)).toBe(true);
    expect(dom.configs.some((t) => t.includes(HOSTILE))).toBe(true);
    expect(dom.errors.some((t) => t.includes(HOSTILE))).toBe(true);
    // Samples: 4 per policy, spread over the prompts.
    expect(dom.cells.filter((t) => /^prompt \d: $/.test(t))).toHaveLength(3 * 4);
    console.info(`report: ${EXPECTED_CHARTS} charts, ${(html.length / 1024).toFixed(0)} KiB, built in ${(buildMs / 1000).toFixed(2)} s`);
  });

  it('prints a compact summary, --json, --out, and NO_COLOR', async () => {
    const out = path.join(path.dirname(runDir), 'elsewhere', 'r.html');
    const { code, stdout } = await rlhf('report', runDir, '--json', '--out', out);
    expect(code).toBe(0);
    const summary = JSON.parse(stdout) as RunSummary;
    expect(summary.report).toBe(out);
    expect(fs.existsSync(out)).toBe(true);
    expect(summary.stages.map((s) => [s.stage, s.status])).toEqual([
      ['pretrain', 'completed'],
      ['sft', 'completed'],
      ['label', 'completed'],
      ['train-reward', 'completed'],
      ['ppo', 'completed'],
      ['round-2/label', 'completed'],
      ['round-2/train-reward', 'completed'],
      ['round-2/ppo', 'failed'],
      ['eval', 'completed'],
    ]);
    const byStage = Object.fromEntries(summary.stages.map((s) => [s.stage, s]));
    // Manifest summary first (label's aggregates), else the last logged value.
    expect(byStage.label.metrics.pair_agreement).toBe(0.91);
    expect(byStage.pretrain.metrics).toEqual({ loss: 0.55, val_loss: 0.6, tokens_per_s: 9000 });
    expect(byStage.ppo.metrics['objective/kl']).toBe(3);
    expect(byStage.ppo.last_step).toBe(30); // the torn line is not a step
    expect(byStage.pretrain.wall_time_s).toBe(95.5);
    expect(byStage['round-2/ppo'].error).toContain('CUDA? no');
    expect(summary.eval?.map((p) => p.policy)).toEqual(['sft/final', 'ppo/final', `elsewhere/${HOSTILE_NAME}/final`]);

    const text = await rlhf('report', runDir);
    expect(text.stdout).toMatch(/^pretrain\s+completed\s+1m36s\s+loss 0\.5500  val_loss 0\.6000  tokens_per_s 9000$/m);
    expect(text.stdout).toMatch(/^round-2\/ppo\s+failed\s+4\.0 s\s+objective\/scores 0\.1500 .* error: CUDA\? no/m);
    expect(text.stdout).toMatch(/^ppo\/final\s+1\.1000\s+0\.6200\s+1\.1000\s/m);
    expect(text.stdout).not.toContain('\x1b['); // not a TTY

    expect(useColor({ isTTY: true }, {})).toBe(true);
    expect(useColor({ isTTY: true }, { NO_COLOR: '1' })).toBe(false);
    expect(useColor({ isTTY: true }, { NO_COLOR: '' })).toBe(true); // no-color.org: only a non-empty value
    expect(useColor({ isTTY: false }, {})).toBe(false);
    expect(summaryText(summary, true)).toContain('\x1b[32mcompleted');
    expect(summaryText(summary, false)).not.toContain('\x1b[');
  });

  it('reports one stage directory, and refuses a directory without stages in one line', async () => {
    const one = await rlhf('report', path.join(runDir, 'ppo'), '--json');
    expect(one.code).toBe(0);
    expect((JSON.parse(one.stdout) as RunSummary).stages.map((s) => s.stage)).toEqual(['ppo']);
    expect(fs.existsSync(path.join(runDir, 'ppo', 'report.html'))).toBe(true);

    const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'rlhf-report-empty-'));
    for (const [dir, pattern] of [
      [empty, /no stages found/],
      [path.join(empty, 'missing'), /no such run directory/],
    ] as const) {
      const r = await rlhf('report', dir);
      expect(r.code).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(pattern);
    }
  });
});

// ---------------------------------------------------------------- TensorBoard

/** TFRecord framing: u64 length, u32 masked CRC of the length, data, u32 masked CRC of the data. */
function tfRecords(file: string): Buffer[] {
  const buf = fs.readFileSync(file);
  const records: Buffer[] = [];
  let off = 0;
  while (off < buf.length) {
    const len = Number(buf.readBigUInt64LE(off));
    records.push(buf.subarray(off + 12, off + 12 + len));
    off += 12 + len + 4;
  }
  expect(off).toBe(buf.length);
  return records;
}

describe('TensorBoard event files', () => {
  it('with tensorboard: true a training stage writes non-empty event files holding its metrics; a --force re-run starts a fresh file', async () => {
    const file = writeConfig({ ...tinyPretrainConfig({ max_steps: 20, warmup_steps: 2, log_interval: 5, eval_interval: 10, checkpoint_interval: 10 }), tensorboard: true });
    const loaded = loadConfig(file);
    const { dir } = await runPretrain(loaded);
    const logdir = path.join(dir, 'tensorboard');
    const files = fs.readdirSync(logdir).filter((f) => f.startsWith('events.out.tfevents.'));
    expect(files).toHaveLength(1);
    const eventFile = path.join(logdir, files[0]);
    expect(fs.statSync(eventFile).size).toBeGreaterThan(0);
    const records = tfRecords(eventFile);
    const metricRows = readJsonl(path.join(dir, 'metrics.jsonl'));
    const scalars = metricRows.reduce((n, r) => n + Object.keys(r).length - 1, 0);
    expect(records).toHaveLength(1 + scalars); // the file-version event, then one per scalar
    const all = Buffer.concat(records).toString('latin1');
    for (const tag of ['loss', 'val_loss', 'grad_norm', 'lr', 'tokens_per_s']) expect(all).toContain(tag);

    // The same stage again in this process: the old writer was closed, so the new run gets its own file.
    await runPretrain(loaded, { force: true });
    const again = fs.readdirSync(logdir).filter((f) => f.startsWith('events.out.tfevents.'));
    expect(again).toHaveLength(1);
    expect(tfRecords(path.join(logdir, again[0]))).toHaveLength(1 + scalars);

    // Off by default: no tensorboard directory.
    const plain = writeConfig({ ...tinyPretrainConfig({ max_steps: 5, warmup_steps: 1, log_interval: 5, eval_interval: 5, checkpoint_interval: 5 }) });
    const { dir: plainDir } = await runPretrain(loadConfig(plain));
    expect(fs.existsSync(path.join(plainDir, 'tensorboard'))).toBe(false);
    expect(stringify(loadConfig(plain).config)).toContain('tensorboard: false');
  }, 120_000);
});
