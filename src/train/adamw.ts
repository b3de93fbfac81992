import { tf } from '../backend/tf.js';

/**
 * AdamW (Loshchilov & Hutter, "Decoupled Weight Decay Regularization"), with the
 * exact update order of PyTorch's `torch.optim.AdamW`.
 */

export type Tensor = InstanceType<typeof tf.Tensor>;
export type Variable = InstanceType<typeof tf.Variable>;
export type Scalar = ReturnType<typeof tf.scalar>;
/** Named gradients, keyed like the parameters they belong to. */
export type Grads = Record<string, Tensor> | Map<string, Tensor>;

/** The (name, tensor) pairs of a gradient record or map, in its iteration order. */
export function gradEntries(grads: Grads): Array<[string, Tensor]> {
  return grads instanceof Map ? [...grads.entries()] : Object.entries(grads);
}

function gradLookup(grads: Grads): (name: string) => Tensor | undefined {
  if (grads instanceof Map) return (name) => grads.get(name);
  return (name) => (Object.prototype.hasOwnProperty.call(grads, name) ? grads[name] : undefined);
}

const EMBEDDINGS = new Set(['wte', 'wpe']);

/**
 * Default weight-decay predicate (the nanoGPT / minGPT split), for Hugging Face
 * GPT-2 parameter names, with or without a prefix such as `transformer.`:
 * true for matmul weights (`….weight` of attention, MLP and heads such as
 * `score.weight`); false for biases (`….bias`), LayerNorm parameters (any path
 * segment starting with `ln_`: `ln_1`, `ln_2`, `ln_f`) and the embeddings
 * (`wte`, `wpe`). If `shape` is given, a parameter of rank < 2 is never decayed.
 */
export function decayParam(name: string, shape?: readonly number[]): boolean {
  if (shape !== undefined && shape.length < 2) return false;
  const parts = name.split('.');
  if (parts[parts.length - 1] !== 'weight') return false;
  for (const p of parts) {
    if (p.startsWith('ln_') || EMBEDDINGS.has(p)) return false;
  }
  return true;
}

export interface AdamWOptions {
  /** Default 0.9. */
  beta1: number;
  /** Default 0.999. */
  beta2: number;
  /** Added to √v̂ (outside the square root, as in PyTorch). Default 1e-8. */
  eps: number;
  /** Decoupled weight decay λ: p ← p·(1 − lr·λ) before the Adam step. Default 0.01. */
  weight_decay: number;
  /**
   * Which parameters get weight decay (called once per parameter, in the
   * constructor, with its name and shape). Default `decayParam`.
   */
  decay: (name: string, shape: readonly number[]) => boolean;
}

export const ADAMW_DEFAULTS: Readonly<AdamWOptions> = Object.freeze({
  beta1: 0.9,
  beta2: 0.999,
  eps: 1e-8,
  weight_decay: 0.01,
  decay: decayParam,
});

/** Serialisable optimiser state: `m/<param>` (exp_avg) and `v/<param>` (exp_avg_sq). */
export interface AdamWState {
  /** Number of updates applied so far (PyTorch's `state['step']`). */
  step: number;
  tensors: Map<string, Tensor>;
}

/**
 * Parameters that share dtype, decay flag, rank and trailing dimensions are updated
 * as one concatenated tensor (concat along axis 0 → update → split), so a GPT's
 * dozens of biases / LayerNorm vectors cost one set of element-wise ops instead of
 * one set each. Only small parameters are grouped: for large ones the concat/split
 * copies cost more than the ops they save.
 */
interface Group {
  names: string[];
  vars: Variable[];
  /** Axis-0 lengths of the members (the split sizes). */
  sizes: number[];
  decay: boolean;
  /** exp_avg and exp_avg_sq, shaped like the concatenation of the members. */
  m: Variable;
  v: Variable;
}

/** Parameters with at most this many elements are candidates for grouping. */
const GROUP_MAX_ELEMENTS = 1 << 16;

