import { z } from 'zod';
import { DataError } from '../data/corpus.js';
import { readJsonl } from '../data/jsonl.js';
import type { Tokenizer } from '../tokenizer/index.js';

/**
 * SFT demonstrations: `{prompt, response}` lines, or chat `{messages: [...]}`
 * lines rendered with a plain template ("User: …\nAssistant: …"), where the
 * last assistant message is the response and everything before it the prompt.
 */
const message = z.object({ role: z.enum(['system', 'user', 'assistant']), content: z.string() }).strict();
const pair = z.object({ prompt: z.string(), response: z.string().min(1, 'empty response') }).strict();
const chat = z
  .object({ messages: z.array(message).min(1) })
  .strict()
  .refine((r) => r.messages[r.messages.length - 1].role === 'assistant', { message: 'last message must be from the assistant', path: ['messages'] })
  .refine((r) => r.messages[r.messages.length - 1].content.length > 0, { message: 'empty response', path: ['messages'] });
const record = (json: unknown): z.ZodType<z.infer<typeof pair> | z.infer<typeof chat>> =>
  json !== null && typeof json === 'object' && 'messages' in json ? chat : pair;

export interface Demonstration {
  prompt: string;
  response: string;
  /** file:line, for error messages. */
  source: string;
}

const ROLE_NAMES = { system: 'System', user: 'User', assistant: 'Assistant' } as const;

/** Renders a chat as prompt text ending in "Assistant: ", and the final reply. */
export function renderChat(messages: { role: keyof typeof ROLE_NAMES; content: string }[]): { prompt: string; response: string } {
  const history = messages.slice(0, -1).map((m) => `${ROLE_NAMES[m.role]}: ${m.content}\n`);
  return { prompt: `${history.join('')}${ROLE_NAMES.assistant}: `, response: messages[messages.length - 1].content };
}

export function readDemonstrations(file: string): Demonstration[] {
  return readJsonl(file, record).map(({ value, line }) => {
    const pr = 'messages' in value ? renderChat(value.messages) : value;
    return { prompt: pr.prompt, response: pr.response, source: `${file}:${line}` };
  });
}

/** A tokenised demonstration: ids = prompt ++ response ++ EOS, loss only on response and EOS. */
export interface SftSequence {
  ids: number[];
  /** Index of the first response token. */
  promptLength: number;
}

/**
 * Tokenises demonstrations for a model of context `contextLength`. Prompts too
 * long to fit are cut from the left (the response is what is learnt). Text the
 * tokenizer cannot represent is refused: it means the data does not belong to
 * the checkpoint's tokenizer.
 */
export function tokenizeDemonstrations(demos: readonly Demonstration[], tokenizer: Tokenizer, contextLength: number): { sequences: SftSequence[]; truncated: number } {
  const unk = (tokenizer as { unkId?: number }).unkId;
  let truncated = 0;
  const sequences = demos.map((d) => {
    let prompt = tokenizer.encode(d.prompt);
    const response = [...tokenizer.encode(d.response), tokenizer.eosId];
    if (unk !== undefined && [...prompt, ...response].includes(unk)) {
      throw new DataError(`${d.source}: text has characters the checkpoint's tokenizer does not know; the data does not match the model`);
    }
    // +1: the last token is only a target, never an input.
    if (prompt.length + response.length > contextLength + 1) {
      truncated++;
      const room = contextLength + 1 - response.length;
      if (room < 1) throw new DataError(`${d.source}: response of ${response.length} tokens does not fit model.context_length ${contextLength}`);
      prompt = prompt.slice(prompt.length - room);
    }
    return { ids: [...prompt, ...response], promptLength: prompt.length };
  });
  return { sequences, truncated };
}

/** Inputs, targets and loss weights of a right-padded batch, [B, T] row-major. */
export interface SftBatch {
  x: Int32Array;
  y: Int32Array;
  weights: Float32Array;
  B: number;
  T: number;
}

/**
 * Right-pads to the longest sequence in the batch. Padding sits after the real
 * tokens, so causal attention never lets it influence them and no mask is
 * needed; its weight is 0. Prompt targets get weight 0 too.
 */
export function sftBatch(seqs: readonly SftSequence[], padId: number): SftBatch {
  const B = seqs.length;
  const T = Math.max(...seqs.map((s) => s.ids.length)) - 1;
  const x = new Int32Array(B * T).fill(padId);
  const y = new Int32Array(B * T).fill(padId);
  const weights = new Float32Array(B * T);
  seqs.forEach((s, b) => {
    for (let t = 0; t < s.ids.length - 1; t++) {
      x[b * T + t] = s.ids[t];
      y[b * T + t] = s.ids[t + 1];
      // target t+1 is a response token (or EOS) iff t+1 >= promptLength
      weights[b * T + t] = t + 1 >= s.promptLength ? 1 : 0;
    }
  });
  return { x, y, weights, B, T };
}
