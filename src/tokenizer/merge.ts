import { MinHeap } from './heap.js';
import { pretokenize } from './pretokenize.js';

/**
 * Applies ranked BPE merges to a token sequence: repeatedly join the adjacent
 * pair with the lowest rank (leftmost first among equal pairs), as GPT-2 does.
 * A heap over a linked list keeps this O(n log n), since one chunk can be a
 * long run (a paragraph of CJK letters is a single \p{L}+ chunk).
 */
export class RankedMerges {
  /** left * keyBase + right -> rank of the merge that joins them. */
  private readonly ranks = new Map<number, number>();
  private readonly results: Int32Array;

  /** `merges[r]` = [left id, right id, id of the joined token]; every id < keyBase. */
  constructor(
    merges: readonly (readonly [number, number, number])[],
    private readonly keyBase: number,
  ) {
    this.results = Int32Array.from(merges, (m) => m[2]);
    merges.forEach(([a, b], r) => this.ranks.set(a * keyBase + b, r));
  }

  rankOf(left: number, right: number): number | undefined {
    return this.ranks.get(left * this.keyBase + right);
  }

  apply(tokens: number[]): number[] {
    const n = tokens.length;
    if (n < 2) return tokens;
    const next = new Int32Array(n);
    const prev = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      next[i] = i + 1 < n ? i + 1 : -1;
      prev[i] = i - 1;
    }
    const dead = new Uint8Array(n);
    // Entry = rank * 2^32 + left position: one number orders by rank, then position.
    const heap = new MinHeap<number>((x, y) => x < y);
    const consider = (left: number): void => {
      const right = next[left];
      if (left < 0 || right < 0) return;
      const rank = this.rankOf(tokens[left], tokens[right]);
      if (rank !== undefined) heap.push(rank * 2 ** 32 + left);
    };
    for (let i = 0; i + 1 < n; i++) consider(i);
    while (heap.size > 0) {
      const entry = heap.pop()!;
      const rank = Math.floor(entry / 2 ** 32);
      const left = entry - rank * 2 ** 32;
      const right = next[left];
      // Entries go stale when a neighbour merges; re-check the pair is still there.
      if (dead[left] || right < 0) continue;
      if (this.rankOf(tokens[left], tokens[right]) !== rank) continue;
      tokens[left] = this.results[rank];
      dead[right] = 1;
      next[left] = next[right];
      if (next[right] >= 0) prev[next[right]] = left;
      consider(prev[left]);
      consider(left);
    }
    const out: number[] = [];
    for (let i = 0; i >= 0; i = next[i]) out.push(tokens[i]);
    return out;
  }
}

/** Encoded chunks are memoised; the cap bounds memory on endless novel text. */
const CACHE_MAX_ENTRIES = 100_000;
const CACHE_MAX_CHUNK_CHARS = 256;

/** GPT-2-style encoding: pre-tokenise, encode each chunk on its own (memoised), concatenate. */
export class ChunkEncoder {
  private readonly cache = new Map<string, number[]>();

  constructor(private readonly encodeChunk: (chunk: string) => number[]) {}

  encode(text: string): number[] {
    const out: number[] = [];
    for (const chunk of pretokenize(text)) {
      let ids = this.cache.get(chunk);
      if (ids === undefined) {
        ids = this.encodeChunk(chunk);
        if (chunk.length <= CACHE_MAX_CHUNK_CHARS) {
          if (this.cache.size >= CACHE_MAX_ENTRIES) this.cache.clear();
          this.cache.set(chunk, ids);
        }
      }
      for (let i = 0; i < ids.length; i++) out.push(ids[i]);
    }
    return out;
  }
}
