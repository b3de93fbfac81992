import fs from 'node:fs';
import os from 'node:os';

/**
 * What decides a run's floating-point bits besides its config: the TensorFlow
 * build, whether its oneDNN custom ops are on (TensorFlow turns them on by
 * default on AVX-512 CPUs: other kernels, other rounding), the CPU's vector
 * extensions, the thread count, and which of our fast paths could run. Every
 * stage manifest records it, and `rlhf verify` names a difference in it as the
 * reason a re-run cannot match.
 */
export interface NumericsEnvironment {
  backend: string;
  /** libtensorflow version (null on the pure-JS backend). */
  tensorflow: string | null;
  /** oneDNN custom ops on; null where it cannot be told (a build without them, the pure-JS backend). */
  onednn: boolean | null;
  /** TF_ENABLE_ONEDNN_OPTS as the process saw it; null means TensorFlow's default for this CPU. */
  onednn_setting: string | null;
  cpu: { model: string; arch: string; vector_extensions: string[] };
  threads: number;
  /**
   * Which implementation each fast path runs. layer_norm: the single native kernel,
   * or the multi-kernel composite. train_step (gradient-trained stages: pretrain, sft,
   * train-reward, dpo, recorded once steps run; for PPO, RLOO and GRPO the update's optimizer steps):
   * one TensorFlow graph per step, eager kernels, or both (src/train/step-runner.ts).
   * decode (stages that generate, once they have): generation's decode steps as one
   * graph each, eagerly, or both (src/sample/decode-graph.ts).
   */
  fast_paths: { layer_norm: 'native' | 'composite'; train_step?: TrainStepPath; decode?: TrainStepPath };
}

export type TrainStepPath = 'graph' | 'eager' | 'mixed';

/** What TensorFlow's native library says about itself, probed once when it loads. */
export interface NativeProbe {
  tensorflow: string | null;
  onednn: boolean | null;
  layerNormKernel: boolean;
}

// Extensions that select different kernels in TensorFlow/oneDNN/Eigen on x86-64 (and the ARM ones that do there).
const VECTOR_EXTENSIONS = ['sse4_2', 'avx', 'avx2', 'fma', 'avx_vnni', 'avx512f', 'avx512bw', 'avx512vl', 'avx512_vnni', 'avx512_bf16', 'avx512_fp16', 'amx_tile', 'amx_bf16', 'amx_int8', 'asimd', 'sve', 'sve2'];

export function cpuDescription(): NumericsEnvironment['cpu'] {
  const model = os.cpus()[0]?.model.trim() ?? 'unknown';
  let flags: Set<string> = new Set();
  try {
    const info = fs.readFileSync('/proc/cpuinfo', 'utf8');
    const line = /^(?:flags|Features)\s*:\s*(.*)$/m.exec(info);
    if (line) flags = new Set(line[1].split(/\s+/));
  } catch {
    // not Linux: the model name is all there is
  }
  return { model, arch: process.arch, vector_extensions: VECTOR_EXTENSIONS.filter((f) => flags.has(f)) };
}

/** TF_ENABLE_ONEDNN_OPTS as TensorFlow reads it: true/false, or undefined for "not set" (TensorFlow decides per CPU). */
export function onednnRequested(setting = process.env.TF_ENABLE_ONEDNN_OPTS): boolean | undefined {
  if (setting === undefined || setting === '') return undefined;
  const s = setting.toLowerCase();
  if (s === '1' || s === 'true') return true;
  if (s === '0' || s === 'false') return false;
  return undefined;
}

/**
 * Reads oneDNN's state off the LayerNorm probe: with oneDNN on, TensorFlow's
 * eager runtime labels every `_Mkl*` op for its layout rewrite, so the plain
 * `_MklLayerNorm` kernel is not found and the error names the label.
 */
export function onednnFromProbe(layerNorm: { ok: true } | { ok: false; message: string }): boolean | null {
  if (layerNorm.ok) return false;
  if (layerNorm.message.includes('MklNameChangeOp') || layerNorm.message.includes('MklLayoutDependentOp')) return true;
  return onednnRequested() ?? null;
}

export function numericsEnvironment(backend: string, threads: number, probe: NativeProbe): NumericsEnvironment {
  return {
    backend,
    tensorflow: probe.tensorflow,
    onednn: probe.onednn,
    onednn_setting: process.env.TF_ENABLE_ONEDNN_OPTS ?? null,
    cpu: cpuDescription(),
    threads,
    fast_paths: { layer_norm: probe.layerNormKernel ? 'native' : 'composite' },
  };
}

const onOff = (v: boolean | null | undefined) => (v === true ? 'on' : v === false ? 'off' : 'unknown');

/**
 * Why a run recorded under `recorded` cannot give the same bits here, or
 * undefined when nothing that changes them differs. The CPU model alone is not
 * compared: kernels are chosen by vector extensions, not by name.
 */
export function numericsDifference(recorded: Partial<NumericsEnvironment>, current: NumericsEnvironment): string | undefined {
  const diffs: string[] = [];
  if (recorded.backend !== undefined && recorded.backend !== current.backend) diffs.push(`backend ${recorded.backend} there, ${current.backend} here`);
  if (recorded.tensorflow !== undefined && recorded.tensorflow !== current.tensorflow) diffs.push(`TensorFlow ${recorded.tensorflow} there, ${current.tensorflow} here`);
  if (recorded.onednn !== undefined && recorded.onednn !== null && current.onednn !== null && recorded.onednn !== current.onednn) {
    diffs.push(`oneDNN ${onOff(recorded.onednn)} there, ${onOff(current.onednn)} here (TF_ENABLE_ONEDNN_OPTS=${recorded.onednn ? 1 : 0} reproduces it)`);
  }
  if (recorded.threads !== undefined && recorded.threads !== current.threads) diffs.push(`${recorded.threads} TensorFlow thread(s) there, ${current.threads} here`);
  const ext = recorded.cpu?.vector_extensions;
  if (ext && ext.join(' ') !== current.cpu.vector_extensions.join(' ')) {
    diffs.push(`CPU vector extensions ${ext.join(' ') || 'none'} there (${recorded.cpu!.model}), ${current.cpu.vector_extensions.join(' ') || 'none'} here (${current.cpu.model})`);
  }
  if (recorded.fast_paths && recorded.fast_paths.layer_norm !== current.fast_paths.layer_norm) {
    diffs.push(`LayerNorm ran ${recorded.fast_paths.layer_norm} there, ${current.fast_paths.layer_norm} here`);
  }
  return diffs.length ? diffs.join('; ') : undefined;
}
