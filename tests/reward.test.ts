import { describe, it, expect, afterAll } from 'vitest';
import { tf } from '../src/backend/tf.js';
import { initParams, disposeParams, forward, scalarHead } from '../src/model/gpt.js';
import { pairwiseLoss } from '../src/reward/loss.js';
import { normalisationFor, padRows, scoreRows } from '../src/reward/score.js';
import { Rng } from '../src/util/rng.js';

const cfg = { vocab_size: 30, n_layer: 2, n_head: 2, d_model: 16, context_length: 16, dropout: 0 };
const params = initParams(cfg, 'score', new Rng(4));
afterAll(() => disposeParams(params));

function scoresOf(rows: number[][], side: 'left' | 'right'): number[] {
  const t = tf.tidy(() => scoreRows(params, cfg, padRows(rows, 29, side)));
  const out = Array.from(t.dataSync());
  t.dispose();
  return out;
}

describe('reward model', () => {
  it('pairwise loss equals the hand-computed Bradley–Terry value', () => {
    // scores r = [2, 0.5, -1]; pairs (0>1), (0>2), (1>2): margins 1.5, 3, 1.5
    const expected = (Math.log1p(Math.exp(-1.5)) * 2 + Math.log1p(Math.exp(-3))) / 3;
    const loss = tf.tidy(() => pairwiseLoss(tf.tensor1d([2, 0.5, -1]), Int32Array.from([0, 0, 1]), Int32Array.from([1, 2, 2])).dataSync()[0]);
    expect(loss).toBeCloseTo(expected, 6);
    expect(expected).toBeCloseTo(0.1505, 4); // (2·0.20141 + 0.04859) / 3
    // with centering 0.1: + 0.1 · mean((2.5)², (1)², (−0.5)²) = 0.1 · 7.5/3
    const centred = tf.tidy(() => pairwiseLoss(tf.tensor1d([2, 0.5, -1]), Int32Array.from([0, 0, 1]), Int32Array.from([1, 2, 2]), 0.1).dataSync()[0]);
    expect(centred).toBeCloseTo(expected + 0.25, 6);
  });

  it('reads the reward at the last real token for left- and right-padded batches', () => {
    const rows = [
      [3, 4, 5, 6, 7],
      [8, 9],
      [10, 11, 12],
    ];
    const alone = rows.map((r) => scoresOf([r], 'right')[0]);
    // reference: the scalar head on the unpadded row's final hidden state
    const direct = tf.tidy(() => {
      const h = forward(params, cfg, tf.tensor2d([rows[1]], undefined, 'int32')).hidden;
      return scalarHead(params, h).dataSync()[1];
    });
    expect(alone[1]).toBeCloseTo(direct, 5);
    const right = scoresOf(rows, 'right');
    const left = scoresOf(rows, 'left');
    for (let i = 0; i < rows.length; i++) {
      expect(Math.abs(right[i] - alone[i])).toBeLessThan(1e-4);
      expect(Math.abs(left[i] - alone[i])).toBeLessThan(1e-4);
    }
    // and not at a padding position: scores of different rows differ
    expect(new Set(right.map((x) => x.toFixed(5))).size).toBe(3);
  });

  it('normalisation maps scores to mean 0, std 1', () => {
    const scores = [1, 2, 3, 4];
    const { gain, bias } = normalisationFor(scores);
    const normed = scores.map((s) => gain * s + bias);
    const mean = normed.reduce((a, b) => a + b) / 4;
    const std = Math.sqrt(normed.reduce((a, b) => a + (b - mean) ** 2, 0) / 4);
    expect(mean).toBeCloseTo(0, 10);
    expect(std).toBeCloseTo(1, 10);
    expect(gain).toBeCloseTo(1 / Math.sqrt(1.25), 10);
  });
});
