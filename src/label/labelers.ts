import readline from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import type { LabelNoise } from '../config/schema.js';
import type { Rng } from '../util/rng.js';
import { tiedPairs } from './comparisons.js';

/**
 * Labelers rank K responses to a prompt. The label stage asks one prompt at a
 * time and records each answer before asking the next.
 */

/** A ranking (response indices, best first), or a request to skip, undo or quit. */
export type LabelDecision = number[] | 'skip' | 'undo' | 'quit';

export interface LabelContext {
  /** 0-based position of the prompt in the stage's prompt list. */
  index: number;
  /** Prompts this run labels in all. */
  total: number;
  labeled: number;
  skipped: number;
}

export interface Labeler {
  /** Recorded in each comparison's `labeler` field. */
  readonly name: string;
  /** Whether a person answers (undo/quit are possible; progress goes to the terminal). */
  readonly interactive: boolean;
  rank(prompt: string, responses: readonly string[], context?: LabelContext): Promise<LabelDecision>;
  /** Pairs of responses this labeler judges equally good (recorded as the comparison's `ties`); a person is not asked. */
  ties?(prompt: string, responses: readonly string[]): [number, number][];
  /** A message for the person labeling ("nothing to undo"). */
  note?(message: string): void;
  /** Releases the input (a person's labeler reads stdin until closed); pending and later rank() calls answer 'quit'. */
  close?(): void;
}

// ---------------------------------------------------------------------------
// Gold labeler: the task's scorer, optionally with simulated human noise.

export interface GoldScorer {
  name: string;
  goldScore(prompt: string, response: string): number;
}

/** Indices sorted by score, highest first; equal scores keep index order (so ties break deterministically). NaN counts as lowest. */
export function goldRanking(scores: readonly number[]): number[] {
  const s = scores.map((v) => (Number.isNaN(v) ? -Infinity : v));
  return s.map((_, i) => i).sort((a, b) => s[b] - s[a] || a - b);
}

/**
 * Plackett–Luce sampling with weights exp(score / temperature): the best
 * response is drawn with probability ∝ exp(s_i / T) among all K, the second
 * among the remaining K−1, and so on. For K = 2 this is Bradley–Terry:
 * P(i ranked above j) = σ((s_i − s_j) / T). T → 0 gives the gold ranking (equal
 * scores then tie at random); large T a uniformly random ranking.
 */
export function plackettLuceRanking(scores: readonly number[], temperature: number, rng: Rng): number[] {
  const remaining = scores.map((_, i) => i);
  const order: number[] = [];
  while (remaining.length > 1) {
    const max = Math.max(...remaining.map((i) => scores[i]));
    const weights = remaining.map((i) => Math.exp((scores[i] - max) / temperature));
    const total = weights.reduce((a, b) => a + b, 0);
    let u = rng.next() * total;
    let pick = remaining.length - 1;
    for (let j = 0; j < remaining.length; j++) {
      u -= weights[j];
      if (u < 0) {
        pick = j;
        break;
      }
    }
    order.push(remaining[pick]);
    remaining.splice(pick, 1);
  }
  order.push(remaining[0]);
  return order;
}

/**
 * Flip noise: start from the gold ranking and make one bubble pass from the top:
 * for positions j = 0 … K−2, swap the responses at positions j and j+1 with
 * probability `rate` (one draw per position, always K−1 draws). For K = 2 the
 * pair is flipped with probability `rate`; for larger K a response can sink
 * more than one place (the best ends last with probability rate^(K−1)).
 * rate = 0 is exactly the gold ranking.
 */
export function flipRanking(gold: readonly number[], rate: number, rng: Rng): number[] {
  const order = [...gold];
  for (let j = 0; j + 1 < order.length; j++) {
    if (rng.next() < rate) [order[j], order[j + 1]] = [order[j + 1], order[j]];
  }
  return order;
}

/** The ranking a simulated labeler with `noise` gives responses with these gold scores. */
export function noisyRanking(scores: readonly number[], noise: LabelNoise, rng: Rng): number[] {
  switch (noise.type) {
    case 'none':
      return goldRanking(scores);
    case 'bradley_terry':
      return plackettLuceRanking(scores, noise.temperature, rng);
    case 'flip':
      return flipRanking(goldRanking(scores), noise.rate, rng);
  }
}

