import { describe, it, expect, beforeAll, vi } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { PassThrough } from 'node:stream';
import { saveCheckpoint } from '../src/checkpoint/checkpoint.js';
import { main } from '../src/cli/main.js';
import { loadConfig } from '../src/config/load.js';
import { DataError } from '../src/data/corpus.js';
import { comparisonPairs, isPermutation, rankingPairs, readComparisons, tiedPairs, type Comparison } from '../src/label/comparisons.js';
import { flipRanking, goldLabeler, goldRanking, humanLabeler, noisyRanking, parseAnswer, plackettLuceRanking } from '../src/label/labelers.js';
import { disposeParams, initParams } from '../src/model/gpt.js';
import { cutAfterStop, runLabel } from '../src/stages/label.js';
import { getTask } from '../src/tasks/index.js';
import { trainTokenizer } from '../src/tokenizer/index.js';
import { Rng } from '../src/util/rng.js';
import { oneLineError, repoRoot, writeConfig } from './helpers.js';

function tmpDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'rlhf-label-'));
}

function jsonlFile(lines: string[], name = 'comparisons.jsonl'): string {
  const file = path.join(tmpDir(), name);
  fs.writeFileSync(file, lines.join('\n') + '\n');
  return file;
}

function lines(file: string): Record<string, unknown>[] {
  if (!fs.existsSync(file)) return [];
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

const dataErrorOf = (fn: () => unknown): string => oneLineError(DataError, fn);

const ranked = (c: Partial<Comparison> & Record<string, unknown>): string => JSON.stringify({ prompt: 'p', responses: ['a', 'b', 'c'], ranking: [2, 0, 1], labeler: 'human', ...c });

describe('comparisons file', () => {
  it('rankingPairs gives exactly C(K,2) correctly ordered pairs for K = 2..5', () => {
    const rng = new Rng('pairs');
    for (let k = 2; k <= 5; k++) {
      for (let trial = 0; trial < 10; trial++) {
        const ranking = rng.permutation(k);
        const pairs = rankingPairs(ranking);
        expect(pairs).toHaveLength((k * (k - 1)) / 2);
        const position = (r: number): number => ranking.indexOf(r);
        for (const [better, worse] of pairs) expect(position(better)).toBeLessThan(position(worse));
        // every unordered pair exactly once
        const keys = new Set(pairs.map(([a, b]) => [Math.min(a, b), Math.max(a, b)].join(',')));
        expect(keys.size).toBe(pairs.length);
      }
    }
    expect(rankingPairs([2, 0, 1])).toEqual([
      [2, 0],
      [2, 1],
      [0, 1],
    ]);
    expect(() => rankingPairs([0, 0])).toThrow(/not a permutation/);
    expect(isPermutation([1, 0, 2], 3)).toBe(true);
    expect(isPermutation([1, 0, 3], 3)).toBe(false);
  });

  it('ties: pairs the labeler called equal teach no preference; bad ties are named', () => {
    // ranking 2 > 0 > 1 > 3 with 0 and 1 tied, and 2 and 3 tied (a forced order between equals)
    expect(comparisonPairs({ ranking: [2, 0, 1, 3], ties: [[1, 0], [2, 3]] })).toEqual([
      [2, 0],
      [2, 1],
      [0, 3],
      [1, 3],
    ]);
    expect(comparisonPairs({ ranking: [1, 0] })).toEqual([[1, 0]]);
    expect(tiedPairs([0.5, 0, 0.5, 0, NaN, NaN])).toEqual([
      [0, 2],
      [1, 3],
      [4, 5],
    ]);
    const file = jsonlFile([ranked({ ties: [[0, 1]] })]);
    expect(readComparisons(file)[0].value.ties).toEqual([[0, 1]]);
    const bad = jsonlFile([ranked({}), ranked({ ties: [[0, 3]] })]);
    expect(dataErrorOf(() => readComparisons(bad))).toMatch(/:2: ties\.0: \[0,3\] is not a pair of two different response indices in 0\.\.2/);
  });

  it('reads ranked and plain pairwise lines', () => {
    const file = jsonlFile([ranked({}), '', JSON.stringify({ prompt: 'q', chosen: 'good', rejected: 'bad' })]);
    const records = readComparisons(file);
    expect(records.map((r) => r.line)).toEqual([1, 3]);
    expect(records[0].value).toEqual({ prompt: 'p', responses: ['a', 'b', 'c'], ranking: [2, 0, 1], labeler: 'human' });
    expect(records[1].value).toEqual({ prompt: 'q', responses: ['good', 'bad'], ranking: [0, 1], labeler: 'unknown' });
  });

  it('bad lines are a one-line DataError naming file:line', () => {
    const cases: [string, RegExp][] = [
      ['{"prompt": "p", "responses": ["a", "b"]', /:2: not valid JSON/],
      [JSON.stringify({ prompt: 'p', responses: ['a', 'b'], labeler: 'x' }), /:2: ranking: missing field/],
      [JSON.stringify({ responses: ['a', 'b'], ranking: [0, 1] }), /:2: prompt: missing field/],
      [ranked({ responses: ['a', '', 'c'] }), /:2: responses\.1: empty response/],
      [JSON.stringify({ prompt: 'p', chosen: 'a', rejected: '' }), /:2: rejected: empty response/],
      [JSON.stringify({ prompt: 'p', chosen: 'a' }), /:2: rejected: missing field/],
      [ranked({ ranking: [0, 0, 1] }), /:2: ranking: \[0,0,1\] is not a permutation of 0\.\.2/],
      [ranked({ ranking: [0, 1] }), /:2: ranking: .*not a permutation/],
      [ranked({ ranking: [3, 1, 0] }), /:2: ranking: .*not a permutation/],
      [ranked({ responses: ['a'], ranking: [0] }), /:2: responses: fewer than 2 responses/],
    ];
    for (const [bad, pattern] of cases) {
      const file = jsonlFile([ranked({}), bad, ranked({})]);
      const message = dataErrorOf(() => readComparisons(file));
      expect(message.startsWith(`${file}:2: `), message).toBe(true);
      expect(message).toMatch(pattern);
    }
    expect(dataErrorOf(() => readComparisons('/nonexistent/c.jsonl'))).toMatch(/\/nonexistent\/c\.jsonl: file not found/);
  });
});

describe('gold labeler', () => {
  const toy = { name: 'toy', goldScore: (_p: string, r: string) => r.length };

  it('without noise ranks by gold score, ties in index order', async () => {
    const labeler = goldLabeler(toy, { type: 'none' }, new Rng(1));
    expect(labeler.name).toBe('gold:toy');
    expect(await labeler.rank('p', ['aa', 'aaaa', 'a', 'aaa'])).toEqual([1, 3, 0, 2]);
    expect(await labeler.rank('p', ['bb', 'a', 'cc', 'dd'])).toEqual([0, 2, 3, 1]);
    expect(goldRanking([0.5, NaN, 0.9])).toEqual([2, 0, 1]);
    // equal gold scores are ties, whatever order the ranking gives them
    expect(labeler.ties!('p', ['bb', 'a', 'cc', 'dd'])).toEqual([
      [0, 2],
      [0, 3],
      [2, 3],
    ]);
  });

  it('ranks real task responses by the task gold score', async () => {
    const task = getTask('arithmetic');
    const labeler = goldLabeler(task, { type: 'none' }, new Rng(1));
    // 23+58=81: the exact answer first, the non-answer last
    const ranking = (await labeler.rank('23+58=', ['80\n', 'x\n', '81\n'])) as number[];
    expect(ranking[0]).toBe(2);
    expect(ranking[2]).toBe(1);
  });

  it('Bradley–Terry noise: a tiny temperature gives the gold ranking; K = 2 follows σ(Δ/T)', () => {
    const rng = new Rng('bt');
    for (let trial = 0; trial < 200; trial++) {
      const scores = Array.from({ length: 2 + (trial % 4) }, () => rng.next());
      expect(noisyRanking(scores, { type: 'bradley_terry', temperature: 1e-4 }, rng)).toEqual(goldRanking(scores));
    }
    // P(0 above 1) = σ((0.7 − 0.5) / 0.2) = σ(1) = 0.731
    let first = 0;
    const n = 4000;
    for (let t = 0; t < n; t++) if (plackettLuceRanking([0.7, 0.5], 0.2, rng)[0] === 0) first++;
    expect(Math.abs(first / n - 1 / (1 + Math.exp(-1)))).toBeLessThan(0.025);
    // large temperature: every ranking of 3 shows up
    const seen = new Set<string>();
    for (let t = 0; t < 300; t++) seen.add(plackettLuceRanking([1, 0.5, 0], 100, rng).join());
    expect(seen.size).toBe(6);
  });

  it('flip noise: rate 0 is gold; K = 2 flips at the rate', () => {
    const rng = new Rng('flip');
    for (let trial = 0; trial < 100; trial++) {
      const scores = Array.from({ length: 2 + (trial % 4) }, () => rng.next());
      expect(noisyRanking(scores, { type: 'flip', rate: 0 }, rng)).toEqual(goldRanking(scores));
    }
    let flipped = 0;
    const n = 4000;
    for (let t = 0; t < n; t++) if (flipRanking([0, 1], 0.2, rng)[0] === 1) flipped++;
    expect(Math.abs(flipped / n - 0.2)).toBeLessThan(0.02);
  });

  it('draws noise per prompt index when given an RNG factory (resume-stable)', async () => {
    const make = () => goldLabeler(toy, { type: 'flip', rate: 0.5 }, (i) => new Rng(`n/${i}`));
    const responses = ['a', 'bb', 'ccc', 'dddd', 'eeeee'];
    const a = make();
    const all = [];
    for (let i = 0; i < 8; i++) all.push(await a.rank('p', responses, { index: i, total: 8, labeled: i, skipped: 0 }));
    const b = make();
    expect(await b.rank('p', responses, { index: 5, total: 8, labeled: 0, skipped: 0 })).toEqual(all[5]);
  });
});

describe('human labeler', () => {
  it('parses orders, commands and bad input', () => {
    expect(parseAnswer('3 1 2', 3)).toEqual({ kind: 'ranking', ranking: [2, 0, 1] });
    expect(parseAnswer(' 3,1,2 ', 3)).toEqual({ kind: 'ranking', ranking: [2, 0, 1] });
    expect(parseAnswer('312', 3)).toEqual({ kind: 'ranking', ranking: [2, 0, 1] });
    expect(parseAnswer('3>1', 3)).toEqual({ kind: 'ranking', ranking: [2, 0, 1] });
    expect(parseAnswer('2', 2)).toEqual({ kind: 'ranking', ranking: [1, 0] });
    expect(parseAnswer('S', 3)).toEqual({ kind: 'skip' });
    expect(parseAnswer('undo', 3)).toEqual({ kind: 'undo' });
    expect(parseAnswer('q', 3)).toEqual({ kind: 'quit' });
    expect(parseAnswer('?', 3)).toEqual({ kind: 'help' });
    for (const bad of ['', '4 1 2', '1 1 2', '1', 'x', '1 2 3 4', '0 1 2', '1.5 2 3']) {
      const a = parseAnswer(bad, 3);
      expect(a.kind, bad).toBe('invalid');
      if (a.kind === 'invalid') expect(a.message).not.toMatch(/\n/);
    }
  });

  it('over a piped stream: shows numbered responses, re-asks on bad input, helps, then quits at end of input', async () => {
    const input = new PassThrough();
    const output = new PassThrough();
    let shown = '';
    output.on('data', (d: Buffer) => (shown += d.toString()));
    const labeler = humanLabeler(input, output);
    input.end('9 9\n?\n2 3 1\ns\nu\n');
    expect(await labeler.rank('Review: The soup was', [' good.', ' bad.', ' fine.'], { index: 0, total: 5, labeled: 0, skipped: 0 })).toEqual([1, 2, 0]);
    expect(await labeler.rank('p', ['a', 'b'])).toBe('skip');
    expect(await labeler.rank('p', ['a', 'b'])).toBe('undo');
    expect(await labeler.rank('p', ['a', 'b'])).toBe('quit'); // end of input
    labeler.close?.();
    expect(shown).toContain('prompt 1 of 5');
    expect(shown).toContain('Review: The soup was');
    expect(shown).toContain('1) " good."');
    expect(shown).toContain('3) " fine."');
    expect(shown).toMatch(/✗ "9" is not a response number \(1\.\.3\)/);
    expect(shown).toContain('s  skip this prompt');
  });

  it('waits for lines that arrive later', async () => {
    const input = new PassThrough();
    const output = new PassThrough();
    output.resume();
    const labeler = humanLabeler(input, output);
    const answer = labeler.rank('p', ['a', 'b', 'c']);
    setTimeout(() => input.write('1 3'), 5);
    setTimeout(() => input.write(' 2\n'), 10);
    expect(await answer).toEqual([0, 2, 1]);
    labeler.close?.();
    expect(await labeler.rank('p', ['a', 'b'])).toBe('quit');
  });

  it('keeps the stop sequence when cutting a response (as the SFT data does)', () => {
    expect(cutAfterStop(' tasty. and more', ['.', '\n'])).toBe(' tasty.');
    expect(cutAfterStop('81\n5', ['\n'])).toBe('81\n');
    expect(cutAfterStop('abc', ['\n'])).toBe('abc');
  });
});

// ---------------------------------------------------------------------------
// The stage, on a tiny untrained policy (labeling mechanics need no training).

const ALPHABET = 'abcdefghijklmnopqrstuvwxyz :.,0123456789+=\n';
let policyDir: string;

beforeAll(async () => {
  const tokenizer = trainTokenizer({ type: 'char' }, ALPHABET);
  const model = { vocab_size: tokenizer.vocabSize, n_layer: 1, n_head: 2, d_model: 32, context_length: 24, dropout: 0 };
  const params = initParams(model, 'lm', new Rng(3));
  policyDir = path.join(tmpDir(), 'policy');
  await saveCheckpoint(policyDir, { params, head: 'lm', model, tokenizer });
  disposeParams(params);
});

function labelConfig(label: Record<string, unknown>): string {
  return writeConfig({
    name: 'lab',
    tokenizer: { type: 'char' },
    model: { n_layer: 1, n_head: 2, d_model: 32, context_length: 24 },
    label: { policy: policyDir, k: 3, batch_size: 4, max_new_tokens: 5, seed: 7, ...label },
  });
}

function labelDir(configFile: string): string {
  return path.join(path.dirname(configFile), 'runs', 'lab', 'label');
}

/** Every file under `dir` with its mtime and content. */
function snapshot(dir: string): [string, number, string][] {
  return (fs.readdirSync(dir, { recursive: true }) as string[])
    .sort()
    .filter((f) => fs.statSync(path.join(dir, f)).isFile())
    .map((f) => [f, fs.statSync(path.join(dir, f)).mtimeMs, fs.readFileSync(path.join(dir, f), 'utf8')]);
}

function manifestStatus(dir: string): string {
  return (JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as { status: string }).status;
}

describe('rlhf label (gold)', () => {
  it('samples K responses per prompt, ranks them by gold, logs per-batch metrics; resume after a crash reproduces the same file', async () => {
    const file = labelConfig({ prompts: { task: 'arithmetic' }, num_prompts: 10, labeler: 'gold:arithmetic' });
    const result = await runLabel(loadConfig(file));
    expect(result.status).toBe('completed');
    const dir = labelDir(file);
    const comparisons = lines(path.join(dir, 'comparisons.jsonl')) as unknown as Comparison[];
    const skipped = lines(path.join(dir, 'skipped.jsonl'));
    expect(comparisons.length + skipped.length).toBe(10);
    expect(comparisons.length).toBeGreaterThanOrEqual(9);
    const task = getTask('arithmetic');
    const prompts = task.rlPrompts();
    for (const c of comparisons) {
      expect(c.prompt).toBe(prompts[c.prompt_index!]);
      expect(c.responses).toHaveLength(3);
      for (const r of c.responses) {
        expect(r.length).toBeGreaterThan(0);
        // cut after the task's stop sequence, no EOS text
        expect(r.indexOf('\n') === -1 || r.indexOf('\n') === r.length - 1).toBe(true);
      }
      expect(c.labeler).toBe('gold:arithmetic');
      const scores = c.responses.map((r) => task.goldScore(c.prompt, r));
      expect(c.ranking).toEqual(goldRanking(scores));
      expect(c.ties ?? []).toEqual(tiedPairs(scores));
    }
    expect(readComparisons(path.join(dir, 'comparisons.jsonl'))).toHaveLength(comparisons.length);
    const metrics = lines(path.join(dir, 'metrics.jsonl'));
    expect(metrics.map((m) => m.step)).toEqual([4, 8, 10]);
    for (const m of metrics) {
      expect(m.gold_score_mean).toBeGreaterThanOrEqual(0);
      if (m.pair_agreement !== undefined) expect(m.pair_agreement).toBe(1);
    }
    expect(manifestStatus(dir)).toBe('completed');
    const settings = JSON.parse(fs.readFileSync(path.join(dir, 'settings.json'), 'utf8'));
    expect(settings).toMatchObject({ k: 3, seed: 7, batch_size: 4, labeler: 'gold:arithmetic' });

    // Simulate a crash mid-batch (after prompt 6 of 10): drop later records, mark the run unfinished.
    const full = fs.readFileSync(path.join(dir, 'comparisons.jsonl'), 'utf8');
    const fullSkipped = fs.existsSync(path.join(dir, 'skipped.jsonl')) ? fs.readFileSync(path.join(dir, 'skipped.jsonl'), 'utf8') : '';
    const keep = (text: string) =>
      text
        .split('\n')
        .filter((l) => l && (JSON.parse(l) as { prompt_index: number }).prompt_index < 6)
        .map((l) => l + '\n')
        .join('');
    fs.writeFileSync(path.join(dir, 'comparisons.jsonl'), keep(full));
    if (fullSkipped) fs.writeFileSync(path.join(dir, 'skipped.jsonl'), keep(fullSkipped));
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
    fs.writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify({ ...manifest, status: 'running' }));
    // A plain re-run continues (no --resume needed) and ends with the same bytes.
    const again = await runLabel(loadConfig(file));
    expect(again.status).toBe('completed');
    expect(fs.readFileSync(path.join(dir, 'comparisons.jsonl'), 'utf8')).toBe(full);
    // A completed run is not silently redone.
    await expect(runLabel(loadConfig(file))).rejects.toThrow(/holds a completed run; pass --force/);
    // Changed settings are refused on resume.
    fs.writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify({ ...manifest, status: 'interrupted' }));
    await expect(runLabel(loadConfig(file, ['label.seed=8']))).rejects.toThrow(/label\.seed changed \(7 → 8\) since this label run began.*--force/);
  });

  it('noisy gold labels record the noise and disagree with gold at about the flip rate', async () => {
    const file = labelConfig({ prompts: { task: 'arithmetic' }, num_prompts: 12, k: 2, labeler: 'gold:arithmetic', noise: { type: 'flip', rate: 0.5 }, batch_size: 12 });
    const result = await runLabel(loadConfig(file));
    expect(result.status).toBe('completed');
    const comparisons = lines(path.join(labelDir(file), 'comparisons.jsonl')) as unknown as Comparison[];
    expect(comparisons[0].labeler).toBe('gold:arithmetic+flip(rate=0.5)');
    const task = getTask('arithmetic');
    const flipped = comparisons.filter((c) => c.ranking.join() !== goldRanking(c.responses.map((r) => task.goldScore(c.prompt, r))).join());
    expect(flipped.length).toBeGreaterThan(0);
    expect(flipped.length).toBeLessThan(comparisons.length);
  });
});

