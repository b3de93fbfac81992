import { z } from 'zod';
import type { DataSource } from '../config/schema.js';
import { getTask } from '../tasks/index.js';
import { readJsonl } from './jsonl.js';

const promptRecord = z.object({ prompt: z.string() }).passthrough();

/** RL prompts: a task's prompt set, or `{"prompt": …}` lines of a JSONL file (file:line errors). */
export function loadPrompts(source: DataSource): string[] {
  if ('task' in source) return getTask(source.task).rlPrompts();
  return readJsonl(source.path, promptRecord).map((r) => r.value.prompt);
}
