import { z } from 'zod';
import type { DataSource } from '../config/schema.js';
import { getTask } from '../tasks/index.js';
import { readJsonl } from './jsonl.js';

const promptRecord = z.object({ prompt: z.string() }).passthrough();

/** A prompt and where it came from (file:line, or the task's prompt number), for error messages. */
export interface SourcedPrompt {
  text: string;
  source: string;
}

/** RL prompts: a task's prompt set, or `{"prompt": …}` lines of a JSONL file (file:line errors). */
export function loadSourcedPrompts(source: DataSource): SourcedPrompt[] {
  if ('path' in source) return readJsonl(source.path, promptRecord).map((r) => ({ text: r.value.prompt, source: `${source.path}:${r.line}` }));
  return getTask(source.task)
    .rlPrompts()
    .map((text, i) => ({ text, source: `task ${source.task}, RL prompt ${i + 1}` }));
}

export function loadPrompts(source: DataSource): string[] {
  return loadSourcedPrompts(source).map((p) => p.text);
}