/** Runs the stage with a human labeler fed `answers`; returns the result and what was shown. */
async function labelAsHuman(file: string, answers: string): Promise<{ status: string; shown: string }> {
  const input = new PassThrough();
  const output = new PassThrough();
  let shown = '';
  output.on('data', (d: Buffer) => (shown += d.toString()));
  input.end(answers);
  const r = await runLabel(loadConfig(file), { input, output });
  return { status: r.status, shown };
}

describe('rlhf label (human, piped stdin)', () => {
  it('records rankings, handles skip/undo/bad input, and quit-then-resume neither loses nor duplicates an answer', async () => {
    const promptsFile = jsonlFile(['a', 'b', 'c', 'd', 'e'].map((p) => JSON.stringify({ prompt: `${p}: ` })), 'prompts.jsonl');
    const file = labelConfig({ prompts: { path: promptsFile }, num_prompts: 5, labeler: 'human', batch_size: 2 });
    const dir = labelDir(file);
    const comparisonsFile = path.join(dir, 'comparisons.jsonl');
    const skippedFile = path.join(dir, 'skipped.jsonl');

    // Session 1: undo with nothing to undo, answer p1, bad input, skip p2, answer p3, quit at p4.
    const s1 = await labelAsHuman(file, 'u\n2 1 3\n1 1 2\ns\n3 2 1\nq\n');
    expect(s1.status).toBe('stopped');
    expect(s1.shown).toContain('nothing to undo');
    expect(s1.shown).toMatch(/✗ 1 appears twice/);
    expect(manifestStatus(dir)).toBe('interrupted');
    const after1 = lines(comparisonsFile) as unknown as Comparison[];
    expect(after1.map((c) => [c.prompt_index, c.ranking])).toEqual([
      [0, [1, 0, 2]],
      [2, [2, 1, 0]],
    ]);
    expect(lines(skippedFile)).toEqual([{ prompt_index: 1, prompt: 'b: ', reason: 'skipped' }]);
    for (const c of after1) expect(c.labeler).toBe('human');

    // Session 2, a plain re-run: continues at prompt 4; undo goes back to prompt 3 (same responses),
    // re-answer it, answer p4 and p5.
    const s2 = await labelAsHuman(file, 'u\n1 3 2\n2 3 1\n12\n');
    expect(s2.status).toBe('completed');
    expect(s2.shown).toContain('Continuing at prompt 4 (2 labeled, 1 skipped)');
    expect(s2.shown).toContain('undone: the ranking of prompt 3');
    const after2 = lines(comparisonsFile) as unknown as Comparison[];
    expect(after2.map((c) => [c.prompt_index, c.ranking])).toEqual([
      [0, [1, 0, 2]],
      [2, [0, 2, 1]],
      [3, [1, 2, 0]],
      [4, [0, 1, 2]],
    ]);
    expect(after2[0]).toEqual(after1[0]); // untouched
    expect(after2[1].responses).toEqual(after1[1].responses); // same samples after undo across sessions
    expect(lines(skippedFile)).toHaveLength(1);
    expect(manifestStatus(dir)).toBe('completed');
    const recorded = [...after2.map((c) => c.prompt_index), ...lines(skippedFile).map((s) => s.prompt_index)].sort();
    expect(recorded).toEqual([0, 1, 2, 3, 4]);
  });

  it('undo of a skip, and undo across a quit, are durable', async () => {
    const promptsFile = jsonlFile(['a', 'b', 'c'].map((p) => JSON.stringify({ prompt: `${p}: ` })), 'prompts.jsonl');
    const file = labelConfig({ prompts: { path: promptsFile }, num_prompts: 3, k: 2, labeler: 'human', batch_size: 8 });
    const dir = labelDir(file);
    await labelAsHuman(file, '2\ns\n'); // answer p1, skip p2, end of input = quit
    expect(lines(path.join(dir, 'skipped.jsonl'))).toHaveLength(1);
    const s2 = await labelAsHuman(file, 'u\nq\n'); // undo the skip, quit
    expect(s2.shown).toContain('undone: the skip of prompt 2');
    expect(lines(path.join(dir, 'skipped.jsonl'))).toHaveLength(0);
    expect(lines(path.join(dir, 'comparisons.jsonl'))).toHaveLength(1);
    const s3 = await labelAsHuman(file, '1\n2\n');
    expect(s3.status).toBe('completed');
    expect((lines(path.join(dir, 'comparisons.jsonl')) as unknown as Comparison[]).map((c) => [c.prompt_index, c.ranking])).toEqual([
      [0, [1, 0]],
      [1, [0, 1]],
      [2, [1, 0]],
    ]);
  });

  it('a corrupt comparisons file on resume is a DataError naming file:line, and nothing is written', async () => {
    const promptsFile = jsonlFile(['a', 'b', 'c'].map((p) => JSON.stringify({ prompt: `${p}: ` })), 'prompts.jsonl');
    const file = labelConfig({ prompts: { path: promptsFile }, num_prompts: 3, k: 2, labeler: 'human' });
    const dir = labelDir(file);
    await labelAsHuman(file, '2\n1\nq\n');
    const comparisonsFile = path.join(dir, 'comparisons.jsonl');
    const good = fs.readFileSync(comparisonsFile, 'utf8').split('\n').filter(Boolean);
    const bad: [string, RegExp][] = [
      ['{"prompt": "b: ", "responses"', /comparisons\.jsonl:2: not valid JSON/],
      [JSON.stringify({ ...JSON.parse(good[1]), ranking: [1, 1] }), /comparisons\.jsonl:2: ranking: .*not a permutation/],
      [JSON.stringify({ ...JSON.parse(good[1]), responses: ['x', ''] }), /comparisons\.jsonl:2: responses\.1: empty response/],
      [JSON.stringify({ ...JSON.parse(good[1]), ranking: undefined }), /comparisons\.jsonl:2: ranking: missing field/],
    ];
    for (const [line, pattern] of bad) {
      fs.writeFileSync(comparisonsFile, `${good[0]}\n${line}\n`);
      const before = snapshot(dir);
      const err = await runLabel(loadConfig(file), { input: new PassThrough(), output: new PassThrough() }).catch((e: Error) => e);
      expect(err).toBeInstanceOf(DataError);
      expect((err as Error).message).toMatch(pattern);
      const after = snapshot(dir);
      expect(after).toEqual(before);
    }
  });
});

