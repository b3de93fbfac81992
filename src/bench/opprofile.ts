import { tf } from '../backend/tf.js';
import { observeNativeOps } from '../backend/native.js';

/**
 * Per-kernel timing through `tf.profile`. On tfjs-node, TensorFlow eager runs each
 * kernel synchronously, and a kernel's time is the wall time of its backend call
 * (N-API crossing + TFE_Execute), so the sum over kernels against the wall time of
 * the same code shows how much goes to tfjs's own JS bookkeeping (scopes, tape,
 * gradient closures) rather than to TensorFlow.
 */

export interface KernelRecord {
  name: string;
  /** Input shapes, e.g. "[768,128]x[128,384]". */
  shapes: string;
  ms: number;
}

export interface Profiled {
  kernels: KernelRecord[];
  /** Wall time of the profiled call (ms); profiling adds a little to it. */
  wallMs: number;
}

function fmtShapes(shapes: readonly (readonly number[] | null)[]): string {
  return shapes.map((s) => (s ? `[${s.join(',')}]` : '-')).join('x');
}

/** Runs `f` once under `tf.profile`; `f` must dispose what it creates (use tidy). */
export async function profileKernels(f: () => void): Promise<Profiled> {
  // Kernels called directly on the native backend are invisible to tf.profile.
  const native: KernelRecord[] = [];
  observeNativeOps((name, inputs, ms) => native.push({ name, shapes: fmtShapes(inputs.map((t) => t.shape)), ms }));
  const t0 = performance.now();
  const info = await tf.profile(() => {
    f();
    return [] as never;
  }).finally(() => observeNativeOps(undefined));
  const wallMs = performance.now() - t0;
  // tf.customGrad functions are recorded too, under their scope name, with a time that
  // includes the kernels they ran (recorded separately): keep registered kernels only.
  const backend = tf.getBackend();
  const kernels = info.kernels
    .filter((k) => tf.getKernel(k.name, backend) !== undefined)
    .map((k) => ({
      name: k.name,
      shapes: fmtShapes(k.inputShapes as (number[] | null)[]),
      ms: Number(k.kernelTimeMs) || 0,
    }));
  return { kernels: [...kernels, ...native], wallMs };
}

export interface OpRow {
  key: string;
  /** Calls per profiled run (averaged over runs). */
  calls: number;
  /** Milliseconds per profiled run. */
  ms: number;
}

/** Aggregates kernel records of `runs` runs by `key`, per run, largest time first. */
export function aggregate(records: readonly KernelRecord[], runs: number, key: (k: KernelRecord) => string): OpRow[] {
  const map = new Map<string, OpRow>();
  for (const k of records) {
    const id = key(k);
    let row = map.get(id);
    if (!row) map.set(id, (row = { key: id, calls: 0, ms: 0 }));
    row.calls += 1 / runs;
    row.ms += k.ms / runs;
  }
  return [...map.values()].sort((a, b) => b.ms - a.ms);
}

export function totalMs(records: readonly KernelRecord[]): number {
  return records.reduce((s, k) => s + k.ms, 0);
}

/** A text table of the top rows: kernel, calls, ms, µs/call, share of `total`. */
export function opTable(title: string, rows: readonly OpRow[], total: number, top: number): string {
  const lines = [`  ${title}`];
  const shown = rows.slice(0, top);
  const width = Math.min(70, Math.max(12, ...shown.map((r) => r.key.length)));
  lines.push(`    ${'kernel'.padEnd(width)}  ${'calls'.padStart(6)}  ${'ms'.padStart(8)}  ${'µs/call'.padStart(8)}  ${'share'.padStart(6)}`);
  for (const r of shown) {
    const key = r.key.length > width ? `${r.key.slice(0, width - 1)}…` : r.key;
    lines.push(
      `    ${key.padEnd(width)}  ${r.calls.toFixed(0).padStart(6)}  ${r.ms.toFixed(2).padStart(8)}  ` +
        `${((r.ms / Math.max(r.calls, 1e-9)) * 1000).toFixed(0).padStart(8)}  ${pct(r.ms, total).padStart(6)}`,
    );
  }
  if (rows.length > top) {
    const rest = rows.slice(top);
    const ms = rest.reduce((s, r) => s + r.ms, 0);
    const calls = rest.reduce((s, r) => s + r.calls, 0);
    lines.push(`    ${`(${rest.length} more)`.padEnd(width)}  ${calls.toFixed(0).padStart(6)}  ${ms.toFixed(2).padStart(8)}  ${''.padStart(8)}  ${pct(ms, total).padStart(6)}`);
  }
  return lines.join('\n');
}

export function pct(part: number, whole: number): string {
  return whole > 0 ? `${((100 * part) / whole).toFixed(0)}%` : '-';
}
