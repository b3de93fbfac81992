import fs from 'node:fs';
import path from 'node:path';
import { BYTE_TO_UNICODE } from '../tokenizer/byte-unicode.js';
import { BpeTokenizer, CharTokenizer, EOS_TOKEN, Gpt2Tokenizer, PAD_TOKEN, UNK_TOKEN, type Tokenizer } from '../tokenizer/index.js';
import { HfError } from './errors.js';

/**
 * Tokenizers in Hugging Face's formats. Byte-level BPE (this project's "bpe",
 * GPT-2's own "gpt2") is a BPE model with GPT-2's ByteLevel pre-tokenizer and
 * decoder over byte-to-unicode token strings, plus vocab.json/merges.txt for
 * the older loaders. The char tokenizer is a BPE model with no merges and no
 * pre-tokenizer: every character is looked up on its own, unseen ones become
 * <|unk|> (one each), and the Fuse decoder joins tokens without spaces.
 */

interface Special {
  id: number;
  content: string;
}

interface ByteLevelVocab {
  vocab: string[];
  merges: string[];
  specials: Special[];
}

function addedToken(s: Special): Record<string, unknown> {
  return { id: s.id, content: s.content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true };
}

function vocabObject(tokens: readonly string[]): Record<string, number> {
  const out: Record<string, number> = {};
  tokens.forEach((t, i) => (out[t] = i));
  return out;
}

/** id -> token string, for this project's byte-level BPE (ids 0..255 are bytes, 256 + r the merge r). */
function bpeVocab(t: BpeTokenizer): ByteLevelVocab {
  const json = t.toJSON();
  const strings = BYTE_TO_UNICODE.slice();
  const merges = json.merges.map(([a, b]) => {
    strings.push(strings[a] + strings[b]);
    return `${strings[a]} ${strings[b]}`;
  });
  // Two merge paths can build the same bytes; a string-keyed vocabulary cannot hold both ids.
  const first = new Map<string, number>();
  strings.forEach((s, id) => {
    const prev = first.get(s);
    if (prev !== undefined) throw new HfError(`tokenizer: tokens ${prev} and ${id} are the same bytes (${JSON.stringify(s)}); Hugging Face's vocabulary cannot tell them apart`);
    first.set(s, id);
  });
  const specials = [
    { id: t.eosId, content: EOS_TOKEN },
    { id: t.padId, content: PAD_TOKEN },
  ];
  return { vocab: [...strings, EOS_TOKEN, PAD_TOKEN], merges, specials };
}

function gpt2Vocab(t: Gpt2Tokenizer): ByteLevelVocab {
  const json = t.toJSON();
  const ids = [...new Set([t.eosId, t.padId])];
  return { vocab: json.vocab, merges: json.merges, specials: ids.map((id) => ({ id, content: json.vocab[id] })) };
}

function byteLevelTokenizerJson(v: ByteLevelVocab): Record<string, unknown> {
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: v.specials.map(addedToken),
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '', fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab: vocabObject(v.vocab), merges: v.merges },
  };
}

function charTokenizerJson(t: CharTokenizer): Record<string, unknown> {
  const json = t.toJSON();
  const vocab = [...json.chars, EOS_TOKEN, PAD_TOKEN, UNK_TOKEN];
  const specials = [
    { id: t.eosId, content: EOS_TOKEN },
    { id: t.padId, content: PAD_TOKEN },
    { id: t.unkId, content: UNK_TOKEN },
  ];
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: specials.map(addedToken),
    normalizer: null,
    pre_tokenizer: null,
    post_processor: null,
    decoder: { type: 'Fuse' },
    model: { type: 'BPE', dropout: null, unk_token: UNK_TOKEN, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab: vocabObject(vocab), merges: [] },
  };
}

