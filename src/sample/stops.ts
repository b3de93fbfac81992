import type { Tokenizer } from '../tokenizer/index.js';

/**
 * Token ids that end a response: EOS, plus stop texts that are a single token
 * (a task's "\n" or "."); longer stop texts are left to text post-processing.
 */
export function stopTokenIds(tokenizer: Pick<Tokenizer, 'eosId' | 'encode'>, stops: readonly string[]): number[] {
  const ids = new Set([tokenizer.eosId]);
  for (const text of stops) {
    const enc = tokenizer.encode(text);
    if (enc.length === 1) ids.add(enc[0]);
  }
  return [...ids];
}
