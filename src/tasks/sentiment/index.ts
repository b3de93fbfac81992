import { Rng } from '../../util/rng.js';
import { cutAtStops, once, type SftExample, type Task } from '../types.js';
import { allOpenings, chance, firstSentenceEnd, pick, review, type Opening, type Polarity } from './grammar.js';
import { sentimentBreakdown, words } from './gold.js';

/**
 * `sentiment` — the "positive continuation" task of lm-human-preferences and TRL,
 * on one-line reviews of meals, hotels, films and books.
 *
 * - corpus: ~200 KB of reviews, one per line, a third each positive, negative and
 *   neutral/mixed;
 * - prompts: review openings such as "Review: The soup was" (no trailing space);
 *   the 515 distinct openings are split once, at random, 70 % for SFT and 30 % for
 *   RL (155 prompts), so RL prompts are never SFT prompts;
 * - SFT responses: the rest of the first sentence, " delicious and fresh.", half of
 *   them neutral or mixed and a quarter each positive and negative, so the SFT
 *   policy is middling and RLHF has room to make it more positive; prompt +
 *   response is at most 63 characters (a 64-character context holds it with EOS);
 * - gold: positivity × fluency (exact formula in gold.ts).
 */

export const SENTIMENT_SEED = 'sentiment-v1';
export const SENTIMENT_CORPUS_CHARS = 200_000;
export const SENTIMENT_SFT_COUNT = 2000;
export const SENTIMENT_RL_FRACTION = 0.3;
export const SENTIMENT_STOPS = ['.', '\n'];
/** An SFT prompt + response is at most this many characters, so it fits a 64-character context with EOS. */
export const SENTIMENT_SFT_MAX_CHARS = 63;

const split = once(() => {
  const openings = allOpenings();
  const order = new Rng(`${SENTIMENT_SEED}/split`).permutation(openings.length);
  const nRl = Math.round(openings.length * SENTIMENT_RL_FRACTION);
  return {
    rl: order.slice(0, nRl).map((i) => openings[i]),
    sft: order.slice(nRl).map((i) => openings[i]),
  };
});

const corpus = once(() => {
  const rng = new Rng(`${SENTIMENT_SEED}/corpus`);
  const openings = allOpenings();
  const lines: string[] = [];
  let length = 0;
  while (length < SENTIMENT_CORPUS_CHARS) {
    const pol = pick<Polarity>(rng, ['pos', 'neg', 'neu']);
    const line = review(rng, pick(rng, openings), pol);
    lines.push(line);
    length += line.length + 1;
  }
  return lines.join('\n') + '\n';
});

/** Every lower-case word of the corpus: the "known words" of the fluency term. */
export const sentimentVocabulary = once((): ReadonlySet<string> => new Set(words(corpus())));

const sft = once((): SftExample[] => {
  const rng = new Rng(`${SENTIMENT_SEED}/sft`);
  const openings: Opening[] = split().sft;
  const out: SftExample[] = [];
  for (let i = 0; i < SENTIMENT_SFT_COUNT; i++) {
    const opening = pick(rng, openings);
    const pol: Polarity = chance(rng, 0.5) ? 'neu' : chance(rng, 0.5) ? 'pos' : 'neg';
    let response = firstSentenceEnd(rng, opening, pol);
    while (opening.prompt.length + response.length > SENTIMENT_SFT_MAX_CHARS) response = firstSentenceEnd(rng, opening, pol);
    out.push({ prompt: opening.prompt, response });
  }
  return out;
});

/** The gold score; see gold.ts for the formula. */
export function sentimentGold(_prompt: string, response: string): number {
  return sentimentBreakdown(cutAtStops(response, SENTIMENT_STOPS), sentimentVocabulary()).gold;
}

export const sentimentTask: Task = {
  name: 'sentiment',
  description:
    'Continue a review opening ("Review: The soup was") to the end of its sentence; gold = positivity (AFINN-165 valences) x fluency.',
  pretrainCorpus: corpus,
  sftExamples: () => sft().map((e) => ({ ...e })),
  rlPrompts: () => split().rl.map((o) => o.prompt),
  goldScore: sentimentGold,
  stopSequences: [...SENTIMENT_STOPS],
};
