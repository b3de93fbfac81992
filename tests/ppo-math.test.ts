import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { tf, type Tensor } from '../src/backend/tf.js';
import { gae, klEstimate, tokenRewards, whiten } from '../src/ppo/math.js';
import { entropyFromLogits, policyLoss, valueLoss } from '../src/ppo/losses.js';
import {
  adaptiveKlController,
  fixedKlController,
  restoreKlController,
  type KlControllerState,
} from '../src/ppo/kl-controller.js';

// Every expected number below is worked out by hand in the comments; none comes
// from calling the code under test.

function expectClose(actual: ArrayLike<number>, expected: number[], digits: number): void {
  expect(actual.length).toBe(expected.length);
  expected.forEach((e, i) => expect(actual[i], `index ${i}`).toBeCloseTo(e, digits));
}

const num = (t: Tensor): number => t.dataSync()[0];

describe('gae', () => {
  it('4-token response, γ = 0.9, λ = 0.8 (γλ = 0.72), value after the last token 0', () => {
    // Scores [0, 0, 0.5, 1] minus small KL penalties [0.01, −0.02, 0.01, 0.01].
    const rewards = [-0.01, 0.02, 0.49, 0.99];
    const values = [0.1, 0.2, 0.3, 0.4];
    // δ3 = 0.99 + 0.9·0   − 0.4 = 0.59
    // δ2 = 0.49 + 0.9·0.4 − 0.3 = 0.55
    // δ1 = 0.02 + 0.9·0.3 − 0.2 = 0.09
    // δ0 = −0.01 + 0.9·0.2 − 0.1 = 0.07
    // A3 = 0.59
    // A2 = 0.55 + 0.72·0.59     = 0.55 + 0.4248     = 0.9748
    // A1 = 0.09 + 0.72·0.9748   = 0.09 + 0.701856   = 0.791856
    // A0 = 0.07 + 0.72·0.791856 = 0.07 + 0.57013632 = 0.64013632
    // returns = A + V
    const { advantages, returns } = gae(rewards, values, 0.9, 0.8);
    expectClose(advantages, [0.64013632, 0.791856, 0.9748, 0.59], 12);
    expectClose(returns, [0.74013632, 0.991856, 1.2748, 0.99], 12);
  });

  it('γ = λ = 1 reduces to reward-to-go minus value', () => {
    // reward-to-go of [1, 2, 3, 4] = [10, 9, 7, 4]
    const { advantages, returns } = gae(new Float32Array([1, 2, 3, 4]), [0.5, 1, 1.5, 2], 1, 1);
    expectClose(advantages, [9.5, 8, 5.5, 2], 12);
    expectClose(returns, [10, 9, 7, 4], 12);
  });

  it('λ = 0 is the one-step TD error; empty response; length mismatch', () => {
    // δ1 = 1 − 0.5 = 0.5 ; δ0 = 0 + 0.5·0.5 − 0.25 = 0
    expectClose(gae([0, 1], [0.25, 0.5], 0.5, 0).advantages, [0, 0.5], 12);
    expect(gae([], [], 0.9, 0.9).advantages.length).toBe(0);
    expect(() => gae([1, 2], [1], 1, 1)).toThrow(/values/);
  });
});

describe('whiten', () => {
  const x = [1, 2, 3, 4, 100];
  const mask = [1, 1, 1, 1, 0];
  // masked mean = 10/4 = 2.5 ; deviations −1.5, −0.5, 0.5, 1.5 ; Σd² = 5
  // unbiased variance = 5/3 ; √(5/3) = 1.2909944487…
  // 1.5/1.2909944487 = 1.1618950039 ; 0.5/1.2909944487 = 0.3872983346
  const z = [-1.1618950039, -0.3872983346, 0.3872983346, 1.1618950039, 0];

  it('mean 0 and unbiased variance 1 over masked entries, masked entries 0', () => {
    const w = whiten(x, mask);
    expectClose(w, z, 7);
    const m = (w[0] + w[1] + w[2] + w[3]) / 4;
    expect(m).toBeCloseTo(0, 12);
    expect((w[0] ** 2 + w[1] ** 2 + w[2] ** 2 + w[3] ** 2) / 3).toBeCloseTo(1, 7);
    expect(w[4]).toBe(0);
  });

  it('shiftMean = false adds the mean back', () => {
    // z + 2.5
    expectClose(whiten(x, mask, false), [1.3381049961, 2.1127016654, 2.8872983346, 3.6618950039, 0], 7);
  });

  it('degenerate masks: none → all 0; one entry → 0 (or the mean)', () => {
    expectClose(whiten([1, 2], [0, 0]), [0, 0], 12);
    expectClose(whiten([7, 2], [1, 0]), [0, 0], 12);
    expectClose(whiten([7, 2], [1, 0], false), [7, 0], 12);
    expect(() => whiten([1, 2], [1])).toThrow(/mask/);
  });
});

