import { checkKeys, checkSpecials } from './json.js';
import {
  EOS_TOKEN,
  PAD_TOKEN,
  UNK_TOKEN,
  badId,
  type CharTokenizerJSON,
  type Tokenizer,
} from './types.js';

const SPECIALS = [EOS_TOKEN, PAD_TOKEN, UNK_TOKEN];

/**
 * Character-level tokenizer over Unicode code points (an emoji is one token,
 * not two UTF-16 units). Ids: the corpus's code points in ascending order, then
 * `<|endoftext|>`, `<|pad|>`, `<|unk|>`.
 *
 * Unseen-character policy: a code point that is not in the trained alphabet is
 * encoded as `<|unk|>`, and `<|unk|>` decodes to U+FFFD (the replacement
 * character). So decode(encode(s)) === s exactly when every code point of s is in
 * the alphabet; otherwise each unseen code point comes back as U+FFFD. A lone
 * (unpaired) surrogate counts as a code point of its own, like in the corpus.
 */
export class CharTokenizer implements Tokenizer {
  readonly type = 'char' as const;
  readonly vocabSize: number;
  readonly eosId: number;
  readonly padId: number;
  readonly unkId: number;

  private readonly chars: string[];
  /** id -> decoded text; specials included (eos/pad '' and unk U+FFFD). */
  private readonly pieces: string[];
  /** UTF-16 unit -> id (unkId when unseen): a flat table keeps encoding of
   *  BMP text (nearly all text) to one array read per character. */
  private readonly bmp: Int32Array;
  private readonly astral = new Map<number, number>();

  private constructor(chars: string[]) {
    this.chars = chars;
    this.eosId = chars.length;
    this.padId = chars.length + 1;
    this.unkId = chars.length + 2;
    this.vocabSize = chars.length + SPECIALS.length;
    this.bmp = new Int32Array(0x10000).fill(this.unkId);
    chars.forEach((ch, id) => {
      const cp = ch.codePointAt(0)!;
      if (cp < 0x10000) this.bmp[cp] = id;
      else this.astral.set(cp, id);
    });
    this.pieces = [...chars, '', '', '\uFFFD'];
  }

  /** Alphabet = the set of code points in `corpus`. */
  static train(corpus: string): CharTokenizer {
    if (corpus.length === 0) throw new Error('char tokenizer: cannot train on an empty corpus');
    // A seen-flag per UTF-16 unit is much faster on megabytes than a Set of strings.
    const seenBmp = new Uint8Array(0x10000);
    const seenAstral = new Set<number>();
    const n = corpus.length;
    for (let i = 0; i < n; i++) {
      const c = corpus.charCodeAt(i);
      const cp = pairedCodePoint(corpus, i, c);
      if (cp < 0) seenBmp[c] = 1;
      else {
        seenAstral.add(cp);
        i++;
      }
    }
    const cps: number[] = [];
    for (let c = 0; c < 0x10000; c++) if (seenBmp[c]) cps.push(c);
    cps.push(...[...seenAstral].sort((a, b) => a - b));
    return new CharTokenizer(cps.map((cp) => String.fromCodePoint(cp)));
  }

  static fromJSON(json: Record<string, unknown>): CharTokenizer {
    checkKeys(json, ['type', 'version', 'chars', 'specials'], 'char');
    const chars = json.chars;
    if (!Array.isArray(chars) || chars.length === 0) {
      throw new Error('char tokenizer JSON: "chars" must be a non-empty array of single characters');
    }
    let prev = -1;
    chars.forEach((ch, i) => {
      // Exactly one code point: a string of length 1, or a surrogate pair.
      const cp = typeof ch === 'string' ? ch.codePointAt(0) : undefined;
      if (cp === undefined || ch.length !== (cp > 0xffff ? 2 : 1)) {
        throw new Error(`char tokenizer JSON: chars[${i}] must be a string of exactly one code point`);
      }
      if (cp <= prev) {
        throw new Error(`char tokenizer JSON: chars must be in strictly ascending code-point order (chars[${i}])`);
      }
      prev = cp;
    });
    checkSpecials(json.specials, SPECIALS, 'char');
    return new CharTokenizer(chars as string[]);
  }

  encode(text: string): number[] {
    const out: number[] = new Array(text.length);
    let k = 0;
    const n = text.length;
    for (let i = 0; i < n; i++) {
      const c = text.charCodeAt(i);
      const cp = pairedCodePoint(text, i, c);
      if (cp < 0) out[k++] = this.bmp[c];
      else {
        out[k++] = this.astral.get(cp) ?? this.unkId;
        i++;
      }
    }
    out.length = k;
    return out;
  }

  decode(ids: readonly number[]): string {
    const parts: string[] = new Array(ids.length);
    for (let i = 0; i < ids.length; i++) {
      const piece = this.pieces[ids[i]];
      // Lookup of a fractional, negative or too-large id yields undefined.
      if (piece === undefined) badId(ids[i], this.vocabSize);
      parts[i] = piece;
    }
    return parts.join('');
  }

  toJSON(): CharTokenizerJSON {
    return { type: 'char', version: 1, chars: [...this.chars], specials: [...SPECIALS] };
  }
}

/** If s[i] (= unit c) starts a surrogate pair, its astral code point; else -1. */
function pairedCodePoint(s: string, i: number, c: number): number {
  if (c < 0xd800 || c > 0xdbff || i + 1 >= s.length) return -1;
  const d = s.charCodeAt(i + 1);
  if (d < 0xdc00 || d > 0xdfff) return -1;
  return ((c - 0xd800) << 10) + (d - 0xdc00) + 0x10000;
}
