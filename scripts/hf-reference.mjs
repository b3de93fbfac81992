// rlhf's side of the Hugging Face cross-check (scripts/hf_check.py): token rows, rlhf's
// logits or normalised rewards, greedy generations and tokenizer ids, as one JSON file.
// Usage: node scripts/hf-reference.mjs CHECKPOINT OUT.json ["text" ...]
import fs from 'node:fs';
import { tf } from '../dist/backend/tf.js';
import { loadCheckpoint } from '../dist/checkpoint/checkpoint.js';
import { forward, lmLogits } from '../dist/model/gpt.js';
import { padRows, rewardInput, scoreRows } from '../dist/reward/score.js';
import { generate } from '../dist/sample/generate.js';
import { encodePrompt } from '../dist/sample/tokens.js';
import { Rng } from '../dist/util/rng.js';

const [ckptDir, outFile, ...given] = process.argv.slice(2);
const ckpt = loadCheckpoint(ckptDir);
const { tokenizer: tok, params, meta } = ckpt;
const cfg = meta.model;
const texts = given.length ? given : ['The little fox', 'Hello, world!\nA second line.', "it's 42 — naïve café 🤗", 'abc', '  spaces   here '];
const ref = { head: meta.head, texts, text_ids: texts.map((t) => tok.encode(t)) };
// generate() never samples padding or <unk> when they are no stop token (here: no stop tokens)
ref.banned = [tok.padId, ...(tok.unkId !== undefined ? [tok.unkId] : [])];
const rows = texts.map((t) => encodePrompt(tok, t).slice(0, cfg.context_length));
if (meta.head === 'lm') {
  ref.rows = rows;
  ref.logits = rows.map((r) => {
    const t = tf.tidy(() => lmLogits(params, forward(params, cfg, tf.tensor2d([r], [1, r.length], 'int32')).hidden));
    const a = t.arraySync();
    t.dispose();
    return a;
  });
  const prompts = rows.map((r) => r.slice(0, Math.min(r.length, Math.floor(cfg.context_length / 2))));
  const n = Math.min(24, cfg.context_length - Math.max(...prompts.map((p) => p.length)));
  ref.prompts = prompts;
  ref.greedy = prompts.map((p) => generate(params, cfg, [p], tok, { maxNewTokens: n, temperature: 0, topK: 0, topP: 1, stopIds: [] }, new Rng(0)).responses[0]);
} else {
  const norm = meta.extra.reward_norm ?? { gain: 1, bias: 0 };
  ref.rows = rows.map((r) => rewardInput(r, [], tok.eosId).slice(-cfg.context_length));
  const t = tf.tidy(() => scoreRows(params, cfg, padRows(ref.rows, tok.padId, 'right')));
  ref.scores = Array.from(t.dataSync(), (s) => norm.gain * s + norm.bias);
  t.dispose();
}
fs.writeFileSync(outFile, JSON.stringify(ref));
console.log(`${outFile}: ${meta.head} ${rows.length} rows`);
