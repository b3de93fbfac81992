import { Rng } from '../../util/rng.js';
import { cutAtStops, once, type SftExample, type Task } from '../types.js';

/**
 * `arithmetic` — addition of two numbers from 0 to 99, written "23+58=81".
 *
 * The 10,000 ordered pairs are split once, at random: 1,000 are held out as RL
 * prompts ("23+58="), and the corpus (one equation per line, ~150 KB) and the SFT
 * demonstrations (2,000 distinct pairs; response "81\n") use only the other 9,000,
 * so RL and evaluation measure generalisation, not recall.
 */

export const ARITHMETIC_SEED = 'arithmetic-v1';
export const ARITHMETIC_MAX_OPERAND = 99;
export const ARITHMETIC_RL_COUNT = 1000;
export const ARITHMETIC_SFT_COUNT = 2000;
export const ARITHMETIC_CORPUS_CHARS = 150_000;

const PROMPT = /^(\d{1,2})\+(\d{1,2})=$/;

const split = once(() => {
  const n = ARITHMETIC_MAX_OPERAND + 1;
  const order = new Rng(`${ARITHMETIC_SEED}/split`).permutation(n * n);
  const pair = (i: number): [number, number] => [Math.floor(i / n), i % n];
  return { rl: order.slice(0, ARITHMETIC_RL_COUNT).map(pair), rest: order.slice(ARITHMETIC_RL_COUNT).map(pair) };
});

const corpus = once(() => {
  const rng = new Rng(`${ARITHMETIC_SEED}/corpus`);
  const pairs = split().rest;
  const lines: string[] = [];
  let length = 0;
  while (length < ARITHMETIC_CORPUS_CHARS) {
    const [a, b] = pairs[rng.int(pairs.length)];
    const line = `${a}+${b}=${a + b}`;
    lines.push(line);
    length += line.length + 1;
  }
  return lines.join('\n') + '\n';
});

const sft = once((): SftExample[] => {
  const pairs = split().rest;
  const order = new Rng(`${ARITHMETIC_SEED}/sft`).permutation(pairs.length).slice(0, ARITHMETIC_SFT_COUNT);
  return order.map((i) => {
    const [a, b] = pairs[i];
    return { prompt: `${a}+${b}=`, response: `${a + b}\n` };
  });
});

/**
 * Gold score: digit-wise correctness, aligned from the right.
 *
 * The response is cut at its first '\n' (the stop sequence); call the rest r and
 * the correct sum c (decimal, no leading zeros). If r is empty or contains
 * anything but the digits 0-9 (a space, a sign, a letter), the score is 0.
 * Otherwise
 *
 *   gold = #{ i < min(|r|, |c|) : r[|r|−1−i] = c[|c|−1−i] } / max(|r|, |c|)
 *
 * i.e. the fraction of correctly placed digits counted from the units digit, with a
 * length mismatch penalised by the larger length in the denominator. For 23+58=81:
 * "81" → 1, "71" → 1/2, "80" → 1/2, "18" → 0, "1" → 1/2, "181" → 2/3, "081" → 2/3,
 * "8" → 0, " 81" → 0, "eighty" → 0. A prompt that is not "a+b=" with 1-2 digit
 * operands scores 0 for every response.
 */
export function arithmeticGold(prompt: string, response: string): number {
  const m = PROMPT.exec(prompt);
  if (!m) return 0;
  const c = String(Number(m[1]) + Number(m[2]));
  const r = cutAtStops(response, ['\n']);
  if (!/^[0-9]+$/.test(r)) return 0;
  let correct = 0;
  for (let i = 0; i < Math.min(r.length, c.length); i++) {
    if (r[r.length - 1 - i] === c[c.length - 1 - i]) correct++;
  }
  return correct / Math.max(r.length, c.length);
}

export const arithmeticTask: Task = {
  name: 'arithmetic',
  description: 'Add two numbers from 0 to 99 ("23+58=" -> "81"); gold = fraction of answer digits correct, aligned from the right.',
  pretrainCorpus: corpus,
  sftExamples: () => sft().map((e) => ({ ...e })),
  rlPrompts: () => split().rl.map(([a, b]) => `${a}+${b}=`),
  goldScore: arithmeticGold,
  stopSequences: ['\n'],
  // Answers are one word, so word bigrams never occur: distinct-2 counts digit pairs.
  diversityUnit: 'chars',
};
