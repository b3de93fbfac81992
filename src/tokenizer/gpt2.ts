import { bytesToUnicode, unicodeToBytes } from './byte-unicode.js';
import { checkKeys } from './json.js';
import { ChunkEncoder, RankedMerges } from './merge.js';
import { badId, type Gpt2TokenizerJSON, type Tokenizer } from './types.js';
import { decodeUtf8, encodeUtf8 } from './utf8.js';

const KIND = 'gpt2 tokenizer JSON';

/**
 * Byte-level BPE with a vocabulary given as GPT-2 writes it (vocab.json +
 * merges.txt): tokens are byte strings shown through the byte-to-unicode
 * mapping, any id order, merges ranked by position. GPT-2's own vocabulary
 * (and distilgpt2's, and any GPT-2-family model's) is read as is, so encoding
 * gives exactly GPT-2's ids. Special tokens (end of text, padding; GPT-2 pads
 * with its end-of-text token) decode to '' like this project's other tokenizers.
 */
export class Gpt2Tokenizer implements Tokenizer {
  readonly type = 'gpt2' as const;
  readonly vocabSize: number;

  private readonly byteIds = new Int32Array(256);
  private readonly tokenBytes: Uint8Array[];
  private readonly chunks: ChunkEncoder;

  private constructor(
    private readonly vocab: readonly string[],
    private readonly merges: readonly string[],
    readonly eosId: number,
    readonly padId: number,
  ) {
    this.vocabSize = vocab.length;
    const where = (i: number): string => (i === eosId || i === padId ? `special token ${i}` : `vocab[${i}]`);
    const ids = new Map<string, number>();
    this.tokenBytes = vocab.map((token, i) => {
      if (typeof token !== 'string' || token.length === 0) throw new Error(`${KIND}: ${where(i)} must be a non-empty string`);
      if (ids.has(token)) throw new Error(`${KIND}: vocab[${i}] repeats vocab[${ids.get(token)}] (${JSON.stringify(token)})`);
      ids.set(token, i);
      if (i === eosId || i === padId) return new Uint8Array(0);
      const bytes = unicodeToBytes(token);
      if (!bytes) throw new Error(`${KIND}: vocab[${i}] ${JSON.stringify(token)} is not a byte-level token (a character outside GPT-2's byte-to-unicode mapping)`);
      return bytes;
    });
    for (let b = 0; b < 256; b++) {
      const id = ids.get(bytesToUnicode([b]));
      if (id === undefined || id === eosId || id === padId) throw new Error(`${KIND}: vocab has no token for byte ${b} (${JSON.stringify(bytesToUnicode([b]))})`);
      this.byteIds[b] = id;
    }
    const triples = merges.map((m, r): [number, number, number] => {
      const parts = typeof m === 'string' ? m.split(' ') : [];
      const [a, b] = parts.map((p) => ids.get(p));
      const joined = parts.length === 2 ? ids.get(parts[0] + parts[1]) : undefined;
      if (a === undefined || b === undefined || joined === undefined) {
        throw new Error(`${KIND}: merges[${r}] ${JSON.stringify(m)} must be "LEFT RIGHT" with LEFT, RIGHT and LEFTRIGHT all in vocab`);
      }
      return [a, b, joined];
    });
    const ranked = new RankedMerges(triples, this.vocabSize);
    this.chunks = new ChunkEncoder((chunk) => ranked.apply(encodeUtf8(chunk).map((b) => this.byteIds[b])));
  }

  /** From a vocabulary in id order, merges as "LEFT RIGHT" strings in rank order, and the special ids. */
  static fromVocab(vocab: readonly string[], merges: readonly string[], eosId: number, padId: number): Gpt2Tokenizer {
    for (const [key, id] of [['eos_id', eosId], ['pad_id', padId]] as const) {
      if (!Number.isInteger(id) || id < 0 || id >= vocab.length) throw new Error(`${KIND}: ${key} must be an id in [0, ${vocab.length}), got ${JSON.stringify(id)}`);
    }
    return new Gpt2Tokenizer([...vocab], [...merges], eosId, padId);
  }

  static fromJSON(json: Record<string, unknown>): Gpt2Tokenizer {
    checkKeys(json, ['type', 'version', 'vocab', 'merges', 'eos_id', 'pad_id'], 'gpt2');
    if (!Array.isArray(json.vocab) || !Array.isArray(json.merges)) throw new Error(`${KIND}: "vocab" and "merges" must be arrays of strings`);
    return Gpt2Tokenizer.fromVocab(json.vocab as string[], json.merges as string[], json.eos_id as number, json.pad_id as number);
  }

  /** The token string of each id, in id order. */
  tokens(): readonly string[] {
    return this.vocab;
  }

  encode(text: string): number[] {
    return this.chunks.encode(text);
  }

  decode(ids: readonly number[]): string {
    const parts: Uint8Array[] = [];
    let total = 0;
    for (const id of ids) {
      const bytes = this.tokenBytes[id];
      // Lookup of a fractional, negative or too-large id yields undefined.
      if (bytes === undefined) badId(id, this.vocabSize);
      parts.push(bytes);
      total += bytes.length;
    }
    const buf = new Uint8Array(total);
    let at = 0;
    for (const p of parts) {
      buf.set(p, at);
      at += p.length;
    }
    return decodeUtf8(buf);
  }

  toJSON(): Gpt2TokenizerJSON {
    return { type: 'gpt2', version: 1, vocab: [...this.vocab], merges: [...this.merges], eos_id: this.eosId, pad_id: this.padId };
  }
}
