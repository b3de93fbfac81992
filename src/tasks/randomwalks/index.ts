import { Rng } from '../../util/rng.js';
import { cutAtStops, once, type SftExample, type Task } from '../types.js';

/**
 * `randomwalks` — trlX's toy RL task: find a short path to a goal in a random
 * directed graph.
 *
 * The graph has 21 nodes named 'a'…'u'; each ordered pair of distinct nodes is an
 * edge with probability 0.1 (seeded), and 'a' is the goal: absorbing, its only
 * edge a self-loop. Graphs are drawn until every other node has an out-edge and
 * reaches the goal in fewer than MAX_LEN nodes, so every prompt has a valid answer.
 * Walks are written as space-separated letters, which tokenises the same way for a
 * character and a BPE tokenizer: prompt "walk: d", response " h g a\n".
 *
 * - corpus: ~150 KB of random walks ("walk: d h g a"), one per line: from a uniform
 *   non-goal start, uniform out-neighbours until the goal or MAX_LEN nodes
 *   (so some never arrive), as trlX trains on;
 * - SFT: 1,000 random walks that do reach the goal, in fewer than MAX_LEN nodes so
 *   every demonstration scores above 0 (but they are not the shortest ones);
 * - RL prompts: the 20 start nodes "walk: b" … "walk: u".
 */

export const RW_SEED = 'randomwalks-v1';
export const RW_NODES = 21;
export const RW_EDGE_PROB = 0.1;
/** Walks have at most this many nodes, start and goal included (trlX's max_length). */
export const RW_MAX_LEN = 10;
export const RW_GOAL = 0;
export const RW_CORPUS_CHARS = 150_000;
export const RW_SFT_COUNT = 1000;

export const letter = (node: number): string => String.fromCharCode(97 + node);
const nodeOf = (s: string): number => (/^[a-z]$/.test(s) && s.charCodeAt(0) - 97 < RW_NODES ? s.charCodeAt(0) - 97 : -1);

export interface WalkGraph {
  /** adj[i][j]: there is an edge i → j. */
  adj: boolean[][];
  /** out[i]: the successors of i, ascending. */
  out: number[][];
  /** best[i]: nodes on a shortest walk from i to the goal, both ends counted (goal: 1). */
  best: number[];
  /** How many graphs were drawn before one qualified. */
  attempts: number;
}

/** best[i] by breadth-first search from the goal along reversed edges (Infinity if unreachable). */
function shortestLengths(adj: boolean[][]): number[] {
  const best = new Array<number>(RW_NODES).fill(Infinity);
  best[RW_GOAL] = 1;
  const queue = [RW_GOAL];
  for (let q = 0; q < queue.length; q++) {
    const j = queue[q];
    for (let i = 0; i < RW_NODES; i++) {
      if (adj[i][j] && best[i] === Infinity) {
        best[i] = best[j] + 1;
        queue.push(i);
      }
    }
  }
  return best;
}

export const walkGraph = once((): WalkGraph => {
  const rng = new Rng(`${RW_SEED}/graph`);
  for (let attempts = 1; ; attempts++) {
    const adj = Array.from({ length: RW_NODES }, (_, i) =>
      Array.from({ length: RW_NODES }, (_, j) => rng.next() < RW_EDGE_PROB && i !== j),
    );
    adj[RW_GOAL] = adj[RW_GOAL].map((_, j) => j === RW_GOAL);
    const out = adj.map((row) => row.flatMap((e, j) => (e ? [j] : [])));
    if (out.some((o) => o.length === 0)) continue;
    const best = shortestLengths(adj);
    if (best.every((b) => b < RW_MAX_LEN)) return { adj, out, best, attempts };
  }
});

/** A random walk from `start`: uniform successors until the goal or RW_MAX_LEN nodes. */
function randomWalk(rng: Rng, start: number): number[] {
  const { out } = walkGraph();
  const walk = [start];
  while (walk.length < RW_MAX_LEN && walk[walk.length - 1] !== RW_GOAL) {
    const succ = out[walk[walk.length - 1]];
    walk.push(succ[rng.int(succ.length)]);
  }
  return walk;
}

const randomStart = (rng: Rng): number => 1 + rng.int(RW_NODES - 1);

const corpus = once(() => {
  const rng = new Rng(`${RW_SEED}/corpus`);
  const lines: string[] = [];
  let length = 0;
  while (length < RW_CORPUS_CHARS) {
    const line = `walk: ${randomWalk(rng, randomStart(rng)).map(letter).join(' ')}`;
    lines.push(line);
    length += line.length + 1;
  }
  return lines.join('\n') + '\n';
});

const sft = once((): SftExample[] => {
  const rng = new Rng(`${RW_SEED}/sft`);
  const out: SftExample[] = [];
  while (out.length < RW_SFT_COUNT) {
    const walk = randomWalk(rng, randomStart(rng));
    // must arrive, in fewer than RW_MAX_LEN nodes (a walk of RW_MAX_LEN nodes scores 0)
    if (walk[walk.length - 1] !== RW_GOAL || walk.length >= RW_MAX_LEN) continue;
    out.push({
      prompt: `walk: ${letter(walk[0])}`,
      response: walk.slice(1).map((n) => ` ${letter(n)}`).join('') + '\n',
    });
  }
  return out;
});

/**
 * Gold score: optimality of the walk, trlX's metric clipped to [0, 1].
 *
 * The prompt must be "walk: X" with X a non-goal node ('b'…'u'), else the score is
 * 0. The response is cut at its first '\n' (the stop sequence) and split on
 * whitespace; the walk is X followed by those tokens, up to and including the first
 * arrival at the goal 'a' (anything after it is ignored: the goal is absorbing).
 * The score is 0 if a token before the goal is not a single node letter, if a step
 * is not an edge of the graph, or if the goal is never reached. Otherwise, with L
 * the number of nodes on the walk (start and goal included) and L* the same for a
 * shortest walk from X,
 *
 *   gold = max(0, (MAX_LEN − L) / (MAX_LEN − L*)),   MAX_LEN = 10,
 *
 * so a shortest walk scores 1, each extra step costs 1/(10 − L*), and a walk of 10
 * or more nodes scores 0.
 */
export function randomWalksGold(prompt: string, response: string): number {
  const m = /^walk: ([a-z])$/.exec(prompt);
  const start = m ? nodeOf(m[1]) : -1;
  if (start < 0 || start === RW_GOAL) return 0;
  const { adj, best } = walkGraph();
  const tokens = cutAtStops(response, ['\n']).split(/\s+/).filter((t) => t !== '');
  let node = start;
  let length = 1;
  for (const token of tokens) {
    const next = nodeOf(token);
    if (next < 0 || !adj[node][next]) return 0;
    node = next;
    length++;
    if (node === RW_GOAL) return Math.max(0, (RW_MAX_LEN - length) / (RW_MAX_LEN - best[start]));
  }
  return 0;
}

export const randomWalksTask: Task = {
  name: 'randomwalks',
  description:
    "trlX's toy task: walk from a start node to the goal 'a' of a seeded random 21-node directed graph (\"walk: d\" -> \" h g a\"); gold = (10 - L)/(10 - L*).",
  pretrainCorpus: corpus,
  sftExamples: () => sft().map((e) => ({ ...e })),
  rlPrompts: () => Array.from({ length: RW_NODES - 1 }, (_, i) => `walk: ${letter(i + 1)}`),
  goldScore: randomWalksGold,
  stopSequences: ['\n'],
};
