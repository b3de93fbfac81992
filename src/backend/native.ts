import { tf, type Tensor } from './tf.js';

/**
 * TensorFlow kernels called directly through tfjs-node's backend, for ops tfjs
 * has no kernel for (fused cross-entropy, oneDNN LayerNorm). They bypass tfjs's
 * kernel registry, so `tf.profile` cannot see them; a profiler registers an
 * observer here instead.
 */

export type NativeAttr = { name: string; type: 'type' | 'float' | 'int'; value: number } | { name: string; type: 'bool'; value: boolean };

interface NativeBackend {
  executeMultipleOutputs(name: string, attrs: unknown[], inputs: Tensor[], n: number): Tensor[];
  binding: { TF_ATTR_TYPE: number; TF_ATTR_FLOAT: number; TF_ATTR_BOOL: number; TF_ATTR_INT: number };
}

export type NativeObserver = (name: string, inputs: readonly Tensor[], ms: number) => void;

let observer: NativeObserver | undefined;

/** Installs (or, with undefined, removes) the observer of direct native calls. */
export function observeNativeOps(o: NativeObserver | undefined): void {
  observer = o;
}

export function nativeAvailable(): boolean {
  return tf.getBackend() === 'tensorflow';
}

/** Runs TensorFlow op `name` eagerly; the caller checks nativeAvailable() first. */
export function runNativeOp(name: string, attrs: readonly NativeAttr[], inputs: Tensor[], outputs: number): Tensor[] {
  const backend = tf.backend() as unknown as NativeBackend;
  const codes = { type: backend.binding.TF_ATTR_TYPE, float: backend.binding.TF_ATTR_FLOAT, bool: backend.binding.TF_ATTR_BOOL, int: backend.binding.TF_ATTR_INT };
  const tfAttrs = attrs.map((a) => ({ name: a.name, type: codes[a.type], value: a.value }));
  if (!observer) return backend.executeMultipleOutputs(name, tfAttrs, inputs, outputs);
  const t0 = performance.now();
  const result = backend.executeMultipleOutputs(name, tfAttrs, inputs, outputs);
  observer(name, inputs, performance.now() - t0);
  return result;
}

/** TF_DataType codes for the `type` attrs. */
export const TF_FLOAT = 1;
export const TF_INT32 = 3;
