import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { arithmeticGold } from '../src/tasks/arithmetic/index.js';
import { renderTaskFiles, TASK_FILE_NAMES, taskDataDir } from '../src/tasks/files.js';
import { getTask, TASK_NAMES, type Task } from '../src/tasks/index.js';
import { RW_MAX_LEN, randomWalksGold, walkGraph } from '../src/tasks/randomwalks/index.js';
import { sentimentBreakdown, valenceSum, words } from '../src/tasks/sentiment/gold.js';
import { adjectivesByPolarity } from '../src/tasks/sentiment/grammar.js';
import { sentimentGold, sentimentVocabulary } from '../src/tasks/sentiment/index.js';
import { Rng } from '../src/util/rng.js';

const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
const sftGold = (t: Task): number[] => t.sftExamples().map((e) => t.goldScore(e.prompt, e.response));

describe('task registry', () => {
  it('lists the three tasks and returns each by name', () => {
    expect(TASK_NAMES).toEqual(['sentiment', 'arithmetic', 'randomwalks']);
    for (const name of TASK_NAMES) expect(getTask(name).name).toBe(name);
  });

  it('throws on an unknown name, naming the valid tasks (and a close match)', () => {
    expect(() => getTask('chess')).toThrow('unknown task "chess"; valid tasks: sentiment, arithmetic, randomwalks');
    expect(() => getTask('sentimnet')).toThrow('(did you mean "sentiment"?)');
    expect(() => getTask('toString')).toThrow(/valid tasks/);
  });
});

describe('committed data files', () => {
  for (const name of TASK_NAMES) {
    it(`data/${name}/ is byte-identical to a fresh generation (regenerate: npx vite-node src/tasks/generate-cli.ts)`, () => {
      const fresh = renderTaskFiles(getTask(name));
      let total = 0;
      for (const file of TASK_FILE_NAMES) {
        const committed = readFileSync(join(taskDataDir(name), file));
        expect(Buffer.from(fresh[file], 'utf8').equals(committed), `data/${name}/${file}`).toBe(true);
        total += committed.length;
      }
      const corpus = Buffer.byteLength(fresh['corpus.txt']);
      expect(corpus).toBeGreaterThan(100_000);
      expect(corpus).toBeLessThan(300_000);
      expect(total).toBeLessThan(500_000);
    });
  }

  it('is plain ASCII JSONL with the documented fields', () => {
    for (const name of TASK_NAMES) {
      const files = renderTaskFiles(getTask(name));
      for (const text of Object.values(files)) {
        expect(/^[\x20-\x7e\n]*$/.test(text)).toBe(true);
        expect(text.endsWith('\n')).toBe(true);
      }
      for (const line of files['sft.jsonl'].trimEnd().split('\n')) {
        expect(Object.keys(JSON.parse(line))).toEqual(['prompt', 'response']);
      }
      for (const line of files['prompts.jsonl'].trimEnd().split('\n')) {
        expect(Object.keys(JSON.parse(line))).toEqual(['prompt']);
      }
    }
  });
});

describe('gold scores are pure and in [0, 1]', () => {
  it('on SFT responses and on random junk, twice over', () => {
    const rng = new Rng('tasks-test-fuzz');
    const alphabet = 'abcdefghijklmnopqrstu 0123456789.,!\n+=#';
    for (const name of TASK_NAMES) {
      const task = getTask(name);
      const prompts = task.rlPrompts().slice(0, 20);
      const cases: [string, string][] = task.sftExamples().slice(0, 200).map((e) => [e.prompt, e.response]);
      for (let i = 0; i < 300; i++) {
        const len = rng.int(40);
        let s = '';
        for (let j = 0; j < len; j++) s += alphabet[rng.int(alphabet.length)];
        cases.push([prompts[i % prompts.length], s]);
      }
      for (const [p, r] of cases) {
        const g = task.goldScore(p, r);
        expect(g).toBeGreaterThanOrEqual(0);
        expect(g).toBeLessThanOrEqual(1);
        expect(task.goldScore(p, r)).toBe(g);
      }
    }
  });
});

