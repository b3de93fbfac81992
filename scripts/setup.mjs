#!/usr/bin/env node
// One-command set-up for rlhf-lab: `npm run setup`.
//
//   1. npm dependencies (`npm ci --ignore-scripts`, skipped when the lock file is unchanged)
//   2. the native TensorFlow addon of @tensorflow/tfjs-node, by whichever route works here:
//        existing - it already loads;
//        online   - tfjs-node's own install script downloads libtensorflow + a prebuilt addon;
//        offline  - libtensorflow from the tensorflow-cpu wheel on the pip index, addon built
//                   from source against it (see "Measured facts" in the design notes).
//   3. TypeScript compile.
//   4. headless Chromium for the report test (Debian's `chromium` via apt-get, when missing and we are root).
//
// Plain Node ESM with no dependencies: it runs before node_modules exists.
// Idempotent: a second run on the same machine takes a few seconds.

import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  accessSync, constants, cpSync, existsSync, mkdirSync, readdirSync, readFileSync,
  renameSync, rmSync, symlinkSync, writeFileSync,
} from 'node:fs';
import { constants as osConstants, homedir } from 'node:os';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const NODE_MODULES = join(ROOT, 'node_modules');
const BIN_DIR = join(NODE_MODULES, '.bin');
const STAMP = join(NODE_MODULES, '.rlhf-setup-stamp');
const TFJS_NODE = join(NODE_MODULES, '@tensorflow', 'tfjs-node');

const TF_VERSION = '2.21.0';
const TF_WHEEL = `tensorflow-cpu==${TF_VERSION}`;
const CACHE_ROOT = process.env.RLHF_CACHE_DIR || join(homedir(), '.cache', 'rlhf-lab');
const TF_CACHE = join(CACHE_ROOT, `libtensorflow-${TF_VERSION}`);
const TF_LIB = 'libtensorflow_cc.so.2';
const TF_FRAMEWORK = 'libtensorflow_framework.so.2';
// The wheel's header subtrees that tfjs-node's binding (c_api.h, eager/c_api.h) pulls in.
const TF_HEADER_DIRS = ['tensorflow/c/', 'tensorflow/core/platform/', 'tsl/', 'xla/tsl/'];
// Names tfjs-node's build and install script look for (it expects libtensorflow 2.9.1),
// plus the SONAMEs the built addon resolves through its rpath $ORIGIN/../../deps/lib.
const DEPS_LIB_LINKS = {
  'libtensorflow.so': TF_LIB,
  'libtensorflow.so.2.9.1': TF_LIB,
  'libtensorflow_cc.so.2': TF_LIB,
  'libtensorflow_framework.so': TF_FRAMEWORK,
  'libtensorflow_framework.so.2.9.1': TF_FRAMEWORK,
  'libtensorflow_framework.so.2': TF_FRAMEWORK,
};

const ONLINE_TIMEOUT_MS = 180_000;
const BUILD_TIMEOUT_MS = 900_000;
const PIP_TIMEOUT_MS = 900_000;

// ---------------------------------------------------------------- helpers

const log = (msg) => console.log(`setup: ${msg}`);

class SetupError extends Error {}

const running = new Set();
// Temp dirs to delete if the user interrupts (a `finally` does not run on a signal).
const scratchDirs = new Set();

/**
 * Runs a command in its own process group, so a timeout or Ctrl-C also ends the
 * grandchildren (install.js -> node-pre-gyp -> node-gyp -> make -> g++).
 * Resolves with { code, output, timedOut, error }; never rejects.
 */