const hasScript = spawnSync('script', ['--version']).status === 0;

/**
 * Runs the label stage in a child process on a real pseudo-terminal (util-linux
 * `script`), answering each question as it appears, as a person would.
 */
function labelOnPty(configFile: string, answers: string[]): Promise<string> {
  const runner = path.join(path.dirname(configFile), 'label-pty.ts');
  fs.writeFileSync(
    runner,
    [
      `import { loadConfig } from ${JSON.stringify(path.join(repoRoot, 'src/config/load.js'))};`,
      `import { runLabel } from ${JSON.stringify(path.join(repoRoot, 'src/stages/label.js'))};`,
      `const r = await runLabel(loadConfig(${JSON.stringify(configFile)}));`,
      `console.log('TTY=' + String(process.stdin.isTTY) + ' RESULT=' + r.status);`,
    ].join('\n'),
  );
  const viteNode = path.join(repoRoot, 'node_modules', '.bin', 'vite-node');
  const child = spawn('script', ['-qec', `${viteNode} ${runner}`, '/dev/null'], { cwd: repoRoot, stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let asked = 0;
  const pending = [...answers];
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill();
      reject(new Error(`pty session timed out:\n${out}`));
    }, 60_000);
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const questions = out.split('rank best').length - 1;
      while (asked < questions && pending.length > 0) {
        asked++;
        child.stdin.write(pending.shift()!);
      }
      if (out.includes('RESULT=')) child.stdin.end();
    });
    child.on('exit', () => {
      clearTimeout(timer);
      resolve(out);
    });
  });
}

