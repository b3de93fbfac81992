/** Arithmetic mean (0 for an empty list). */
export function mean(xs: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < xs.length; i++) s += xs[i];
  return xs.length ? s / xs.length : 0;
}

/**
 * Deterministic held-out split: every k-th item (k = round(1/fraction), at
 * least 2) is held out, so the split covers the whole file evenly and uses no
 * randomness.
 */
export function splitEveryKth<T>(items: readonly T[], fraction: number): { train: T[]; evaluation: T[] } {
  const every = Math.max(2, Math.round(1 / fraction));
  return {
    train: items.filter((_, i) => i % every !== every - 1),
    evaluation: items.filter((_, i) => i % every === every - 1),
  };
}

/** Largest value (-Infinity for an empty list); a loop, since Math.max(...xs) overflows the call stack on large arrays. */
export function maxOf(xs: Iterable<number>): number {
  let m = -Infinity;
  for (const x of xs) if (x > m) m = x;
  return m;
}