describe('KL estimators', () => {
  it('k1 and k3 on hand-computed values', () => {
    // logp −1, ref −1.5: k1 = 0.5 ; u = ref − logp = −0.5, r = e^−0.5 = 0.6065306597
    // k3 = (0.6065306597 − 1) + 0.5 = 0.1065306597
    expect(klEstimate(-1, -1.5, 'k1')).toBeCloseTo(0.5, 14);
    expect(klEstimate(-1, -1.5, 'k3')).toBeCloseTo(0.1065306597, 10);
    // logp −2, ref −1: k1 = −1 ; u = 1, r = e: k3 = (2.7182818285 − 1) − 1 = 0.7182818285 ≥ 0
    expect(klEstimate(-2, -1, 'k1')).toBeCloseTo(-1, 14);
    expect(klEstimate(-2, -1, 'k3')).toBeCloseTo(0.7182818285, 10);
  });

  it('both 0 when equal; k3 ≥ 0 and ≈ k1²/2 for small differences', () => {
    expect(klEstimate(-0.7, -0.7, 'k1')).toBe(0);
    expect(klEstimate(-0.7, -0.7, 'k3')).toBe(0);
    for (const d of [1e-3, -1e-3, 1e-6]) {
      const k1 = klEstimate(-1 + d, -1, 'k1');
      const k3 = klEstimate(-1 + d, -1, 'k3');
      expect(k3).toBeGreaterThanOrEqual(0);
      // k3 = e^−d − 1 + d = d²/2 − d³/6 + … : relative gap ≈ |d|/3
      expect(Math.abs(k3 / (k1 * k1 / 2) - 1)).toBeLessThan(Math.abs(d));
    }
  });
});

describe('tokenRewards', () => {
  const logp = [-1, -2, -0.5];
  const ref = [-1.5, -1, -0.7];

  it('−β·kl at every token, the score on the last token (k1)', () => {
    // kl = [0.5, −1, 0.2] ; β = 0.1 → −β·kl = [−0.05, 0.1, −0.02] ; + 2 on the last
    const { rewards, kl } = tokenRewards(logp, ref, 2, 0.1, 'k1');
    expectClose(kl, [0.5, -1, 0.2], 12);
    expectClose(rewards, [-0.05, 0.1, 1.98], 12);
  });

  it('k3 penalties', () => {
    // kl = [e^−0.5 − 0.5, e − 2, e^−0.2 − 0.8] = [0.1065306597, 0.7182818285, 0.0187307531]
    const { rewards, kl } = tokenRewards(logp, ref, 2, 0.1, 'k3');
    expectClose(kl, [0.1065306597, 0.7182818285, 0.0187307531], 10);
    expectClose(rewards, [-0.01065306597, -0.07182818285, 2 - 0.00187307531], 10);
  });

  it('single-token response gets the score; empty response is an error', () => {
    expectClose(tokenRewards([-1], [-1], 3, 0.5, 'k1').rewards, [3], 14);
    expect(() => tokenRewards([], [], 1, 0.1, 'k1')).toThrow(/empty/);
  });
});

