import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BenchShape } from './shapes.js';

/**
 * The PyTorch references, run as child processes in the same sitting:
 * training — the peers' torch_gpt_bench.py (kept outside the repo, in shared/peers);
 * generation — bench/torch_generate_bench.py (HF transformers GPT2LMHeadModel).
 */

const SETUP =
  '  python3 -m venv /tmp/ref && /tmp/ref/bin/pip install --retries 0 --timeout 3 torch==2.13.0 transformers\n' +
  '(CPU wheels from the configured pip index), or set RLHF_REF_PYTHON to a Python that has torch and transformers.';

/** Repository root: this file runs from dist/bench/. */
const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

export interface Reference {
  python: string;
  trainScript: string;
  genScript: string;
}

export interface TorchTrain {
  impl: string;
  params: number;
  ms_per_step: number;
  tokens_per_s: number;
}

export interface TorchGenerate {
  impl: string;
  params: number;
  gen_tokens_per_s_cache: number;
  gen_tokens_per_s_nocache?: number;
}

export class ReferenceError extends Error {}

/** Finds the interpreter and the two scripts, and checks that torch and transformers import. */
export function locateReference(): Reference {
  const python = process.env.RLHF_REF_PYTHON || '/tmp/ref/bin/python';
  const trainScript = process.env.RLHF_TORCH_BENCH || resolve(REPO_ROOT, '..', 'shared', 'peers', 'torch_gpt_bench.py');
  const genScript = resolve(REPO_ROOT, 'bench', 'torch_generate_bench.py');
  if (!existsSync(python)) {
    throw new ReferenceError(`--reference: no Python at ${python} (env RLHF_REF_PYTHON, default /tmp/ref/bin/python). Set it up with:\n${SETUP}`);
  }
  const probe = spawnSync(python, ['-c', 'import torch, transformers; print(torch.__version__, transformers.__version__)'], {
    encoding: 'utf8',
    timeout: 120_000,
  });
  if (probe.status !== 0) {
    const why = (probe.stderr || probe.error?.message || '').trim().split('\n').pop();
    throw new ReferenceError(`--reference: ${python} cannot import torch and transformers (${why}). Set it up with:\n${SETUP}`);
  }
  if (!existsSync(trainScript)) {
    throw new ReferenceError(
      `--reference: training reference not found at ${trainScript}; it lives in shared/peers/ beside the repository, ` +
        'or set RLHF_TORCH_BENCH to its path',
    );
  }
  if (!existsSync(genScript)) throw new ReferenceError(`--reference: generation reference missing: ${genScript}`);
  return { python, trainScript, genScript };
}

/**
 * OpenMP wait policy of the reference processes: torch's own default (libgomp
 * busy-waits) unless OMP_WAIT_POLICY is set. The default is the fair comparison
 * on an idle machine (torch_gpt_bench.py at nanogpt-cpu: ~54 ms/step, against ~99 ms
 * with PASSIVE); on a loaded machine busy-waiting collapses (~1,000 ms/step at load
 * average 3), so set OMP_WAIT_POLICY=PASSIVE there and say so next to the numbers.
 */
export function ompWaitPolicy(): string {
  return process.env.OMP_WAIT_POLICY || 'default';
}

function referenceEnv(): NodeJS.ProcessEnv {
  return process.env.OMP_WAIT_POLICY ? process.env : { ...process.env, OMP_WAIT_POLICY: undefined };
}

function runJson<T>(python: string, script: string, args: string[]): T {
  const r = spawnSync(python, [script, ...args], {
    encoding: 'utf8',
    timeout: 30 * 60_000,
    maxBuffer: 16 << 20,
    env: referenceEnv(),
  });
  if (r.status !== 0) {
    const why = (r.stderr || r.error?.message || `exit ${r.status}`).trim().split('\n').slice(-3).join(' | ');
    throw new ReferenceError(`${script} failed: ${why}`);
  }
  const line = r.stdout.trim().split('\n').reverse().find((l) => l.startsWith('{'));
  if (!line) throw new ReferenceError(`${script} printed no JSON line`);
  return JSON.parse(line) as T;
}

function shapeArgs(shape: BenchShape): string[] {
  const c = shape.cfg;
  return ['--n_layer', `${c.n_layer}`, '--n_head', `${c.n_head}`, '--d', `${c.d_model}`, '--ctx', `${c.context_length}`, '--vocab', `${c.vocab_size}`];
}

export function torchTrain(ref: Reference, shape: BenchShape, steps: number): TorchTrain {
  return runJson<TorchTrain>(ref.python, ref.trainScript, [...shapeArgs(shape), '--batch', `${shape.batch}`, '--steps', `${steps}`, '--threads', '2']);
}

export function torchGenerate(
  ref: Reference,
  shape: BenchShape,
  g: { batch: number; promptLen: number; newTokens: number; reps: number; skipNocache: boolean },
): TorchGenerate {
  const args = [...shapeArgs(shape), '--batch', `${g.batch}`, '--prompt', `${g.promptLen}`, '--new', `${g.newTokens}`, '--reps', `${g.reps}`, '--threads', '2'];
  if (g.skipNocache) args.push('--skip_nocache');
  return runJson<TorchGenerate>(ref.python, ref.genScript, args);
}
