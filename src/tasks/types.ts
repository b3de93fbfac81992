/**
 * A built-in task: everything an RLHF experiment needs besides the model — a
 * pretraining corpus, SFT demonstrations, RL prompts and a "gold" scorer that
 * stands in for the true human preference, so that proxy-reward optimisation
 * can be measured against it.
 *
 * All methods are pure functions of the code: same bytes on every call and every
 * machine (generation uses the seeded `Rng`). The committed files under
 * `data/<task>/` are renderings of them (see files.ts and generate-cli.ts).
 */

export type TaskName = 'sentiment' | 'arithmetic' | 'randomwalks';

export interface SftExample {
  prompt: string;
  response: string;
}

export interface Task {
  name: TaskName;
  description: string;
  /** Pretraining corpus text (deterministic). */
  pretrainCorpus(): string;
  /** SFT demonstrations. */
  sftExamples(): { prompt: string; response: string }[];
  /** Prompts for RL (label / PPO / eval); disjoint from the SFT prompts where meaningful. */
  rlPrompts(): string[];
  /** Gold score of a response to a prompt, in [0, 1] (higher is better). Pure and deterministic. */
  goldScore(prompt: string, response: string): number;
  /** Characters a response stops at (besides the model's EOS), if any, e.g. '\n'. */
  stopSequences?: string[];
  /** What eval's distinct-n counts n-grams of (default words); 'chars' for one-word answers. */
  diversityUnit?: DiversityUnit;
}

export type DiversityUnit = 'words' | 'chars';

/** Memoise a zero-argument generator (the outputs are deterministic, so computing them once is safe). */
export function once<T>(f: () => T): () => T {
  let done = false;
  let value: T;
  return () => {
    if (!done) {
      value = f();
      done = true;
    }
    return value;
  };
}

/** The text of `response` before the first occurrence of any of `stops` (the whole text if none occurs). */
export function cutAtStops(response: string, stops: readonly string[]): string {
  let end = response.length;
  for (const s of stops) {
    const i = response.indexOf(s);
    if (s.length > 0 && i >= 0 && i < end) end = i;
  }
  return response.slice(0, end);
}
