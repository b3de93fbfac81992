// Writes GPT-2's vocab.json and merges.txt, derived offline from js-tiktoken's r50k
// (GPT-2) rank table (see src/tokenizer/ranks.ts). Usage: node scripts/gpt2-vocab.mjs OUT_DIR
import fs from 'node:fs';
import path from 'node:path';
import gpt2 from 'js-tiktoken/ranks/gpt2';
import { parsePackedRanks, ranksToVocab } from '../dist/tokenizer/ranks.js';

const out = process.argv[2];
if (!out) throw new Error('usage: node scripts/gpt2-vocab.mjs OUT_DIR');
const { vocab, merges } = ranksToVocab(parsePackedRanks(gpt2.bpe_ranks));
for (const [text, id] of Object.entries(gpt2.special_tokens)) vocab[id] = text;
fs.mkdirSync(out, { recursive: true });
fs.writeFileSync(path.join(out, 'vocab.json'), JSON.stringify(Object.fromEntries(vocab.map((t, i) => [t, i]))));
fs.writeFileSync(path.join(out, 'merges.txt'), `#version: 0.2\n${merges.join('\n')}\n`);
console.log(`${out}: vocab.json (${vocab.length} tokens), merges.txt (${merges.length} merges)`);
