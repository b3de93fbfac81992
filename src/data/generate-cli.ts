/**
 * Regenerate (or check) data/quickstart.txt from the seeded grammar in generate.ts.
 *
 *   npx tsc -p tsconfig.json && node dist/data/generate-cli.js           # write
 *   npx tsc -p tsconfig.json && node dist/data/generate-cli.js --check   # verify, exit 1 if stale
 *   npx vite-node src/data/generate-cli.ts [--check]                     # same, no build step
 *
 * An optional positional argument writes somewhere else instead.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateQuickstart } from './generate.js';

/** src/data/ and dist/data/ are both two levels below the repo root. */
const QUICKSTART_PATH = resolve(dirname(fileURLToPath(import.meta.url)), '../../data/quickstart.txt');

function main(argv: string[]): number {
  const check = argv.includes('--check');
  const target = argv.find((a) => !a.startsWith('--')) ?? QUICKSTART_PATH;
  const text = generateQuickstart();
  if (check) {
    let current = '';
    try {
      current = readFileSync(target, 'utf8');
    } catch {
      // missing: stale
    }
    if (current !== text) {
      console.error(`${target} is out of date: regenerate it with node dist/data/generate-cli.js`);
      return 1;
    }
    console.log(`${target} is up to date (${text.length} chars)`);
    return 0;
  }
  writeFileSync(target, text);
  console.log(`wrote ${target} (${text.length} chars)`);
  return 0;
}

process.exitCode = main(process.argv.slice(2));
