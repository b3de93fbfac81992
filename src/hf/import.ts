import fs from 'node:fs';
import path from 'node:path';
import { tf } from '../backend/tf.js';
import { saveCheckpoint } from '../checkpoint/checkpoint.js';
import type { GptConfig, HeadKind } from '../model/config.js';
import { disposeParams, parameterShapes, type Params } from '../model/gpt.js';
import type { RewardNorm } from '../reward/score.js';
import type { Tokenizer } from '../tokenizer/index.js';
import { parseHfConfig } from './config.js';
import { HfError } from './errors.js';
import { RLHF_METADATA, type RlhfMetadata } from './export.js';
import { foldRewardHead } from './reward-fold.js';
import { decodeSafetensors, SafetensorsError, type NamedArray } from './safetensors.js';
import { readHfTokenizer } from './tokenizer-files.js';
import { base64ToFloats, IGNORED_BUFFER, sameBits, TRUNK_PREFIX, transposedRow } from './weights.js';

export interface ImportResult {
  out: string;
  head: HeadKind;
  model: GptConfig;
  tokenizer: Tokenizer['type'];
  /** True when rlhf's own export metadata gave back the exact original checkpoint (value head, reward normalisation). */
  restored: boolean;
}

function readJson(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    throw new HfError(`${file}: missing (not a Hugging Face model directory?)`);
  }
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw new HfError(`${file}: not valid JSON`);
  }
}

function readWeights(dir: string): { tensors: Map<string, NamedArray>; metadata: Record<string, string> } {
  const file = path.join(dir, 'model.safetensors');
  if (!fs.existsSync(file)) {
    if (fs.existsSync(path.join(dir, 'model.safetensors.index.json'))) throw new HfError(`${dir}: sharded weights (model.safetensors.index.json) are not supported; save as one model.safetensors`);
    if (fs.existsSync(path.join(dir, 'pytorch_model.bin'))) throw new HfError(`${dir}: only pytorch_model.bin (a pickle) is present; convert it to model.safetensors first (save_pretrained(..., safe_serialization=True))`);
    throw new HfError(`${file}: missing`);
  }
  try {
    return decodeSafetensors(fs.readFileSync(file), file);
  } catch (e) {
    if (e instanceof SafetensorsError) throw new HfError(e.message);
    throw e;
  }
}

/** HF tensors -> rlhf names, checked against the shapes the config implies. */
function mapTensors(tensors: Map<string, NamedArray>, model: GptConfig, head: HeadKind, file: string): Map<string, Float32Array> {
  const want = parameterShapes(model, head);
  const out = new Map<string, Float32Array>();
  let lmHead: NamedArray | undefined;
  for (const [hf, t] of tensors) {
    const name = hf.startsWith(TRUNK_PREFIX) ? hf.slice(TRUNK_PREFIX.length) : hf;
    if (IGNORED_BUFFER.test(name)) continue;
    if (name === 'lm_head.weight') {
      lmHead = t;
      continue;
    }
    const value = name === 'score.weight' ? transposedRow(t) : t;
    const shape = want.get(name);
    if (!shape) throw new HfError(`${file}: tensor ${hf} has no place in a GPT-2 ${head === 'lm' ? 'LM' : 'sequence classifier'} of this config`);
    if (value.shape.join() !== shape.join()) throw new HfError(`${file}: tensor ${hf} has shape [${t.shape.join(',')}], config.json implies [${(name === 'score.weight' ? [1, model.d_model] : shape).join(',')}]`);
    out.set(name, value.data);
  }
  // HF's scorer has no bias: rlhf's is zero.
  if (head === 'score' && !out.has('score.bias')) out.set('score.bias', new Float32Array(1));
  for (const name of want.keys()) if (!out.has(name)) throw new HfError(`${file}: tensor ${hfNameFor(name)} is missing`);
  if (lmHead && !sameBits(lmHead.data, out.get('wte.weight')!)) throw new HfError(`${file}: lm_head.weight differs from transformer.wte.weight (non-tied head; rlhf ties the LM head to the token embedding)`);
  return out;
}

const hfNameFor = (name: string): string => (name.startsWith('score.') ? name : TRUNK_PREFIX + name);

/**
 * Undoes rlhf's own export when its metadata is present and consistent with
 * the weights (the fold recomputed from the originals gives the file's tensors
 * bit for bit): restores the reward head, ln_f, value head and `extra`.
 * Anything else is an ordinary HF model and imports as such.
 */
function restore(values: Map<string, Float32Array>, model: GptConfig, head: HeadKind, metadata: Record<string, string>): Record<string, unknown> | undefined {
  let meta: RlhfMetadata;
  try {
    meta = JSON.parse(metadata[RLHF_METADATA] ?? 'null') as RlhfMetadata;
  } catch {
    return undefined;
  }
  if (meta?.version !== 1 || meta.head !== head || typeof meta.originals !== 'object' || typeof meta.extra !== 'object') return undefined;
  const originals = new Map(Object.entries(meta.originals).map(([k, v]) => [k, base64ToFloats(String(v))]));
  const shapes = parameterShapes(model, 'score');
  for (const [k, v] of originals) {
    const shape = shapes.get(k);
    if (!shape || v.length !== shape.reduce((a, b) => a * b, 1)) return undefined;
  }
  if (head === 'score') {
    const [lnf, w, b] = ['ln_f.bias', 'score.weight', 'score.bias'].map((k) => originals.get(k));
    if (!lnf || !w || !b || b.length !== 1) return undefined;
    const norm = (meta.extra.reward_norm as RewardNorm | undefined) ?? { gain: 1, bias: 0 };
    const folded = foldRewardHead(w, b[0], lnf, norm);
    if (!sameBits(folded.lnfBias, values.get('ln_f.bias')!) || !sameBits(folded.weight, values.get('score.weight')!)) return undefined;
  }
  for (const [k, v] of originals) values.set(k, v);
  return meta.extra;
}

/**
 * Reads a GPT-2-family Hugging Face directory (config.json, model.safetensors,
 * tokenizer.json or vocab.json + merges.txt) into an rlhf checkpoint at `out`.
 * Everything is checked before anything is written; the checkpoint is written
 * atomically, and an existing `out` is replaced only with force.
 */
export async function importFromHf(dir: string, out: string, opts: { force?: boolean } = {}): Promise<ImportResult> {
  if (fs.existsSync(out) && !opts.force) throw new HfError(`${out}: already exists (use --force to replace it)`);
  const configFile = path.join(dir, 'config.json');
  const { model, head, eosId, padId } = parseHfConfig(readJson(configFile), configFile);
  const tokenizer = readHfTokenizer(dir, { eosId, padId });
  if (tokenizer.vocabSize !== model.vocab_size) throw new HfError(`${configFile}: vocab_size ${model.vocab_size} but the tokenizer has ${tokenizer.vocabSize} tokens`);
  const { tensors, metadata } = readWeights(dir);
  const values = mapTensors(tensors, model, head, path.join(dir, 'model.safetensors'));
  const extra = restore(values, model, head, metadata);
  const shapes = parameterShapes(model, 'score');
  const params: Params = new Map();
  try {
    for (const [name, data] of values) {
      const t = tf.tensor(data, shapes.get(name)!, 'float32');
      params.set(name, tf.variable(t, true));
      t.dispose();
    }
    await saveCheckpoint(out, { params, head, model, tokenizer, extra });
  } finally {
    disposeParams(params);
  }
  return { out, head, model, tokenizer: tokenizer.type, restored: extra !== undefined };
}
