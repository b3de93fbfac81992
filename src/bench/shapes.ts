import type { GptConfig } from '../model/config.js';

/** One benchmark shape: a model config plus the training batch size. */
export interface BenchShape {
  name: string;
  /** What the shape stands for, printed in the header. */
  about: string;
  cfg: GptConfig;
  /** Training batch (rows of `context_length` tokens). */
  batch: number;
  /** Timed training steps when `--steps` is not given. */
  defaultSteps: number;
  /** Run only when named with --shape (minutes per run, GBs of memory). */
  optIn?: boolean;
}

/** Character vocabulary of Tiny Shakespeare, as in nanoGPT's char models. */
const CHAR_VOCAB = 65;

export const SHAPES: readonly BenchShape[] = [
  {
    name: 'nanogpt-cpu',
    about: "nanoGPT's shakespeare_char CPU recipe",
    cfg: { vocab_size: CHAR_VOCAB, n_layer: 4, n_head: 4, d_model: 128, context_length: 64, dropout: 0 },
    batch: 12,
    defaultSteps: 30,
  },
  {
    name: 'ci',
    about: 'configs/ci.yaml model (randomwalks, char vocab 28) at its PPO minibatch of 16 rows, full context',
    cfg: { vocab_size: 28, n_layer: 2, n_head: 2, d_model: 48, context_length: 32, dropout: 0 },
    batch: 16,
    defaultSteps: 60,
  },
  {
    name: 'sentiment',
    about: 'configs/sentiment.yaml model (char vocab 46) at its PPO minibatch of 8 rows, full context',
    cfg: { vocab_size: 46, n_layer: 3, n_head: 4, d_model: 96, context_length: 80, dropout: 0 },
    batch: 8,
    defaultSteps: 40,
  },
  {
    name: 'gpt-10m',
    about: "nanoGPT's shakespeare_char GPU recipe (~10M parameters)",
    cfg: { vocab_size: CHAR_VOCAB, n_layer: 6, n_head: 6, d_model: 384, context_length: 256, dropout: 0 },
    batch: 8,
    defaultSteps: 8,
  },
  {
    name: 'gpt2-small',
    about: 'GPT-2 small (124M), the size `rlhf import` reads from Hugging Face; opt-in: --shape gpt2-small',
    cfg: { vocab_size: 50257, n_layer: 12, n_head: 12, d_model: 768, context_length: 1024, dropout: 0 },
    batch: 1,
    defaultSteps: 2,
    optIn: true,
  },
];

/** The shapes `npm run bench` runs when no --shape is given. */
export const DEFAULT_SHAPES: readonly BenchShape[] = SHAPES.filter((s) => !s.optIn);

export function shapeByName(name: string): BenchShape {
  const s = SHAPES.find((x) => x.name === name);
  if (!s) throw new Error(`unknown shape "${name}" (expected one of: ${SHAPES.map((x) => x.name).join(', ')})`);
  return s;
}
