import type { Tensor } from '../backend/tf.js';
import type { LoadedCheckpoint, ResumeState } from '../checkpoint/checkpoint.js';
import { Rng, type RngState } from '../util/rng.js';
import type { AdamW } from './adamw.js';

/** Optimizer moments and loop state saved with a periodic checkpoint. */
export function trainingState(optimizer: AdamW, rng: Rng, step: number, extra: Record<string, unknown> = {}): ResumeState {
  const opt = optimizer.getState();
  const tensors = new Map<string, Tensor>([...opt.tensors].map(([k, v]) => [`optimizer/${k}`, v]));
  return { trainer: { step, optimizer_step: opt.step, rng: rng.state(), ...extra }, tensors };
}

/** Restores what `trainingState` saved; returns the step to continue from and the RNG. */
export function restoreTrainingState(ckpt: LoadedCheckpoint, optimizer: AdamW, seed: number): { step: number; rng: Rng } {
  const state = ckpt.resume;
  if (!state) throw new Error(`${ckpt.dir}: checkpoint has no resume state`);
  const tensors = new Map<string, Tensor>();
  for (const [k, v] of state.tensors) if (k.startsWith('optimizer/')) tensors.set(k.slice('optimizer/'.length), v);
  optimizer.setState({ step: state.trainer.optimizer_step as number, tensors });
  for (const t of state.tensors.values()) t.dispose();
  return { step: state.trainer.step as number, rng: new Rng(seed, state.trainer.rng as RngState) };
}