describe.skipIf(!hasScript)('rlhf label (human, real pseudo-terminal)', () => {
  it('answers typed on a TTY are recorded; Ctrl-C quits cleanly; a re-run continues', async () => {
    const promptsFile = jsonlFile(['a', 'b', 'c'].map((p) => JSON.stringify({ prompt: `${p}: ` })), 'prompts.jsonl');
    const file = labelConfig({ prompts: { path: promptsFile }, num_prompts: 3, labeler: 'human', batch_size: 2 });
    const dir = labelDir(file);
    const s1 = await labelOnPty(file, ['2 1 3\r', '9\r', '\x03']);
    expect(s1).toContain('TTY=true RESULT=stopped');
    expect(s1).toContain('"9" is not a response number');
    expect(manifestStatus(dir)).toBe('interrupted');
    const s2 = await labelOnPty(file, ['s\r', 'u\r', '3 1 2\r', '1 2 3\r']);
    expect(s2).toContain('TTY=true RESULT=completed');
    expect(s2).toContain('undone: the skip of prompt 2');
    expect((lines(path.join(dir, 'comparisons.jsonl')) as unknown as Comparison[]).map((c) => [c.prompt_index, c.ranking])).toEqual([
      [0, [1, 0, 2]],
      [1, [2, 0, 1]],
      [2, [0, 1, 2]],
    ]);
    expect(lines(path.join(dir, 'skipped.jsonl'))).toEqual([]);
  });
});

