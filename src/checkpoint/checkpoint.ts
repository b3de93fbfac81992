import fs from 'node:fs';
import path from 'node:path';
import { tf, type Tensor, type WeightsManifestEntry } from '../backend/tf.js';
import type { GptConfig, HeadKind } from '../model/config.js';
import { parameterShapes, type Params } from '../model/gpt.js';
import { tokenizerFromJSON, tokenizerFingerprint, type Tokenizer } from '../tokenizer/index.js';
import { sha256File, writeAtomicDir } from '../util/fs.js';
import { sha256 } from '../workflow/hash.js';

/** A checkpoint that is missing, malformed or does not fit what reads it. */
export class CheckpointError extends Error {}

const FORMAT = 'rlhf-lab/checkpoint';
const WEIGHTS_FILE = 'model.weights.bin';

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

function readBytes(file: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch {
    throw new CheckpointError(`${file}: missing (not a checkpoint directory?)`);
  }
}

const elements = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

function checkSize(file: string, buf: Buffer, specs: WeightsManifestEntry[]): void {
  const expected = specs.reduce((n, s) => n + elements(s.shape) * 4, 0);
  if (buf.byteLength !== expected) {
    throw new CheckpointError(`${file}: expected ${expected} bytes, found ${buf.byteLength} (truncated or corrupt)`);
  }
}

