import { layerNormKernelAvailable, tf, type Tensor, type Tensor1D, type Tensor2D } from '../backend/tf.js';
import { nativeAvailable, runNativeOp, TF_FLOAT, TF_INT32, type NativeAttr } from '../backend/native.js';

/**
 * Fast paths for the decoder's hot spots. Per-op dispatch (~25 µs) dominates a
 * small model's step, and autodiff of composite ops records every elementwise
 * op twice over; these use hand-written gradients (tf.customGrad) and, on the
 * native backend, TensorFlow's fused cross-entropy kernel. tests/kernels.test.ts
 * checks values and gradients against the plain compositions.
 */

const LN_EPS = 1e-5;

type Save = (ts: Tensor[]) => void;
type GradFn = Parameters<typeof tf.customGrad>[0];
/** tf.customGrad's typing merges inputs and the save callback into one union; this states our real signatures. */
const custom = (f: (...args: never[]) => { value: Tensor; gradFunc: (dy: Tensor, saved: Tensor[]) => Tensor[] }) => tf.customGrad(f as unknown as GradFn);

let lastAxis: Tensor | undefined;

/**
 * Mean over the last axis, kept as a size-1 axis. tfjs-node's Mean kernel first
 * copies its input through a float32 Cast even when it is float32 already; the
 * TensorFlow op itself is one kernel. No gradient (used inside hand-written ones).
 */
function rowMean(x: Tensor): Tensor {
  if (!nativeAvailable()) return x.mean(-1, true);
  lastAxis ??= tf.keep(tf.tensor1d([-1], 'int32'));
  const attrs: NativeAttr[] = [
    { name: 'T', type: 'type', value: TF_FLOAT },
    { name: 'Tidx', type: 'type', value: TF_INT32 },
    { name: 'keep_dims', type: 'bool', value: true },
  ];
  return runNativeOp('Mean', attrs, [x, lastAxis], 1)[0];
}

/** x̂ = (x − mean) · rstd over the last axis, and rstd itself. */
function normalize(x: Tensor): { xhat: Tensor; rstd: Tensor } {
  const xc = x.sub(rowMean(x));
  const rstd = rowMean(xc.square()).add(LN_EPS).rsqrt();
  return { xhat: xc.mul(rstd), rstd };
}

/**
 * LayerNorm over the last axis of [N, d], with gain and bias [d]. The value comes
 * from TensorFlow's one-kernel oneDNN LayerNorm where it runs (see nativeLayerNorm)
 * (9 kernels → 1: most of a generation step's LayerNorm cost is dispatch). The
 * backward pass recomputes x̂ and rstd instead of saving them, so training runs
 * the same number of kernels as before and inference runs far fewer.
 */
export const layerNorm = custom((x: Tensor, gain: Tensor, bias: Tensor, save: Save) => {
  save([x, gain]);
  const native = nativeLayerNorm(x, gain, bias);
  return {
    value: native ?? tf.tidy(() => { const { xhat } = normalize(x); return xhat.mul(gain).add(bias); }),
    // dx = rstd · (ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)) with ĝ = dy·gain
    gradFunc: (dy: Tensor, saved: Tensor[]) => {
      const [xs, g] = saved;
      const { xhat, rstd } = normalize(xs);
      const dxhat = dy.mul(g);
      const dx = dxhat.sub(rowMean(dxhat)).sub(xhat.mul(rowMean(dxhat.mul(xhat)))).mul(rstd);
      return [dx, dy.mul(xhat).sum(0), dy.sum(0)];
    },
  };
}) as (x: Tensor2D, gain: Tensor, bias: Tensor) => Tensor2D;

const GELU_K = Math.sqrt(2 / Math.PI);
const GELU_C = 0.044715;

/**
 * GELU, tanh approximation (GPT-2's `gelu_new`), written as x·σ(v) with
 * v = 2k·(x + c·x³), since ½(1 + tanh(u)) = σ(2u): fewer ops both ways.
 */
export const gelu = custom((x: Tensor, save: Save) => {
  const x2 = x.square();
  const s = tf.sigmoid(x.mul(x2.mul(2 * GELU_K * GELU_C).add(2 * GELU_K)));
  save([x, x2, s]);
  return {
    value: x.mul(s),
    // d/dx x·σ(v) = σ + x·σ(1−σ)·v',  v' = 2k·(1 + 3c·x²)
    gradFunc: (dy: Tensor, saved: Tensor[]) => {
      const [xs, sq, sg] = saved;
      const dv = sq.mul(6 * GELU_K * GELU_C).add(2 * GELU_K);
      return [dy.mul(sg.add(xs.mul(sg).mul(tf.sub(1, sg)).mul(dv)))];
    },
  };
}) as (x: Tensor) => Tensor;

