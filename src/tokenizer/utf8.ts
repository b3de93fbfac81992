/**
 * UTF-8 that also carries lone surrogates (the "WTF-8" generalisation): a
 * lone surrogate, which a JS string may hold but UTF-8 cannot, is written as
 * the 3-byte sequence ED A0..BF xx that its code unit would have. TextEncoder
 * would replace it with U+FFFD, breaking decode(encode(s)) === s for such strings.
 * Well-formed text gives exactly the standard UTF-8 bytes.
 */

/** UTF-8 (WTF-8) bytes of s. Used on small chunks, so a plain loop is fine. */
export function encodeUtf8(s: string): number[] {
  const out: number[] = [];
  for (let i = 0; i < s.length; i++) {
    let cp = s.charCodeAt(i);
    if (cp >= 0xd800 && cp <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        cp = ((cp - 0xd800) << 10) + (d - 0xdc00) + 0x10000;
        i++;
      }
    }
    if (cp < 0x80) out.push(cp);
    else if (cp < 0x800) out.push(0xc0 | (cp >> 6), 0x80 | (cp & 0x3f));
    else if (cp < 0x10000) out.push(0xe0 | (cp >> 12), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f));
    else out.push(0xf0 | (cp >> 18), 0x80 | ((cp >> 12) & 0x3f), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f));
  }
  return out;
}

const decoder = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });

/**
 * Inverse of encodeUtf8. Never throws: invalid sequences (e.g. a code point
 * split across a hand-built id sequence) become U+FFFD. The native decoder does
 * the work; only the encoded-surrogate triples it would reject are cut out first.
 */
export function decodeUtf8(bytes: Uint8Array): string {
  let out = '';
  let start = 0;
  for (let i = bytes.indexOf(0xed); i >= 0 && i + 2 < bytes.length; i = bytes.indexOf(0xed, i + 1)) {
    const b1 = bytes[i + 1];
    const b2 = bytes[i + 2];
    if (b1 >= 0xa0 && b1 <= 0xbf && (b2 & 0xc0) === 0x80) {
      out += decoder.decode(bytes.subarray(start, i));
      out += String.fromCharCode(0xd000 | ((b1 & 0x3f) << 6) | (b2 & 0x3f));
      start = i + 3;
      i += 2;
    }
  }
  return out + decoder.decode(bytes.subarray(start));
}