function run(cmd, args, { env = process.env, cwd = ROOT, timeoutMs = 0, quiet = true } = {}) {
  return new Promise((done) => {
    const child = spawn(cmd, args, {
      cwd, env, detached: true,
      stdio: ['ignore', quiet ? 'pipe' : 'inherit', quiet ? 'pipe' : 'inherit'],
    });
    running.add(child);
    let output = '';
    child.stdout?.on('data', (d) => { output += d; });
    child.stderr?.on('data', (d) => { output += d; });
    let timedOut = false;
    const timer = timeoutMs > 0 && setTimeout(() => { timedOut = true; killGroup(child); }, timeoutMs);
    const finish = (result) => { clearTimeout(timer); running.delete(child); done({ output, timedOut, ...result }); };
    child.on('error', (error) => finish({ code: null, error }));
    child.on('close', (code) => finish({ code }));
  });
}

function killGroup(child) {
  try { process.kill(-child.pid, 'SIGKILL'); } catch { /* already gone */ }
}

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    running.forEach(killGroup);
    scratchDirs.forEach((dir) => rmSync(dir, { recursive: true, force: true }));
    process.exit(128 + osConstants.signals[signal]);
  });
}

/** The last few non-empty lines of a command's output, indented, for error messages. */
function tail(output, lines = 12) {
  return output.split('\n').filter((l) => l.trim()).slice(-lines).map((l) => `    ${l}`).join('\n');
}

/** Absolute path of an executable on PATH, or null. */
function which(name) {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const candidate = join(dir, name);
    try { accessSync(candidate, constants.X_OK); return candidate; } catch { /* next */ }
  }
  return null;
}

const seconds = (ms) => `${(ms / 1000).toFixed(1)} s`;

// ---------------------------------------------------------------- 1. dependencies

function lockHash() {
  return createHash('sha256').update(readFileSync(join(ROOT, 'package-lock.json'))).digest('hex');
}

async function installDependencies() {
  const hash = lockHash();
  if (existsSync(STAMP) && readFileSync(STAMP, 'utf8').trim() === hash) {
    log('dependencies up to date');
    return;
  }
  // --ignore-scripts: tfjs-node's install script downloads from the internet; step 2 drives it.
  log('installing dependencies (npm ci --ignore-scripts)');
  const npm = await run('npm', ['ci', '--ignore-scripts', '--no-audit', '--no-fund'], { quiet: false });
  if (npm.code !== 0) throw new SetupError(`npm ci failed (exit ${npm.code ?? npm.error?.message})`);
  writeFileSync(STAMP, `${hash}\n`);
}

// ---------------------------------------------------------------- 2. native backend

const PROBE = `
  const tf = require('@tensorflow/tfjs-node');
  console.log('RLHF_BACKEND=' + tf.getBackend());
`;

/** Loads tfjs-node in a child process: { ok, reason }. install.js can exit 0 without a working addon. */
async function probeBackend() {
  const env = { ...process.env, TF_CPP_MIN_LOG_LEVEL: '2' };
  const { code, output } = await run(process.execPath, ['-e', PROBE], { env, timeoutMs: 120_000 });
  const backend = /RLHF_BACKEND=(\S+)/.exec(output)?.[1];
  if (code === 0 && backend === 'tensorflow') return { ok: true };
  // The thrown message, not the source line Node prints above it; paths relative to the project.
  const error = output.split('\n').find((l) => /^\w*Error: /.test(l))?.trim().replaceAll(`${ROOT}/`, '');
  return { ok: false, reason: backend ? `backend is "${backend}"` : error ?? `exit ${code}` };
}

/** Environment for tfjs-node's install.js: node-pre-gyp/node-gyp from node_modules/.bin. */
function installEnv() {
  const env = { ...process.env, PATH: `${BIN_DIR}${delimiter}${process.env.PATH ?? ''}` };
  // Local Node headers spare node-gyp a download it cannot do offline.
  const nodeDir = resolve(dirname(process.execPath), '..');
  if (existsSync(join(nodeDir, 'include', 'node', 'node_api.h'))) env.npm_config_nodedir = nodeDir;
  return env;
}