describe('arithmetic', () => {
  const task = getTask('arithmetic');
  const g = (r: string): number => arithmeticGold('23+58=', r);

  it('gives digit-wise partial credit aligned from the right', () => {
    expect(g('81')).toBe(1);
    expect(g('81\n')).toBe(1);
    expect(g('81\n999')).toBe(1); // after the stop sequence: not part of the response
    expect(g('71')).toBe(0.5); // units right
    expect(g('80')).toBe(0.5); // tens right
    expect(g('18')).toBe(0);
    expect(g('1')).toBe(0.5); // 1 of max(1, 2) digits
    expect(g('8')).toBe(0); // aligned from the right: '8' vs '1'
    expect(g('181')).toBeCloseTo(2 / 3, 12);
    expect(g('081')).toBeCloseTo(2 / 3, 12);
    expect(g('1181')).toBe(0.5);
    expect(arithmeticGold('99+99=', '198\n')).toBe(1);
    expect(arithmeticGold('99+99=', '98')).toBeCloseTo(2 / 3, 12);
    expect(arithmeticGold('0+0=', '0')).toBe(1);
    expect(arithmeticGold('0+0=', '00')).toBe(0.5);
  });

  it('scores non-digit responses and malformed prompts 0', () => {
    for (const r of ['', '\n', ' 81', '81 ', '-81', '8l', 'eighty-one', '+81']) expect(g(r)).toBe(0);
    expect(arithmeticGold('23+58', '81')).toBe(0);
    expect(arithmeticGold('123+5=', '128')).toBe(0);
  });

  it('holds the RL prompts out of the corpus and the SFT set', () => {
    const rl = task.rlPrompts();
    expect(rl).toHaveLength(1000);
    expect(new Set(rl).size).toBe(1000);
    const sft = task.sftExamples();
    expect(sft).toHaveLength(2000);
    const held = new Set(rl);
    for (const e of sft) {
      expect(held.has(e.prompt)).toBe(false);
      expect(e.response).toMatch(/^\d{1,3}\n$/);
    }
    const lines = task.pretrainCorpus().trimEnd().split('\n');
    const bad = lines.filter((line) => {
      const m = /^(\d{1,2})\+(\d{1,2})=(\d+)$/.exec(line);
      return !m || Number(m[1]) + Number(m[2]) !== Number(m[3]) || held.has(`${m[1]}+${m[2]}=`);
    });
    expect(bad).toEqual([]);
    expect(lines.length).toBeGreaterThan(15_000);
  });

  it('SFT responses are all correct (mean gold 1)', () => {
    expect(mean(sftGold(task))).toBe(1);
  });
});