/** File name -> contents of the tokenizer files for an HF model directory. */
export function hfTokenizerFiles(t: Tokenizer, contextLength: number): Record<string, string> {
  const config: Record<string, unknown> = {
    tokenizer_class: 'PreTrainedTokenizerFast',
    model_max_length: contextLength,
    bos_token: EOS_TOKEN,
    eos_token: EOS_TOKEN,
    pad_token: PAD_TOKEN,
    add_prefix_space: false,
    clean_up_tokenization_spaces: false,
  };
  const files: Record<string, string> = {};
  if (t instanceof CharTokenizer) {
    files['tokenizer.json'] = JSON.stringify(charTokenizerJson(t));
    config.unk_token = UNK_TOKEN;
  } else {
    const v = t instanceof BpeTokenizer ? bpeVocab(t) : gpt2Vocab(t as Gpt2Tokenizer);
    files['tokenizer.json'] = JSON.stringify(byteLevelTokenizerJson(v));
    files['vocab.json'] = JSON.stringify(vocabObject(v.vocab));
    files['merges.txt'] = `#version: 0.2\n${v.merges.join('\n')}\n`;
    config.bos_token = config.eos_token = v.vocab[t.eosId];
    config.pad_token = v.vocab[t.padId];
  }
  files['tokenizer_config.json'] = JSON.stringify(config, null, 2);
  return files;
}

