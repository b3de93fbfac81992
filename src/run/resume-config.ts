import fs from 'node:fs';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { LoadedConfig } from '../config/load.js';
import type { ExperimentConfig } from '../config/schema.js';
import { canonicalJson } from '../workflow/hash.js';
import { parseStage, stageInputs } from '../workflow/stages.js';
import { readManifest, StageStateError, stageDir, type ConfigChange } from './stage.js';

/**
 * What `--resume` may change. A resumed run continues the recorded one, so the
 * stage directory's config.yaml — plus the changes recorded at earlier resumes
 * (manifest `config_changes`) — must keep describing every step it ran.
 *
 * Only what the stage reads is compared (src/workflow/stages.ts stageInputs:
 * its section, seed, tokenizer, model, threads, parents and data), so editing
 * another stage's section does not block a resume. A difference is refused,
 * unless `allow` (--allow-config-change): then it is returned as a change at
 * the resume step for the manifest, and config.yaml stays as it was. Keys the
 * saved state depends on (shared ones and what the stage reads from files)
 * cannot change mid-run even then.
 *
 * Returns the manifest's new `config_changes` (earlier ones kept); throws
 * StageStateError before anything is written.
 */
export function resumeConfigChanges(loaded: LoadedConfig, stage: string, atStep: number, allow: boolean): ConfigChange[] {
  const dir = stageDir(loaded.config, stage);
  const pipelineStage = parseStage(stage);
  if (!pipelineStage) throw new Error(`resumeConfigChanges: unknown stage ${stage}`);
  const recordedFile = path.join(dir, 'config.yaml');
  let recordedConfig: ExperimentConfig;
  try {
    recordedConfig = parseYaml(fs.readFileSync(recordedFile, 'utf8')) as ExperimentConfig;
  } catch (e) {
    throw new StageStateError(`${recordedFile}: cannot read the config the run started with (${(e as Error).message.split('\n')[0]})`);
  }
  // Steps after atStep are run again, so changes recorded for them no longer hold.
  const kept = (readManifest(dir)?.config_changes ?? []).filter((c) => c.at_step <= atStep);
  const recorded = readKeys({ config: recordedConfig, file: recordedFile }, pipelineStage);
  for (const c of kept) recorded.set(c.key, { value: c.to ?? undefined, fixed: recorded.get(c.key)?.fixed ?? false });
  const current = readKeys(loaded, pipelineStage);

  const diffs = [...new Set([...recorded.keys(), ...current.keys()])]
    .sort()
    .filter((key) => canonicalJson(recorded.get(key)?.value) !== canonicalJson(current.get(key)?.value))
    .map((key) => ({ key, from: recorded.get(key)?.value, to: current.get(key)?.value, fixed: recorded.get(key)?.fixed ?? current.get(key)!.fixed }));
  const describe = (ds: typeof diffs): string => ds.map((d) => `${d.key} was ${shown(d.from)}, now ${shown(d.to)}`).join('; ');
  const fixed = diffs.filter((d) => d.fixed);
  if (fixed.length > 0) {
    throw new StageStateError(`${dir}: --resume with a changed config: ${describe(fixed)}, which cannot change mid-run (start over with --force instead)`);
  }
  if (diffs.length > 0 && !allow) {
    throw new StageStateError(`${dir}: --resume with a changed config: ${describe(diffs)} (pass --allow-config-change to continue with it anyway)`);
  }
  return [...kept, ...diffs.map((d) => ({ at_step: atStep, key: d.key, from: d.from ?? null, to: d.to ?? null }))];
}

/** Top-level keys of stageInputs' config that every stage's saved state depends on. */
const SHARED = new Set(['seed', 'threads', 'model', 'tokenizer']);

function shown(value: unknown): string {
  return value === undefined || value === null ? '(unset)' : JSON.stringify(value);
}

/**
 * The stage's inputs as dotted key paths → value; `fixed` marks the keys the
 * checkpointed state depends on (model and tokenizer shape the weights, seed
 * and threads the random streams and sums, parents and data what was learnt from).
 */
function readKeys(loaded: LoadedConfig, stage: NonNullable<ReturnType<typeof parseStage>>): Map<string, { value: unknown; fixed: boolean }> {
  const inputs = stageInputs(loaded, stage);
  const out = new Map<string, { value: unknown; fixed: boolean }>();
  const walk = (prefix: string, value: unknown, fixed: boolean): void => {
    if (value && typeof value === 'object' && !Array.isArray(value)) {
      for (const [k, v] of Object.entries(value)) walk(prefix ? `${prefix}.${k}` : k, v, fixed || (!prefix && SHARED.has(k)));
    } else if (value !== undefined) out.set(prefix, { value, fixed });
  };
  walk('', inputs.config, false);
  for (const [key, p] of Object.entries(inputs.parents)) walk(key, p, true);
  for (const [key, ref] of Object.entries(inputs.data)) walk(key, ref.source, true);
  return out;
}