describe('randomwalks', () => {
  const task = getTask('randomwalks');
  const g = randomWalksGold;

  it('is the pinned seeded graph (goal a absorbing, all starts reach it)', () => {
    const { out, best, attempts } = walkGraph();
    const letters = (ns: number[]): string => ns.map((n) => String.fromCharCode(97 + n)).join('');
    expect(attempts).toBe(24);
    expect(letters(out[0])).toBe('a');
    expect(letters(out[3])).toBe('cfjm'); // d
    expect(letters(out[2])).toBe('u'); // c
    expect(letters(out[20])).toBe('afo'); // u
    expect(letters(out[10])).toBe('s'); // k
    expect(best).toEqual([1, 5, 3, 4, 6, 4, 3, 4, 3, 4, 7, 6, 7, 5, 4, 2, 7, 2, 6, 2, 2]);
    for (let i = 1; i < best.length; i++) expect(best[i]).toBeLessThan(RW_MAX_LEN);
  });

  it('scores a shortest walk 1 and longer valid walks (10 - L)/(10 - L*)', () => {
    // d: shortest d c u a (L* = 4)
    expect(g('walk: d', ' c u a\n')).toBe(1);
    expect(g('walk: d', ' c u a')).toBe(1);
    expect(g('walk: d', ' c u a a b')).toBe(1); // after the (absorbing) goal: ignored
    expect(g('walk: d', ' f c u a\n')).toBeCloseTo(5 / 6, 12); // L = 5: (10 - 5)/(10 - 4)
    // c: shortest c u a (L* = 3)
    expect(g('walk: c', ' u a')).toBe(1);
    expect(g('walk: c', ' u o i t u a')).toBeCloseTo(3 / 7, 12); // L = 7: (10 - 7)/(10 - 3)
    expect(g('walk: c', ' u o i e n h c u a')).toBe(0); // L = 10 = max_len
    // k: shortest k s b j g t a (L* = 7)
    expect(g('walk: k', ' s b j g t a')).toBe(1);
    expect(g('walk: k', ' s b e n h c u a')).toBeCloseTo(1 / 3, 12); // L = 9: (10 - 9)/(10 - 7)
    // u -> a is an edge (L* = 2)
    expect(g('walk: u', ' a')).toBe(1);
  });

  it('scores invalid moves, bad tokens, bad prompts and walks that never arrive 0', () => {
    expect(g('walk: d', ' a')).toBe(0); // d -> a is not an edge
    expect(g('walk: d', ' c x a')).toBe(0);
    expect(g('walk: d', ' c z')).toBe(0);
    expect(g('walk: d', ' c u')).toBe(0); // never reaches the goal
    expect(g('walk: d', ' c u\na')).toBe(0); // the goal after the stop sequence does not count
    expect(g('walk: d', ' d c u a')).toBe(0); // no self-loops except the goal's
    expect(g('walk: d', 'cua')).toBe(0); // nodes must be separate tokens
    expect(g('walk: d', '')).toBe(0);
    expect(g('walk: a', ' a')).toBe(0);
    expect(g('walk: z', ' a')).toBe(0);
    expect(g('d', ' c u a')).toBe(0);
  });

  it('has 20 RL prompts, valid corpus walks and SFT walks that reach the goal', () => {
    expect(task.rlPrompts()).toEqual('bcdefghijklmnopqrstu'.split('').map((c) => `walk: ${c}`));
    const sft = task.sftExamples();
    expect(sft).toHaveLength(1000);
    const badSft = sft.filter((e) => !/^( [b-u])* a\n$/.test(e.response) || !(g(e.prompt, e.response) > 0));
    expect(badSft).toEqual([]);
    const { adj } = walkGraph();
    const bad = task
      .pretrainCorpus()
      .trimEnd()
      .split('\n')
      .filter((line) => {
        if (!/^walk: [b-u]( [a-u])*$/.test(line)) return true;
        const nodes = line.slice(6).split(' ').map((c) => c.charCodeAt(0) - 97);
        const arrived = nodes[nodes.length - 1] === 0;
        // stops at the goal or at RW_MAX_LEN nodes, along edges only
        return (
          nodes.length > RW_MAX_LEN ||
          (!arrived && nodes.length !== RW_MAX_LEN) ||
          nodes.slice(0, -1).includes(0) ||
          nodes.some((n, i) => i > 0 && !adj[nodes[i - 1]][n])
        );
      });
    expect(bad).toEqual([]);
  });

  it('SFT walks are random, not shortest: mean gold 0.7729', () => {
    expect(mean(sftGold(task))).toBeCloseTo(0.7729, 4);
  });
});

