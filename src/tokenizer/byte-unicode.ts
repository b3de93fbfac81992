/**
 * GPT-2's byte-to-unicode mapping, used by every byte-level BPE vocabulary
 * file (vocab.json, merges.txt, Hugging Face tokenizer.json): each byte is
 * shown as one printable character, so tokens are strings without spaces or
 * control characters. Printable Latin-1 bytes ('!'..'~', '¡'..'¬', '®'..'ÿ')
 * stand for themselves; the other 68 bytes take U+0100, U+0101, ... in byte order.
 */
function buildTable(): string[] {
  const table: string[] = new Array(256);
  const printable = (b: number): boolean => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  let next = 0x100;
  for (let b = 0; b < 256; b++) table[b] = String.fromCharCode(printable(b) ? b : next++);
  return table;
}

/** byte -> its character. */
export const BYTE_TO_UNICODE: readonly string[] = buildTable();

const UNICODE_TO_BYTE = new Map(BYTE_TO_UNICODE.map((ch, b) => [ch, b]));

export function bytesToUnicode(bytes: Iterable<number>): string {
  let s = '';
  for (const b of bytes) s += BYTE_TO_UNICODE[b];
  return s;
}

/** The bytes a byte-level token string stands for, or undefined if it holds a character outside the mapping. */
export function unicodeToBytes(token: string): Uint8Array | undefined {
  const out = new Uint8Array(token.length);
  for (let i = 0; i < token.length; i++) {
    const b = UNICODE_TO_BYTE.get(token[i]);
    if (b === undefined) return undefined;
    out[i] = b;
  }
  return out;
}
