import { readFileSync } from 'node:fs';
import { getTask } from '../tasks/index.js';
import { loadBrown } from './brown.js';

/**
 * Where a stage's training text comes from. In a config:
 *
 *   data: { path: data/quickstart.txt }   # a UTF-8 text file (the config loader
 *                                         # resolves it against the config file)
 *   data: { source: brown }               # a built-in corpus
 *   data: { task: sentiment }             # a built-in task's pretraining corpus
 */
export type CorpusSpec = { path: string } | { source: BuiltinCorpus } | { task: string };

/** Corpora that ship with the lab (no file needed). */
export const BUILTIN_CORPORA = ['brown'] as const;
export type BuiltinCorpus = (typeof BUILTIN_CORPORA)[number];

/** Bad training data: missing, unreadable, not UTF-8, or empty. The message is one line naming the file. */
export class DataError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DataError';
  }
}

/** A short, human name for a spec (for logs and manifests). */
export function describeCorpus(spec: CorpusSpec): string {
  if ('task' in spec) return `task:${spec.task}`;
  return 'path' in spec ? spec.path : `builtin:${spec.source}`;
}

/** Load the text a spec names, with line endings normalised to "\n". Throws DataError. */
export function loadCorpus(spec: CorpusSpec): string {
  if ('task' in spec) return getTask(spec.task).pretrainCorpus();
  if ('source' in spec) {
    if (spec.source === 'brown') return loadBrown();
    throw new DataError(
      `unknown corpus source '${String(spec.source)}' (expected one of: ${BUILTIN_CORPORA.join(', ')})`,
    );
  }
  return readTextFile(spec.path);
}

/** Read a UTF-8 text file for training. Throws DataError naming the file on any problem. */
export function readTextFile(path: string): string {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const reason =
      code === 'ENOENT'
        ? 'file not found'
        : code === 'EISDIR'
          ? 'is a directory, not a file'
          : code === 'EACCES' || code === 'EPERM'
            ? 'permission denied'
            : `cannot read (${code ?? (err as Error).message})`;
    throw new DataError(`training data ${path}: ${reason}`);
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }).decode(bytes);
  } catch {
    const at = firstInvalidUtf8(bytes);
    throw new DataError(`training data ${path}: not valid UTF-8 text (first bad byte at offset ${at})`);
  }
  text = text.replace(/\r\n?/g, '\n');
  if (text.trim().length === 0) {
    throw new DataError(
      `training data ${path}: ${bytes.length === 0 ? 'file is empty' : 'file contains only whitespace'}`,
    );
  }
  return text;
}

/** Offset of the first byte that breaks UTF-8 decoding (for the error message). */
function firstInvalidUtf8(bytes: Uint8Array): number {
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i];
    const len = b < 0x80 ? 1 : b >= 0xc2 && b <= 0xdf ? 2 : b >= 0xe0 && b <= 0xef ? 3 : b >= 0xf0 && b <= 0xf4 ? 4 : 0;
    if (len === 0 || i + len > bytes.length) return i;
    for (let k = 1; k < len; k++) if ((bytes[i + k] & 0xc0) !== 0x80) return i;
    i += len;
  }
  return i;
}

/**
 * Deterministic train/validation split: validation is (about) the last
 * `valFraction` of the text by characters, cut at the nearest paragraph
 * boundary ("\n\n") to the ideal split point, else the nearest line boundary,
 * else exactly at the split point. The cut never makes either side empty
 * when 0 < valFraction < 1 and the text has at least 2 characters. Since
 * train + val === text, no character is lost or duplicated.
 */
export function splitTrainVal(text: string, valFraction: number): { train: string; val: string } {
  if (!Number.isFinite(valFraction) || valFraction < 0 || valFraction >= 1) {
    throw new RangeError(`valFraction must be in [0, 1), got ${valFraction}`);
  }
  if (valFraction === 0 || text.length < 2) return { train: text, val: '' };
  const ideal = Math.min(text.length - 1, Math.max(1, Math.round(text.length * (1 - valFraction))));
  // Accept a boundary within 5% of the text (and at most 20k chars) of the ideal point.
  const window = Math.max(1, Math.min(20_000, Math.floor(text.length * 0.05)));
  const cut =
    nearestBoundary(text, '\n\n', ideal, window) ?? nearestBoundary(text, '\n', ideal, window) ?? ideal;
  return { train: text.slice(0, cut), val: text.slice(cut) };
}

/** The split index (just after a `sep`) closest to `ideal`, within `window`, leaving both sides non-empty. */
function nearestBoundary(text: string, sep: string, ideal: number, window: number): number | undefined {
  let best: number | undefined;
  const consider = (sepAt: number): void => {
    if (sepAt < 0) return;
    const cut = sepAt + sep.length;
    if (cut <= 0 || cut >= text.length || Math.abs(cut - ideal) > window) return;
    if (best === undefined || Math.abs(cut - ideal) < Math.abs(best - ideal)) best = cut;
  };
  consider(text.lastIndexOf(sep, ideal - sep.length));
  consider(text.indexOf(sep, ideal - sep.length + 1));
  return best;
}
