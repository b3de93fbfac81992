import { availableParallelism } from 'node:os';

/**
 * TensorFlow's intra-op thread count, chosen per model. Handing a kernel to a
 * second thread costs tens of µs here (hundreds for a oneDNN kernel), which only
 * pays off when kernels are big: on 2 cores, nanogpt-cpu (d 128) trains 12% and
 * generates 64% faster on one thread, while the 10.8M model (d 384) trains 22%
 * slower on one (bench/README.md). The count changes the order of floating-point
 * sums, so it is a config key, and the same config still gives the same bits.
 * TensorFlow reads it once, when it loads: set it before anything imports tf.
 */

export type ThreadsSetting = 'auto' | number;

/** Widest model that `auto` runs on one thread. */
export const AUTO_ONE_THREAD_MAX_D_MODEL = 256;

export function resolveThreads(setting: ThreadsSetting, dModel: number, cores = availableParallelism()): number {
  if (setting !== 'auto') return setting;
  return dModel <= AUTO_ONE_THREAD_MAX_D_MODEL ? 1 : cores;
}

/** The thread count a config runs with. */
export function configThreads(config: { threads: ThreadsSetting; model: { d_model: number } }): number {
  return resolveThreads(config.threads, config.model.d_model);
}

/** How many processes of `threadsEach` TensorFlow threads run side by side without oversubscribing the cores. */
export function jobsThatFit(threadsEach: number, cores = availableParallelism()): number {
  return Math.max(1, Math.floor(cores / threadsEach));
}

/** Sets TensorFlow's thread environment; takes effect only if TensorFlow has not loaded yet. */
export function configureThreads(threads: number): void {
  process.env.TF_NUM_INTRAOP_THREADS = String(threads);
  // With one intra-op thread, oneDNN kernels run on the calling thread instead of handing off to the pool.
  if (threads === 1) process.env.TF_ONEDNN_THREADPOOL_USE_CALLER_THREAD = '1';
  else delete process.env.TF_ONEDNN_THREADPOOL_USE_CALLER_THREAD;
}

/** The intra-op thread count TensorFlow was (or will be) loaded with. */
export function threadsInEffect(): number {
  const n = Number(process.env.TF_NUM_INTRAOP_THREADS);
  return Number.isInteger(n) && n > 0 ? n : availableParallelism();
}
