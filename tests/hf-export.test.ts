import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { tf } from '../src/backend/tf.js';
import { loadCheckpoint } from '../src/checkpoint/checkpoint.js';
import { loadBrown } from '../src/data/brown.js';
import { exportToHf, RLHF_METADATA } from '../src/hf/export.js';
import { importFromHf } from '../src/hf/import.js';
import { foldRewardHead } from '../src/hf/reward-fold.js';
import { decodeSafetensors, encodeSafetensors, SafetensorsError } from '../src/hf/safetensors.js';
import { disposeParams, type Params } from '../src/model/gpt.js';
import { padRows, rewardInput, scoreRows } from '../src/reward/score.js';
import { BYTE_TO_UNICODE } from '../src/tokenizer/byte-unicode.js';
import { BpeTokenizer, Gpt2Tokenizer, type Tokenizer } from '../src/tokenizer/index.js';
import { expectOneLineError, rlhf } from './helpers.js';
import { bpeTokenizer, charTokenizer, randomCheckpoint, tempDir, TEXT, type Kind } from './hf-helpers.js';

const f32 = (...xs: number[]): Float32Array => Float32Array.from(xs);

describe('safetensors', () => {
  it('writes the documented layout: u64 LE header length, JSON header padded to 8 bytes, raw LE floats', () => {
    const buf = encodeSafetensors(
      new Map([
        ['a', { shape: [2], data: f32(1, 2) }],
        ['b', { shape: [1, 1], data: f32(-3) }],
      ]),
      { format: 'pt' },
    );
    const n = Number(buf.readBigUInt64LE(0));
    expect((8 + n) % 8).toBe(0);
    expect(buf.toString('utf8', 8, 8 + n).trimEnd()).toBe(
      '{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1,1],"data_offsets":[8,12]}}',
    );
    expect([buf.readFloatLE(8 + n), buf.readFloatLE(12 + n), buf.readFloatLE(16 + n)]).toEqual([1, 2, -3]);
    expect(buf.length).toBe(8 + n + 12);
    const back = decodeSafetensors(buf, 'x.safetensors');
    expect(back.metadata).toEqual({ format: 'pt' });
    expect([...back.tensors.keys()]).toEqual(['a', 'b']);
    expect(back.tensors.get('b')).toEqual({ shape: [1, 1], data: f32(-3) });
  });

  const file = (header: object, dataBytes: number): Buffer => {
    const h = Buffer.from(JSON.stringify(header));
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(h.length));
    return Buffer.concat([len, h, Buffer.alloc(dataBytes)]);
  };

  it.each([
    ['a half-precision tensor', file({ w: { dtype: 'F16', shape: [2], data_offsets: [0, 4] } }, 4), /w: dtype F16 is not supported/],
    ['offsets past the end', file({ w: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }, 4), /w: data_offsets \[0,8\] do not lie within the 4 data bytes/],
    ['a size that does not fit the shape', file({ w: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, 8), /w: 8 bytes for shape \[3\]/],
    ['overlapping tensors', file({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, 8), /b overlaps a/],
    ['a header longer than the file', Buffer.from([255, 0, 0, 0, 0, 0, 0, 0, 1]), /header length 255 exceeds the file/],
    ['a 3-byte file', Buffer.from([1, 2, 3]), /too short/],
  ])('refuses %s, naming the file', (_what, buf, pattern) => {
    expect(() => decodeSafetensors(buf, 'm.safetensors')).toThrow(SafetensorsError);
    expect(() => decodeSafetensors(buf, 'm.safetensors')).toThrow(pattern);
  });
});

describe('reward head fold', () => {
  it('moves gain into the weight and gain·b + bias into ln_f.bias along the weight (hand-computed)', () => {
    // w = [1, 0], b = 0.5, β = [0, 0], gain 2, bias 1: w' = [2, 0], c = 2·0.5 + 1 = 2, δ = c·w'/|w'|² = [1, 0].
    const { weight, lnfBias } = foldRewardHead(f32(1, 0), 0.5, f32(0, 0), { gain: 2, bias: 1 });
    expect([...weight]).toEqual([2, 0]);
    expect([...lnfBias]).toEqual([1, 0]);
  });

  it('gives w′·h′ = gain·(w·h + b) + bias for any normalised activation', () => {
    const w = f32(0.3, -1.2, 0.7);
    const gamma = f32(1.1, 0.9, 1);
    const beta = f32(0.05, -0.2, 0.1);
    const { weight, lnfBias } = foldRewardHead(w, -0.4, beta, { gain: 0.6, bias: 0.25 });
    for (const xhat of [f32(1, -1, 0), f32(-0.5, 2, 0.3)]) {
      const dot = (u: Float32Array, b: Float32Array): number => u.reduce((s, x, i) => s + x * (gamma[i] * xhat[i] + b[i]), 0);
      expect(dot(weight, lnfBias)).toBeCloseTo(0.6 * (dot(w, beta) - 0.4) + 0.25, 6);
    }
  });

  it('refuses a zero head (no direction to carry the constant)', () => {
    expect(() => foldRewardHead(f32(0, 0), 1, f32(0, 0), { gain: 1, bias: 0 })).toThrow(/cannot be folded/);
  });
});

function readJson(file: string): Record<string, unknown> {
  return JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
}

function hfTokenizer(dir: string): HfTokenizer {
  return new HfTokenizer(readJson(path.join(dir, 'tokenizer.json')), readJson(path.join(dir, 'tokenizer_config.json')));
}

const brown = loadBrown().slice(0, 60_000).split('\n');

describe('rlhf export', () => {
  it('writes a GPT2LMHeadModel directory for a char LM, whose tokenizer.json @huggingface/tokenizers runs identically', async () => {
    const tok = charTokenizer();
    const { dir, model } = await randomCheckpoint(tok, 'lm');
    const out = path.join(tempDir(), 'hf');
    const r = await exportToHf(dir, out);
    expect(r.architecture).toBe('GPT2LMHeadModel');
    expect(fs.readdirSync(out).sort()).toEqual(['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']);
    const config = readJson(path.join(out, 'config.json'));
    expect(config).toMatchObject({ architectures: ['GPT2LMHeadModel'], model_type: 'gpt2', n_embd: 16, n_layer: 2, n_head: 2, n_positions: 24, vocab_size: tok.vocabSize, activation_function: 'gelu_new', layer_norm_epsilon: 1e-5, tie_word_embeddings: true, eos_token_id: tok.eosId, pad_token_id: tok.padId });
    const st = decodeSafetensors(fs.readFileSync(path.join(out, 'model.safetensors')), 'm');
    expect([...st.tensors.keys()].every((k) => k.startsWith('transformer.'))).toBe(true);
    expect(st.tensors.get('transformer.h.1.mlp.c_fc.weight')?.shape).toEqual([16, 64]);
    expect(st.tensors.size).toBe(2 + 12 * model.n_layer + 2);
    const hf = hfTokenizer(out);
    // unseen characters ('Q', 'é', '🤗') become <|unk|>, one each, on both sides
    for (const text of [TEXT, 'Quick fox… é 🤗\n\n', '   ']) expect(hf.encode(text, { add_special_tokens: false }).ids).toEqual(tok.encode(text));
  });

  it("exports this project's byte-level BPE as GPT-2-style tokenizer.json + vocab.json + merges.txt with the same ids", async () => {
    const tok = bpeTokenizer();
    const { dir } = await randomCheckpoint(tok, 'lm');
    const out = path.join(tempDir(), 'hf');
    await exportToHf(dir, out);
    const vocab = readJson(path.join(out, 'vocab.json'));
    expect(vocab['Ġ']).toBe(32); // byte 32 (space) is id 32, written through the byte-to-unicode mapping
    expect(vocab['<|pad|>']).toBe(tok.padId);
    expect(fs.readFileSync(path.join(out, 'merges.txt'), 'utf8').split('\n')[0]).toBe('#version: 0.2');
    const hf = hfTokenizer(out);
    for (const text of [...brown, 'naïve 🤗 x\t\ty']) expect(hf.encode(text, { add_special_tokens: false }).ids).toEqual(tok.encode(text));
  });

  it('exports a reward model as GPT2ForSequenceClassification whose score is the normalised reward', async () => {
    const tok = charTokenizer();
    const { dir, model } = await randomCheckpoint(tok, 'reward');
    const out = path.join(tempDir(), 'hf');
    const r = await exportToHf(dir, out);
    expect(r.folded?.gain).toBe(1.7);
    const config = readJson(path.join(out, 'config.json'));
    expect(config).toMatchObject({ architectures: ['GPT2ForSequenceClassification'], num_labels: 1, pad_token_id: tok.padId });
    const st = decodeSafetensors(fs.readFileSync(path.join(out, 'model.safetensors')), 'm');
    expect(st.tensors.get('score.weight')?.shape).toEqual([1, 16]);
    expect(st.tensors.has('score.bias')).toBe(false);

    // The exported weights run through rlhf's own forward pass, with HF's bias-free head.
    const exported: Params = new Map();
    // variables outlive tidy; the tensors they are made from do not
    tf.tidy(() => {
      for (const [name, t] of st.tensors) exported.set(name.replace(/^transformer\./, ''), tf.variable(tf.tensor(t.data, name === 'score.weight' ? [16, 1] : t.shape)));
      exported.set('score.bias', tf.variable(tf.zeros([1])));
    });
    const original = loadCheckpoint(dir);
    const rows = padRows(['the fox', 'a dog.', 'x'].map((s) => rewardInput(tok.encode(s), [], tok.eosId)), tok.padId, 'right');
    const want = tf.tidy(() => scoreRows(original.params, model, rows).mul(1.7).add(-0.3)).arraySync() as number[];
    const got = tf.tidy(() => scoreRows(exported, model, rows)).arraySync() as number[];
    got.forEach((g, i) => expect(g).toBeCloseTo(want[i], 5));
    disposeParams(exported);
    disposeParams(original.params);
  });

  it('leaves pad_token_id unset for a scorer whose padding is its EOS (GPT-2 vocabulary), so HF reads the final EOS', async () => {
    const tok = Gpt2Tokenizer.fromVocab([...BYTE_TO_UNICODE, '<|endoftext|>'], [], 256, 256);
    const { dir } = await randomCheckpoint(tok, 'reward');
    const out = path.join(tempDir(), 'hf');
    await exportToHf(dir, out);
    expect(readJson(path.join(out, 'config.json'))).toMatchObject({ pad_token_id: null, eos_token_id: 256 });
  });

  it("leaves a PPO policy's value head out of the LM export (kept in metadata for import)", async () => {
    const { dir } = await randomCheckpoint(charTokenizer(), 'policy');
    const out = path.join(tempDir(), 'hf');
    const r = await exportToHf(dir, out);
    expect(r.leftOut).toEqual(['score.weight', 'score.bias']);
    const st = decodeSafetensors(fs.readFileSync(path.join(out, 'model.safetensors')), 'm');
    expect([...st.tensors.keys()].some((k) => k.includes('score'))).toBe(false);
    expect(Object.keys(JSON.parse(st.metadata[RLHF_METADATA]).originals)).toEqual(['score.weight', 'score.bias']);
  });

  it('refuses to replace an existing directory without --force, and replaces it with --force', async () => {
    const { dir } = await randomCheckpoint(charTokenizer(), 'lm');
    const out = path.join(tempDir(), 'hf');
    fs.mkdirSync(out);
    fs.writeFileSync(path.join(out, 'keep.txt'), 'mine');
    const r = await rlhf('export', dir, '--out', out);
    expectOneLineError(r, /hf: already exists \(use --force to replace it\)/);
    expect(r.code).toBe(2);
    expect(fs.readdirSync(out)).toEqual(['keep.txt']);
    expect((await rlhf('export', dir, '--out', out, '--force')).code).toBe(0);
    expect(fs.existsSync(path.join(out, 'model.safetensors'))).toBe(true);
  });

  it('refuses a directory that is not a checkpoint, writing nothing', async () => {
    const root = tempDir();
    const r = await rlhf('export', path.join(root, 'nothing'), '--out', path.join(root, 'hf'));
    expectOneLineError(r, /nothing\/model\.json: missing \(not a checkpoint directory\?\)/);
    expect(r.code).toBe(2);
    expect(fs.readdirSync(root)).toEqual([]);
  });

  it('refuses a BPE vocabulary where two ids are the same bytes (a string-keyed HF vocab cannot hold both)', async () => {
    // a+b, b+c, ab+c and a+bc: ids 258 and 259 both spell "abc"
    const tok = BpeTokenizer.fromJSON({ type: 'bpe', version: 1, pretokenizer: 'gpt2', vocab_size: 262, merges: [[97, 98], [98, 99], [256, 99], [97, 257]], specials: ['<|endoftext|>', '<|pad|>'] });
    const { dir } = await randomCheckpoint(tok, 'lm');
    const out = path.join(tempDir(), 'hf');
    expectOneLineError(await rlhf('export', dir, '--out', out), /tokens 258 and 259 are the same bytes \("abc"\)/);
    expect(fs.existsSync(out)).toBe(false);
  });
});

describe('export → import round trip', () => {
  const cases: [string, () => Tokenizer, Kind][] = [
    ['char LM', charTokenizer, 'lm'],
    ['BPE LM', bpeTokenizer, 'lm'],
    ['PPO policy with a value head', charTokenizer, 'policy'],
    ['reward model', bpeTokenizer, 'reward'],
  ];
  it.each(cases)('is bit-exact for a %s (weights, tokenizer, model.json)', async (_name, tokenizer, kind) => {
    const { dir } = await randomCheckpoint(tokenizer(), kind, 7);
    const root = tempDir();
    await exportToHf(dir, path.join(root, 'hf'));
    const r = await importFromHf(path.join(root, 'hf'), path.join(root, 'back'));
    expect(r.restored).toBe(true);
    for (const file of ['model.weights.bin', 'tokenizer.json']) {
      expect(fs.readFileSync(path.join(root, 'back', file)).equals(fs.readFileSync(path.join(dir, file))), file).toBe(true);
    }
    expect(readJson(path.join(root, 'back', 'model.json'))).toEqual(readJson(path.join(dir, 'model.json')));
  });
});
