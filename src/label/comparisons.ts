import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { DataError } from '../data/corpus.js';
import { readJsonl, type JsonlRecord } from '../data/jsonl.js';

/**
 * Ranked comparisons, the output of `rlhf label` and the input of
 * `rlhf train-reward`. One JSON object per line of `comparisons.jsonl`:
 *
 *   {"prompt": "Review: The soup was",
 *    "responses": [" cold.", " delicious and fresh.", " served with rice."],
 *    "ranking": [1, 2, 0],            // response indices, best first
 *    "labeler": "gold:sentiment",
 *    "prompt_index": 17}              // optional: position in the label stage's prompt list
 *
 * Plain pairwise lines `{"prompt", "chosen", "rejected"}` (TRL's reward-data
 * format) are read as responses [chosen, rejected] with ranking [0, 1].
 * Unknown extra keys are ignored.
 */
export interface Comparison {
  prompt: string;
  /** K ≥ 2 non-empty responses to `prompt`. */
  responses: string[];
  /** A permutation of 0..K−1: response indices from best to worst. */
  ranking: number[];
  /** Who ranked: "human", "gold:<task>" (with its noise, if any), or "unknown" for external data that does not say. */
  labeler: string;
  /** Index of the prompt in the label stage's prompt list (absent in external data). */
  prompt_index?: number;
  /**
   * Pairs of responses the labeler judged equally good. The ranking still
   * orders them (it is a permutation), but no preference is learned or
   * scored from them: a forced order between equals is noise.
   */
  ties?: [number, number][];
}

/** True when `ranking` holds each of 0..k−1 exactly once. */
export function isPermutation(ranking: readonly number[], k: number): boolean {
  if (ranking.length !== k) return false;
  const seen = new Array<boolean>(k).fill(false);
  for (const r of ranking) {
    if (!Number.isInteger(r) || r < 0 || r >= k || seen[r]) return false;
    seen[r] = true;
  }
  return true;
}

const response = z.string().min(1, 'empty response');

const rankedSchema = z
  .object({
    prompt: z.string(),
    responses: z.array(response).min(2, 'fewer than 2 responses'),
    ranking: z.array(z.number().int()),
    labeler: z.string().default('unknown'),
    prompt_index: z.number().int().nonnegative().optional(),
    ties: z.array(z.tuple([z.number().int(), z.number().int()])).optional(),
  })
  .superRefine((c, ctx) => {
    if (!isPermutation(c.ranking, c.responses.length)) {
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        path: ['ranking'],
        message: `${JSON.stringify(c.ranking)} is not a permutation of 0..${c.responses.length - 1} (one index per response, best first)`,
      });
    }
    const k = c.responses.length;
    const bad = (c.ties ?? []).findIndex(([a, b]) => a === b || a < 0 || b < 0 || a >= k || b >= k);
    if (bad >= 0) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['ties', bad], message: `${JSON.stringify(c.ties![bad])} is not a pair of two different response indices in 0..${k - 1}` });
    }
  });

const pairwiseSchema = z
  .object({
    prompt: z.string(),
    chosen: response,
    rejected: response,
    labeler: z.string().default('unknown'),
  })
  .transform((p): Comparison => ({ prompt: p.prompt, responses: [p.chosen, p.rejected], ranking: [0, 1], labeler: p.labeler }));

/** The zod schema of one line: the ranked form, or the pairwise form when the line has `chosen` or `rejected`. */
export function comparisonSchema(json: unknown): z.ZodType<Comparison> {
  const pairwise = typeof json === 'object' && json !== null && ('chosen' in json || 'rejected' in json);
  return (pairwise ? pairwiseSchema : rankedSchema) as z.ZodType<Comparison>;
}

/**
 * Reads a comparisons file (ranked or pairwise lines, mixed freely), each record
 * with its 1-based line number. The first bad line — broken JSON, a missing
 * field, an empty response, fewer than two responses, a ranking that is not a
 * permutation — is a DataError naming file:line, and nothing is returned. An
 * empty file is a DataError too ("no records").
 */
export function readComparisons(file: string): JsonlRecord<Comparison>[] {
  if (!fs.existsSync(file)) throw new DataError(`${file}: file not found`);
  return readJsonl(file, comparisonSchema);
}

/**
 * All C(K,2) ordered pairs a ranking implies, as [better, worse] response
 * indices: for positions i < j of the ranking, [ranking[i], ranking[j]]. Pairs
 * come grouped by the better response, best first.
 */
export function rankingPairs(ranking: readonly number[]): [number, number][] {
  if (!isPermutation(ranking, ranking.length)) throw new Error(`rankingPairs: ${JSON.stringify(ranking)} is not a permutation of 0..${ranking.length - 1}`);
  const pairs: [number, number][] = [];
  for (let i = 0; i < ranking.length; i++) {
    for (let j = i + 1; j < ranking.length; j++) pairs.push([ranking[i], ranking[j]]);
  }
  return pairs;
}

/** The [better, worse] pairs a comparison teaches: its ranking's pairs, less the ones the labeler called ties. */
export function comparisonPairs(c: Pick<Comparison, 'ranking' | 'ties'>): [number, number][] {
  const pairs = rankingPairs(c.ranking);
  if (!c.ties?.length) return pairs;
  const tied = new Set(c.ties.flatMap(([a, b]) => [`${a},${b}`, `${b},${a}`]));
  return pairs.filter(([a, b]) => !tied.has(`${a},${b}`));
}

/** Index pairs (i < j) whose scores are equal: what a scorer that ranks by these scores calls a tie. */
export function tiedPairs(scores: readonly number[]): [number, number][] {
  const same = (x: number, y: number) => x === y || (Number.isNaN(x) && Number.isNaN(y));
  const out: [number, number][] = [];
  for (let i = 0; i < scores.length; i++) for (let j = i + 1; j < scores.length; j++) if (same(scores[i], scores[j])) out.push([i, j]);
  return out;
}

/** Where the label stage of an experiment writes its comparisons (the reward trainer's default data). */
export function labelComparisonsPath(config: { run_dir: string; name: string }): string {
  return path.join(config.run_dir, config.name, 'label', COMPARISONS_FILE);
}

export const COMPARISONS_FILE = 'comparisons.jsonl';
/** Prompts the label stage decided not to record (skipped by the labeler, or no usable responses). */
export const SKIPPED_FILE = 'skipped.jsonl';
