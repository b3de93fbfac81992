import type { NamedArray } from './safetensors.js';

/**
 * rlhf's parameter names are GPT2Model's; Hugging Face's head classes hold
 * the trunk under `transformer.` and the scorer as `score.weight` [1, d]
 * (rlhf: [d, 1] plus a bias). Same memory order: a [d, 1] column and a [1, d]
 * row are the same d floats.
 */
export const TRUNK_PREFIX = 'transformer.';

/** Buffers that older GPT-2 files carry (causal mask, masked fill value): not parameters. */
export const IGNORED_BUFFER = /^h\.\d+\.attn\.(masked_)?bias$/;

export function hfName(name: string): string {
  return name.startsWith('score.') ? name : TRUNK_PREFIX + name;
}

/** [1, d] <-> [d, 1]: same data, other shape. */
export function transposedRow(t: NamedArray): NamedArray {
  return { shape: [...t.shape].reverse(), data: t.data };
}

export function sameBits(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

export const floatsToBase64 = (a: Float32Array): string => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('base64');

export function base64ToFloats(s: string): Float32Array {
  const b = Buffer.from(s, 'base64');
  return new Float32Array(new Uint8Array(b).buffer, 0, b.length >> 2);
}
