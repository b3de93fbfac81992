import { bytesToUnicode } from './byte-unicode.js';

/**
 * tiktoken-style rank tables (token bytes -> rank; for GPT-2 the rank is the
 * token id) to the vocab + merges form of GPT-2's vocab.json/merges.txt.
 * The merge that creates a token is found by running BPE on its bytes with
 * only the lower-ranked tokens: that ends in exactly two parts, which are the
 * merge. (Ranks are priorities, so this recovers the original merges.txt.)
 */
export function ranksToVocab(tokens: readonly Uint8Array[]): { vocab: string[]; merges: string[] } {
  const key = (b: Uint8Array): string => String.fromCharCode(...b);
  const rank = new Map(tokens.map((t, r) => [key(t), r]));
  const merges: { rank: number; text: string }[] = [];
  tokens.forEach((bytes, r) => {
    if (bytes.length < 2) return;
    const parts = [...bytes].map((b) => String.fromCharCode(b));
    for (;;) {
      let best = -1;
      let bestRank = r;
      for (let i = 0; i + 1 < parts.length; i++) {
        const q = rank.get(parts[i] + parts[i + 1]);
        if (q !== undefined && q < bestRank) [best, bestRank] = [i, q];
      }
      if (best < 0) break;
      parts.splice(best, 2, parts[best] + parts[best + 1]);
    }
    if (parts.length !== 2) throw new Error(`rank table: token ${r} is not the merge of two lower-ranked tokens (${parts.length} parts remain)`);
    const toUnicode = (s: string): string => bytesToUnicode([...s].map((c) => c.charCodeAt(0)));
    merges.push({ rank: r, text: `${toUnicode(parts[0])} ${toUnicode(parts[1])}` });
  });
  return { vocab: tokens.map((t) => bytesToUnicode(t)), merges: merges.sort((a, b) => a.rank - b.rank).map((m) => m.text) };
}

/**
 * js-tiktoken's packed rank format: lines "<tag> <first rank> <base64 token> ...",
 * consecutive tokens taking consecutive ranks. Returns the tokens by rank.
 */
export function parsePackedRanks(packed: string): Uint8Array[] {
  const tokens: Uint8Array[] = [];
  for (const line of packed.split('\n')) {
    if (!line) continue;
    const [, first, ...b64] = line.split(' ');
    b64.forEach((t, i) => (tokens[Number(first) + i] = Uint8Array.from(Buffer.from(t, 'base64'))));
  }
  for (let r = 0; r < tokens.length; r++) if (!tokens[r]) throw new Error(`rank table: no token has rank ${r}`);
  return tokens;
}
