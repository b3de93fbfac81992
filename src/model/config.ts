/** Shape of a GPT-2-style decoder. Field names match the YAML `model:` section. */
export interface GptConfig {
  vocab_size: number;
  n_layer: number;
  n_head: number;
  d_model: number;
  context_length: number;
  dropout: number;
}

/** A model is either a language model (LM head tied to `wte`) or a scalar scorer (reward/value). */
export type HeadKind = 'lm' | 'score';

export function headDim(cfg: GptConfig): number {
  return cfg.d_model / cfg.n_head;
}

/** Parameter count of the trunk (+ scalar head), with the LM head tied to `wte`. */
export function countParams(cfg: GptConfig, head: HeadKind = 'lm'): number {
  const d = cfg.d_model;
  const perBlock = 2 * d + (d * 3 * d + 3 * d) + (d * d + d) + 2 * d + (d * 4 * d + 4 * d) + (4 * d * d + d);
  const trunk = cfg.vocab_size * d + cfg.context_length * d + cfg.n_layer * perBlock + 2 * d;
  return trunk + (head === 'score' ? d + 1 : 0);
}

/**
 * Training FLOPs per token (forward + backward = 3× forward), counting matmuls
 * including attention scores, as in the PaLM/nanoGPT estimate 6N + 12·L·d·T.
 */
export function trainFlopsPerToken(cfg: GptConfig): number {
  const nonEmbedding = countParams(cfg) - cfg.context_length * cfg.d_model;
  return 6 * nonEmbedding + 12 * cfg.n_layer * cfg.d_model * cfg.context_length;
}