function decode(file: string, buf: Buffer, specs: WeightsManifestEntry[]): Map<string, Tensor> {
  checkSize(file, buf, specs);
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
    weightsManifest: [{ paths: [WEIGHTS_FILE], weights: weights.specs }],
  };
  const resume = c.resume ? await encode(c.resume.tensors) : undefined;
  await writeAtomicDir(dir, (tmp) => {
    fs.writeFileSync(path.join(tmp, WEIGHTS_FILE), weights.data);
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

const shapeText = (shape: readonly number[]): string => `[${shape.join(',')}]`;

/**
 * What keeps model.json's `model` config and its weights manifest from fitting
 * together, or undefined. Checked before any tensor exists: a mismatch would
 * otherwise surface as a TensorFlow shape error, or a missing variable, deep
 * inside the first forward pass.
 */
function weightsMismatch(meta: CheckpointMeta): string | undefined {
  if (meta.head !== 'lm' && meta.head !== 'score') return `head must be "lm" or "score", found ${JSON.stringify(meta.head)}`;
  const m = meta.model;
  for (const key of ['vocab_size', 'n_layer', 'n_head', 'd_model', 'context_length'] as const) {
    if (!Number.isInteger(m?.[key]) || m[key] < 1) return `model.${key} must be a positive integer, found ${JSON.stringify(m?.[key])}`;
  }
  if (m.d_model % m.n_head !== 0) return `model.d_model (${m.d_model}) is not divisible by model.n_head (${m.n_head})`;
  const group = meta.weightsManifest?.[0];
  if (meta.weightsManifest?.length !== 1 || group?.paths?.length !== 1 || group.paths[0] !== WEIGHTS_FILE || !Array.isArray(group.weights)) {
    return `weightsManifest must describe the one file ${WEIGHTS_FILE}`;
  }
  // An LM policy trained with ppo.value_model: policy_head also carries the scalar head.
  const allowed = parameterShapes(m, 'score');
  for (const w of group.weights) {
    const want = allowed.get(w?.name);
    if (!want) return `${String(w?.name)}: the weights file holds a tensor this model config has no place for`;
    if (!Array.isArray(w.shape)) return `${w.name}: the weights manifest gives no shape`;
    if (w.dtype !== 'float32') return `${w.name}: dtype ${w.dtype}, expected float32`;
    if (shapeText(w.shape) !== shapeText(want)) {
      return `${w.name} has shape ${shapeText(want)} in this model config but the weights file holds ${elements(w.shape)} floats ${shapeText(w.shape)} for it`;
    }
  }
  const held = new Set(group.weights.map((w) => w.name));
  for (const name of parameterShapes(m, meta.head).keys()) {
    if (!held.has(name)) return `${name}: this model config needs it but the weights file holds no such tensor`;
  }
  return undefined;
}

/** Reads only the metadata (cheap): for compatibility checks before any work starts. */
export function readCheckpointMeta(dir: string): CheckpointMeta {
  const file = path.join(dir, 'model.json');
  const meta = readJson(file) as CheckpointMeta;
  if (meta?.format !== FORMAT || meta.version !== 1) {
    throw new CheckpointError(`${file}: not an rlhf-lab checkpoint (format ${String(meta?.format)})`);
  }
  const problem = weightsMismatch(meta);
  if (problem) throw new CheckpointError(`${file}: ${problem}`);
  return meta;
}

/**
 * The sha256 a stage's manifest.json recorded for its `final/` when the stage
 * completed (periodic checkpoints have none recorded); undefined otherwise.
 */
function recordedHash(dir: string): { manifest: string; sha256: string } | undefined {
  if (path.basename(dir) !== 'final') return undefined;
  const manifest = path.join(path.dirname(dir), 'manifest.json');
  try {
    const recorded = (JSON.parse(fs.readFileSync(manifest, 'utf8')) as { final?: { sha256?: unknown } }).final?.sha256;
    return typeof recorded === 'string' ? { manifest, sha256: recorded } : undefined;
  } catch {
    return undefined;
  }
}

/** A checkpoint's tokenizer, checked against the one its weights were trained with (no weights read). */
export function readCheckpointTokenizer(dir: string, meta: CheckpointMeta = readCheckpointMeta(dir)): Tokenizer {
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
  return tokenizer;
}

interface VerifiedFiles {
  meta: CheckpointMeta;
  tokenizer: Tokenizer;
  weights: Buffer;
  sha256: string;
}

/**
 * Reads a checkpoint's files and checks everything about them that can be
 * checked without TensorFlow: format, head, shapes against the model config,
 * tokenizer, weights size, and (for a stage's final/) that the weights still
 * hash to what the stage recorded. Reads and hashes the weights once.
 */
function readVerified(dir: string, expectHead?: HeadKind): VerifiedFiles {
  const meta = readCheckpointMeta(dir);
  if (expectHead && meta.head !== expectHead) {
    throw new CheckpointError(`${dir}: holds a "${meta.head}" model, expected "${expectHead}"`);
  }
  const tokenizer = readCheckpointTokenizer(dir, meta);
  const file = path.join(dir, WEIGHTS_FILE);
  const weights = readBytes(file);
  checkSize(file, weights, meta.weightsManifest[0].weights);
  const hash = sha256(weights);
  const recorded = recordedHash(dir);
  if (recorded && recorded.sha256 !== hash) {
    throw new CheckpointError(`${file}: sha256 is ${hash} but ${recorded.manifest} recorded ${recorded.sha256} (modified since its stage completed)`);
  }
  return { meta, tokenizer, weights, sha256: hash };
}

/** Checks a checkpoint as loadCheckpoint does, without building tensors; returns its weights' sha256. */
export function verifyCheckpoint(dir: string): string {
  return readVerified(dir).sha256;
}

export function loadCheckpoint(dir: string, opts: { resume?: boolean; expectHead?: HeadKind } = {}): LoadedCheckpoint {
  const { meta, tokenizer, weights } = readVerified(dir, opts.expectHead);
  const tensors = decode(path.join(dir, WEIGHTS_FILE), weights, meta.weightsManifest[0].weights);
  const params: Params = new Map();
  for (const [name, t] of tensors) {
    params.set(name, tf.variable(t, true));
    t.dispose();
  }
  let resume: LoadedCheckpoint['resume'];
  if (opts.resume) {
    const state = readJson(path.join(dir, 'resume.json')) as { trainer: Record<string, unknown>; tensors: WeightsManifestEntry[] };
    const file = path.join(dir, 'resume.bin');
    resume = { trainer: state.trainer, tensors: decode(file, readBytes(file), state.tensors) };
  }
  return { dir, meta, params, tokenizer, resume };
}

/** Content hash of a checkpoint's weights, recorded in manifests of the stages that read it. */
export function checkpointHash(dir: string): string {
  return sha256File(path.join(dir, WEIGHTS_FILE));
}
