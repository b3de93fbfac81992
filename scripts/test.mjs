#!/usr/bin/env node
// `npm test`: the vitest suite in both of TensorFlow's numerics modes.
//
// On CPUs with AVX-512 TensorFlow turns its oneDNN custom ops on by default (other
// kernels, other rounding); elsewhere they are off. The suite must pass in both,
// so it runs with TF_ENABLE_ONEDNN_OPTS=0 and then =1, whatever this machine's
// default. Setting TF_ENABLE_ONEDNN_OPTS yourself runs just that mode. Arguments
// go to vitest (`npm test -- tests/model.test.ts`).

import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const args = process.argv.slice(2);
const chosen = process.env.TF_ENABLE_ONEDNN_OPTS;
const modes = chosen === undefined || chosen === '' ? ['0', '1'] : [chosen];
const scratch = mkdtempSync(join(tmpdir(), 'rlhf-test-'));

let passed = 0;
let failed = 0;
let ok = true;
const lines = [];
for (const mode of modes) {
  const report = join(scratch, `vitest-${mode}.json`);
  console.log(`\n=== npm test: TF_ENABLE_ONEDNN_OPTS=${mode} ===\n`);
  const run = spawnSync(
    process.execPath,
    ['node_modules/vitest/vitest.mjs', 'run', '--reporter=default', '--reporter=json', `--outputFile.json=${report}`, ...args],
    { stdio: 'inherit', env: { ...process.env, TF_ENABLE_ONEDNN_OPTS: mode } },
  );
  let counts = { numPassedTests: 0, numFailedTests: 0 };
  try {
    counts = JSON.parse(readFileSync(report, 'utf8'));
  } catch {
    // no report: vitest failed before running (its own output says why)
  }
  passed += counts.numPassedTests;
  failed += counts.numFailedTests;
  if (run.status !== 0) ok = false;
  lines.push(`oneDNN ${mode === '0' ? 'off' : 'on'} (TF_ENABLE_ONEDNN_OPTS=${mode}): ${counts.numPassedTests} passed, ${counts.numFailedTests} failed${run.status !== 0 ? `, vitest exit ${run.status}` : ''}`);
}
rmSync(scratch, { recursive: true, force: true });

console.log(`\n${lines.join('\n')}`);
console.log(`tests: ${passed} passed, ${failed} failed`);
process.exit(ok ? 0 : 1);
