/**
 * `npm run bench [-- options]`: training and sampling throughput of the GPT on
 * tfjs-node at fixed shapes, with a per-phase time split, an optional per-kernel
 * profile, and (with --reference) the PyTorch / Hugging Face references run in the
 * same sitting for ours/theirs ratios. A script, not a test: see bench/README.md.
 */
import { cpus, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { backendName, processNumerics, tf, tfThreads } from '../backend/tf.js';
import { trainFlopsPerToken } from '../model/config.js';
import { benchGeneration, type GenResult } from './generation.js';
import { opTable, pct } from './opprofile.js';
import { locateReference, ompWaitPolicy, ReferenceError, torchGenerate, torchTrain, type Reference, type TorchGenerate, type TorchTrain } from './reference.js';
import { DEFAULT_SHAPES, SHAPES, shapeByName, type BenchShape } from './shapes.js';
import { benchTraining, type TrainResult } from './train.js';

const HELP = `npm run bench [-- options]

Training ms/step, tokens/s and GFLOP/s, and sampling tokens/s (with and without the
KV cache), for each benchmark shape, on random token data.

Options:
  --shape NAME       ${SHAPES.map((s) => s.name).join(' | ')} (repeatable; default: all but gpt2-small)
  --steps N          timed training steps (default: ${SHAPES.map((s) => `${s.defaultSteps} for ${s.name}`).join(', ')})
  --warmup N         untimed training steps first (default 3)
  --gen-batch N      generation batch (default 64)
  --gen-prompt N     prompt tokens per row (default 8)
  --gen-new N        new tokens per row (default 32, at most context − prompt)
  --gen-reps N       timed generate() calls per mode after a warm-up call; best counts (default 1)
  --skip-nocache     do not time generation without the KV cache (slow at gpt-10m)
  --graph-rounds N   alternating rounds of eager and graph training steps (the same
                     step as one TensorFlow graph, src/train/graph-step.ts); 0 = eager
                     only (default 3)
  --profile          per-kernel tables (top ops by time) for a training step and a decode step
  --top N            rows per kernel table (default 12)
  --reference        also run the PyTorch references and print ours/theirs ratios
                     (needs RLHF_REF_PYTHON, default /tmp/ref/bin/python, with torch + transformers)
  --json             one JSON object per shape per line on stdout (progress goes to stderr)
  --quiet            no progress lines on stderr
  --threads N|auto   TensorFlow intra-op threads (default auto: 1 up to d_model 256, else
                     every core); each shape runs in its own process with its own count
  -h, --help         this text

Examples:
  npm run bench
  npm run bench -- --shape nanogpt-cpu --steps 50 --profile
  npm run bench -- --reference --json > bench.jsonl`;

interface Args {
  shapes: BenchShape[];
  steps?: number;
  warmup: number;
  genBatch: number;
  genPrompt: number;
  genNew: number;
  genReps: number;
  skipNocache: boolean;
  profile: boolean;
  graphRounds: number;
  top: number;
  reference: boolean;
  json: boolean;
  quiet: boolean;
}

class UsageError extends Error {}

function positiveInt(name: string, v: string | undefined, dflt: number, min = 1): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new UsageError(`--${name} must be an integer >= ${min} (got "${v}")`);
  return n;
}

function parse(argv: string[]): Args | undefined {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      shape: { type: 'string', multiple: true },
      steps: { type: 'string' },
      warmup: { type: 'string' },
      'gen-batch': { type: 'string' },
      'gen-prompt': { type: 'string' },
      'gen-new': { type: 'string' },
      'gen-reps': { type: 'string' },
      'skip-nocache': { type: 'boolean', default: false },
      profile: { type: 'boolean', default: false },
      'graph-rounds': { type: 'string' },
      top: { type: 'string' },
      reference: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      quiet: { type: 'boolean', default: false },
      // set by main.ts before TensorFlow loads; accepted here so the flag parses
      threads: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) return undefined;
  const names = (values.shape ?? []).flatMap((s) => s.split(',')).filter(Boolean);
  return {
    shapes: names.length ? names.map(shapeByName) : [...DEFAULT_SHAPES],
    steps: values.steps === undefined ? undefined : positiveInt('steps', values.steps, 0),
    warmup: positiveInt('warmup', values.warmup, 3, 0),
    genBatch: positiveInt('gen-batch', values['gen-batch'], 64),
    genPrompt: positiveInt('gen-prompt', values['gen-prompt'], 8),
    genNew: positiveInt('gen-new', values['gen-new'], 32),
    genReps: positiveInt('gen-reps', values['gen-reps'], 1),
    skipNocache: values['skip-nocache'],
    profile: values.profile,
    graphRounds: positiveInt('graph-rounds', values['graph-rounds'], 3, 0),
    top: positiveInt('top', values.top, 12),
    reference: values.reference,
    json: values.json,
    quiet: values.quiet,
  };
}

