import { tf } from '../backend/tf.js';
import { gradEntries, type Grads, type Tensor } from './adamw.js';

function fmtShape(s: readonly number[]): string {
  return `[${s.join(',')}]`;
}

/**
 * Gradient accumulation over micro-batches: `add()` each micro-batch's gradients,
 * then `mean()` = (Σ grads) · (1/n). Holds one running sum per parameter (one add op
 * per parameter per micro-batch). `add` copies nothing it does not need and never
 * disposes its argument: the caller disposes its micro-batch gradients as usual.
 * Every `add` must carry the same names and shapes as the first one.
 *
 * Tip: `sum()` plus `AdamW.apply(sum, lr, 1 / count)` folds the 1/n into the
 * optimiser and saves one op per parameter (the global norm of the mean is
 * norm(sum) / count).
 */
export class GradAccumulator {
  private sums: Map<string, Tensor> | null = null;
  private n = 0;
  private disposed = false;

  /** Number of micro-batches added since construction or the last `reset()`. */
  get count(): number {
    return this.n;
  }

  private alive(): void {
    if (this.disposed) throw new Error('GradAccumulator: used after dispose()');
  }

  add(grads: Grads): void {
    this.alive();
    const entries = gradEntries(grads);
    if (this.sums === null) {
      if (entries.length === 0) throw new RangeError('GradAccumulator.add: empty gradients');
      // clone() shares the data (no copy); it becomes our running sum.
      this.sums = new Map(entries.map(([name, g]) => [name, tf.clone(g)]));
      this.n = 1;
      return;
    }
    const sums = this.sums;
    if (entries.length !== sums.size) {
      throw new RangeError(`GradAccumulator.add: got ${entries.length} gradients, expected ${sums.size}`);
    }
    for (const [name, g] of entries) {
      const s = sums.get(name);
      if (s === undefined) throw new RangeError(`GradAccumulator.add: unexpected gradient "${name}"`);
      if (s.shape.length !== g.shape.length || s.shape.some((d, i) => d !== g.shape[i]) || s.dtype !== g.dtype) {
        throw new RangeError(
          `GradAccumulator.add: "${name}" is ${g.dtype}${fmtShape(g.shape)}, expected ${s.dtype}${fmtShape(s.shape)}`,
        );
      }
    }
    for (const [name, g] of entries) {
      const old = sums.get(name) as Tensor;
      sums.set(name, tf.add(old, g));
      old.dispose();
    }
    this.n += 1;
  }

  /** Σ of the added gradients, as new tensors the caller owns. */
  sum(): Record<string, Tensor> {
    this.alive();
    if (this.sums === null) throw new RangeError('GradAccumulator.sum: nothing added');
    const out: Record<string, Tensor> = {};
    for (const [name, s] of this.sums) out[name] = tf.clone(s);
    return out;
  }

  /** (Σ grads) · (1/n), as new tensors the caller owns. The sums are kept until `reset()`. */
  mean(): Record<string, Tensor> {
    this.alive();
    if (this.sums === null) throw new RangeError('GradAccumulator.mean: nothing added');
    if (this.n === 1) return this.sum();
    const out: Record<string, Tensor> = {};
    const inv = tf.scalar(1 / this.n, 'float32');
    for (const [name, s] of this.sums) out[name] = tf.mul(s, inv);
    inv.dispose();
    return out;
  }

  /** Drop the running sums and start over at count 0. */
  reset(): void {
    this.alive();
    if (this.sums !== null) for (const s of this.sums.values()) s.dispose();
    this.sums = null;
    this.n = 0;
  }

  dispose(): void {
    if (this.disposed) return;
    this.reset();
    this.disposed = true;
  }
}
