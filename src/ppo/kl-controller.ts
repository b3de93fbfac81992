/**
 * KL-penalty coefficient β for the per-token reward −β·KL: fixed, or the adaptive
 * controller of Ziegler et al. 2019 (lm-human-preferences' AdaptiveKLController):
 *   e = clip(KL/target − 1, −0.2, 0.2),  β ← β·(1 + e·nSteps/horizon).
 * The state is plain JSON (β is a double, which JSON round-trips exactly), so a
 * resumed run continues with the very same β.
 */

export interface KlControllerState {
  kind: 'fixed' | 'adaptive';
  value: number;
}

export interface KlController {
  readonly value: number;
  /** currentKl: mean per-sequence KL of the batch just collected; nSteps: episodes in it. */
  update(currentKl: number, nSteps: number): void;
  state(): KlControllerState;
}

function checkFinite(name: string, x: number, positive: boolean): void {
  if (!Number.isFinite(x) || (positive ? x <= 0 : x < 0)) {
    throw new RangeError(`KL controller: ${name} must be a finite number ${positive ? '> 0' : '≥ 0'} (got ${x})`);
  }
}

export function fixedKlController(value: number): KlController {
  checkFinite('kl coefficient', value, false);
  return {
    value,
    update() {},
    state: () => ({ kind: 'fixed', value }),
  };
}

export function adaptiveKlController(initial: number, target: number, horizon: number): KlController {
  checkFinite('initial kl coefficient', initial, false);
  checkFinite('target kl', target, true);
  checkFinite('horizon', horizon, true);
  let value = initial;
  return {
    get value() {
      return value;
    },
    update(currentKl: number, nSteps: number) {
      if (!Number.isFinite(currentKl)) {
        throw new RangeError(`KL controller: current KL must be finite (got ${currentKl})`);
      }
      const e = Math.min(0.2, Math.max(-0.2, currentKl / target - 1));
      value *= 1 + (e * nSteps) / horizon;
    },
    state: () => ({ kind: 'adaptive', value }),
  };
}

/** Rebuilds a controller from state(); an adaptive one needs its target and horizon again (they live in the config). */
export function restoreKlController(state: KlControllerState, target?: number, horizon?: number): KlController {
  if (state.kind === 'fixed') return fixedKlController(state.value);
  if (state.kind === 'adaptive') {
    if (target === undefined || horizon === undefined) {
      throw new RangeError('KL controller: restoring an adaptive controller needs its target and horizon');
    }
    return adaptiveKlController(state.value, target, horizon);
  }
  throw new RangeError(`KL controller: unknown kind "${String((state as { kind: unknown }).kind)}"`);
}