/** "gold:sentiment", "gold:sentiment+bradley_terry(temperature=0.1)", "gold:sentiment+flip(rate=0.2)". */
export function goldLabelerName(task: string, noise: LabelNoise): string {
  switch (noise.type) {
    case 'none':
      return `gold:${task}`;
    case 'bradley_terry':
      return `gold:${task}+bradley_terry(temperature=${noise.temperature})`;
    case 'flip':
      return `gold:${task}+flip(rate=${noise.rate})`;
  }
}

/**
 * Ranks by the task's gold score, with `noise`. The noise RNG is either one
 * stream used in call order, or a function of the prompt index (the label stage
 * uses that, so a resumed run draws the same noise for the same prompt).
 */
export function goldLabeler(task: GoldScorer, noise: LabelNoise, rng: Rng | ((promptIndex: number) => Rng)): Labeler {
  let calls = 0;
  return {
    name: goldLabelerName(task.name, noise),
    interactive: false,
    rank(prompt, responses, context) {
      const index = context?.index ?? calls;
      calls++;
      const scores = responses.map((r) => task.goldScore(prompt, r));
      const source = typeof rng === 'function' ? rng(index) : rng;
      return Promise.resolve(noisyRanking(scores, noise, source));
    },
    // Equal gold scores are equally good whatever the noise: their order in the ranking carries no preference.
    ties: (prompt, responses) => tiedPairs(responses.map((r) => task.goldScore(prompt, r))),
  };
}

// ---------------------------------------------------------------------------
// Human labeler: a person at the terminal (or a script piping answers to stdin).

export type ParsedAnswer =
  | { kind: 'ranking'; ranking: number[] }
  | { kind: 'skip' | 'undo' | 'quit' | 'help' }
  | { kind: 'invalid'; message: string };

/**
 * One line of input for K responses. An order is the response numbers (1-based)
 * best first, separated by spaces, commas or ">" ("3 1 2", "3,1,2", "3>1>2"), or
 * written together ("312", as K ≤ 9). The last number may be left out ("3 1"
 * for K = 3 means 3, 1, then 2). Words: s/skip, u/undo, q/quit, ?/h/help.
 */
export function parseAnswer(line: string, k: number): ParsedAnswer {
  const text = line.trim().toLowerCase();
  if (text === 's' || text === 'skip') return { kind: 'skip' };
  if (text === 'u' || text === 'undo') return { kind: 'undo' };
  if (text === 'q' || text === 'quit' || text === 'exit') return { kind: 'quit' };
  if (text === '?' || text === 'h' || text === 'help') return { kind: 'help' };
  const example = exampleOrder(k);
  if (text === '') return { kind: 'invalid', message: `enter an order of 1..${k}, best first, e.g. "${example}" (? for help)` };
  const parts = /^[1-9]+$/.test(text) ? [...text] : text.split(/[\s,>]+/).filter(Boolean);
  const numbers: number[] = [];
  for (const p of parts) {
    const n = /^\d+$/.test(p) ? Number(p) : NaN;
    if (!(n >= 1 && n <= k)) {
      return { kind: 'invalid', message: `"${p}" is not a response number (1..${k}); enter an order such as "${example}", or s, u, q, ? for help` };
    }
    if (numbers.includes(n)) return { kind: 'invalid', message: `${n} appears twice; each of 1..${k} once, best first, e.g. "${example}"` };
    numbers.push(n);
  }
  if (numbers.length < k - 1) {
    return { kind: 'invalid', message: `give all ${k} numbers, best first, e.g. "${example}" (the last one may be left out)` };
  }
  const ranking = numbers.map((n) => n - 1);
  if (ranking.length === k - 1) ranking.push([...Array(k).keys()].find((i) => !ranking.includes(i))!);
  return { kind: 'ranking', ranking };
}

