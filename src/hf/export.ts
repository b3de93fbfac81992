import fs from 'node:fs';
import path from 'node:path';
import { loadCheckpoint } from '../checkpoint/checkpoint.js';
import { disposeParams } from '../model/gpt.js';
import { IDENTITY_NORM, type RewardNorm } from '../reward/score.js';
import { writeAtomicDir } from '../util/fs.js';
import { hfGenerationConfig, hfModelConfig } from './config.js';
import { HfError } from './errors.js';
import { foldRewardHead } from './reward-fold.js';
import { encodeSafetensors, type NamedArray } from './safetensors.js';
import { hfTokenizerFiles } from './tokenizer-files.js';
import { floatsToBase64, hfName, transposedRow } from './weights.js';

/** safetensors metadata key holding what HF has no slot for, so import restores the checkpoint bit for bit. */
export const RLHF_METADATA = 'rlhf_lab';

export interface RlhfMetadata {
  version: 1;
  head: 'lm' | 'score';
  extra: Record<string, unknown>;
  /** Tensors the export changed (reward fold) or left out (a policy's value head), base64 float32. */
  originals: Record<string, string>;
}

export interface ExportResult {
  out: string;
  architecture: string;
  /** rlhf tensors not in model.safetensors (a PPO policy's value head). */
  leftOut: string[];
  /** For a reward model: how the bias and normalisation were folded in. */
  folded?: { gain: number; bias: number; scoreBias: number };
}

/**
 * Writes `out` as a Hugging Face model directory: GPT2LMHeadModel (a policy's
 * value head left out) or, for a reward model, GPT2ForSequenceClassification
 * whose score is rlhf's normalised reward (see reward-fold.ts). Written to a
 * temporary sibling and renamed; an existing `out` is replaced only with force.
 */
export async function exportToHf(ckptDir: string, out: string, opts: { force?: boolean } = {}): Promise<ExportResult> {
  if (fs.existsSync(out) && !opts.force) throw new HfError(`${out}: already exists (use --force to replace it)`);
  const ckpt = loadCheckpoint(ckptDir);
  const values = new Map<string, NamedArray>();
  for (const [name, v] of ckpt.params) values.set(name, { shape: v.shape, data: v.dataSync() as Float32Array });
  disposeParams(ckpt.params);
  const { head, model, extra } = ckpt.meta;
  const tensors = new Map<string, NamedArray>();
  const meta: RlhfMetadata = { version: 1, head, extra, originals: {} };
  const result: ExportResult = { out, architecture: head === 'lm' ? 'GPT2LMHeadModel' : 'GPT2ForSequenceClassification', leftOut: [] };
  for (const [name, t] of values) {
    if (!name.startsWith('score.')) tensors.set(hfName(name), t);
    else if (head === 'lm') {
      result.leftOut.push(name);
      meta.originals[name] = floatsToBase64(t.data);
    }
  }
  if (head === 'score') {
    const norm = (extra.reward_norm as RewardNorm | undefined) ?? IDENTITY_NORM;
    const w = values.get('score.weight')!;
    const b = values.get('score.bias')!.data[0];
    const lnf = values.get('ln_f.bias')!;
    let folded;
    try {
      folded = foldRewardHead(w.data, b, lnf.data, norm);
    } catch (e) {
      throw new HfError(`${ckptDir}: ${(e as Error).message}`);
    }
    tensors.set(hfName('ln_f.bias'), { shape: lnf.shape, data: folded.lnfBias });
    tensors.set('score.weight', transposedRow({ shape: w.shape, data: folded.weight }));
    for (const name of ['ln_f.bias', 'score.weight', 'score.bias']) meta.originals[name] = floatsToBase64(values.get(name)!.data);
    result.folded = { gain: norm.gain, bias: norm.bias, scoreBias: b };
  }
  const files: Record<string, string | Buffer> = {
    'model.safetensors': encodeSafetensors(tensors, { format: 'pt', [RLHF_METADATA]: JSON.stringify(meta) }),
    'config.json': JSON.stringify(hfModelConfig(model, head, ckpt.tokenizer), null, 2),
    'generation_config.json': JSON.stringify(hfGenerationConfig(ckpt.tokenizer), null, 2),
    ...hfTokenizerFiles(ckpt.tokenizer, model.context_length),
  };
  await writeAtomicDir(out, (tmp) => {
    for (const [name, content] of Object.entries(files)) fs.writeFileSync(path.join(tmp, name), content);
  });
  return result;
}