describe('sentiment', () => {
  const task = getTask('sentiment');
  const g = (r: string): number => task.goldScore('Review: The soup was', r);

  it('scores hand-computed cases', () => {
    // P = (1 + V/sqrt(V^2 + 15))/2, gold = P * (K*R*G)^2 * S * T
    expect(g(' delicious and fresh.')).toBeCloseTo(0.859211, 6); // V = 3 + 1 = 4: (1 + 4/sqrt(31))/2
    expect(g(' served with rice.')).toBe(0.5); // V = 0
    expect(g(' awful and nasty.')).toBeCloseTo(0.079916, 6); // V = -6: (1 - 6/sqrt(51))/2
    expect(g(' not very good.')).toBeCloseTo(0.319421, 6); // V = -0.5*3: (1 - 1.5/sqrt(17.25))/2
    expect(g(' not good.')).toBeCloseTo(0.180390, 6); // AFINN phrase "not good" = -2, P = 0.270584, S = 2/3
    expect(g(' great.')).toBeCloseTo(0.268729, 6); // V = 3, P = 0.806186, S = 1/3
    expect(g(' great great great')).toBeCloseTo(0.106587, 6); // V = 9, P = 0.959279, R = 1 - 2/3, F = 1/9
    expect(g(' good and ### fresh.')).toBeCloseTo(0.549895, 6); // G = 12/15 clean chars, F = 0.64, P = 0.859211
    // 18 distinct valence-free known words: T = 1 - (18 - 15)/15 = 0.8, P = 0.5
    expect(g(' hot cold plain simple salty spicy mild busy quiet young new small large modern old long short slow.')).toBeCloseTo(0.4, 12);
    expect(g(' xqzt blorf wug.')).toBe(0); // K = 0
    expect(g('')).toBe(0);
    expect(g('.')).toBe(0);
    expect(g('\n')).toBe(0);
  });

  it('ignores everything after the first stop sequence', () => {
    expect(task.stopSequences).toEqual(['.', '\n']);
    expect(g(' delicious and fresh. awful awful')).toBe(g(' delicious and fresh.'));
    expect(g(' delicious and fresh\nawful')).toBe(g(' delicious and fresh.'));
    expect(g(' delicious and fresh')).toBe(g(' delicious and fresh.'));
  });

  it('ranks positive fluent > neutral > negative, and degenerate text low', () => {
    const pos = g(' wonderful, and the waiter was friendly.');
    const neu = g(' served on a small plate.');
    const neg = g(' cold and awful, and the waiter was rude.');
    expect(pos).toBeGreaterThan(0.85);
    expect(neu).toBe(0.5);
    expect(neg).toBeLessThan(0.2);
    expect(pos).toBeGreaterThan(neu);
    expect(neu).toBeGreaterThan(neg);
    for (const bad of [' great great great great great', ' goood fabulosity amazinggg', ' wonderful $$$ @@@ ###', ' the the the the the', '']) {
      expect(g(bad), JSON.stringify(bad)).toBeLessThan(0.1);
    }
    // V = 10, P = (1 + 10/sqrt(115))/2 = 0.966252; R = 1/2, S = 2/3: 0.966252 * 0.25 * 2/3
    expect(g(' superb superb')).toBeCloseTo(0.161042, 6);
    const wordy = ` ${'the soup was hot and the bread was fresh and '.repeat(4)}`;
    expect(sentimentBreakdown(wordy, sentimentVocabulary()).long).toBe(0); // 40 words
    expect(g(wordy)).toBe(0);
  });

  it('valences the grammar by polarity: every positive phrase V > 0, negative V < 0, neutral V = 0', () => {
    const adjs = adjectivesByPolarity();
    for (const a of adjs.pos) expect(valenceSum(words(a)), a).toBeGreaterThan(0);
    for (const a of adjs.neg) expect(valenceSum(words(a)), a).toBeLessThan(0);
    for (const a of adjs.neu) expect(valenceSum(words(a)), a).toBe(0);
  });

  it('has disjoint SFT and RL prompts, SFT text in the corpus vocabulary, and short SFT examples', () => {
    const rl = task.rlPrompts();
    expect(rl).toHaveLength(155);
    const sft = task.sftExamples();
    expect(sft).toHaveLength(2000);
    const rlSet = new Set(rl);
    const vocab = sentimentVocabulary();
    for (const e of sft) {
      expect(rlSet.has(e.prompt)).toBe(false);
      expect(e.prompt).toMatch(/^Review: .* (was|were)$/);
      expect(e.response).toMatch(/^ [a-z][a-zA-Z ,]*\.$/);
      expect(e.prompt.length + e.response.length).toBeLessThanOrEqual(63);
      for (const w of words(e.response)) expect(vocab.has(w), w).toBe(true);
    }
    expect(vocab.size).toBeLessThan(400);
  });

  it('SFT responses are middling: mean gold 0.3988', () => {
    const golds = sftGold(task);
    expect(mean(golds)).toBeCloseTo(0.3988, 4);
    expect(sentimentGold('x', ' delicious and fresh.')).toBe(g(' delicious and fresh.'));
  });
});
