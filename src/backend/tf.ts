import { createRequire } from 'node:module';
import { numericsEnvironment, onednnFromProbe, type NativeProbe, type NumericsEnvironment } from './numerics.js';
import { withNativeStderrSilenced } from './quiet.js';
import { threadsInEffect } from './threads.js';

/**
 * The one place the TensorFlow.js module is loaded. Everything else imports `tf`
 * from here, so the backend choice (native TensorFlow unless the pure-JS `cpu`
 * backend was asked for explicitly) is made once, before any tensor exists.
 */
type TF = typeof import('@tensorflow/tfjs-node');

export class BackendError extends Error {}

const require = createRequire(import.meta.url);

function load(): TF {
  // TensorFlow's C++ start-up chatter (CPU feature notes) is noise on a CLI.
  process.env.TF_CPP_MIN_LOG_LEVEL ??= '2';
  // TensorFlow's pooling (BFC) CPU allocator instead of malloc: every step frees and
  // re-allocates the same activation sizes, and malloc hands large blocks back to the
  // kernel, so each step page-faulted them in again (gpt-10m: ~24,000 faults and
  // ~330 ms of system time per step; with the pool ~60 and ~110 ms).
  process.env.TF_CPU_ALLOCATOR_USE_BFC ??= 'true';
  const wanted = process.env.RLHF_BACKEND ?? 'tensorflow';
  if (wanted === 'cpu') {
    // Pure-JS kernels: same API, far slower. Only on explicit request.
    const tfjs = require('@tensorflow/tfjs') as TF;
    tfjs.setBackend('cpu');
    return tfjs;
  }
  if (wanted !== 'tensorflow') {
    throw new BackendError(`unknown backend "${wanted}" (expected "tensorflow" or "cpu")`);
  }
  try {
    return withNativeStderrSilenced(() => {
      const tfjs = require('@tensorflow/tfjs-node') as TF;
      probe = probeNative(tfjs);
      return tfjs;
    });
  } catch (err) {
    const reason = (err as Error).message.split('\n')[0];
    throw new BackendError(
      `native TensorFlow backend unavailable (${reason}); run "npm run setup", ` +
        `or pass --backend cpu to train on the slow pure-JS backend deliberately`,
    );
  }
}

interface Binding {
  TF_Version: string;
  TF_ATTR_TYPE: number;
  TF_ATTR_FLOAT: number;
}

/** The probe's findings; the pure-JS backend has no native kernels. */
let probe: NativeProbe = { tensorflow: null, onednn: null, layerNormKernel: false };

/**
 * Asks TensorFlow, while its start-up lines are still silenced, which version it
 * is and whether the one-kernel LayerNorm runs eagerly; the latter also tells
 * whether oneDNN's custom ops are on (src/backend/numerics.ts).
 */
function probeNative(tfjs: TF): NativeProbe {
  const backend = tfjs.backend() as unknown as { binding: Binding; executeMultipleOutputs(name: string, attrs: unknown[], inputs: unknown[], n: number): { dispose(): void }[] };
  const { binding } = backend;
  const inputs = [tfjs.ones([1, 2]), tfjs.ones([2]), tfjs.zeros([2])];
  const attrs = [
    { name: 'T', type: binding.TF_ATTR_TYPE, value: 1 },
    { name: 'epsilon', type: binding.TF_ATTR_FLOAT, value: 1e-5 },
  ];
  let layerNorm: { ok: true } | { ok: false; message: string };
  try {
    backend.executeMultipleOutputs('_MklLayerNorm', attrs, inputs, 1).forEach((t) => t.dispose());
    layerNorm = { ok: true };
  } catch (err) {
    layerNorm = { ok: false, message: String((err as Error).message) };
  } finally {
    inputs.forEach((t) => t.dispose());
  }
  return { tensorflow: binding.TF_Version, onednn: onednnFromProbe(layerNorm), layerNormKernel: layerNorm.ok };
}

export const tf: TF = load();

/** TensorFlow intra-op threads this process runs with (fixed when TensorFlow loaded). */
export const tfThreads: number = threadsInEffect();

export function backendName(): string {
  return tf.getBackend();
}

/** Whether TensorFlow's one-kernel LayerNorm runs in this process (not with oneDNN's custom ops on). */
export const layerNormKernelAvailable: boolean = probe.layerNormKernel;

/** The numerics environment of this process, for manifests, the bench and `rlhf verify`. */
export function processNumerics(): NumericsEnvironment {
  return numericsEnvironment(tf.getBackend(), tfThreads, probe);
}

// `tf` is a value, so its types are re-exported by name for annotations.
export type { Tensor, Tensor1D, Tensor2D, Tensor3D, Tensor4D, Scalar, Variable, NamedTensorMap, Rank } from '@tensorflow/tfjs-node';
export type WeightsManifestEntry = import('@tensorflow/tfjs-core').io.WeightsManifestEntry;
