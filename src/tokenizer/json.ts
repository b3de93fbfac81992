/** Helpers for the tokenizer file format: strict validation and canonical form. */

/** JSON.stringify with object keys sorted at every level, so the text (and the
 *  fingerprint hashed from it) does not depend on key insertion order. */
export function canonicalJSON(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return v;
    const sorted: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) sorted[k] = (v as Record<string, unknown>)[k];
    return sorted;
  });
}

/** Rejects missing and unknown keys: a misspelt or foreign key means the file
 *  was not written by this code, and guessing would silently change ids. */
export function checkKeys(obj: Record<string, unknown>, keys: readonly string[], kind: string): void {
  for (const k of keys) {
    if (!(k in obj)) throw new Error(`${kind} tokenizer JSON: missing key "${k}"`);
  }
  for (const k of Object.keys(obj)) {
    if (!keys.includes(k)) throw new Error(`${kind} tokenizer JSON: unknown key "${k}" (expected ${keys.join(', ')})`);
  }
}

/** Both tokenizers record their specials for readers of the file; a file whose
 *  list differs was made by something else, and its ids would be wrong. */
export function checkSpecials(value: unknown, expected: readonly string[], kind: string): void {
  if (!Array.isArray(value) || value.length !== expected.length || value.some((v, i) => v !== expected[i])) {
    throw new Error(`${kind} tokenizer JSON: "specials" must be ${JSON.stringify(expected)}`);
  }
}