describe('losses (tfjs)', () => {
  let baseline = 0;
  beforeEach(() => {
    baseline = tf.memory().numTensors;
  });
  afterEach(() => {
    expect(tf.memory().numTensors).toBe(baseline);
  });

  // ratios 0.5 (below 1−ε), 1.1 (inside), 1.5 (above 1+ε), 0.7 (below); ε = 0.2.
  // The 5th token is padding holding garbage (−∞ log-prob, NaN advantage).
  const ratios = [0.5, 1.1, 1.5, 0.7];
  const mkInputs = () => ({
    oldLogp: tf.tensor1d([-1, -1, -1, -1, -1]),
    logp: tf.tensor1d([...ratios.map((r) => -1 + Math.log(r)), -Infinity]),
    adv: tf.tensor1d([1, -2, 2, -1, NaN]),
    mask: tf.tensor1d([1, 1, 1, 1, 0]),
  });

  it('policyLoss: clipped surrogate, clipfrac, approxkl, ratio', () => {
    const { oldLogp, logp, adv, mask } = mkInputs();
    const out = policyLoss(logp, oldLogp, adv, mask, 0.2);
    // t0: A=1,  r=0.5: −A·r = −0.5, −A·clip = −0.8 → max −0.5 (unclipped)
    // t1: A=−2, r=1.1: 2.2, 2.2                    → 2.2  (equal: not clipped)
    // t2: A=2,  r=1.5: −3,  −2.4                   → −2.4 (clipped)
    // t3: A=−1, r=0.7: 0.7, 0.8                    → 0.8  (clipped)
    // loss = (−0.5 + 2.2 − 2.4 + 0.8)/4 = 0.1/4 = 0.025 ; clipfrac = 2/4
    expect(num(out.loss)).toBeCloseTo(0.025, 6);
    expect(num(out.clipfrac)).toBeCloseTo(0.5, 7);
    // ½·ln²: ln 0.5 = −0.6931471806 → 0.2402265070 ; ln 1.1 = 0.0953101798 → 0.0045420152
    //        ln 1.5 = 0.4054651081 → 0.0822009769 ; ln 0.7 = −0.3566749439 → 0.0636085078
    // sum 0.3905780069 / 4 = 0.0976445017
    expect(num(out.approxKl)).toBeCloseTo(0.0976445017, 6);
    // (0.5 + 1.1 + 1.5 + 0.7)/4 = 0.95
    expect(num(out.ratio)).toBeCloseTo(0.95, 6);
    tf.dispose([out.loss, out.clipfrac, out.approxKl, out.ratio, oldLogp, logp, adv, mask]);
  });

  it('policyLoss gradient flows only through unclipped, unmasked tokens', () => {
    const { oldLogp, logp, adv, mask } = mkInputs();
    const g = tf.grad((lp: Tensor) => policyLoss(lp, oldLogp, adv, mask, 0.2).loss)(logp);
    // d/dlogp (−A·r)/4 = −A·r/4: t0 −1·0.5/4 = −0.125 ; t1 2·1.1/4 = 0.55 ; clipped t2, t3 and padding: 0
    expectClose(g.dataSync(), [-0.125, 0.55, 0, 0, 0], 6);
    tf.dispose([g, oldLogp, logp, adv, mask]);
  });

  it('policy equal to the old one: ratio 1, clipfrac 0, approxkl 0, loss −mean A', () => {
    const lp = tf.tensor1d([-0.3, -2.5, -1.2, -0.9]);
    const adv = tf.tensor1d([1, -2, 0.5, 3]);
    const mask = tf.tensor1d([1, 1, 1, 0]);
    const out = policyLoss(lp, lp, adv, mask, 0.2);
    expect(num(out.ratio)).toBe(1);
    expect(num(out.clipfrac)).toBe(0);
    expect(num(out.approxKl)).toBe(0);
    // −(1 − 2 + 0.5)/3 = 0.5/3
    expect(num(out.loss)).toBeCloseTo(0.5 / 3, 6);
    tf.dispose([out.loss, out.clipfrac, out.approxKl, out.ratio, lp, adv, mask]);
  });

  it('an all-zero mask gives 0, not NaN', () => {
    const z = tf.tensor1d([0, 0]);
    const out = policyLoss(z, z, z, z, 0.2);
    expect(num(out.loss)).toBe(0);
    expect(num(out.clipfrac)).toBe(0);
    tf.dispose([out.loss, out.clipfrac, out.approxKl, out.ratio, z]);
  });

  it('valueLoss: clipped and unclipped tokens', () => {
    const values = tf.tensor1d([0.6, 1.0, 1.0, -0.5, 100]);
    const oldValues = tf.tensor1d([0.5, 0.5, 0.5, 0, 0]);
    const returns = tf.tensor1d([1.0, 0.0, 2.0, -1.0, -100]);
    const mask = tf.tensor1d([1, 1, 1, 1, 0]);
    const out = valueLoss(values, oldValues, returns, mask, 0.2);
    // t0: v−old = 0.1 (inside) → vC = 0.6 ; (0.6−1)² = 0.16 both      → 0.16 (not clipped)
    // t1: v−old = 0.5 → 0.2, vC = 0.7 ; (1−0)² = 1, (0.7−0)² = 0.49   → 1    (not clipped)
    // t2: vC = 0.7 ; (1−2)² = 1, (0.7−2)² = 1.69                       → 1.69 (clipped)
    // t3: v−old = −0.5 → −0.2, vC = −0.2 ; (−0.5+1)² = 0.25, (−0.2+1)² = 0.64 → 0.64 (clipped)
    // loss = ½·(0.16 + 1 + 1.69 + 0.64)/4 = ½·3.49/4 = 0.43625 ; clipfrac = 2/4
    expect(num(out.loss)).toBeCloseTo(0.43625, 6);
    expect(num(out.clipfrac)).toBeCloseTo(0.5, 7);
    tf.dispose([out.loss, out.clipfrac, values, oldValues, returns, mask]);
  });

  it('valueLoss with values = oldValues is ½·MSE and never clips', () => {
    const v = tf.tensor1d([1, 2, 3]);
    const ret = tf.tensor1d([0, 2, 5]);
    const mask = tf.tensor1d([1, 1, 1]);
    const out = valueLoss(v, v, ret, mask, 0.2);
    // ½·(1 + 0 + 4)/3 = 5/6
    expect(num(out.loss)).toBeCloseTo(5 / 6, 6);
    expect(num(out.clipfrac)).toBe(0);
    tf.dispose([out.loss, out.clipfrac, v, ret, mask]);
  });

  it('valueLoss counts no clipping inside the range even where old + (values − old) rounds above values', () => {
    // float32: −0.0094336066 + (0.062428329 − −0.0094336066) = 0.062428333 > 0.062428329
    const v = tf.tensor1d([0.06242832913994789]);
    const old = tf.tensor1d([-0.009433606639504433]);
    const zero = tf.tensor1d([0]);
    const mask = tf.tensor1d([1]);
    const out = valueLoss(v, old, zero, mask, 0.2);
    expect(num(out.clipfrac)).toBe(0);
    tf.dispose([out.loss, out.clipfrac, v, old, zero, mask]);
  });

  it('entropyFromLogits: uniform = log V; [ln 1, ln 3] → p = [¼, ¾]', () => {
    const logits = tf.tensor2d([
      [3.7, 3.7, 3.7, 3.7, 3.7],
      [0, Math.log(3), -1e4, -1e4, -1e4],
    ]);
    const h = entropyFromLogits(logits);
    expect(h.shape).toEqual([2]);
    // ln 5 = 1.6094379124 ; −(¼ ln ¼ + ¾ ln ¾) = 0.3465735903 + 0.2157615544 = 0.5623351446
    expectClose(h.dataSync(), [1.6094379124, 0.5623351446], 5);
    tf.dispose([logits, h]);
  });
});

