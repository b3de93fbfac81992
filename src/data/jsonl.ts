import fs from 'node:fs';
import { z } from 'zod';
import { DataError } from './corpus.js';

export interface JsonlRecord<T> {
  value: T;
  /** 1-based line number in the file, for error messages downstream. */
  line: number;
}

/**
 * Reads a JSONL file, validating every line against `schema`. The first bad
 * line is a DataError naming file:line and the offending field, and nothing is
 * returned, so callers never act on half-valid data. Blank lines are skipped.
 */
export function readJsonl<T>(file: string, schema: z.ZodType<T> | ((json: unknown) => z.ZodType<T>)): JsonlRecord<T>[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    throw new DataError(`${file}: cannot read file`);
  }
  const out: JsonlRecord<T>[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (!line) return;
    let json: unknown;
    try {
      json = JSON.parse(line);
    } catch (e) {
      throw new DataError(`${file}:${i + 1}: not valid JSON (${(e as Error).message.split('\n')[0]})`);
    }
    // A function picks the record form by its keys, so errors name the missing field, not 'invalid union'.
    const parsed = (typeof schema === 'function' ? schema(json) : schema).safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const where = issue.path.length ? `${issue.path.join('.')}: ` : '';
      const message = issue.code === 'invalid_type' && issue.received === 'undefined' ? 'missing field' : issue.message;
      throw new DataError(`${file}:${i + 1}: ${where}${message}`);
    }
    out.push({ value: parsed.data, line: i + 1 });
  });
  if (out.length === 0) throw new DataError(`${file}: no records`);
  return out;
}

/** Appends one record durably (a crash after return keeps it). */
export function appendJsonl(file: string, record: unknown): void {
  const fd = fs.openSync(file, 'a');
  try {
    fs.writeSync(fd, JSON.stringify(record) + '\n');
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}