function shapeEq(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

function fmtShape(s: readonly number[]): string {
  return `[${s.join(',')}]`;
}

/** A non-trainable (so never picked up by `tf.variableGrads()`) zero-filled variable. */
function zerosVariable(shape: readonly number[]): Variable {
  const init = tf.zeros([...shape], 'float32');
  const v = tf.variable(init, false);
  init.dispose(); // the variable holds its own reference to the data
  return v;
}

function checkHyper(o: AdamWOptions): void {
  const bad = (msg: string): never => {
    throw new RangeError(`AdamW: ${msg}`);
  };
  if (!(o.beta1 >= 0 && o.beta1 < 1)) bad(`beta1 must be in [0, 1) (got ${o.beta1})`);
  if (!(o.beta2 >= 0 && o.beta2 < 1)) bad(`beta2 must be in [0, 1) (got ${o.beta2})`);
  if (!(Number.isFinite(o.eps) && o.eps >= 0)) bad(`eps must be a finite number >= 0 (got ${o.eps})`);
  if (!(Number.isFinite(o.weight_decay) && o.weight_decay >= 0)) {
    bad(`weight_decay must be a finite number >= 0 (got ${o.weight_decay})`);
  }
  if (typeof o.decay !== 'function') bad('decay must be a function (name, shape) => boolean');
}

/**
 * AdamW over a fixed set of named float32 `tf.Variable`s, updated in place.
 *
 * For each parameter p with gradient g (times `gradScale`), at step t = 1, 2, …:
 *
 *     p ← p·(1 − lr·λ)                       (only where decay(name); λ = weight_decay)
 *     m ← m + (1 − β1)·(g − m)
 *     v ← β2·v + (1 − β2)·g²
 *     p ← p − (lr / (1 − β1^t)) · m / (√v / √(1 − β2^t) + ε)
 *
 * (the last line is evaluated as p − s·m / (√v + ε·c) with c = √(1 − β2^t) and
 * s = lr·c / (1 − β1^t), identical up to float rounding and one op cheaper).
 * Moments live in non-trainable tf.Variables created in the constructor; the step
 * counter is a JS number. All per-step scalars are computed in JS (float64): `stepScalars`.
 */
export class AdamW {
  readonly options: Readonly<AdamWOptions>;
  private readonly params: Map<string, Variable>;
  private readonly groups: Group[] = [];
  private t = 0;
  private disposed = false;
  // Constant scalars, created once (a JS number operand costs a tensor upload per op).
  private readonly oneMinusBeta1: Tensor;
  private readonly beta2: Tensor;
  private readonly oneMinusBeta2: Tensor;

  constructor(params: Map<string, Variable>, options: Partial<AdamWOptions> = {}) {
    const o: AdamWOptions = { ...ADAMW_DEFAULTS };
    for (const [k, val] of Object.entries(options)) {
      if (val !== undefined) (o as unknown as Record<string, unknown>)[k] = val;
    }
    checkHyper(o);
    this.options = Object.freeze(o);
    this.params = new Map(params);
    if (this.params.size === 0) throw new RangeError('AdamW: no parameters to optimise');

    const byKey = new Map<string, Array<{ name: string; v: Variable; decay: boolean }>>();
    const seen = new Map<Variable, string>();
    let solo = 0;
    for (const [name, v] of this.params) {
      if (!(v instanceof tf.Variable)) throw new TypeError(`AdamW: parameter "${name}" is not a tf.Variable`);
      const dup = seen.get(v);
      if (dup !== undefined) {
        throw new RangeError(`AdamW: "${name}" and "${dup}" are the same variable (list a tied weight once)`);
      }
      seen.set(v, name);
      if (v.dtype !== 'float32') {
        throw new TypeError(`AdamW: parameter "${name}" has dtype ${v.dtype}; only float32 is supported`);
      }
      const decay = Boolean(o.decay(name, v.shape));
      const groupable = v.rank >= 1 && v.size <= GROUP_MAX_ELEMENTS;
      const key = groupable ? `${decay ? 'd' : 'n'}|${v.rank}|${v.shape.slice(1).join('x')}` : `solo${solo++}`;
      let list = byKey.get(key);
      if (list === undefined) byKey.set(key, (list = []));
      list.push({ name, v, decay });
    }
    for (const members of byKey.values()) {
      const sizes = members.map((e) => e.v.shape[0] ?? 1);
      const first = members[0].v;
      const shape =
        members.length === 1 ? first.shape : [sizes.reduce((a, b) => a + b, 0), ...first.shape.slice(1)];
      this.groups.push({
        names: members.map((e) => e.name),
        vars: members.map((e) => e.v),
        sizes,
        decay: members[0].decay,
        m: zerosVariable(shape),
        v: zerosVariable(shape),
      });
    }
    this.oneMinusBeta1 = tf.scalar(1 - o.beta1, 'float32');
    this.beta2 = tf.scalar(o.beta2, 'float32');
    this.oneMinusBeta2 = tf.scalar(1 - o.beta2, 'float32');
  }

  /** Number of updates applied so far. */
  get step(): number {
    return this.t;
  }

  /** Names of the optimised parameters, in the order given to the constructor. */
  get paramNames(): string[] {
    return [...this.params.keys()];
  }

  /** Whether weight decay applies to `name` (as decided in the constructor). */
  decays(name: string): boolean {
    for (const g of this.groups) if (g.names.includes(name)) return g.decay;
    throw new RangeError(`AdamW: unknown parameter "${name}"`);
  }

  private alive(): void {
    if (this.disposed) throw new Error('AdamW: used after dispose()');
  }

  /**
   * One AdamW step with learning rate `lr`. `grads` must hold exactly one gradient
   * per parameter, same name and shape (missing or unknown names throw before
   * anything changes). `gradScale` multiplies every gradient first (e.g. a clipping
   * or 1/n accumulation factor, cheaper here than on each gradient separately).
   * The gradients are not disposed: they still belong to the caller.
   */
  apply(grads: Grads, lr: number, gradScale = 1): void {
    this.alive();
    if (!(Number.isFinite(lr) && lr >= 0)) throw new RangeError(`AdamW.apply: lr must be a finite number >= 0 (got ${lr})`);
    if (!(Number.isFinite(gradScale) && gradScale >= 0)) {
      throw new RangeError(`AdamW.apply: gradScale must be a finite number >= 0 (got ${gradScale})`);
    }
    const groupGrads = this.groupGrads(grads);
    const { stepSize, epsHat, keep } = this.stepScalars(lr);
    tf.tidy(() =>
      this.update(groupGrads, {
        stepSize: tf.scalar(stepSize, 'float32'),
        epsHat: tf.scalar(epsHat, 'float32'),
        keep: keep !== 1 ? tf.scalar(keep, 'float32') : null,
        gradScale: gradScale !== 1 ? tf.scalar(gradScale, 'float32') : null,
      }),
    );
    this.t += 1;
  }

  /**
   * The per-step scalars of the next update (step t + 1) at learning rate `lr`,
   * computed on the host in float64: the Adam step size s = lr·c / (1 − β1^t) with
   * c = √(1 − β2^t), ε̂ = ε·c, and the decay factor keep = 1 − lr·λ.
   */
  stepScalars(lr: number): { stepSize: number; epsHat: number; keep: number } {
    const o = this.options;
    const t = this.t + 1;
    const bc1 = 1 - Math.pow(o.beta1, t);
    const c2 = Math.sqrt(1 - Math.pow(o.beta2, t));
    return { stepSize: (lr * c2) / bc1, epsHat: o.eps * c2, keep: 1 - lr * o.weight_decay };
  }

  /**
   * `apply` with every per-step scalar given as a float32 scalar tensor, none
   * skipped when it is 1, and no step counted: the form a traced training step
   * records, so the scalars become graph inputs (src/train/graph-step.ts).
   */
  applyScalars(grads: Grads, s: { stepSize: Tensor; epsHat: Tensor; keep: Tensor; gradScale: Tensor }): void {
    this.alive();
    const groupGrads = this.groupGrads(grads);
    tf.tidy(() => this.update(groupGrads, s));
  }

  /** The moment variables (exp_avg, exp_avg_sq of each parameter group), in a fixed order. */
  get stateVariables(): Variable[] {
    return this.groups.flatMap((g) => [g.m, g.v]);
  }

  /** Counts an update whose results were written into the parameters and `stateVariables` from outside (a graph step). */
  countStep(): void {
    this.alive();
    this.t += 1;
  }

  /** The gradients of each group in member order, checked against the parameters (throws before anything changes). */
  private groupGrads(grads: Grads): Tensor[][] {
    const get = gradLookup(grads);
    const groupGrads: Tensor[][] = this.groups.map((g) =>
      g.names.map((name, i) => {
        const grad = get(name);
        if (grad === undefined) throw new RangeError(`AdamW.apply: no gradient for parameter "${name}"`);
        const shape = g.vars[i].shape;
        if (!shapeEq(grad.shape, shape)) {
          throw new RangeError(
            `AdamW.apply: gradient "${name}" has shape ${fmtShape(grad.shape)}, parameter has ${fmtShape(shape)}`,
          );
        }
        if (grad.dtype !== 'float32') throw new TypeError(`AdamW.apply: gradient "${name}" is ${grad.dtype}, not float32`);
        return grad;
      }),
    );
    for (const [name] of gradEntries(grads)) {
      if (!this.params.has(name)) throw new RangeError(`AdamW.apply: gradient for unknown parameter "${name}"`);
    }
    return groupGrads;
  }

  /** The update itself, inside the caller's tidy; a null scalar means 1 (its multiply is skipped). */
  private update(
    groupGrads: Tensor[][],
    s: { stepSize: Tensor; epsHat: Tensor; keep: Tensor | null; gradScale: Tensor | null },
  ): void {
    this.groups.forEach((grp, gi) => {
      const single = grp.vars.length === 1;
      let g = single ? groupGrads[gi][0] : tf.concat(groupGrads[gi], 0);
      if (s.gradScale !== null) g = tf.mul(g, s.gradScale);
      const m = tf.add(grp.m, tf.mul(tf.sub(g, grp.m), this.oneMinusBeta1));
      const v = tf.add(tf.mul(grp.v, this.beta2), tf.mul(tf.square(g), this.oneMinusBeta2));
      const upd = tf.mul(tf.div(m, tf.add(tf.sqrt(v), s.epsHat)), s.stepSize);
      let p: Tensor = single ? grp.vars[0] : tf.concat(grp.vars, 0);
      if (grp.decay && s.keep !== null) p = tf.mul(p, s.keep);
      p = tf.sub(p, upd);
      grp.m.assign(m);
      grp.v.assign(v);
      if (single) grp.vars[0].assign(p);
      else tf.split(p, grp.sizes, 0).forEach((part, i) => grp.vars[i].assign(part));
    });
  }

  /**
   * Copy of the state for checkpointing: `step` and, per parameter, `m/<name>` and
   * `v/<name>` shaped like the parameter. The tensors are new: the caller disposes them.
   */
  getState(): AdamWState {
    this.alive();
    const tensors = new Map<string, Tensor>();
    for (const grp of this.groups) {
      const [ms, vs] = tf.tidy(() =>
        grp.vars.length === 1
          ? [[tf.clone(grp.m)], [tf.clone(grp.v)]]
          : [tf.split(grp.m, grp.sizes, 0), tf.split(grp.v, grp.sizes, 0)],
      );
      grp.names.forEach((name, i) => {
        tensors.set(`m/${name}`, ms[i]);
        tensors.set(`v/${name}`, vs[i]);
      });
    }
    return { step: this.t, tensors };
  }

  /**
   * Restore a state from `getState()` (possibly after a save/load round trip), so
   * that further `apply` calls continue bit-exactly. Every `m/<name>` and `v/<name>`
   * must be present with the parameter's shape; other keys are an error. The given
   * tensors are copied, not kept: the caller still owns (and disposes) them.
   */
  setState(state: AdamWState): void {
    this.alive();
    if (!Number.isInteger(state.step) || state.step < 0) {
      throw new RangeError(`AdamW.setState: step must be an integer >= 0 (got ${state.step})`);
    }
    const want = new Set<string>();
    for (const grp of this.groups) {
      grp.names.forEach((name, i) => {
        for (const kind of ['m', 'v']) {
          const key = `${kind}/${name}`;
          want.add(key);
          const x = state.tensors.get(key);
          if (x === undefined) throw new RangeError(`AdamW.setState: missing "${key}"`);
          if (!shapeEq(x.shape, grp.vars[i].shape) || x.dtype !== 'float32') {
            throw new RangeError(
              `AdamW.setState: "${key}" is ${x.dtype}${fmtShape(x.shape)}, expected float32${fmtShape(grp.vars[i].shape)}`,
            );
          }
        }
      });
    }
    for (const key of state.tensors.keys()) {
      if (!want.has(key)) throw new RangeError(`AdamW.setState: unexpected state tensor "${key}"`);
    }
    tf.tidy(() => {
      for (const grp of this.groups) {
        const pick = (kind: string) => grp.names.map((n) => state.tensors.get(`${kind}/${n}`) as Tensor);
        const m = pick('m');
        const v = pick('v');
        // clone() shares the data; the variable then holds its own reference.
        grp.m.assign(m.length === 1 ? tf.clone(m[0]) : tf.concat(m, 0));
        grp.v.assign(v.length === 1 ? tf.clone(v[0]) : tf.concat(v, 0));
      }
    });
    this.t = state.step;
  }

  /** Free the moment variables. The parameters are not touched. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const grp of this.groups) {
      grp.m.dispose();
      grp.v.dispose();
    }
    this.oneMinusBeta1.dispose();
    this.beta2.dispose();
    this.oneMinusBeta2.dispose();
  }
}
