import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/** JSON with object keys sorted at every level, so equal values hash equally. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value));
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.keys(value as Record<string, unknown>)
        .sort()
        .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
        .map((k) => [k, sortKeys((value as Record<string, unknown>)[k])]),
    );
  }
  return value;
}

export function sha256(data: string | Buffer): string {
  return crypto.createHash('sha256').update(data).digest('hex');
}

export function sha256OfFile(file: string): string {
  return sha256(fs.readFileSync(file));
}

/** Files of a checkpoint that define the model (weights, model + tokenizer config); resume state excluded. */
const CHECKPOINT_FILES = ['model.json', 'model.weights.bin', 'tokenizer.json'];

/**
 * Content hash of what a stage reads: a checkpoint directory (its model files)
 * or a single file. Undefined when it does not exist (yet).
 */
export function contentHash(p: string): string | undefined {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(p);
  } catch {
    return undefined;
  }
  if (!stat.isDirectory()) return sha256OfFile(p);
  const h = crypto.createHash('sha256');
  for (const name of CHECKPOINT_FILES) {
    const file = path.join(p, name);
    if (!fs.existsSync(file)) continue;
    h.update(`${name}\0`);
    h.update(fs.readFileSync(file));
    h.update('\0');
  }
  return h.digest('hex');
}

/** `{a: {b: 1}, c: [2]}` → `{"a.b": "1", "c": "[2]"}` (leaves as canonical JSON), for naming changed keys. */
export function flatten(value: unknown, prefix = '', out: Record<string, string> = {}): Record<string, string> {
  if (value && typeof value === 'object' && !Array.isArray(value)) {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined);
    if (entries.length === 0 && prefix) out[prefix] = '{}';
    for (const [k, v] of entries) flatten(v, prefix ? `${prefix}.${k}` : k, out);
  } else if (prefix) {
    out[prefix] = canonicalJson(value);
  }
  return out;
}

/** Keys whose values differ between two objects (added, removed or changed), sorted. */
export function changedKeys(before: unknown, after: unknown): string[] {
  const a = flatten(before);
  const b = flatten(after);
  return [...new Set([...Object.keys(a), ...Object.keys(b)])].filter((k) => a[k] !== b[k]).sort();
}
