import { MinHeap } from './heap.js';
import { ChunkEncoder, RankedMerges } from './merge.js';
import { pretokenize } from './pretokenize.js';
import { checkKeys, checkSpecials } from './json.js';
import { EOS_TOKEN, PAD_TOKEN, badId, type BpeTokenizerJSON, type Tokenizer } from './types.js';
import { decodeUtf8, encodeUtf8 } from './utf8.js';

const SPECIALS = [EOS_TOKEN, PAD_TOKEN];
const BYTE_TOKENS = 256;
/** Smallest useful vocabulary: all bytes, one merge, the two specials. */
export const BPE_MIN_VOCAB = BYTE_TOKENS + 1 + SPECIALS.length;
/** Far above any model this lab trains; keeps pair keys (a * base + b) exact. */
export const BPE_MAX_VOCAB = 1 << 20;

export { pretokenize };


/**
 * Byte-level BPE in the style of GPT-2. Ids 0..255 are the bytes of the UTF-8
 * encoding, id 256 + r is the token made by merges[r], and the last two ids are
 * `<|endoftext|>` and `<|pad|>`. Since every byte is a token, any string
 * round-trips exactly (lone surrogates included, see utf8.ts); training only
 * decides how compact the encoding is.
 */
export class BpeTokenizer implements Tokenizer {
  readonly type = 'bpe' as const;
  readonly vocabSize: number;
  readonly eosId: number;
  readonly padId: number;

  private readonly merges: [number, number][];
  private readonly ranked: RankedMerges;
  /** id -> the bytes it stands for (empty for specials). */
  private readonly tokenBytes: Uint8Array[] = [];
  private readonly keyBase: number;
  private readonly chunks = new ChunkEncoder((chunk) => this.ranked.apply(encodeUtf8(chunk)));

  private constructor(merges: [number, number][]) {
    this.merges = merges;
    this.keyBase = BYTE_TOKENS + merges.length;
    this.eosId = this.keyBase;
    this.padId = this.keyBase + 1;
    this.vocabSize = this.keyBase + SPECIALS.length;
    for (let b = 0; b < BYTE_TOKENS; b++) this.tokenBytes.push(Uint8Array.of(b));
    this.ranked = new RankedMerges(merges.map(([a, b], r) => [a, b, BYTE_TOKENS + r]), this.keyBase);
    merges.forEach(([a, b]) => {
      const left = this.tokenBytes[a];
      const right = this.tokenBytes[b];
      const joined = new Uint8Array(left.length + right.length);
      joined.set(left);
      joined.set(right, left.length);
      this.tokenBytes.push(joined);
    });
    this.tokenBytes.push(new Uint8Array(0), new Uint8Array(0));
  }

  static train(corpus: string, vocabSize: number): BpeTokenizer {
    checkVocabSize(vocabSize, 'bpe tokenizer');
    if (corpus.length === 0) throw new Error('bpe tokenizer: cannot train on an empty corpus');
    return new BpeTokenizer(learnMerges(corpus, vocabSize - BPE_MIN_VOCAB + 1));
  }

  static fromJSON(json: Record<string, unknown>): BpeTokenizer {
    const kind = 'bpe';
    checkKeys(json, ['type', 'version', 'pretokenizer', 'vocab_size', 'merges', 'specials'], kind);
    if (json.pretokenizer !== 'gpt2') {
      throw new Error(`bpe tokenizer JSON: unknown pretokenizer ${JSON.stringify(json.pretokenizer)} (expected "gpt2")`);
    }
    checkVocabSize(json.vocab_size, 'bpe tokenizer JSON');
    const { merges } = json;
    const numMerges = (json.vocab_size as number) - BYTE_TOKENS - SPECIALS.length;
    if (!Array.isArray(merges) || merges.length !== numMerges) {
      throw new Error(`bpe tokenizer JSON: "merges" must be an array of ${numMerges} pairs to match vocab_size ${String(json.vocab_size)}`);
    }
    const seen = new Map<string, number>();
    merges.forEach((m: unknown, r) => {
      // A merge may only join tokens that exist before it: ids below 256 + r.
      const ok = Array.isArray(m) && m.length === 2 && m.every((id) => Number.isInteger(id) && id >= 0 && id < BYTE_TOKENS + r);
      if (!ok) throw new Error(`bpe tokenizer JSON: merges[${r}] must be a pair of integer ids in [0, ${BYTE_TOKENS + r})`);
      const key = `${m[0]},${m[1]}`;
      const first = seen.get(key);
      if (first !== undefined) throw new Error(`bpe tokenizer JSON: merges[${r}] repeats merges[${first}]`);
      seen.set(key, r);
    });
    checkSpecials(json.specials, SPECIALS, kind);
    return new BpeTokenizer(merges as [number, number][]);
  }

  encode(text: string): number[] {
    return this.chunks.encode(text);
  }

  decode(ids: readonly number[]): string {
    let total = 0;
    for (const id of ids) {
      const bytes = this.tokenBytes[id];
      // Lookup of a fractional, negative or too-large id yields undefined.
      if (bytes === undefined) badId(id, this.vocabSize);
      total += bytes.length;
    }
    const buf = new Uint8Array(total);
    let at = 0;
    for (const id of ids) {
      buf.set(this.tokenBytes[id], at);
      at += this.tokenBytes[id].length;
    }
    return decodeUtf8(buf);
  }