function exampleOrder(k: number): string {
  const order = [...Array(k).keys()].map((i) => i + 1);
  if (k >= 2) [order[0], order[1]] = [order[1], order[0]];
  return order.join(' ');
}

export const HUMAN_HELP = [
  'Rank the responses from best to worst by their numbers, e.g. "2 1 3" (also "213", "2,1,3" or "2>1>3").',
  'The last number may be left out: with 3 responses "2 1" means 2, then 1, then 3.',
  '  s  skip this prompt (recorded as skipped; it is not asked again)',
  '  u  undo: go back to the previous prompt and remove what was recorded for it',
  '  q  quit: every answer so far is saved; run the same command again to continue',
  '  ?  this help',
].join('\n');

/** Shows a string with its whitespace visible: JSON quoting (so leading spaces, \n and \t show). */
function quoted(s: string): string {
  return JSON.stringify(s);
}

export interface HumanLabelerOptions {
  /** Line editing and Ctrl-C handling; default: input and output are both TTYs. */
  terminal?: boolean;
}

/**
 * An interactive labeler over streams: works on a terminal and with piped
 * stdin. Each prompt is shown with its K responses numbered from 1; a bad line
 * gets a one-line hint and the question again. End of input, Ctrl-C or `q`
 * answer 'quit'. Input lines that arrive before they are asked for (piped
 * input) are queued, not lost.
 */
export function humanLabeler(input: Readable, output: Writable, opts: HumanLabelerOptions = {}): Labeler {
  const isTty = (s: unknown): boolean => Boolean((s as { isTTY?: boolean }).isTTY);
  const terminal = opts.terminal ?? (isTty(input) && isTty(output));
  const rl = readline.createInterface({ input, output, terminal });
  const queued: string[] = [];
  let waiting: ((line: string | null) => void) | undefined;
  let closed = false;
  rl.on('line', (line) => {
    if (waiting) {
      const w = waiting;
      waiting = undefined;
      w(line);
    } else queued.push(line);
  });
  rl.on('close', () => {
    closed = true;
    if (waiting) {
      const w = waiting;
      waiting = undefined;
      w(null);
    }
  });
  // On a terminal readline catches Ctrl-C itself: treat it as quit.
  rl.on('SIGINT', () => {
    output.write('\n');
    rl.close();
  });

  const write = (text: string): void => {
    output.write(text + '\n');
  };
  const nextLine = (question: string): Promise<string | null> => {
    if (queued.length === 0 && closed) return Promise.resolve(null);
    rl.setPrompt(question);
    rl.prompt();
    if (queued.length > 0) {
      const line = queued.shift()!;
      if (!terminal) write(line); // echo piped answers so a transcript reads like a session
      return Promise.resolve(line);
    }
    return new Promise((resolve) => {
      waiting = (line) => {
        if (line !== null && !terminal) write(line);
        resolve(line);
      };
    });
  };

  return {
    name: 'human',
    interactive: true,
    async rank(prompt, responses, context) {
      const k = responses.length;
      const where = context ? `prompt ${context.index + 1} of ${context.total} · ${context.labeled} labeled, ${context.skipped} skipped` : 'prompt';
      write(`\n── ${where} ${'─'.repeat(Math.max(4, 60 - where.length))}`);
      write(prompt === '' ? '(empty prompt)' : prompt.split('\n').map((l) => `  ${l}`).join('\n'));
      responses.forEach((r, i) => write(`  ${i + 1}) ${quoted(r)}`));
      const question = `rank best→worst (e.g. "${exampleOrder(k)}"), s skip, u undo, q quit, ? help: `;
      for (;;) {
        const line = await nextLine(question);
        if (line === null) return 'quit';
        const a = parseAnswer(line, k);
        switch (a.kind) {
          case 'ranking':
            return a.ranking;
          case 'skip':
          case 'undo':
          case 'quit':
            return a.kind;
          case 'help':
            write(HUMAN_HELP);
            break;
          case 'invalid':
            write(`  ✗ ${a.message}`);
            break;
        }
      }
    },
    note(message) {
      write(message);
    },
    close() {
      if (!closed) rl.close();
    },
  };
}
