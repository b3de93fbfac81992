import seedrandom from 'seedrandom';

/**
 * Seeded, serialisable random source (Alea from `seedrandom`). Every random
 * choice a stage makes (batch offsets, sampling, dropout seeds) is drawn from one
 * of these, and its state is saved with checkpoints so a resumed run continues
 * the same stream.
 */
export type RngState = object;

export class Rng {
  private prng: seedrandom.StatefulPRNG<seedrandom.State.Alea>;

  constructor(seed: number | string, state?: RngState) {
    this.prng = state
      ? seedrandom.alea('', { state: state as seedrandom.State.Alea })
      : seedrandom.alea(String(seed), { state: true });
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.prng();
  }

  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.prng() * n);
  }

  /** A 31-bit integer, for seeding tf ops (dropout) and child generators. */
  seed(): number {
    // Never 0: tfjs treats a seed of 0 as "unseeded".
    return (this.prng.int32() >>> 1) || 1;
  }

  /** Fisher–Yates shuffle of [0, n). */
  permutation(n: number): number[] {
    const out = Array.from({ length: n }, (_, i) => i);
    for (let i = n - 1; i > 0; i--) {
      const j = this.int(i + 1);
      [out[i], out[j]] = [out[j], out[i]];
    }
    return out;
  }

  state(): RngState {
    return this.prng.state();
  }
}
