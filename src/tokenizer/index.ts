import { createHash } from 'node:crypto';
import { BpeTokenizer } from './bpe.js';
import { CharTokenizer } from './char.js';
import { Gpt2Tokenizer } from './gpt2.js';
import { canonicalJSON } from './json.js';
import type { Tokenizer, TokenizerSpec } from './types.js';

export { BpeTokenizer, BPE_MAX_VOCAB, BPE_MIN_VOCAB, pretokenize } from './bpe.js';
export { CharTokenizer } from './char.js';
export { Gpt2Tokenizer } from './gpt2.js';
export { EOS_TOKEN, PAD_TOKEN, UNK_TOKEN } from './types.js';
export type { BpeTokenizerJSON, CharTokenizerJSON, Gpt2TokenizerJSON, Tokenizer, TokenizerJSON, TokenizerSpec } from './types.js';

export function trainTokenizer(spec: TokenizerSpec, corpus: string): Tokenizer {
  // Specs come from YAML at run time, so check the shape instead of trusting the type.
  const s = spec as { type?: unknown; vocab_size?: unknown };
  if (s?.type === 'char') return CharTokenizer.train(corpus);
  if (s?.type === 'bpe') return BpeTokenizer.train(corpus, s.vocab_size as number);
  throw new Error(`tokenizer: unknown type ${JSON.stringify(s?.type)} (expected "char" or "bpe")`);
}

/** Rebuilds a tokenizer from `toJSON()` output, validating every field. */
export function tokenizerFromJSON(json: unknown): Tokenizer {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw new Error('tokenizer JSON: expected an object with "type" and "version"');
  }
  const obj = json as Record<string, unknown>;
  if (obj.type !== 'char' && obj.type !== 'bpe' && obj.type !== 'gpt2') {
    throw new Error(`tokenizer JSON: unknown type ${JSON.stringify(obj.type)} (expected "char", "bpe" or "gpt2")`);
  }
  if (obj.version !== 1) {
    throw new Error(`${obj.type} tokenizer JSON: unsupported version ${JSON.stringify(obj.version)} (this build reads version 1)`);
  }
  if (obj.type === 'gpt2') return Gpt2Tokenizer.fromJSON(obj);
  return obj.type === 'char' ? CharTokenizer.fromJSON(obj) : BpeTokenizer.fromJSON(obj);
}

/** sha256 (hex) of the canonical JSON: equal iff the tokenizers map text to the same ids. */
export function tokenizerFingerprint(t: Tokenizer): string {
  return createHash('sha256').update(canonicalJSON(t.toJSON()), 'utf8').digest('hex');
}