function readJson(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    throw new HfError(`${file}: cannot be read`);
  }
  try {
    const v = JSON.parse(text) as unknown;
    if (v && typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch {
    // reported below
  }
  throw new HfError(`${file}: not a JSON object`);
}

/** vocab object (token -> id) to the token list in id order; ids must be exactly 0..n-1. */
function vocabList(vocab: unknown, where: string): string[] {
  if (!vocab || typeof vocab !== 'object' || Array.isArray(vocab)) throw new HfError(`${where}: must map token strings to ids`);
  const entries = Object.entries(vocab as Record<string, unknown>);
  const list: string[] = new Array(entries.length);
  for (const [token, id] of entries) {
    if (!Number.isInteger(id) || (id as number) < 0 || (id as number) >= entries.length || list[id as number] !== undefined) {
      throw new HfError(`${where}: ids must be 0..${entries.length - 1}, each once (token ${JSON.stringify(token)} has ${JSON.stringify(id)})`);
    }
    list[id as number] = token;
  }
  return list;
}

/** Merges as "LEFT RIGHT" strings, from either the string or the [left, right] pair form. */
function mergeStrings(merges: unknown, where: string): string[] {
  if (!Array.isArray(merges)) throw new HfError(`${where}: must be a list`);
  return merges.map((m: unknown, i) => {
    if (typeof m === 'string' && m.split(' ').length === 2) return m;
    if (Array.isArray(m) && m.length === 2 && m.every((x) => typeof x === 'string' && !x.includes(' '))) return `${m[0]} ${m[1]}`;
    throw new HfError(`${where}[${i}]: expected "LEFT RIGHT" or ["LEFT", "RIGHT"], found ${JSON.stringify(m)}`);
  });
}

/** Special ids from an HF config: GPT-2 names end of text in config.json and pads with it when it names no pad. */
export interface SpecialIds {
  eosId?: number;
  padId?: number;
}

/**
 * This project's own tokenizer when the vocabulary is exactly one it exports
 * (so export → import gives the same tokenizer, fingerprint included), else
 * GPT-2 byte-level BPE over the given vocabulary.
 */
function byteLevelTokenizer(vocab: string[], merges: string[], ids: SpecialIds, where: string): Tokenizer {
  const V = vocab.length;
  const ours =
    V === 256 + merges.length + 2 &&
    vocab[V - 2] === EOS_TOKEN &&
    vocab[V - 1] === PAD_TOKEN &&
    vocab.slice(0, 256).every((s, b) => s === BYTE_TO_UNICODE[b]);
  if (ours) {
    const index = new Map(vocab.map((s, i) => [s, i]));
    const pairs = merges.map((m) => m.split(' ').map((p) => index.get(p)));
    if (merges.every((m, r) => vocab[256 + r] === m.replace(' ', '') && pairs[r].every((id) => id !== undefined && id < 256 + r))) {
      return BpeTokenizer.fromJSON({ type: 'bpe', version: 1, pretokenizer: 'gpt2', vocab_size: V, merges: pairs, specials: [EOS_TOKEN, PAD_TOKEN] });
    }
  }
  const eosId = ids.eosId ?? vocab.indexOf(EOS_TOKEN);
  if (eosId < 0) throw new HfError(`${where}: no end-of-text token (config.json eos_token_id is missing and the vocabulary has no ${EOS_TOKEN})`);
  try {
    return Gpt2Tokenizer.fromVocab(vocab, merges, eosId, ids.padId ?? eosId);
  } catch (e) {
    throw new HfError(`${where}: ${(e as Error).message}`);
  }
}

function fromTokenizerJson(file: string, ids: SpecialIds): Tokenizer {
  const json = readJson(file);
  const model = json.model as Record<string, unknown> | undefined;
  if (model?.type !== 'BPE') throw new HfError(`${file}: model.type ${JSON.stringify(model?.type)} is not supported (BPE only)`);
  if (json.normalizer) throw new HfError(`${file}: normalizer ${JSON.stringify((json.normalizer as { type?: unknown }).type)} is not supported (none)`);
  const vocab = vocabList(model.vocab, `${file}: model.vocab`);
  const merges = mergeStrings(model.merges, `${file}: model.merges`);
  const pre = json.pre_tokenizer as Record<string, unknown> | null | undefined;
  if (!pre) {
    // This project's char export: single characters, then the three specials, no merges.
    const chars = vocab.slice(0, -3);
    if (merges.length > 0 || vocab.slice(-3).join() !== [EOS_TOKEN, PAD_TOKEN, UNK_TOKEN].join() || model.unk_token !== UNK_TOKEN) {
      throw new HfError(`${file}: pre_tokenizer is null but the model is not a character vocabulary (chars, then ${EOS_TOKEN}, ${PAD_TOKEN}, ${UNK_TOKEN}; no merges)`);
    }
    try {
      return CharTokenizer.fromJSON({ type: 'char', version: 1, chars, specials: [EOS_TOKEN, PAD_TOKEN, UNK_TOKEN] });
    } catch (e) {
      throw new HfError(`${file}: model.vocab: ${(e as Error).message}`);
    }
  }
  if (pre.type !== 'ByteLevel') throw new HfError(`${file}: pre_tokenizer.type ${JSON.stringify(pre.type)} is not supported (ByteLevel, as GPT-2)`);
  if (pre.add_prefix_space === true) throw new HfError(`${file}: pre_tokenizer.add_prefix_space true is not supported (GPT-2 adds no prefix space)`);
  if (pre.use_regex === false) throw new HfError(`${file}: pre_tokenizer.use_regex false is not supported (GPT-2 splits with its pattern)`);
  return byteLevelTokenizer(vocab, merges, ids, file);
}

/** Reads an HF model directory's tokenizer: tokenizer.json if present, else vocab.json + merges.txt. */
export function readHfTokenizer(dir: string, ids: SpecialIds): Tokenizer {
  const tj = path.join(dir, 'tokenizer.json');
  if (fs.existsSync(tj)) return fromTokenizerJson(tj, ids);
  const vj = path.join(dir, 'vocab.json');
  const mt = path.join(dir, 'merges.txt');
  if (!fs.existsSync(vj) || !fs.existsSync(mt)) throw new HfError(`${dir}: no tokenizer (tokenizer.json, or vocab.json + merges.txt)`);
  const vocab = vocabList(readJson(vj), vj);
  const lines = fs.readFileSync(mt, 'utf8').split('\n');
  const merges = mergeStrings(lines.filter((l, i) => l !== '' && !(i === 0 && l.startsWith('#version'))), mt);
  return byteLevelTokenizer(vocab, merges, ids, `${vj} + merges.txt`);
}