/** Runs tfjs-node's scripts/install.js; a stale addon would make node-pre-gyp skip the work. */
function runTfjsInstall(args, timeoutMs) {
  rmSync(join(TFJS_NODE, 'lib'), { recursive: true, force: true });
  return run(process.execPath, [join('scripts', 'install.js'), ...args], {
    cwd: TFJS_NODE, env: installEnv(), timeoutMs,
  });
}

async function onlineRoute() {
  log('native backend: trying the online route (tfjs-node download)');
  // 'cpu download' forces a fresh libtensorflow even if deps/ holds one from the offline route.
  const result = await runTfjsInstall(['cpu', 'download'], ONLINE_TIMEOUT_MS);
  const probe = await probeBackend();
  if (probe.ok) return null;
  if (result.timedOut) return `online: tfjs-node's install did not finish within ${seconds(ONLINE_TIMEOUT_MS)}`;
  const network = /(getaddrinfo \w+ [\w.-]+|ECONNREFUSED[^\n]*|ETIMEDOUT[^\n]*|EAI_AGAIN[^\n]*)/.exec(result.output);
  if (network) return `online: no network to the tfjs download host (${network[1]})`;
  return `online: tfjs-node's install ran (exit ${result.code}) but the addon does not load: ${probe.reason}\n${tail(result.output)}`;
}

/** Tools the offline route needs; returns what is missing. */
function missingBuildTools() {
  const missing = [];
  if (!which('python3')) missing.push('python3 (for pip and node-gyp)');
  const cxx = process.env.CXX || 'g++';
  if (!which(cxx)) missing.push(`a C++ compiler (${cxx})`);
  if (!which('make')) missing.push('make');
  return missing;
}

function cacheIsComplete() {
  return [TF_LIB, TF_FRAMEWORK, 'include/tensorflow/c/c_api.h'].every((f) => existsSync(join(TF_CACHE, f)));
}

/** Removes work dirs left by interrupted set-ups (named after their pid). */
function removeStalePartials() {
  for (const name of readdirSync(CACHE_ROOT)) {
    const pid = Number(/^\.partial-(\d+)$/.exec(name)?.[1]);
    if (!pid) continue;
    try { process.kill(pid, 0); } catch { rmSync(join(CACHE_ROOT, name), { recursive: true, force: true }); }
  }
}

async function pipDownload(dir) {
  const args = ['-m', 'pip', 'download', '--no-deps', '--only-binary=:all:', '--retries', '0',
    '--timeout', '3', TF_WHEEL, '-d', dir];
  const pip = await run('python3', args, { timeoutMs: PIP_TIMEOUT_MS });
  if (pip.code === 0) return join(dir, readdirSync(dir).find((f) => f.endsWith('.whl')));
  if (pip.error) throw new SetupError(`offline: cannot run python3 (${pip.error.message})`);
  if (/No module named pip/.test(pip.output)) throw new SetupError('offline: python3 has no pip module');
  if (/No matching distribution|Could not find a version/.test(pip.output)) {
    throw new SetupError(`offline: the configured pip index has no ${TF_WHEEL} for this platform`);
  }
  throw new SetupError(`offline: pip download of ${TF_WHEEL} failed\n${tail(pip.output)}`);
}

// Extracts only the two libraries (to the top) and the needed headers (to include/).
const EXTRACT_PY = `
import json, os, shutil, sys, zipfile
wheel, dest, libs, header_dirs = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4])
lib_members = {'tensorflow/' + l for l in libs}
prefixes = tuple('tensorflow/include/' + d for d in header_dirs)
found = set()
with zipfile.ZipFile(wheel) as zf:
    for info in zf.infolist():
        name = info.filename
        if name.endswith('/'):
            continue
        if name in lib_members:
            target = os.path.basename(name)
            found.add(target)
        elif name.startswith(prefixes):
            target = name[len('tensorflow/'):]
        else:
            continue
        path = os.path.join(dest, target)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with zf.open(info) as src, open(path, 'wb') as out:
            shutil.copyfileobj(src, out, 1 << 20)
missing = set(libs) - found
if missing:
    sys.exit('wheel lacks ' + ', '.join(sorted(missing)))
`;

