import { describe, expect, it } from 'vitest';
import { minibatches, rowsOf } from '../src/ppo/minibatches.js';
import { Rng } from '../src/util/rng.js';

describe('minibatches', () => {
  it('splits each shuffled epoch into minibatches of micro-batches covering every row once per epoch', () => {
    const got = [...minibatches(6, { ppo_epochs: 2, mini_batch_size: 4, grad_accum_steps: 2 }, new Rng(1))];
    expect(got.map((m) => m.epoch)).toEqual([0, 0, 1, 1]);
    // 6 rows in minibatches of 4: the second of each epoch is the 2 left over, one micro-batch of 2
    expect(got.map((m) => m.micro.map((r) => r.length))).toEqual([[2, 2], [2], [2, 2], [2]]);
    const rng = new Rng(1);
    for (const epoch of [0, 1]) {
      const order = rng.permutation(6);
      expect(got.filter((m) => m.epoch === epoch).flatMap((m) => m.micro.flat())).toEqual(order);
    }
  });

  it('draws the next permutation only when the next epoch starts', () => {
    const rng = new Rng(2);
    const it = minibatches(4, { ppo_epochs: 3, mini_batch_size: 4, grad_accum_steps: 1 }, rng);
    it.next();
    const after = rng.state();
    const fresh = new Rng(2);
    fresh.permutation(4);
    expect(after).toEqual(fresh.state());
  });

  it('rowsOf gathers rows of a row-major array in the given order', () => {
    expect(Array.from(rowsOf(Float32Array.of(1, 2, 3, 4, 5, 6), [2, 0], 2))).toEqual([5, 6, 1, 2]);
  });
});
