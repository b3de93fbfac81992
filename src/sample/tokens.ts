import type { Tokenizer } from '../tokenizer/index.js';

/**
 * Prompt tokens for generation. An empty prompt starts from `<|endoftext|>`,
 * GPT-2's start-of-text convention, so every row has a token to condition on.
 */
export function encodePrompt(tokenizer: Pick<Tokenizer, 'eosId' | 'encode'>, text: string): number[] {
  const ids = tokenizer.encode(text);
  return ids.length ? ids : [tokenizer.eosId];
}

/**
 * Token ids that end a response: EOS, plus stop texts that are exactly one
 * token (a task's "\n" or "."); longer stop texts are cut from the decoded text.
 */
export function stopTokenIds(tokenizer: Pick<Tokenizer, 'eosId' | 'encode' | 'decode'>, stops: readonly string[]): number[] {
  const ids = new Set([tokenizer.eosId]);
  for (const text of stops) {
    const enc = tokenizer.encode(text);
    if (enc.length === 1 && tokenizer.decode(enc) === text) ids.add(enc[0]);
  }
  return [...ids];
}