  toJSON(): BpeTokenizerJSON {
    return {
      type: 'bpe',
      version: 1,
      pretokenizer: 'gpt2',
      vocab_size: this.vocabSize,
      merges: this.merges.map(([a, b]) => [a, b]),
      specials: [...SPECIALS],
    };
  }
}

function checkVocabSize(v: unknown, what: string): void {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < BPE_MIN_VOCAB || v > BPE_MAX_VOCAB) {
    throw new Error(
      `${what}: vocab_size must be an integer in [${BPE_MIN_VOCAB}, ${BPE_MAX_VOCAB}] ` +
        `(256 bytes + at least 1 merge + 2 special tokens), got ${JSON.stringify(v)}`,
    );
  }
}

/**
 * Learns `numMerges` merges from the corpus. Works on distinct chunks weighted
 * by their counts (English has ~1M chunks but only tens of thousands distinct).
 * Per merge, only the chunks containing the chosen pair are rewritten, and only
 * the pair counts next to each merge site change; a lazy max-heap finds the most
 * frequent pair. Ties go to the smallest (left, right) ids, so training is
 * deterministic.
 */
function learnMerges(corpus: string, numMerges: number): [number, number][] {
  const base = BYTE_TOKENS + numMerges; // ids stay below this: pair key = a * base + b
  const chunkCounts = new Map<string, number>();
  for (const chunk of pretokenize(corpus)) chunkCounts.set(chunk, (chunkCounts.get(chunk) ?? 0) + 1);

  const words: number[][] = [];
  const freq: number[] = [];
  for (const [chunk, count] of chunkCounts) {
    const bytes = encodeUtf8(chunk);
    if (bytes.length >= 2) {
      words.push(bytes);
      freq.push(count);
    }
  }

  const pairCount = new Map<number, number>();
  const bump = (key: number, delta: number): void => {
    const c = (pairCount.get(key) ?? 0) + delta;
    if (c === 0) pairCount.delete(key);
    else pairCount.set(key, c);
  };
  // pair -> indices of words that contain (or once contained) it; stale ones are skipped.
  const pairWords = new Map<number, number[]>();
  const noteWord = (key: number, wi: number): void => {
    let list = pairWords.get(key);
    if (list === undefined) pairWords.set(key, (list = []));
    // A word is noted for a pair only during one pass, so duplicates are adjacent.
    if (list[list.length - 1] !== wi) list.push(wi);
  };
  words.forEach((w, wi) => {
    for (let i = 0; i + 1 < w.length; i++) {
      const key = w[i] * base + w[i + 1];
      bump(key, freq[wi]);
      noteWord(key, wi);
    }
  });

  type Entry = { count: number; key: number };
  const heap = new MinHeap<Entry>((x, y) => x.count > y.count || (x.count === y.count && x.key < y.key));
  for (const [key, count] of pairCount) heap.push({ count, key });

  const merges: [number, number][] = [];
  while (merges.length < numMerges) {
    const top = heap.pop();
    if (top === undefined) {
      throw new Error(
        `bpe tokenizer: the corpus allows only ${merges.length} merges, but vocab_size ` +
          `${base + SPECIALS.length} needs ${numMerges}; use a larger corpus or a smaller vocab_size`,
      );
    }
    // Counts only ever fall for existing pairs (merges create new pairs, all
    // containing the new id), so a stale entry overstates: refresh and retry.
    const current = pairCount.get(top.key) ?? 0;
    if (current !== top.count) {
      if (current > 0) heap.push({ count: current, key: top.key });
      continue;
    }
    const a = Math.floor(top.key / base);
    const b = top.key - a * base;
    const z = BYTE_TOKENS + merges.length;
    merges.push([a, b]);

    const created = new Set<number>();
    for (const wi of pairWords.get(top.key)!) {
      const w = words[wi];
      const f = freq[wi];
      // Pass 1: merge left to right; subtract the old pairs around each merge
      // site (pair p = (w[p], w[p+1])), each once even when sites are adjacent.
      const out: number[] = [];
      let removedUpTo = -1;
      for (let i = 0; i < w.length; i++) {
        if (i + 1 < w.length && w[i] === a && w[i + 1] === b) {
          const last = Math.min(i + 1, w.length - 2);
          for (let p = Math.max(i - 1, removedUpTo + 1); p <= last; p++) bump(w[p] * base + w[p + 1], -f);
          removedUpTo = last;
          out.push(z);
          i++;
        } else out.push(w[i]);
      }
      if (removedUpTo < 0) continue; // stale: an earlier merge already took the pair
      // Pass 2: add the new pairs, which are exactly those touching a z.
      let addedUpTo = -1;
      for (let q = 0; q < out.length; q++) {
        if (out[q] !== z) continue;
        const last = Math.min(q, out.length - 2);
        for (let p = Math.max(q - 1, addedUpTo + 1); p <= last; p++) {
          const key = out[p] * base + out[p + 1];
          bump(key, f);
          noteWord(key, wi);
          created.add(key);
        }
        addedUpTo = last;
      }
      words[wi] = out;
    }
    pairWords.delete(top.key);
    for (const key of created) {
      const count = pairCount.get(key);
      if (count !== undefined) heap.push({ count, key });
    }
  }
  return merges;
}
