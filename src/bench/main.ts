/**
 * Entry of `npm run bench`. TensorFlow fixes its thread count when it loads, and
 * the best count depends on the model (src/backend/threads.ts), so with several
 * shapes each one runs in its own process, its threads set before TensorFlow loads.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { configureThreads, resolveThreads, type ThreadsSetting } from '../backend/threads.js';
import { DEFAULT_SHAPES, shapeByName } from './shapes.js';

interface Split {
  shapes: string[];
  threads: ThreadsSetting;
  /** argv without the --shape flags. */
  rest: string[];
}

function split(argv: string[]): Split {
  const shapes: string[] = [];
  const rest: string[] = [];
  let threads: ThreadsSetting = 'auto';
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const [flag, inline] = a.startsWith('--') && a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
    if (flag !== '--shape' && flag !== '--threads') {
      rest.push(a);
      continue;
    }
    const value = inline ?? argv[++i];
    if (value === undefined) throw new Error(`${flag} needs a value`);
    if (flag === '--shape') {
      shapes.push(...value.split(',').filter(Boolean));
      continue;
    }
    rest.push('--threads', value);
    if (value !== 'auto') {
      const n = Number(value);
      if (!Number.isInteger(n) || n < 1) throw new Error(`--threads must be "auto" or an integer >= 1 (got "${value}")`);
      threads = n;
    }
  }
  return { shapes, threads, rest };
}

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  let args: Split;
  try {
    args = split(argv);
    args.shapes.forEach(shapeByName);
  } catch (err) {
    process.stderr.write(`bench: ${(err as Error).message}\n`);
    return 2;
  }
  const names = args.shapes.length ? args.shapes : DEFAULT_SHAPES.map((s) => s.name);
  if (names.length === 1 || argv.includes('-h') || argv.includes('--help')) {
    configureThreads(resolveThreads(args.threads, shapeByName(names[0]).cfg.d_model));
    process.argv = [process.argv[0], process.argv[1], ...args.rest, ...names.flatMap((n) => ['--shape', n])];
    await import('./bench.js');
    return 0;
  }
  let code = 0;
  for (const name of names) {
    const child = spawnSync(process.execPath, [fileURLToPath(import.meta.url), ...args.rest, '--shape', name], { stdio: 'inherit' });
    code = Math.max(code, child.status ?? 1);
  }
  return code;
}

process.exitCode = await main();
