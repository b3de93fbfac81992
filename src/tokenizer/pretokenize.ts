/**
 * GPT-2's pre-tokenisation: English contractions, letter runs and number runs
 * each with an optional leading space, punctuation runs, and whitespace (a
 * whitespace run gives its last space to the following word). Merges never
 * cross chunk boundaries, so tokens stay word-like. Every code point is a
 * letter, a number, whitespace or something else, so some alternative always
 * matches and the chunks tile the text: nothing is dropped. The `u` flag keeps
 * surrogate pairs whole.
 */
const GPT2_PATTERN = /'(?:s|t|re|ve|m|ll|d)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

export function pretokenize(text: string): string[] {
  return text.match(GPT2_PATTERN) ?? [];
}