async function extractWheel(wheel, dest) {
  const args = ['-c', EXTRACT_PY, wheel, dest, JSON.stringify([TF_LIB, TF_FRAMEWORK]), JSON.stringify(TF_HEADER_DIRS)];
  const py = await run('python3', args);
  if (py.code !== 0) throw new SetupError(`offline: extracting ${wheel} failed\n${tail(py.output)}`);
}

/** Fills the libtensorflow cache from the pip wheel; built aside and renamed, never half-written. */
async function ensureTensorflowCache() {
  if (cacheIsComplete()) {
    log(`native backend: using cached libtensorflow ${TF_VERSION} (${TF_CACHE})`);
    return;
  }
  log(`native backend: fetching ${TF_WHEEL} from the pip index into ${TF_CACHE}`);
  const t0 = Date.now();
  mkdirSync(CACHE_ROOT, { recursive: true });
  removeStalePartials();
  const work = join(CACHE_ROOT, `.partial-${process.pid}`);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(join(work, 'wheel'), { recursive: true });
  scratchDirs.add(work);
  try {
    const wheel = await pipDownload(join(work, 'wheel'));
    await extractWheel(wheel, join(work, 'lib'));
    rmSync(TF_CACHE, { recursive: true, force: true }); // only ever an incomplete one here
    renameSync(join(work, 'lib'), TF_CACHE);
    log(`native backend: libtensorflow cached in ${seconds(Date.now() - t0)}`);
  } finally {
    rmSync(work, { recursive: true, force: true }); // includes the 274 MB wheel
    scratchDirs.delete(work);
  }
}

/** Puts the cached libtensorflow where tfjs-node's build expects it: deps/lib and deps/include. */
function stageDeps() {
  const deps = join(TFJS_NODE, 'deps');
  rmSync(deps, { recursive: true, force: true });
  mkdirSync(join(deps, 'lib'), { recursive: true });
  for (const [name, target] of Object.entries(DEPS_LIB_LINKS)) {
    symlinkSync(join(TF_CACHE, target), join(deps, 'lib', name));
  }
  cpSync(join(TF_CACHE, 'include'), join(deps, 'include'), { recursive: true });
}

async function offlineRoute() {
  const missing = missingBuildTools();
  if (missing.length) return `offline: missing ${missing.join(', ')}`;
  try {
    await ensureTensorflowCache();
  } catch (err) {
    if (err instanceof SetupError) return err.message;
    throw err;
  }
  stageDeps();
  log('native backend: building addon from source (offline route)');
  // With deps/lib/libtensorflow.so.2.9.1 present, install.js skips the library download,
  // fails fast on the prebuilt addon and falls back to node-gyp.
  const build = await runTfjsInstall([], BUILD_TIMEOUT_MS);
  const probe = await probeBackend();
  if (probe.ok) return null;
  const why = build.timedOut ? `timed out after ${seconds(BUILD_TIMEOUT_MS)}` : `addon does not load: ${probe.reason}`;
  const hint = installEnv().npm_config_nodedir ? '' : ' (no local Node headers: node-gyp must download them)';
  return `offline: addon build ${why}${hint}\n${tail(build.output)}`;
}

/** Returns the route that made the native backend load. */
async function ensureNativeBackend() {
  const probe = await probeBackend();
  if (probe.ok) {
    log('native backend: addon loads');
    return 'existing';
  }
  log(`native backend: not loadable yet (${probe.reason})`);
  const problems = [];
  for (const [name, route] of [['online', onlineRoute], ['offline', offlineRoute]]) {
    const problem = await route();
    if (!problem) return name;
    log(problem.split('\n')[0]);
    problems.push(problem);
  }
  throw new SetupError(
    'could not make the native TensorFlow backend of @tensorflow/tfjs-node load:\n' +
    problems.map((p) => `  - ${p}`).join('\n'),
  );
}