const fmt = (x: number, digits = 0) => x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
const ms = (x: number) => `${x.toFixed(x < 10 ? 2 : 1)} ms`;
const ratio = (ours: number, theirs: number | undefined) => (theirs ? ours / theirs : undefined);
const fmtRatio = (r: number | undefined) => (r === undefined ? '-' : `${r.toFixed(2)}×`);
const load = () => loadavg().map((x) => x.toFixed(2)).join(' ');

interface ShapeReport {
  shape: BenchShape;
  steps: number;
  train: TrainResult;
  gen: GenResult;
  torch?: TorchTrain;
  hf?: TorchGenerate;
  refError?: string;
  loadBefore: string;
  loadAfter: string;
}

function textReport(r: ShapeReport, a: Args): string {
  const { shape, train: t, gen: g } = r;
  const c = shape.cfg;
  const out: string[] = [];
  out.push(
    `${shape.name}: ${c.n_layer} layers, ${c.n_head} heads, d ${c.d_model}, context ${c.context_length}, vocab ${c.vocab_size}, ` +
      `batch ${shape.batch} — ${fmt(t.params)} params, ${fmt(trainFlopsPerToken(c) / 1e6, 1)} MFLOP/token (train) — ${shape.about}`,
  );
  out.push(`  load average (1/5/15 min) before ${r.loadBefore}, after ${r.loadAfter}`);
  out.push(
    `  train      ${ms(t.msPerStep)}/step (median ${ms(t.msMedian)}, min ${ms(t.msMin)}, max ${ms(t.msMax)}; ${t.warmup} warm-up + ${t.steps} steps)` +
      `  ${fmt(t.tokensPerS)} tokens/s  ${fmt(t.gflops, 1)} GFLOP/s`,
  );
  if (t.graph) {
    const gr = t.graph;
    out.push(
      `  train graph ${ms(gr.msPerStep)}/step (median ${ms(gr.msMedian)})  ${fmt(gr.tokensPerS)} tokens/s = ${fmtRatio(gr.tokensPerS / t.tokensPerS)} eager; ` +
        `one TF_SessionRun of ${fmt(gr.nodes)} nodes, built in ${ms(gr.buildMs)}; rounds eager/graph ms: ${gr.rounds.map(([e, g]) => `${e.toFixed(1)}/${g.toFixed(1)}`).join(', ')}`,
    );
    const gp = gr.phases;
    const gsum = gp.forward + gp.backward + gp.optimizer + gp.host;
    out.push(
      `  graph split forward ${ms(gp.forward)} (${pct(gp.forward, gsum)}) | backward + grad norm ${ms(gp.backward)} (${pct(gp.backward, gsum)}) | ` +
        `clip + AdamW ${ms(gp.optimizer)} (${pct(gp.optimizer, gsum)}) | host (feeds, read-back, assign) ${ms(gp.host)} (${pct(gp.host, gsum)})`,
    );
  } else if (t.graphUnavailable) out.push(`  train graph unavailable: ${t.graphUnavailable}`);
  const ph = t.phases;
  const sum = ph.forward + ph.backward + ph.clip + ph.adamw + ph.other;
  const o = t.ops;
  out.push(
    `  step split forward ${ms(ph.forward)} (${pct(ph.forward, sum)}) | backward ${ms(ph.backward)} (${pct(ph.backward, sum)}) | ` +
      `grad norm ${ms(ph.clip)} (${pct(ph.clip, sum)}) | AdamW ${ms(ph.adamw)} (${pct(ph.adamw, sum)}) | other ${ms(ph.other)} (${pct(ph.other, sum)})`,
  );
  const kcalls = o.forward.calls + o.backward.calls + o.clip.calls + o.adamw.calls;
  const kms = o.forward.kernelMs + o.backward.kernelMs + o.clip.kernelMs + o.adamw.kernelMs;
  out.push(
    `  kernels    ${fmt(kcalls)}/step: forward ${fmt(o.forward.calls)}, backward ${fmt(o.backward.calls)}, grad norm ${fmt(o.clip.calls)}, AdamW ${fmt(o.adamw.calls)}; ` +
      `in a profiled step ${ms(kms)} of ${ms(o.profiledWallMs)} (${pct(kms, o.profiledWallMs)}) is inside TensorFlow calls, the rest tfjs bookkeeping in JS`,
  );
  if (t.leakedTensors !== 0) out.push(`  WARNING    the timed loop left ${t.leakedTensors} tensors alive`);
  const b = g.breakdown;
  out.push(
    `  generate   batch ${a.genBatch}, prompt ${a.genPrompt}, +${Math.min(a.genNew, c.context_length - a.genPrompt)} tokens: KV cache ${fmt(g.cache.tokensPerS)} tokens/s (${ms(g.cache.msPerToken)}/token step, ${g.decodePath} decode) | eager decode ${fmt(g.cacheEager.tokensPerS)} tokens/s` +
      (g.nocache ? ` | no cache ${fmt(g.nocache.tokensPerS)} tokens/s (${ms(g.nocache.msPerToken)}/token step)` : ' | no cache skipped'),
  );
  out.push(
    `  gen split  prefill ${ms(b.prefillMs)} | ${b.graphDecodeMs !== undefined ? `graph decode step ${ms(b.graphDecodeMs)} | ` : ''}eager decode step ${ms(b.decodeMs)} (${fmt(b.decodeCalls)} kernels; profiled: ${ms(b.decodeKernelMs)} of ${ms(b.decodeProfiledWallMs)} inside TensorFlow) | ` +
      `host sampling ${ms(b.samplingMs)}/step` +
      (b.nocacheLastForwardMs !== undefined ? ` | no-cache forward at full length ${ms(b.nocacheLastForwardMs)}` : ''),
  );
  if (r.torch || r.hf || r.refError) {
    out.push(`  reference  (PyTorch, 2 threads, OMP_WAIT_POLICY=${ompWaitPolicy()}, same sitting)`);
    if (r.refError) out.push(`    unavailable: ${r.refError}`);
    if (r.torch) {
      const tg = (trainFlopsPerToken(c) * r.torch.tokens_per_s) / 1e9;
      out.push(
        `    train    ${r.torch.impl}: ${ms(r.torch.ms_per_step)}/step, ${fmt(r.torch.tokens_per_s)} tokens/s, ${fmt(tg, 1)} GFLOP/s` +
          ` → ours/theirs ${fmtRatio(ratio(t.tokensPerS, r.torch.tokens_per_s))} eager` +
          (t.graph ? `, ${fmtRatio(ratio(t.graph.tokensPerS, r.torch.tokens_per_s))} graph` : '') +
          ' (tokens/s)',
      );
    }
    if (r.hf) {
      out.push(
        `    generate ${r.hf.impl}: KV cache ${fmt(r.hf.gen_tokens_per_s_cache)} tokens/s → ours/theirs ${fmtRatio(ratio(g.cache.tokensPerS, r.hf.gen_tokens_per_s_cache))}` +
          (g.nocache && r.hf.gen_tokens_per_s_nocache
            ? ` | no cache ${fmt(r.hf.gen_tokens_per_s_nocache)} tokens/s → ours/theirs ${fmtRatio(ratio(g.nocache.tokensPerS, r.hf.gen_tokens_per_s_nocache))}`
            : ''),
      );
    }
  }
  if (a.profile) {
    const runs = t.profileRuns;
    out.push(opTable(`top kernels of a training step, by kernel (mean of ${runs} profiled steps)`, t.stepByKernel, kms, a.top));
    out.push(opTable('top kernels of a training step, by kernel and input shapes', t.stepByShape, kms, a.top));
    out.push(opTable('backward pass only, by kernel', t.backwardByKernel, o.backward.kernelMs, a.top));
    out.push(opTable('one cached decode step (batch × 1 token), by kernel', g.decodeByKernel, b.decodeKernelMs, a.top));
    if (g.nocacheByKernel.length) {
      const tot = g.nocacheByKernel.reduce((s, x) => s + x.ms, 0);
      out.push(opTable('one no-cache forward at full length, by kernel', g.nocacheByKernel, tot, a.top));
    }
  }
  return out.join('\n');
}

