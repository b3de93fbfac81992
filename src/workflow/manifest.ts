import fs from 'node:fs';
import path from 'node:path';
import { readManifest, type StageManifest } from '../run/stage.js';
import { writeFileAtomic } from '../util/fs.js';
import { sha256OfFile } from './hash.js';
import type { ResolvedInputs } from './stages.js';

/**
 * What the pipeline adds to a stage's manifest.json once the stage has
 * completed (stages themselves know nothing of it):
 *
 *   input_hash  sha256 of the resolved inputs below; equal hash → the stage may be skipped
 *   inputs      config values, parent content hashes and data hashes the stage read
 *               (kept so a changed input can be named: "config changed: ppo.kl_coef")
 *   outputs     sha256 of every file the stage wrote (for `rlhf verify`'s integrity check)
 */
export interface PipelineRecord {
  input_hash?: string;
  inputs?: ResolvedInputs;
  outputs?: Record<string, string>;
}

export type PipelineManifest = StageManifest & PipelineRecord;

export function readPipelineManifest(dir: string): PipelineManifest | undefined {
  return readManifest(dir) as PipelineManifest | undefined;
}

/** Merges fields into manifest.json (temp file + rename: readers never see half a file). */
export function updateManifest(dir: string, fields: PipelineRecord): void {
  const file = path.join(dir, 'manifest.json');
  const manifest = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
  writeFileAtomic(file, JSON.stringify({ ...manifest, ...fields }, null, 2) + '\n');
}

/** Files that change without the stage's results changing: the manifest itself and the structured log. */
const NOT_OUTPUTS = new Set(['manifest.json', 'log.jsonl']);

/** Relative paths (with "/") of a stage directory's output files, sorted; temp/hidden entries skipped. */
export function outputFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (rel: string): void => {
    for (const entry of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
      if (entry.name.startsWith('.')) continue;
      const r = rel ? `${rel}/${entry.name}` : entry.name;
      if (entry.isDirectory()) walk(r);
      else if (entry.isFile() && !(rel === '' && NOT_OUTPUTS.has(entry.name))) out.push(r);
    }
  };
  walk('');
  return out.sort();
}

export function hashOutputs(dir: string): Record<string, string> {
  return Object.fromEntries(outputFiles(dir).map((f) => [f, sha256OfFile(path.join(dir, f))]));
}
