import fs from 'node:fs';
import type { Logger } from 'pino';
import { tf, type Tensor } from '../backend/tf.js';

/**
 * TensorBoard event files for a stage (`tensorboard: true` in the config): every
 * `{step, ...metrics}` line a stage appends to metrics.jsonl is also written as
 * scalar summaries, tagged with the metric's name (TRL's `objective/kl` etc. group
 * into TensorBoard sections by their prefix). `tensorboard --logdir runs/<name>`
 * then shows each stage as one run.
 *
 * This drives TensorFlow's own summary ops (SummaryWriter, CreateSummaryFileWriter,
 * WriteScalarSummary, FlushSummaryWriter, CloseSummaryWriter) through tfjs-node's
 * native backend — the same ops behind `tf.node.summaryFileWriter` — rather than
 * that helper, because the helper caches one writer per logdir for the life of
 * the process and cannot close it: a stage re-run with --force in the same
 * process (pipeline, sweeps, tests) would keep writing into the deleted file.
 * Closing removes the writer from TensorFlow's resource manager, so the next
 * open of the same directory starts a fresh event file.
 */

/** The part of tfjs-node's NodeJSKernelBackend this uses (public methods of that class). */
interface SummaryBackend {
  summaryWriter(logdir: string): Tensor;
  createSummaryFileWriter(handle: Tensor, logdir: string, maxQueue?: number, flushMillis?: number, filenameSuffix?: string): void;
  writeScalarSummary(handle: Tensor, step: number, name: string, value: number): void;
  flushSummaryWriter(handle: Tensor): void;
  executeMultipleOutputs(name: string, opAttrs: unknown[], inputs: Tensor[], numOutputs: number): Tensor[];
}

function summaryBackend(): SummaryBackend | undefined {
  if (tf.getBackend() !== 'tensorflow') return undefined;
  const backend = tf.backend() as unknown as Partial<SummaryBackend>;
  return typeof backend.summaryWriter === 'function' && typeof backend.createSummaryFileWriter === 'function'
    ? (backend as SummaryBackend)
    : undefined;
}

export class TensorBoardWriter {
  private closed = false;

  private constructor(
    readonly logdir: string,
    private readonly backend: SummaryBackend,
    private readonly handle: Tensor,
  ) {}

  /**
   * Opens an event-file writer in `logdir` (created if missing). On the pure-JS
   * backend, which has no summary ops, it logs a warning and returns undefined.
   */
  static open(logdir: string, logger?: Logger): TensorBoardWriter | undefined {
    const backend = summaryBackend();
    if (!backend) {
      logger?.warn({ logdir }, `tensorboard: the "${tf.getBackend()}" backend cannot write event files; only the native tensorflow backend can`);
      return undefined;
    }
    fs.mkdirSync(logdir, { recursive: true });
    // tidy disposes the scalar inputs createSummaryFileWriter makes (logdir, queue, ...); the handle is kept.
    const handle = tf.tidy(() => {
      const h = backend.summaryWriter(logdir);
      backend.createSummaryFileWriter(h, logdir, 100, 10_000, '.v2');
      return h;
    });
    return new TensorBoardWriter(logdir, backend, handle);
  }

  /** Writes every numeric metric as a scalar at `step`, then flushes (a crash keeps what was logged). */
  scalars(step: number, values: Record<string, unknown>): void {
    if (this.closed) return;
    const s = Math.round(step);
    for (const [name, value] of Object.entries(values)) {
      if (typeof value === 'number') this.backend.writeScalarSummary(this.handle, s, name, value);
    }
    this.backend.flushSummaryWriter(this.handle);
  }

  /** Flushes and closes the event file; the writer is removed from TensorFlow's resource manager. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.backend.flushSummaryWriter(this.handle);
    this.backend.executeMultipleOutputs('CloseSummaryWriter', [], [this.handle], 0);
    this.handle.dispose();
  }
}

/** Event files (`events.out.tfevents.*`) under a TensorBoard log directory. */
export function eventFiles(logdir: string): string[] {
  if (!fs.existsSync(logdir)) return [];
  return fs.readdirSync(logdir).filter((f) => f.startsWith('events.out.tfevents.'));
}
