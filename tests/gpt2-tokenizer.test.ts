import { describe, expect, it } from 'vitest';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import gpt2Ranks from 'js-tiktoken/ranks/gpt2';
import { Tiktoken } from 'js-tiktoken/lite';
import { loadBrown } from '../src/data/brown.js';
import { hfTokenizerFiles } from '../src/hf/tokenizer-files.js';
import { BYTE_TO_UNICODE, bytesToUnicode, unicodeToBytes } from '../src/tokenizer/byte-unicode.js';
import { Gpt2Tokenizer, tokenizerFingerprint, tokenizerFromJSON } from '../src/tokenizer/index.js';
import { parsePackedRanks, ranksToVocab } from '../src/tokenizer/ranks.js';

/** GPT-2's vocabulary and merges, derived from the reference package's r50k rank table. */
const derived = ranksToVocab(parsePackedRanks(gpt2Ranks.bpe_ranks));
const ours = Gpt2Tokenizer.fromVocab([...derived.vocab, '<|endoftext|>'], derived.merges, 50256, 50256);
const reference = new Tiktoken(gpt2Ranks);
/** Paragraphs of the Brown corpus: the test compares a fixed slice (the full corpus count is in the report). */
const brown = loadBrown().slice(0, 400_000).split('\n');

describe('byte-to-unicode mapping', () => {
  it('maps printable bytes to themselves and the rest to U+0100 on, in byte order', () => {
    expect(BYTE_TO_UNICODE[0x41]).toBe('A');
    expect(BYTE_TO_UNICODE[0x20]).toBe('Ġ'); // U+0120: the 33rd non-printable byte (0..32)
    expect(BYTE_TO_UNICODE[0x0a]).toBe('Ċ'); // U+010A
    expect(BYTE_TO_UNICODE[0x00]).toBe('Ā');
    expect(BYTE_TO_UNICODE[0xad]).toBe('Ń'); // soft hyphen: the last non-printable, U+0143
    expect(new Set(BYTE_TO_UNICODE).size).toBe(256);
  });

  it('inverts exactly and rejects characters outside the mapping', () => {
    const all = Uint8Array.from({ length: 256 }, (_, i) => i);
    expect(unicodeToBytes(bytesToUnicode(all))).toEqual(all);
    expect(unicodeToBytes('a b')).toBeUndefined();
  });
});

describe('rank table → vocab + merges', () => {
  it('recovers each merge as the BPE of a token over lower ranks', () => {
    const bytes = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, 'latin1'));
    // 0..255 single bytes, then "ab" (256), "bc" (257), "abc" (258): abc = ab + c, since ab outranks bc.
    const table = [...Array.from({ length: 256 }, (_, b) => Uint8Array.of(b)), bytes('ab'), bytes('bc'), bytes('abc')];
    const { vocab, merges } = ranksToVocab(table);
    expect(merges).toEqual(['a b', 'b c', 'ab c']);
    expect(vocab.slice(256)).toEqual(['ab', 'bc', 'abc']);
  });

  it('derives GPT-2 merges.txt as published (first merges, size)', () => {
    expect(derived.merges).toHaveLength(50_000);
    expect(derived.merges.slice(0, 4)).toEqual(['Ġ t', 'Ġ a', 'h e', 'i n']);
  });
});

describe('GPT-2 byte-level BPE', () => {
  it('gives GPT-2 ids for known text', () => {
    expect(ours.encode('Hello world')).toEqual([15496, 995]);
    expect(ours.vocabSize).toBe(50257);
    expect(ours.eosId).toBe(50256);
  });

  it('matches js-tiktoken r50k_base on the Brown corpus slice, token for token', () => {
    let tokens = 0;
    const mismatched: string[] = [];
    for (const para of brown) {
      const got = ours.encode(para);
      const want = reference.encode(para);
      tokens += want.length;
      if (got.join() !== want.join()) mismatched.push(para);
    }
    expect(mismatched.slice(0, 3)).toEqual([]);
    expect(tokens).toBeGreaterThan(80_000);
  });

  it('matches js-tiktoken on whitespace, contractions, digits and non-Latin text', () => {
    const texts = ["  it's  'LL  \n\n\t x", 'naïve café 🤗 你好 ١٢٣ 12345', "we'VE don't 'd '", '\u00a0\u2003odd spaces\r\n'];
    for (const t of texts) expect(ours.encode(t), t).toEqual(reference.encode(t));
  });

  it('decodes back to the text, with end-of-text decoding to nothing', () => {
    const text = brown.slice(0, 20).join('\n');
    expect(ours.decode(ours.encode(text))).toBe(text);
    expect(ours.decode([15496, 50256, 995])).toBe('Hello world');
  });

  it('round-trips through its JSON with a stable fingerprint', () => {
    const again = tokenizerFromJSON(JSON.parse(JSON.stringify(ours.toJSON())));
    expect(tokenizerFingerprint(again)).toBe(tokenizerFingerprint(ours));
    expect(again.encode(brown[5])).toEqual(ours.encode(brown[5]));
  });

  it('rejects a vocabulary it cannot run', () => {
    const vocab = [...BYTE_TO_UNICODE, 'ab', '<|endoftext|>'];
    expect(() => Gpt2Tokenizer.fromVocab(vocab, ['a c'], 257, 257)).toThrow(/merges\[0\] "a c" must be "LEFT RIGHT" with LEFT, RIGHT and LEFTRIGHT all in vocab/);
    expect(() => Gpt2Tokenizer.fromVocab(vocab.slice(1), ['a b'], 256, 256)).toThrow(/no token for byte 0/);
    expect(() => Gpt2Tokenizer.fromVocab([...vocab, 'a b'], ['a b'], 257, 257)).toThrow(/vocab\[258\] "a b" is not a byte-level token/);
  });

  it('exports a tokenizer.json that @huggingface/tokenizers runs with the same ids', () => {
    const files = hfTokenizerFiles(ours, 1024);
    const hf = new HfTokenizer(JSON.parse(files['tokenizer.json']), JSON.parse(files['tokenizer_config.json']));
    for (const para of brown.slice(0, 400)) expect(hf.encode(para, { add_special_tokens: false }).ids).toEqual(ours.encode(para));
  });
});