/** Runs the CLI in-process; returns exit code, stdout and stderr. */
async function rlhf(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stderr = '';
  let stdout = '';
  const errSpy = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stderr += String(chunk);
    return true;
  });
  const outSpy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stdout += String(chunk);
    return true;
  });
  const logSpy = vi.spyOn(console, 'log').mockImplementation((...parts: unknown[]) => {
    stdout += parts.map(String).join(' ') + '\n';
  });
  try {
    const code = await main(['node', 'rlhf', ...args]);
    return { code, stdout, stderr };
  } finally {
    errSpy.mockRestore();
    outSpy.mockRestore();
    logSpy.mockRestore();
  }
}

describe('rlhf label (CLI)', () => {
  it('bad input: one-line error, exit 2, no stage directory', async () => {
    const broken = jsonlFile([JSON.stringify({ prompt: 'a' }), '{"prompt": '], 'prompts.jsonl');
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ prompts: { path: broken } }, /prompts\.jsonl:2: not valid JSON/],
      [{ prompts: { path: jsonlFile([JSON.stringify({ text: 'a' })], 'p.jsonl') } }, /p\.jsonl:1: prompt: missing field/],
      [{ prompts: { task: 'arithmetic' }, labeler: 'gold:sentiment' }, /label\.labeler: gold:sentiment scores a different task/],
      [{ prompts: { task: 'arithmetic' }, labeler: 'gold:nosuch' }, /label\.labeler: unknown task "nosuch"/],
      [{ prompts: { task: 'arithmetic' }, policy: '/nonexistent/ckpt' }, /\/nonexistent\/ckpt\/model\.json: missing/],
      [{ prompts: { path: jsonlFile([JSON.stringify({ prompt: 'x'.repeat(30) })], 'long.jsonl') } }, /long\.jsonl:1: prompt is 30 tokens; the policy's context_length 24/],
    ];
    for (const [label, pattern] of cases) {
      const file = labelConfig(label);
      const r = await rlhf('label', '-c', file);
      expect(r.code, r.stderr).toBe(2);
      const errLines = r.stderr.trim().split('\n');
      expect(errLines, r.stderr).toHaveLength(1);
      expect(errLines[0]).toMatch(/^rlhf: /);
      expect(errLines[0]).toMatch(pattern);
      expect(fs.existsSync(path.join(path.dirname(file), 'runs'))).toBe(false);
    }
  });

  it('runs a gold labeling and prints a summary; --help shows examples', async () => {
    const file = labelConfig({ prompts: { task: 'arithmetic' }, num_prompts: 4, labeler: 'gold:arithmetic' });
    const r = await rlhf('label', '-c', file);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^label done: prompts 4, decided 4, labeled \d, .*→ .*comparisons\.jsonl/m);
    const help = await rlhf('label', '--help');
    expect(help.stdout + help.stderr).toContain('Examples:');
  });
});
