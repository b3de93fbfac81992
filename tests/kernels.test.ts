import { describe, it, expect, vi } from 'vitest';
import { processNumerics, tf, type Tensor } from '../src/backend/tf.js';
import { onednnRequested } from '../src/backend/numerics.js';
import { embed, gelu, layerNorm, sparseCrossEntropy } from '../src/model/kernels.js';

/** The plain compositions of tf ops that the fast paths replace. */
const plain = {
  layerNorm: (x: Tensor, g: Tensor, b: Tensor) => {
    const { mean, variance } = tf.moments(x, -1, true);
    return x.sub(mean).mul(tf.rsqrt(variance.add(1e-5))).mul(g).add(b);
  },
  gelu: (x: Tensor) => x.mul(tf.tanh(x.add(x.pow(3).mul(0.044715)).mul(Math.sqrt(2 / Math.PI))).add(1)).mul(0.5),
  crossEntropy: (logits: Tensor, labels: Tensor) => tf.logSoftmax(logits).mul(tf.oneHot(labels as never, logits.shape[1]!)).sum(-1).neg(),
};

function maxDiff(a: Tensor, b: Tensor): number {
  return tf.tidy(() => a.sub(b).abs().max().dataSync()[0]);
}

/** Value and gradients (w.r.t. every input) of sum(f(inputs) · w) for a random weighting w. */
function valueAndGrads(f: (...xs: Tensor[]) => Tensor, inputs: Tensor[], w: Tensor): { value: Tensor; grads: Tensor[] } {
  const value = f(...inputs);
  const grads = tf.grads((...xs: Tensor[]) => f(...xs).mul(w).sum())(inputs);
  return { value, grads };
}

describe('fast paths equal the plain compositions (values and gradients)', () => {
  it('runs on the native backend (the fused cross-entropy kernel is native-only)', () => {
    expect(tf.getBackend()).toBe('tensorflow');
  });

  it('embedding lookup (repeated rows sum their gradients) equals tf.gather, without reading the ids back', () => {
    tf.tidy(() => {
      const table = tf.randomNormal([7, 5], 0, 1, 'float32', 5);
      const ids = tf.tensor1d([3, 0, 3, 6, 3], 'int32');
      const w = tf.randomNormal([5, 5], 0, 1, 'float32', 6);
      const reads = vi.spyOn(tf.backend(), 'readSync');
      const fast = valueAndGrads((t) => embed(t, ids as never), [table], w);
      expect(reads).not.toHaveBeenCalled();
      reads.mockRestore();
      const ref = valueAndGrads((t) => tf.gather(t, ids), [table], w);
      expect(maxDiff(fast.value, ref.value)).toBe(0);
      expect(maxDiff(fast.grads[0], ref.grads[0])).toBe(0);
    });
  });

  it('LayerNorm', () => {
    tf.tidy(() => {
      const x = tf.randomNormal([37, 48], 0.3, 2, 'float32', 1);
      const g = tf.randomNormal([48], 1, 0.2, 'float32', 2);
      const b = tf.randomNormal([48], 0, 0.2, 'float32', 3);
      const w = tf.randomNormal([37, 48], 0, 1, 'float32', 4);
      const fast = valueAndGrads(layerNorm, [x, g, b], w);
      const ref = valueAndGrads(plain.layerNorm, [x, g, b], w);
      expect(maxDiff(fast.value, ref.value)).toBeLessThan(1e-4);
      fast.grads.forEach((gr, i) => expect(maxDiff(gr, ref.grads[i]), `grad ${i}`).toBeLessThan(1e-4));
    });
  });

  it('LayerNorm runs as one native kernel where TensorFlow can run it, and says so; stays close where the mean dwarfs the spread', () => {
    const backend = tf.backend() as unknown as { executeMultipleOutputs: (name: string) => unknown };
    const spy = vi.spyOn(backend, 'executeMultipleOutputs');
    tf.tidy(() => {
      // |mean| / std = 100: a one-pass variance would lose digits here
      const x = tf.randomNormal([64, 128], 10, 0.1, 'float32', 9);
      const g = tf.randomNormal([128], 1, 0.2, 'float32', 10);
      const b = tf.randomNormal([128], 0, 0.2, 'float32', 11);
      expect(maxDiff(layerNorm(x as never, g, b), plain.layerNorm(x, g, b))).toBeLessThan(1e-4);
    });
    const ranNative = spy.mock.calls.some((c) => c[0] === '_MklLayerNorm');
    spy.mockRestore();
    const numerics = processNumerics();
    // the recorded path is the one that ran
    expect(numerics.fast_paths.layer_norm).toBe(ranNative ? 'native' : 'composite');
    // x86-64 TensorFlow has the kernel: it runs whenever oneDNN's custom ops are off, and oneDNN on is detected, not guessed
    if (process.arch === 'x64') {
      const requested = onednnRequested();
      if (requested !== undefined) expect(numerics.onednn).toBe(requested);
      expect(numerics.onednn).not.toBeNull();
      expect(ranNative).toBe(numerics.onednn === false);
    }
  });

  it('GELU (tanh approximation)', () => {
    tf.tidy(() => {
      const x = tf.randomNormal([64, 96], 0, 3, 'float32', 5);
      const w = tf.randomNormal([64, 96], 0, 1, 'float32', 6);
      const fast = valueAndGrads(gelu, [x], w);
      const ref = valueAndGrads(plain.gelu, [x], w);
      expect(maxDiff(fast.value, ref.value)).toBeLessThan(1e-4);
      expect(maxDiff(fast.grads[0], ref.grads[0])).toBeLessThan(1e-4);
      // GELU(1) = 0.841192 (tanh form)
      expect(gelu(tf.scalar(1)).dataSync()[0]).toBeCloseTo(0.841192, 5);
    });
  });

  it('sparse softmax cross-entropy', () => {
    tf.tidy(() => {
      const logits = tf.randomNormal([50, 65], 0, 3, 'float32', 7);
      const labels = tf.tensor1d(Array.from({ length: 50 }, (_, i) => (i * 13) % 65), 'int32');
      const w = tf.randomNormal([50], 0, 1, 'float32', 8);
      const fast = valueAndGrads((l) => sparseCrossEntropy(l as never, labels as never), [logits], w);
      const ref = valueAndGrads((l) => plain.crossEntropy(l, labels), [logits], w);
      expect(maxDiff(fast.value, ref.value)).toBeLessThan(1e-4);
      expect(maxDiff(fast.grads[0], ref.grads[0])).toBeLessThan(1e-4);
      // uniform logits: loss = ln V
      expect(sparseCrossEntropy(tf.zeros([2, 65]) as never, tf.tensor1d([0, 64], 'int32') as never).dataSync()[0]).toBeCloseTo(Math.log(65), 5);
    });
  });

  it('leaves no tensors behind', () => {
    const before = tf.memory().numTensors;
    tf.tidy(() => {
      const x = tf.randomNormal([8, 16]);
      tf.grads((a: Tensor) => sparseCrossEntropy(gelu(layerNorm(a as never, tf.ones([16]), tf.zeros([16]))) as never, tf.zeros([8], 'int32') as never).sum())([x]);
    });
    expect(tf.memory().numTensors).toBe(before);
  });
});
