// GPT-2 tokenizer equality on the whole Brown corpus: rlhf's gpt2 tokenizer (vocab and
// merges derived from js-tiktoken's r50k table) against js-tiktoken itself, paragraph by
// paragraph. Prints tokens compared and mismatching paragraphs. Usage: node scripts/gpt2-tokenizer-check.mjs
import gpt2 from 'js-tiktoken/ranks/gpt2';
import { Tiktoken } from 'js-tiktoken/lite';
import { loadBrown } from '../dist/data/brown.js';
import { Gpt2Tokenizer } from '../dist/tokenizer/index.js';
import { parsePackedRanks, ranksToVocab } from '../dist/tokenizer/ranks.js';

const { vocab, merges } = ranksToVocab(parsePackedRanks(gpt2.bpe_ranks));
const ours = Gpt2Tokenizer.fromVocab([...vocab, '<|endoftext|>'], merges, 50256, 50256);
const reference = new Tiktoken(gpt2);
let tokens = 0;
let mismatches = 0;
const paragraphs = loadBrown().split('\n');
for (const p of paragraphs) {
  const want = reference.encode(p);
  tokens += want.length;
  if (ours.encode(p).join() !== want.join()) mismatches++;
}
console.log(JSON.stringify({ paragraphs: paragraphs.length, characters: paragraphs.reduce((n, p) => n + p.length + 1, -1), tokens, mismatched_paragraphs: mismatches }));
