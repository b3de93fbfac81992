/**
 * Regenerate (or check) data/<task>/{corpus.txt, sft.jsonl, prompts.jsonl} for the
 * built-in tasks from the seeded generators in src/tasks/<task>/.
 *
 *   npx vite-node src/tasks/generate-cli.ts                 # write all tasks
 *   npx vite-node src/tasks/generate-cli.ts --check         # verify, exit 1 if any file is stale
 *   npx vite-node src/tasks/generate-cli.ts sentiment       # only the named task(s)
 *   npx tsc -p tsconfig.json && node dist/tasks/generate-cli.js [--check] [task…]
 *
 * The module runs on import: nothing should import it (use files.ts instead).
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { renderTaskFiles, TASK_FILE_NAMES, taskDataDir } from './files.js';
import { getTask, TASK_NAMES } from './index.js';

function main(argv: string[]): number {
  const check = argv.includes('--check');
  const unknownFlag = argv.find((a) => a.startsWith('--') && a !== '--check');
  if (unknownFlag) {
    console.error(`unknown option ${unknownFlag} (usage: generate-cli [--check] [task…])`);
    return 2;
  }
  const names = argv.filter((a) => !a.startsWith('--'));
  let stale = 0;
  for (const name of names.length > 0 ? names : TASK_NAMES) {
    let task;
    try {
      task = getTask(name);
    } catch (e) {
      console.error((e as Error).message);
      return 2;
    }
    const dir = taskDataDir(task.name);
    const files = renderTaskFiles(task);
    if (!check) mkdirSync(dir, { recursive: true });
    for (const file of TASK_FILE_NAMES) {
      const path = join(dir, file);
      const text = files[file];
      const bytes = Buffer.byteLength(text);
      if (check) {
        let current: string | undefined;
        try {
          current = readFileSync(path, 'utf8');
        } catch {
          // missing: stale
        }
        if (current === text) {
          console.log(`${path} is up to date (${bytes} bytes)`);
        } else {
          console.error(`${path} is ${current === undefined ? 'missing' : 'out of date'}: regenerate it with npx vite-node src/tasks/generate-cli.ts`);
          stale++;
        }
      } else {
        writeFileSync(path, text);
        console.log(`wrote ${path} (${bytes} bytes)`);
      }
    }
  }
  return stale > 0 ? 1 : 0;
}

process.exitCode = main(process.argv.slice(2));
