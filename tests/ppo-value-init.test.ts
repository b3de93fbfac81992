import { describe, it, expect } from 'vitest';
import { tf, type Variable } from '../src/backend/tf.js';
import { disposeParams, initParams } from '../src/model/gpt.js';
import { foldRewardNorm } from '../src/ppo/value-init.js';
import { padRows, scoreRows } from '../src/reward/score.js';
import { Rng } from '../src/util/rng.js';

const cfg = { vocab_size: 30, n_layer: 2, n_head: 2, d_model: 16, context_length: 16, dropout: 0 };

function scores(params: Map<string, Variable>, rows: number[][]): number[] {
  const t = tf.tidy(() => scoreRows(params, cfg, padRows(rows, 29, 'left')));
  const out = Array.from(t.dataSync());
  t.dispose();
  return out;
}

describe('value model initialised from the reward model', () => {
  it('folds gain and bias into the head: w·gain, b·gain + bias (hand-computed)', () => {
    const params = new Map<string, Variable>([
      ['score.weight', tf.variable(tf.tensor2d([[1], [-2]]))],
      ['score.bias', tf.variable(tf.tensor1d([0.5]))],
    ]);
    foldRewardNorm(params, { gain: 2, bias: -1 });
    expect(Array.from(params.get('score.weight')!.dataSync())).toEqual([2, -4]);
    expect(Array.from(params.get('score.bias')!.dataSync())).toEqual([0]); // 0.5·2 − 1
    disposeParams(params);
  });

  it('its output on any input equals the normalised reward the PPO rollout uses', () => {
    const rows = [[3, 4, 5, 6, 7], [8, 9], [10, 11, 12, 0]];
    const norm = { gain: 0.37, bias: 1.9 };
    const reward = initParams(cfg, 'score', new Rng(4));
    const value = initParams(cfg, 'score', new Rng(4));
    const before = tf.memory().numTensors;
    foldRewardNorm(value, norm);
    expect(tf.memory().numTensors).toBe(before);
    const expected = scores(reward, rows).map((r) => norm.gain * r + norm.bias);
    const folded = scores(value, rows);
    folded.forEach((v, i) => expect(v).toBeCloseTo(expected[i], 5));
    // the raw head is far off that scale, which is what folding fixes
    expect(Math.max(...scores(reward, rows).map((r, i) => Math.abs(r - expected[i])))).toBeGreaterThan(1);
    disposeParams(reward);
    disposeParams(value);
  });

  it('refuses a model without a score head', () => {
    const lm = initParams(cfg, 'lm', new Rng(1));
    expect(() => foldRewardNorm(lm, { gain: 1, bias: 0 })).toThrow(/no score head/);
    disposeParams(lm);
  });
});
