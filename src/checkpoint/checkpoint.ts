import fs from 'node:fs';
import path from 'node:path';
import { tf, type Tensor, type WeightsManifestEntry } from '../backend/tf.js';
import type { GptConfig, HeadKind } from '../model/config.js';
import type { Params } from '../model/gpt.js';
import { tokenizerFromJSON, tokenizerFingerprint, type Tokenizer } from '../tokenizer/index.js';
import { sha256File, writeAtomicDir } from '../util/fs.js';

/** A checkpoint that is missing, malformed or does not fit what reads it. */
export class CheckpointError extends Error {}

const FORMAT = 'rlhf-lab/checkpoint';

/** `model.json`: everything needed to rebuild the model, plus the tfjs weights manifest. */
export interface CheckpointMeta {
  format: typeof FORMAT;
  version: 1;
  head: HeadKind;
  model: GptConfig;
  tokenizer_fingerprint: string;
  /** Stage-specific facts that travel with the weights (e.g. reward normalisation). */
  extra: Record<string, unknown>;
  weightsManifest: { paths: string[]; weights: WeightsManifestEntry[] }[];
}

/** What a periodic checkpoint adds so training resumes bit-exactly. */
export interface ResumeState {
  /** JSON-serialisable loop state: step, RNG state, controller state... */
  trainer: Record<string, unknown>;
  /** Named tensors (optimizer moments, EMA weights, extra models' weights). */
  tensors: Map<string, Tensor>;
}

export interface CheckpointContents {
  params: Params;
  head: HeadKind;
  model: GptConfig;
  tokenizer: Tokenizer;
  extra?: Record<string, unknown>;
  resume?: ResumeState;
}

export interface LoadedCheckpoint {
  dir: string;
  meta: CheckpointMeta;
  params: Params;
  tokenizer: Tokenizer;
  resume?: { trainer: Record<string, unknown>; tensors: Map<string, Tensor> };
}

async function encode(named: Map<string, Tensor>): Promise<{ data: Buffer; specs: WeightsManifestEntry[] }> {
  const { data, specs } = await tf.io.encodeWeights(Object.fromEntries(named));
  return { data: Buffer.from(data), specs };
}

function decode(dir: string, file: string, specs: WeightsManifestEntry[]): Map<string, Tensor> {
  const buf = fs.readFileSync(path.join(dir, file));
  const expected = specs.reduce((n, s) => n + s.shape.reduce((a: number, b: number) => a * b, 1) * 4, 0);
  if (buf.byteLength !== expected) {
    throw new CheckpointError(`${path.join(dir, file)}: expected ${expected} bytes, found ${buf.byteLength} (truncated or corrupt)`);
  }
  const ab = new Uint8Array(buf).buffer;
  return new Map(Object.entries(tf.io.decodeWeights(ab, specs)));
}

/**
 * Writes a checkpoint directory atomically: files go to a temporary sibling
 * that is renamed into place, so a crash or Ctrl-C leaves either the old
 * checkpoint or the new one, never a mixture.
 */
export async function saveCheckpoint(dir: string, c: CheckpointContents): Promise<void> {
  const weights = await encode(c.params);
  const meta: CheckpointMeta = {
    format: FORMAT,
    version: 1,
    head: c.head,
    model: c.model,
    tokenizer_fingerprint: tokenizerFingerprint(c.tokenizer),
    extra: c.extra ?? {},
    weightsManifest: [{ paths: ['model.weights.bin'], weights: weights.specs }],
  };
  const resume = c.resume ? await encode(c.resume.tensors) : undefined;
  await writeAtomicDir(dir, (tmp) => {
    fs.writeFileSync(path.join(tmp, 'model.weights.bin'), weights.data);
    fs.writeFileSync(path.join(tmp, 'model.json'), JSON.stringify(meta, null, 2) + '\n');
    fs.writeFileSync(path.join(tmp, 'tokenizer.json'), JSON.stringify(c.tokenizer.toJSON()) + '\n');
    if (c.resume && resume) {
      fs.writeFileSync(path.join(tmp, 'resume.bin'), resume.data);
      const state = { trainer: c.resume.trainer, tensors: resume.specs };
      fs.writeFileSync(path.join(tmp, 'resume.json'), JSON.stringify(state, null, 2) + '\n');
    }
  });
}

function readJson(file: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    throw new CheckpointError(`${file}: missing (not a checkpoint directory?)`);
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new CheckpointError(`${file}: not valid JSON`);
  }
}

/** Reads only the metadata (cheap): for compatibility checks before any work starts. */
export function readCheckpointMeta(dir: string): CheckpointMeta {
  const meta = readJson(path.join(dir, 'model.json')) as CheckpointMeta;
  if (meta?.format !== FORMAT || meta.version !== 1) {
    throw new CheckpointError(`${path.join(dir, 'model.json')}: not an rlhf-lab checkpoint (format ${String(meta?.format)})`);
  }
  return meta;
}

export function loadCheckpoint(dir: string, opts: { resume?: boolean; expectHead?: HeadKind } = {}): LoadedCheckpoint {
  const meta = readCheckpointMeta(dir);
  if (opts.expectHead && meta.head !== opts.expectHead) {
    throw new CheckpointError(`${dir}: holds a "${meta.head}" model, expected "${opts.expectHead}"`);
  }
  let tokenizer: Tokenizer;
  try {
    tokenizer = tokenizerFromJSON(readJson(path.join(dir, 'tokenizer.json')));
  } catch (e) {
    throw new CheckpointError(`${path.join(dir, 'tokenizer.json')}: ${(e as Error).message}`);
  }
  if (tokenizerFingerprint(tokenizer) !== meta.tokenizer_fingerprint) {
    throw new CheckpointError(`${dir}: tokenizer.json does not match the tokenizer the weights were trained with`);
  }
  if (tokenizer.vocabSize !== meta.model.vocab_size) {
    throw new CheckpointError(`${dir}: tokenizer has ${tokenizer.vocabSize} tokens but the model expects ${meta.model.vocab_size}`);
  }
  const manifest = meta.weightsManifest[0];
  const tensors = decode(dir, manifest.paths[0], manifest.weights);
  const params: Params = new Map();
  for (const [name, t] of tensors) {
    params.set(name, tf.variable(t, true));
    t.dispose();
  }
  let resume: LoadedCheckpoint['resume'];
  if (opts.resume) {
    const state = readJson(path.join(dir, 'resume.json')) as { trainer: Record<string, unknown>; tensors: WeightsManifestEntry[] };
    resume = { trainer: state.trainer, tensors: decode(dir, 'resume.bin', state.tensors) };
  }
  return { dir, meta, params, tokenizer, resume };
}

/** Content hash of a checkpoint's weights, recorded in manifests of the stages that read it. */
export function checkpointHash(dir: string): string {
  return sha256File(path.join(dir, 'model.weights.bin'));
}
