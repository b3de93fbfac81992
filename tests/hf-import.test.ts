import fs from 'node:fs';
import path from 'node:path';
import { stringify } from 'yaml';
import { describe, expect, it } from 'vitest';
import { loadCheckpoint } from '../src/checkpoint/checkpoint.js';
import { importFromHf } from '../src/hf/import.js';
import { decodeSafetensors, encodeSafetensors, type NamedArray } from '../src/hf/safetensors.js';
import { disposeParams, parameterShapes } from '../src/model/gpt.js';
import { generate } from '../src/sample/generate.js';
import { BYTE_TO_UNICODE } from '../src/tokenizer/byte-unicode.js';
import { Rng } from '../src/util/rng.js';
import { expectOneLineError, rlhf } from './helpers.js';
import { tempDir } from './hf-helpers.js';

const D = 16;
const MODEL = { vocab_size: 260, n_layer: 1, n_head: 2, d_model: D, context_length: 32, dropout: 0.1 };

/** GPT-2's byte order: printable bytes first, as GPT-2's own vocab.json numbers them. */
const BYTES_IN_GPT2_ORDER = [...BYTE_TO_UNICODE].sort((a, b) => a.charCodeAt(0) - b.charCodeAt(0));
const VOCAB = [...BYTES_IN_GPT2_ORDER, 'Ġt', 'he', 'Ġthe', '<|endoftext|>'];
const MERGES = ['Ġ t', 'h e', 'Ġt he'];

function pseudoRandom(n: number, seed: number): Float32Array {
  let s = seed;
  return Float32Array.from({ length: n }, () => ((s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31 - 0.5) * 0.1);
}

/**
 * A directory laid out like an older GPT-2 upload: unprefixed tensor names, the
 * causal-mask buffers, an explicit (tied) lm_head, and vocab.json + merges.txt
 * in GPT-2's own byte order.
 */
function gpt2StyleDir(): string {
  const dir = path.join(tempDir(), 'gpt2-style');
  fs.mkdirSync(dir);
  const tensors = new Map<string, NamedArray>();
  let seed = 1;
  for (const [name, shape] of parameterShapes(MODEL, 'lm')) tensors.set(name, { shape, data: pseudoRandom(shape.reduce((a, b) => a * b, 1), seed++) });
  tensors.set('h.0.attn.bias', { shape: [1, 1, 16, 16], data: new Float32Array(256).fill(1) });
  tensors.set('lm_head.weight', tensors.get('wte.weight')!);
  fs.writeFileSync(path.join(dir, 'model.safetensors'), encodeSafetensors(tensors, { format: 'pt' }));
  const config = { architectures: ['GPT2LMHeadModel'], model_type: 'gpt2', vocab_size: 260, n_positions: 32, n_ctx: 32, n_embd: D, n_layer: 1, n_head: 2, activation_function: 'gelu_new', layer_norm_epsilon: 1e-5, resid_pdrop: 0.1, embd_pdrop: 0.1, attn_pdrop: 0.1, bos_token_id: 259, eos_token_id: 259 };
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config));
  fs.writeFileSync(path.join(dir, 'vocab.json'), JSON.stringify(Object.fromEntries(VOCAB.map((t, i) => [t, i]))));
  fs.writeFileSync(path.join(dir, 'merges.txt'), `#version: 0.2\n${MERGES.join('\n')}\n`);
  return dir;
}

const base = gpt2StyleDir();