/**
 * TensorFlow's oneDNN LayerNorm kernel. With oneDNN's custom ops on (the default
 * on AVX-512 CPUs) TensorFlow's eager runtime cannot find it, and builds for
 * other CPUs may lack it: then LayerNorm runs as the composite. Which one runs
 * was probed when TensorFlow loaded; manifests and the bench record it
 * (`fast_paths.layer_norm`), so the fallback is never silent.
 */
function nativeLayerNorm(x: Tensor, gain: Tensor, bias: Tensor): Tensor | undefined {
  if (!nativeAvailable() || !layerNormKernelAvailable) return undefined;
  const attrs: NativeAttr[] = [
    { name: 'T', type: 'type', value: TF_FLOAT },
    { name: 'epsilon', type: 'float', value: LN_EPS },
  ];
  return runNativeOp('_MklLayerNorm', attrs, [x, gain, bias], 1)[0];
}

let zeroAxis: Tensor | undefined;

/**
 * Rows `ids` of `table` ([V, d] × [N] int32 → [N, d]), gradient summed back into
 * the rows (UnsortedSegmentSum, what tf.gather's gradient computes). tfjs-node's
 * gather reads the indices back to the host to bounds-check them, a sync per call
 * that also keeps the training step from being traced into a graph
 * (src/graph/trace.ts); TensorFlow's GatherV2 kernel checks the bounds itself.
 */
export function embed(table: Tensor, ids: Tensor1D): Tensor2D {
  const rows = table.shape[0]!;
  const op = custom((t: Tensor, save: Save) => {
    save([ids]); // the gradient runs after the forward's scope has disposed everything not saved
    const gradFunc = (dy: Tensor, [idx]: Tensor[]) => [tf.unsortedSegmentSum(dy, idx as Tensor1D, rows)];
    if (!nativeAvailable()) return { value: tf.gather(t, ids), gradFunc };
    zeroAxis ??= tf.keep(tf.scalar(0, 'int32'));
    const attrs: NativeAttr[] = [
      { name: 'batch_dims', type: 'int', value: 0 },
      { name: 'Tparams', type: 'type', value: TF_FLOAT },
      { name: 'Tindices', type: 'type', value: TF_INT32 },
      { name: 'Taxis', type: 'type', value: TF_INT32 },
    ];
    return { value: runNativeOp('GatherV2', attrs, [t, ids, zeroAxis], 1)[0], gradFunc };
  });
  return op(table) as Tensor2D;
}

/** TF's fused sparse softmax cross-entropy (loss and its gradient in one kernel), when on the native backend. */
function nativeSparseXent(logits: Tensor2D, labels: Tensor1D): [Tensor1D, Tensor2D] | undefined {
  if (!nativeAvailable()) return undefined;
  const attrs: NativeAttr[] = [
    { name: 'T', type: 'type', value: TF_FLOAT },
    { name: 'Tlabels', type: 'type', value: TF_INT32 },
  ];
  const [loss, backprop] = runNativeOp('SparseSoftmaxCrossEntropyWithLogits', attrs, [logits, labels], 2);
  return [loss as Tensor1D, backprop as Tensor2D];
}

/** −log softmax(logits)[label] per row, [N, V] × [N] → [N]. */
export function sparseCrossEntropy(logits: Tensor2D, labels: Tensor1D): Tensor1D {
  const op = custom((l: Tensor, save: Save) => {
    const native = nativeSparseXent(l as Tensor2D, labels);
    if (native) {
      save([native[1]]);
      return { value: native[0], gradFunc: (dy: Tensor, [backprop]: Tensor[]) => [backprop.mul(dy.expandDims(1))] };
    }
    // Pure-JS backend: logsumexp − picked logit; gradient softmax − onehot.
    const onehot = tf.oneHot(labels, l.shape[1]!);
    const value = tf.logSumExp(l, -1).sub(l.mul(onehot).sum(-1));
    save([tf.softmax(l).sub(onehot)]);
    return { value, gradFunc: (dy: Tensor, [g]: Tensor[]) => [g.mul(dy.expandDims(1))] };
  });
  return op(logits) as Tensor1D;
}
