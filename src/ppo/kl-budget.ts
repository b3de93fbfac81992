import { tf, type Tensor } from '../backend/tf.js';
import type { Params } from '../model/gpt.js';

/**
 * A KL budget that ends PPO-style training, decided without the gold scorer (a
 * real user has none). Iteration i's rollout is sampled by the policy as it was
 * before update i, so that rollout's mean KL to the reference measures that
 * policy. When it exceeds the budget, training stops and the policy is reset to
 * the weights that sampled the previous rollout — the last ones measured inside
 * the budget (the starting weights if the very first rollout is already over).
 */
export class KlBudget {
  /** Weights that sampled the last rollout measured inside the budget. */
  private inside: Map<string, Tensor> | undefined;
  /** Weights sampling the current iteration's rollout. */
  private sampling: Map<string, Tensor> | undefined;

  constructor(
    readonly budget: number,
    private readonly policy: Params,
  ) {
    if (!(Number.isFinite(budget) && budget > 0)) throw new RangeError(`KL budget must be a finite number > 0 (got ${budget})`);
  }

  /** Before each iteration: remembers the weights about to sample its rollout. */
  beforeIteration(): void {
    disposeAll(this.sampling);
    this.sampling = snapshot(this.policy);
  }

  /**
   * After the iteration, with its rollout's mean KL: true when that was over the
   * budget, in which case the policy now holds the last weights inside it.
   */
  overBudget(rolloutKl: number): boolean {
    if (!this.sampling) throw new Error('KlBudget.overBudget called without beforeIteration');
    if (rolloutKl > this.budget) {
      const keep = this.inside ?? this.sampling;
      for (const [name, v] of this.policy) v.assign(keep.get(name)!);
      return true;
    }
    disposeAll(this.inside);
    this.inside = this.sampling;
    this.sampling = undefined;
    return false;
  }

  /** What a resume needs: the last weights inside the budget (none before the first iteration). */
  state(): Map<string, Tensor> {
    return new Map(this.inside ?? []);
  }

  /** Takes ownership of `tensors` (from `state()` of a saved run; empty for none). */
  restore(tensors: Map<string, Tensor>): void {
    disposeAll(this.inside);
    this.inside = tensors.size ? tensors : undefined;
  }

  dispose(): void {
    disposeAll(this.inside);
    disposeAll(this.sampling);
    this.inside = this.sampling = undefined;
  }
}

function snapshot(params: Params): Map<string, Tensor> {
  return new Map([...params].map(([k, v]) => [k, tf.clone(v)]));
}

function disposeAll(tensors: Map<string, Tensor> | undefined): void {
  if (tensors) tf.dispose([...tensors.values()]);
}