/** oneDNN mode and LayerNorm path, for the header: a fast path that fell back is said, not silent. */
function numericsLine(): string {
  const n = processNumerics();
  const onednn = n.onednn === null ? 'unknown' : n.onednn ? 'on' : 'off';
  return `TensorFlow ${n.tensorflow ?? '-'}, oneDNN ${onednn}, LayerNorm ${n.fast_paths.layer_norm === 'native' ? 'one native kernel' : 'composite (native kernel unavailable)'}`;
}

const round = (x: number, d = 2) => Number(x.toFixed(d));

function jsonReport(r: ShapeReport): Record<string, unknown> {
  const { shape, train: t, gen: g } = r;
  const obj: Record<string, unknown> = {
    shape: shape.name,
    threads: tfThreads,
    params: t.params,
    ms_per_step: round(t.msPerStep),
    tokens_per_s: Math.round(t.tokensPerS),
    gflops: round(t.gflops),
    gen_tokens_per_s_cache: Math.round(g.cache.tokensPerS),
    gen_tokens_per_s_cache_eager: Math.round(g.cacheEager.tokensPerS),
    gen_tokens_per_s_nocache: g.nocache ? Math.round(g.nocache.tokensPerS) : null,
    ms_per_step_median: round(t.msMedian),
    graph: t.graph
      ? {
          ms_per_step: round(t.graph.msPerStep),
          ms_per_step_median: round(t.graph.msMedian),
          tokens_per_s: Math.round(t.graph.tokensPerS),
          build_ms: Math.round(t.graph.buildMs),
          nodes: t.graph.nodes,
          rounds_ms: t.graph.rounds.map(([e, g]) => [round(e), round(g)]),
          phases_ms: Object.fromEntries(Object.entries(t.graph.phases).map(([k, v]) => [k, round(v)])),
        }
      : { unavailable: t.graphUnavailable ?? 'not run (--graph-rounds 0)' },
    steps: t.steps,
    warmup: t.warmup,
    batch: shape.batch,
    context: shape.cfg.context_length,
    phases_ms: Object.fromEntries(Object.entries(t.phases).map(([k, v]) => [k, round(v)])),
    kernels_per_step: { forward: Math.round(t.ops.forward.calls), backward: Math.round(t.ops.backward.calls), clip: Math.round(t.ops.clip.calls), adamw: Math.round(t.ops.adamw.calls) },
    profiled_step_kernel_ms: round(t.ops.forward.kernelMs + t.ops.backward.kernelMs + t.ops.clip.kernelMs + t.ops.adamw.kernelMs),
    profiled_step_wall_ms: round(t.ops.profiledWallMs),
    gen_prefill_ms: round(g.breakdown.prefillMs),
    gen_decode_path: g.decodePath,
    gen_graph_decode_step_ms: g.breakdown.graphDecodeMs === undefined ? null : round(g.breakdown.graphDecodeMs),
    gen_decode_step_ms: round(g.breakdown.decodeMs),
    gen_sampling_ms: round(g.breakdown.samplingMs),
    gen_decode_kernels: g.breakdown.decodeCalls,
    backend: backendName(),
    // oneDNN mode and the fast paths taken decide which kernels ran: a number means little without them
    numerics: processNumerics(),
    load_avg_before: r.loadBefore,
    load_avg_after: r.loadAfter,
  };
  if (r.torch || r.hf) {
    obj.reference = {
      omp_wait_policy: ompWaitPolicy(),
      train_impl: r.torch?.impl,
      ms_per_step: r.torch?.ms_per_step,
      tokens_per_s: r.torch?.tokens_per_s,
      gflops: r.torch ? round((trainFlopsPerToken(shape.cfg) * r.torch.tokens_per_s) / 1e9) : undefined,
      gen_impl: r.hf?.impl,
      gen_tokens_per_s_cache: r.hf?.gen_tokens_per_s_cache,
      gen_tokens_per_s_nocache: r.hf?.gen_tokens_per_s_nocache ?? null,
    };
    const rr = (x: number | undefined) => (x === undefined ? null : round(x, 3));
    obj.ratio = {
      tokens_per_s: rr(ratio(t.tokensPerS, r.torch?.tokens_per_s)),
      graph_tokens_per_s: t.graph ? rr(ratio(t.graph.tokensPerS, r.torch?.tokens_per_s)) : null,
      gen_tokens_per_s_cache: rr(ratio(g.cache.tokensPerS, r.hf?.gen_tokens_per_s_cache)),
      gen_tokens_per_s_nocache: g.nocache ? rr(ratio(g.nocache.tokensPerS, r.hf?.gen_tokens_per_s_nocache)) : null,
    };
  }
  if (r.refError) obj.reference_error = r.refError;
  return obj;
}