describe('rlhf import', () => {
  it('reads a GPT-2-style directory: GPT-2 tokenizer ids, tied head, buffers skipped, dropout from the config', async () => {
    const out = path.join(tempDir(), 'ckpt');
    const r = await importFromHf(base, out);
    expect(r).toMatchObject({ head: 'lm', tokenizer: 'gpt2', restored: false, model: MODEL });
    const ckpt = loadCheckpoint(out);
    // ' the' merges all the way; ' he' keeps its space apart (220: GPT-2's id for a space)
    expect(ckpt.tokenizer.encode(' the he')).toEqual([258, 220, 257]);
    expect(ckpt.tokenizer.eosId).toBe(259);
    expect(ckpt.tokenizer.padId).toBe(259);
    const st = decodeSafetensors(fs.readFileSync(path.join(base, 'model.safetensors')), 'm');
    expect(ckpt.params.get('h.0.mlp.c_fc.weight')!.dataSync()).toEqual(st.tensors.get('h.0.mlp.c_fc.weight')!.data);
    expect([...ckpt.params.keys()].filter((k) => /^h\.\d+\.attn\.bias$|^lm_head/.test(k))).toEqual([]);
    for (const v of ckpt.params.values()) v.dispose();
  });

  it('gives a checkpoint that sample and sft accept (sft.init_from)', async () => {
    const root = tempDir();
    const ckpt = path.join(root, 'gpt2-style-ckpt');
    expect((await rlhf('import', base, '--out', ckpt)).code).toBe(0);
    const sampled = await rlhf('sample', '--checkpoint', ckpt, '-p', ' the', '--max-new-tokens', '4', '--temperature', '0');
    expect(sampled.code, sampled.stderr).toBe(0);
    const config = path.join(root, 'sft.yaml');
    fs.writeFileSync(config, stringify({
      name: 'imported', seed: 1, run_dir: path.join(root, 'runs'), tokenizer: { type: 'char' }, model: { n_layer: 1, n_head: 2, d_model: D, context_length: 32, dropout: 0 },
      sft: { init_from: ckpt, data: { task: 'randomwalks' }, batch_size: 2, max_steps: 2, lr: 1e-4, warmup_steps: 0, log_interval: 1, eval_interval: 2, checkpoint_interval: 2 },
    }));
    const sft = await rlhf('sft', '-c', config);
    expect(sft.code, sft.stderr).toBe(0);
    expect(loadCheckpoint(path.join(root, 'runs', 'imported', 'sft', 'final')).tokenizer.type).toBe('gpt2');
  });

  it('lets a model whose padding is its end-of-text token stop there (pad is banned from sampling only when it is no stop token)', async () => {
    // ln_f outputs all ones and only the end-of-text row of wte sums high: greedy decoding wants token 259 at once
    const dir = copyOf(base, (d) =>
      editTensors(d, (t) => {
        t.delete('lm_head.weight');
        t.set('ln_f.weight', { shape: [D], data: new Float32Array(D) });
        t.set('ln_f.bias', { shape: [D], data: new Float32Array(D).fill(1) });
        t.get('wte.weight')!.data.fill(1, 259 * D, 260 * D);
      }),
    );
    const out = path.join(tempDir(), 'ckpt');
    await importFromHf(dir, out);
    const ckpt = loadCheckpoint(out);
    const opts = { maxNewTokens: 3, temperature: 0, topK: 0, topP: 1 };
    const stopping = generate(ckpt.params, ckpt.meta.model, [[258]], ckpt.tokenizer, { ...opts, stopIds: [259] }, new Rng(1));
    expect(stopping.responses[0]).toEqual([259]);
    expect(stopping.finished[0]).toBe(true);
    // not a stop token: padding is never sampled
    const padding = generate(ckpt.params, ckpt.meta.model, [[258]], ckpt.tokenizer, { ...opts, stopIds: [] }, new Rng(1));
    expect(padding.responses[0]).not.toContain(259);
    disposeParams(ckpt.params);
  });

  it('imports a sequence classifier without rlhf metadata as a scorer with a zero score bias', async () => {
    const dir = copyOf(base, (d) => {
      editJson(d, 'config.json', (c) => ({ ...c, architectures: ['GPT2ForSequenceClassification'], num_labels: 1 }));
      editTensors(d, (t) => {
        t.delete('lm_head.weight');
        t.set('score.weight', { shape: [1, D], data: pseudoRandom(D, 99) });
      });
    });
    const out = path.join(tempDir(), 'ckpt');
    expect(await importFromHf(dir, out)).toMatchObject({ head: 'score', restored: false });
    const ckpt = loadCheckpoint(out);
    expect([...ckpt.params.get('score.bias')!.dataSync()]).toEqual([0]);
    expect(ckpt.params.get('score.weight')!.shape).toEqual([D, 1]);
    expect(ckpt.meta.extra).toEqual({});
  });
});

function copyOf(dir: string, edit: (d: string) => void): string {
  const copy = path.join(tempDir(), 'hf');
  fs.cpSync(dir, copy, { recursive: true });
  edit(copy);
  return copy;
}

function editJson(dir: string, file: string, f: (j: Record<string, unknown>) => Record<string, unknown>): void {
  const p = path.join(dir, file);
  fs.writeFileSync(p, JSON.stringify(f(JSON.parse(fs.readFileSync(p, 'utf8')) as Record<string, unknown>)));
}

function editTensors(dir: string, f: (t: Map<string, NamedArray>) => void, raw?: (buf: Buffer) => Buffer): void {
  const p = path.join(dir, 'model.safetensors');
  const st = decodeSafetensors(fs.readFileSync(p), p);
  f(st.tensors);
  const buf = encodeSafetensors(st.tensors, st.metadata);
  fs.writeFileSync(p, raw ? raw(buf) : buf);
}

const config = (patch: Record<string, unknown>) => (d: string) => editJson(d, 'config.json', (c) => ({ ...c, ...patch }));

