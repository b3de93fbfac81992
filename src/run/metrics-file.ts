import fs from 'node:fs';

/**
 * Rows of a JSONL file of objects (metrics.jsonl), for readers that must not
 * fail on a stage still running or killed mid-write: lines that are not JSON
 * objects are skipped and counted. An absent file has no rows.
 */
export function readObjectLines<T = Record<string, unknown>>(file: string): { rows: T[]; bad: number } {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return { rows: [], bad: 0 };
  }
  const rows: T[] = [];
  let bad = 0;
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    try {
      const v = JSON.parse(line) as unknown;
      if (v && typeof v === 'object' && !Array.isArray(v)) rows.push(v as T);
      else bad++;
    } catch {
      bad++;
    }
  }
  return { rows, bad };
}
