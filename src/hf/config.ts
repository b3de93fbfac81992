import type { GptConfig, HeadKind } from '../model/config.js';
import type { Tokenizer } from '../tokenizer/index.js';
import { HfError } from './errors.js';

/** What rlhf's model is, in transformers' GPT2Config terms (everything else there must keep its default). */
const ACTIVATIONS = ['gelu_new', 'gelu_pytorch_tanh'];
const LAYER_NORM_EPS = 1e-5;
const ARCHITECTURES: Record<string, HeadKind> = { GPT2LMHeadModel: 'lm', GPT2ForSequenceClassification: 'score' };

/** config.json for a checkpoint: GPT2LMHeadModel, or GPT2ForSequenceClassification with one label for a scorer. */
export function hfModelConfig(cfg: GptConfig, head: HeadKind, tokenizer: Tokenizer): Record<string, unknown> {
  return {
    architectures: [head === 'lm' ? 'GPT2LMHeadModel' : 'GPT2ForSequenceClassification'],
    model_type: 'gpt2',
    vocab_size: cfg.vocab_size,
    n_positions: cfg.context_length,
    n_embd: cfg.d_model,
    n_layer: cfg.n_layer,
    n_head: cfg.n_head,
    n_inner: null,
    activation_function: 'gelu_new',
    resid_pdrop: cfg.dropout,
    embd_pdrop: cfg.dropout,
    attn_pdrop: cfg.dropout,
    layer_norm_epsilon: LAYER_NORM_EPS,
    initializer_range: 0.02,
    scale_attn_weights: true,
    scale_attn_by_inverse_layer_idx: false,
    reorder_and_upcast_attn: false,
    tie_word_embeddings: true,
    use_cache: true,
    bos_token_id: tokenizer.eosId,
    eos_token_id: tokenizer.eosId,
    // The scorer reads the last token that is not padding, where rlhf reads its reward (the final EOS).
    // Where padding is EOS (GPT-2's vocabulary) that would skip the EOS: no pad id makes HF read
    // the last position instead (one row per call: HF refuses unpadded batches then).
    pad_token_id: head === 'score' && tokenizer.padId === tokenizer.eosId ? null : tokenizer.padId,
    ...(head === 'score' ? { num_labels: 1, id2label: { 0: 'LABEL_0' }, label2id: { LABEL_0: 0 } } : {}),
    torch_dtype: 'float32',
  };
}

export function hfGenerationConfig(tokenizer: Tokenizer): Record<string, unknown> {
  return { bos_token_id: tokenizer.eosId, eos_token_id: tokenizer.eosId, pad_token_id: tokenizer.padId };
}

export interface ImportedConfig {
  model: GptConfig;
  head: HeadKind;
  eosId?: number;
  padId?: number;
}

/** Reads a GPT-2 config.json; anything rlhf's model cannot reproduce is refused, naming the field. */
export function parseHfConfig(json: Record<string, unknown>, file: string): ImportedConfig {
  const refuse = (field: string, why: string): never => {
    throw new HfError(`${file}: ${field} ${why}`);
  };
  const show = (k: string): string => JSON.stringify(json[k]);
  if (json.model_type !== 'gpt2') refuse('model_type', `${show('model_type')} is not supported (GPT-2 family only: "gpt2")`);
  const arch = json.architectures;
  let head: HeadKind = 'lm';
  if (arch !== undefined && arch !== null) {
    if (!Array.isArray(arch) || arch.length !== 1 || !(arch[0] in ARCHITECTURES)) {
      refuse('architectures', `${show('architectures')} is not supported (${Object.keys(ARCHITECTURES).join(' or ')})`);
    }
    head = ARCHITECTURES[(arch as string[])[0]];
  }
  const int = (k: string): number => {
    const v = json[k];
    if (!Number.isInteger(v) || (v as number) < 1) refuse(k, `must be a positive integer, found ${show(k)}`);
    return v as number;
  };
  const model = { vocab_size: int('vocab_size'), n_layer: int('n_layer'), n_head: int('n_head'), d_model: int('n_embd'), context_length: int('n_positions'), dropout: 0 };
  if (model.d_model % model.n_head !== 0) refuse('n_embd', `(${model.d_model}) is not divisible by n_head (${model.n_head})`);
  const has = (k: string, dflt: unknown): unknown => (json[k] === undefined ? dflt : json[k]);
  if (!ACTIVATIONS.includes(has('activation_function', 'gelu_new') as string)) refuse('activation_function', `${show('activation_function')} is not supported (gelu_new: GELU, tanh approximation)`);
  if (has('layer_norm_epsilon', LAYER_NORM_EPS) !== LAYER_NORM_EPS) refuse('layer_norm_epsilon', `${show('layer_norm_epsilon')} is not supported (1e-5)`);
  const inner = has('n_inner', null);
  if (inner !== null && inner !== 4 * model.d_model) refuse('n_inner', `${show('n_inner')} is not supported (null or 4·n_embd = ${4 * model.d_model})`);
  if (has('tie_word_embeddings', true) !== true) refuse('tie_word_embeddings', 'false is not supported (the LM head is the token embedding)');
  if (has('scale_attn_weights', true) !== true) refuse('scale_attn_weights', 'false is not supported (attention scaled by 1/sqrt(head dim))');
  if (has('scale_attn_by_inverse_layer_idx', false) !== false) refuse('scale_attn_by_inverse_layer_idx', 'true is not supported');
  if (has('add_cross_attention', false) !== false) refuse('add_cross_attention', 'true is not supported (decoder only)');
  const drops = ['resid_pdrop', 'embd_pdrop', 'attn_pdrop'].map((k) => has(k, 0.1));
  if (drops.some((p) => typeof p !== 'number' || p < 0 || p >= 1) || new Set(drops).size !== 1) {
    refuse('resid_pdrop/embd_pdrop/attn_pdrop', `(${drops.join(', ')}) must be one rate in [0, 1) (rlhf has one dropout)`);
  }
  model.dropout = drops[0] as number;
  if (head === 'score') {
    const labels = json.num_labels ?? (json.id2label ? Object.keys(json.id2label as object).length : 2);
    if (labels !== 1) refuse('num_labels', `${JSON.stringify(labels)} is not supported (one score: num_labels 1)`);
  }
  const optionalId = (k: string): number | undefined => {
    const v = json[k];
    if (v === undefined || v === null) return undefined;
    if (!Number.isInteger(v) || (v as number) < 0 || (v as number) >= model.vocab_size) refuse(k, `must be a token id in [0, ${model.vocab_size}), found ${show(k)}`);
    return v as number;
  };
  return { model, head, eosId: optionalId('eos_token_id'), padId: optionalId('pad_token_id') };
}