describe('rlhf import refuses what it cannot represent: one line, exit code 2, nothing written', () => {
  const refusals: [string, (d: string) => void, RegExp][] = [
    ['another architecture', config({ model_type: 'llama' }), /config\.json: model_type "llama" is not supported/],
    ['another GPT-2 head', config({ architectures: ['GPT2DoubleHeadsModel'] }), /config\.json: architectures \["GPT2DoubleHeadsModel"\] is not supported/],
    ['another activation', config({ activation_function: 'relu' }), /config\.json: activation_function "relu" is not supported/],
    ['another LayerNorm epsilon', config({ layer_norm_epsilon: 1e-6 }), /config\.json: layer_norm_epsilon 0\.000001 is not supported/],
    ['another MLP width', config({ n_inner: 10 }), /config\.json: n_inner 10 is not supported/],
    ['an untied head declared in the config', config({ tie_word_embeddings: false }), /config\.json: tie_word_embeddings false is not supported/],
    ['layer-scaled attention', config({ scale_attn_by_inverse_layer_idx: true }), /config\.json: scale_attn_by_inverse_layer_idx true/],
    ['cross-attention', config({ add_cross_attention: true }), /config\.json: add_cross_attention true/],
    ['unequal dropouts', config({ attn_pdrop: 0 }), /config\.json: resid_pdrop\/embd_pdrop\/attn_pdrop \(0\.1, 0\.1, 0\) must be one rate/],
    ['a classifier with two labels', config({ architectures: ['GPT2ForSequenceClassification'], num_labels: 2 }), /config\.json: num_labels 2 is not supported/],
    ['a config without vocab_size', config({ vocab_size: undefined }), /config\.json: vocab_size must be a positive integer/],
    ['a tokenizer of another size', config({ vocab_size: 300 }), /vocab_size 300 but the tokenizer has 260 tokens/],
    ['pytorch_model.bin only', (d) => fs.renameSync(path.join(d, 'model.safetensors'), path.join(d, 'pytorch_model.bin')), /only pytorch_model\.bin \(a pickle\) is present/],
    ['sharded weights', (d) => { fs.renameSync(path.join(d, 'model.safetensors'), path.join(d, 'model-00001-of-00002.safetensors')); fs.writeFileSync(path.join(d, 'model.safetensors.index.json'), '{}'); }, /sharded weights/],
    ['an lm_head that is not the embedding', (d) => editTensors(d, (t) => t.set('lm_head.weight', { shape: [260, D], data: pseudoRandom(260 * D, 5) })), /lm_head\.weight differs from transformer\.wte\.weight \(non-tied head/],
    ['a missing tensor', (d) => editTensors(d, (t) => t.delete('h.0.ln_2.bias')), /tensor transformer\.h\.0\.ln_2\.bias is missing/],
    ['a tensor of the wrong shape', (d) => editTensors(d, (t) => t.set('wpe.weight', { shape: [8, D], data: new Float32Array(8 * D) })), /tensor wpe\.weight has shape \[8,16\], config\.json implies \[32,16\]/],
    ['an unknown tensor', (d) => editTensors(d, (t) => t.set('h.1.ln_1.weight', { shape: [D], data: new Float32Array(D) })), /tensor h\.1\.ln_1\.weight has no place/],
    ['half-precision weights', (d) => editTensors(d, () => undefined, (b) => Buffer.from(b.toString('latin1').replace('"dtype":"F32"', '"dtype":"F16"'), 'latin1')), /dtype F16 is not supported/],
    ['a non-byte-level tokenizer', (d) => fs.writeFileSync(path.join(d, 'tokenizer.json'), JSON.stringify({ model: { type: 'BPE', vocab: { a: 0 }, merges: [] }, pre_tokenizer: { type: 'Metaspace' } })), /tokenizer\.json: pre_tokenizer\.type "Metaspace" is not supported/],
    ['a WordPiece tokenizer', (d) => fs.writeFileSync(path.join(d, 'tokenizer.json'), JSON.stringify({ model: { type: 'WordPiece', vocab: {} } })), /tokenizer\.json: model\.type "WordPiece" is not supported/],
    ['no tokenizer', (d) => fs.rmSync(path.join(d, 'merges.txt')), /no tokenizer \(tokenizer\.json, or vocab\.json \+ merges\.txt\)/],
    ['a merge of unknown tokens', (d) => fs.appendFileSync(path.join(d, 'merges.txt'), 'zz q\n'), /merges\[3\] "zz q" must be "LEFT RIGHT"/],
    ['no config.json', (d) => fs.rmSync(path.join(d, 'config.json')), /config\.json: missing \(not a Hugging Face model directory\?\)/],
  ];

  it.each(refusals)('%s', async (_what, edit, pattern) => {
    const dir = copyOf(base, edit);
    const out = path.join(tempDir(), 'ckpt');
    const r = await rlhf('import', dir, '--out', out);
    expectOneLineError(r, pattern);
    expect(r.code).toBe(2);
    expect(fs.existsSync(out)).toBe(false);
    expect(fs.readdirSync(path.dirname(out))).toEqual([]);
  });

  it('an existing checkpoint without --force (left as it was)', async () => {
    const out = path.join(tempDir(), 'ckpt');
    expect((await rlhf('import', base, '--out', out)).code).toBe(0);
    const before = fs.readFileSync(path.join(out, 'model.weights.bin'));
    fs.writeFileSync(path.join(out, 'note.txt'), 'mine');
    const r = await rlhf('import', base, '--out', out);
    expectOneLineError(r, /ckpt: already exists \(use --force to replace it\)/);
    expect(fs.readdirSync(out).sort()).toEqual(['model.json', 'model.weights.bin', 'note.txt', 'tokenizer.json']);
    expect(fs.readFileSync(path.join(out, 'model.weights.bin')).equals(before)).toBe(true);
    expect((await rlhf('import', base, '--out', out, '--force')).code).toBe(0);
    expect(fs.existsSync(path.join(out, 'note.txt'))).toBe(false);
  });
});
