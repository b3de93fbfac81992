/**
 * Shared tokenizer types. A tokenizer is trained once (by the first stage that
 * needs one), saved as JSON next to every checkpoint, and reloaded by later
 * stages; its fingerprint lets a stage refuse a checkpoint trained with a
 * different vocabulary.
 */

export type TokenizerSpec = { type: 'char' } | { type: 'bpe'; vocab_size: number };

/** Marks the end of a document; appended by the data pipeline, never by `encode`. */
export const EOS_TOKEN = '<|endoftext|>';
/** Fills batch positions that carry no text (masked out of losses). */
export const PAD_TOKEN = '<|pad|>';
/** Char tokenizer only: stands for any character outside the trained alphabet. */
export const UNK_TOKEN = '<|unk|>';

export interface Tokenizer {
  readonly type: 'char' | 'bpe' | 'gpt2';
  /** Number of ids, special tokens included: the model's embedding rows. */
  readonly vocabSize: number;
  readonly eosId: number;
  readonly padId: number;
  /** Never adds special tokens; the literal text "<|endoftext|>" is ordinary text. */
  encode(text: string): number[];
  /** Special tokens decode to ''; an id outside [0, vocabSize) throws. */
  decode(ids: readonly number[]): string;
  /** Plain, deterministic JSON: same training input gives byte-identical output. */
  toJSON(): TokenizerJSON;
}

export type CharTokenizerJSON = {
  type: 'char';
  version: 1;
  /** The alphabet in id order: one Unicode code point per entry, ascending. */
  chars: string[];
  /** Appended after `chars`, in this order: [EOS, PAD, UNK]. Informational; fixed by version 1. */
  specials: string[];
};

export type BpeTokenizerJSON = {
  type: 'bpe';
  version: 1;
  /** Names the pre-tokenisation regex; only 'gpt2' exists in version 1. */
  pretokenizer: 'gpt2';
  vocab_size: number;
  /** merges[r] = [left id, right id] creates token id 256 + r; rank r = priority. */
  merges: [number, number][];
  /** Appended after the merges, in this order: [EOS, PAD]. Informational; fixed by version 1. */
  specials: string[];
};

export type Gpt2TokenizerJSON = {
  type: 'gpt2';
  version: 1;
  /** Token strings in id order, bytes shown through GPT-2's byte-to-unicode mapping (specials as their text). */
  vocab: string[];
  /** "LEFT RIGHT" in rank order, as in GPT-2's merges.txt. */
  merges: string[];
  eos_id: number;
  /** GPT-2 has no padding token and pads with end-of-text: pad_id may equal eos_id. */
  pad_id: number;
};

export type TokenizerJSON = CharTokenizerJSON | BpeTokenizerJSON | Gpt2TokenizerJSON;

/** Throws the uniform "bad id" error that both tokenizers use in `decode`. */
export function badId(id: unknown, vocabSize: number): never {
  throw new Error(`tokenizer: cannot decode id ${String(id)}: ids must be integers in [0, ${vocabSize})`);
}