// ---------------------------------------------------------------- 3. compile, 4. chromium, 5. summary

async function compile() {
  log('compiling TypeScript');
  const tsc = await run(join(BIN_DIR, 'tsc'), ['-p', 'tsconfig.json'], { quiet: false });
  if (tsc.code !== 0) throw new SetupError(`TypeScript compile failed (exit ${tsc.code ?? tsc.error?.message})`);
}

// The report test (tests/report.test.ts) opens `rlhf report`'s page in headless Chromium.
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const APT_TIMEOUT_MS = 900_000;

/** Installs Debian's chromium when it is missing and this is a root shell with apt-get; otherwise says what to do. */
async function ensureChromium() {
  if (existsSync(CHROMIUM)) {
    log(`chromium: ${CHROMIUM} present`);
    return;
  }
  const manual = 'the report test will fail until it is installed (apt-get install -y chromium, or set CHROMIUM_PATH)';
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (process.platform !== 'linux' || !which('apt-get') || !isRoot) {
    const why = process.platform !== 'linux' || !which('apt-get') ? 'no apt-get here' : 'not root, so not installing it';
    log(`chromium: ${CHROMIUM} missing (${why}); ${manual}`);
    return;
  }
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  log('chromium: installing Debian\'s chromium for the report test (apt-get update && apt-get install -y chromium)');
  const update = await run('apt-get', ['update'], { env, timeoutMs: APT_TIMEOUT_MS });
  if (update.code !== 0) log(`chromium: apt-get update failed (exit ${update.code ?? update.error?.message}); trying the install anyway`);
  const install = await run('apt-get', ['install', '-y', 'chromium'], { env, timeoutMs: APT_TIMEOUT_MS });
  if (install.code === 0 && existsSync(CHROMIUM)) {
    log(`chromium: installed ${CHROMIUM}`);
    return;
  }
  const why = install.timedOut ? `timed out after ${seconds(APT_TIMEOUT_MS)}` : `exit ${install.code ?? install.error?.message}`;
  log(`chromium: apt-get install chromium failed (${why}); ${manual}\n${tail(install.output)}`);
}

// Best of 10 timed runs after a warm-up, to damp noise from other processes on the machine.
const MATMUL = `
  const tf = require('@tensorflow/tfjs-node');
  const n = 1024;
  const a = tf.randomNormal([n, n]), b = tf.randomNormal([n, n]);
  const once = () => {
    const t0 = process.hrtime.bigint();
    const c = tf.matMul(a, b);
    c.dataSync();
    c.dispose();
    return Number(process.hrtime.bigint() - t0) / 1e9;
  };
  once();
  const best = Math.min(...Array.from({ length: 10 }, once));
  console.log('RLHF_GFLOPS=' + (2 * n ** 3 / best / 1e9).toFixed(0));
`;

async function matmulGflops() {
  const env = { ...process.env, TF_CPP_MIN_LOG_LEVEL: '2' };
  const { output } = await run(process.execPath, ['-e', MATMUL], { env, timeoutMs: 60_000 });
  return /RLHF_GFLOPS=(\d+)/.exec(output)?.[1] ?? '?';
}

const timings = [];

async function timed(name, fn) {
  const t0 = Date.now();
  const result = await fn();
  timings.push(`${name} ${seconds(Date.now() - t0)}`);
  return result;
}

async function main() {
  const t0 = Date.now();
  await timed('dependencies', installDependencies);
  const route = await timed('native backend', ensureNativeBackend);
  await timed('tsc', compile);
  await timed('chromium', ensureChromium);
  const gflops = await matmulGflops();
  log(`done in ${seconds(Date.now() - t0)} (${timings.join(', ')})`);
  log(`backend tensorflow via the ${route} route; 1024x1024 float32 matmul ${gflops} GFLOP/s`);
}

main().catch((err) => {
  console.error(`setup: FAILED: ${err instanceof SetupError ? err.message : err.stack}`);
  process.exit(1);
});