async function main(): Promise<number> {
  let a: Args | undefined;
  try {
    a = parse(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`bench: ${(err as Error).message}\n(see npm run bench -- --help)\n`);
    return 2;
  }
  if (!a) {
    process.stdout.write(`${HELP}\n`);
    return 0;
  }
  const args = a;
  let ref: Reference | undefined;
  if (args.reference) {
    try {
      ref = locateReference();
    } catch (err) {
      process.stderr.write(`bench: ${(err as Error).message}\n`);
      return 2;
    }
  }
  const log = (msg: string) => {
    if (!args.quiet) process.stderr.write(`[bench] ${msg}\n`);
  };
  const version = (tf.version as Record<string, string>)['tfjs-node'] ?? (tf.version as Record<string, string>)['tfjs-core'];
  if (!args.json) {
    process.stdout.write(
      `rlhf-lab bench — backend ${backendName()} (tfjs-node ${version}), node ${process.version}, ${cpus().length} cores, ` +
        `TensorFlow intra-op threads ${tfThreads}, ${numericsLine()}, ` +
        `load average ${load()}\n\n`,
    );
  }
  for (const shape of args.shapes) {
    const steps = args.steps ?? shape.defaultSteps;
    log(`${shape.name}`);
    const loadBefore = load();
    const report: ShapeReport = { shape, steps, loadBefore, loadAfter: '' } as ShapeReport;
    // Ours and theirs back to back per shape, so both see the same machine load.
    report.train = await benchTraining(
      shape,
      { steps, warmup: args.warmup, phaseSteps: Math.min(5, Math.max(3, steps)), profileRuns: args.profile ? 3 : 1, seed: 1234, graphRounds: args.graphRounds },
      log,
    );
    if (ref) {
      try {
        log(`reference training (${ref.trainScript})`);
        report.torch = torchTrain(ref, shape, steps);
      } catch (err) {
        if (!(err instanceof ReferenceError)) throw err;
        report.refError = err.message;
      }
    }
    // A short-context shape (ci: 32) cannot take prompt + 32 new tokens: fewer new tokens there.
    const newTokens = Math.min(args.genNew, shape.cfg.context_length - args.genPrompt);
    const g = { batch: args.genBatch, promptLen: args.genPrompt, newTokens, reps: args.genReps, skipNocache: args.skipNocache };
    report.gen = await benchGeneration(shape, { ...g, profile: args.profile, seed: 4321 }, log);
    if (ref) {
      try {
        log(`reference generation (${ref.genScript})`);
        report.hf = torchGenerate(ref, shape, g);
      } catch (err) {
        if (!(err instanceof ReferenceError)) throw err;
        report.refError = [report.refError, err.message].filter(Boolean).join('; ');
      }
    }
    report.loadAfter = load();
    process.stdout.write(args.json ? `${JSON.stringify(jsonReport(report))}\n` : `${textReport(report, args)}\n\n`);
  }
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  },
);