describe('KL controller', () => {
  // β0 = 0.1, target 6, horizon 10 000, 256 episodes per update: factor 256/10000 = 0.0256
  it('adaptive: KL above, below and far above target (e clipped to ±0.2)', () => {
    const above = adaptiveKlController(0.1, 6, 10_000);
    above.update(7, 256); // e = 7/6 − 1 = 1/6 → β = 0.1·(1 + 0.0256/6) = 0.1004266667
    expect(above.value).toBeCloseTo(0.10042666666667, 13);
    const below = adaptiveKlController(0.1, 6, 10_000);
    below.update(5, 256); // e = −1/6 → β = 0.1·(1 − 0.0256/6) = 0.0995733333
    expect(below.value).toBeCloseTo(0.09957333333333, 13);
    const far = adaptiveKlController(0.1, 6, 10_000);
    far.update(60, 256); // e = 9 → 0.2 → β = 0.1·(1 + 0.2·0.0256) = 0.100512
    expect(far.value).toBeCloseTo(0.100512, 14);
    const farBelow = adaptiveKlController(0.1, 6, 10_000);
    farBelow.update(0, 256); // e = −1 → −0.2 → β = 0.1·(1 − 0.00512) = 0.099488
    expect(farBelow.value).toBeCloseTo(0.099488, 14);
    far.update(60, 256); // updates compound: 0.100512·1.00512 = 0.10102662144
    expect(far.value).toBeCloseTo(0.10102662144, 14);
  });

  it('fixed never moves', () => {
    const c = fixedKlController(0.05);
    c.update(100, 1000);
    expect(c.value).toBe(0.05);
    expect(c.state()).toEqual({ kind: 'fixed', value: 0.05 });
  });

  it('state round trip through JSON continues bit-exactly', () => {
    const a = adaptiveKlController(0.2, 3, 5000);
    a.update(4.1, 64);
    a.update(1.3, 64);
    const state = JSON.parse(JSON.stringify(a.state())) as KlControllerState;
    expect(state.kind).toBe('adaptive');
    const b = restoreKlController(state, 3, 5000);
    expect(b.value).toBe(a.value);
    a.update(3.5, 64);
    b.update(3.5, 64);
    expect(b.value).toBe(a.value);
    expect(restoreKlController({ kind: 'fixed', value: 0.3 }).value).toBe(0.3);
    expect(() => restoreKlController(state)).toThrow(/target and horizon/);
    expect(() => adaptiveKlController(0.1, 0, 100)).toThrow(/target/);
  });
});
