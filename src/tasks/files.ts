import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Task } from './types.js';

/**
 * The committed rendering of a task under data/<task>/:
 *   corpus.txt     the pretraining corpus, as is
 *   sft.jsonl      one {"prompt": …, "response": …} per line
 *   prompts.jsonl  one {"prompt": …} per line (the RL prompts)
 * Every file ends in a newline. tests/tasks.test.ts checks the committed files
 * against a fresh rendering; src/tasks/generate-cli.ts writes them.
 */

export const TASK_FILE_NAMES = ['corpus.txt', 'sft.jsonl', 'prompts.jsonl'] as const;
export type TaskFileName = (typeof TASK_FILE_NAMES)[number];

/** The repository's data/ directory (src/tasks/ and dist/tasks/ are both two levels below the root). */
export const DATA_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../../data');

export function taskDataDir(name: string, dataDir = DATA_DIR): string {
  return join(dataDir, name);
}

export function renderTaskFiles(task: Task): Record<TaskFileName, string> {
  const jsonl = (rows: object[]): string => rows.map((r) => JSON.stringify(r) + '\n').join('');
  return {
    'corpus.txt': task.pretrainCorpus(),
    'sft.jsonl': jsonl(task.sftExamples().map(({ prompt, response }) => ({ prompt, response }))),
    'prompts.jsonl': jsonl(task.rlPrompts().map((prompt) => ({ prompt }))),
  };
}
