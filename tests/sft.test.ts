import { describe, it, expect } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DataError } from '../src/data/corpus.js';
import { readDemonstrations, renderChat, sftBatch, tokenizeDemonstrations } from '../src/sft/examples.js';
import { trainTokenizer } from '../src/tokenizer/index.js';
import { oneLineError } from './helpers.js';

const tokenizer = trainTokenizer({ type: 'char' }, 'abcdefghijklmnopqrstuvwxyz :=+0123456789\n');

function jsonl(lines: string[]): string {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'rlhf-sft-')), 'demos.jsonl');
  fs.writeFileSync(file, lines.join('\n') + '\n');
  return file;
}

const errorOf = (fn: () => unknown): string => oneLineError(DataError, fn);

describe('SFT data', () => {
  it('gives prompt tokens zero loss weight and response + EOS weight one', () => {
    const { sequences } = tokenizeDemonstrations([{ prompt: 'ab=', response: 'cd', source: 'x:1' }], tokenizer, 32);
    expect(sequences[0].ids).toEqual([...tokenizer.encode('ab=cd'), tokenizer.eosId]);
    expect(sequences[0].promptLength).toBe(3);
    const batch = sftBatch(sequences, tokenizer.padId);
    // inputs a b = c d → targets b = c d EOS; only c, d, EOS are response targets
    expect(batch.T).toBe(5);
    expect(Array.from(batch.y)).toEqual([...tokenizer.encode('b=cd'), tokenizer.eosId]);
    expect(Array.from(batch.weights)).toEqual([0, 0, 1, 1, 1]);
  });

  it('right-pads a batch with zero-weight padding', () => {
    const { sequences } = tokenizeDemonstrations(
      [
        { prompt: 'a=', response: 'b', source: 'x:1' },
        { prompt: 'abc=', response: 'de', source: 'x:2' },
      ],
      tokenizer,
      32,
    );
    const batch = sftBatch(sequences, tokenizer.padId);
    expect(batch.B).toBe(2);
    expect(batch.T).toBe(6);
    expect(Array.from(batch.weights.slice(0, 6))).toEqual([0, 1, 1, 0, 0, 0]);
    expect(Array.from(batch.x.slice(3, 6))).toEqual([tokenizer.padId, tokenizer.padId, tokenizer.padId]);
    expect(Array.from(batch.weights.slice(6))).toEqual([0, 0, 0, 1, 1, 1]);
  });

  it('cuts over-long prompts from the left and keeps the response', () => {
    const { sequences, truncated } = tokenizeDemonstrations([{ prompt: 'abcdefghij=', response: 'xy', source: 'x:1' }], tokenizer, 6);
    expect(truncated).toBe(1);
    expect(sequences[0].ids).toEqual([...tokenizer.encode('hij=xy'), tokenizer.eosId]);
    expect(sequences[0].promptLength).toBe(4);
  });

  it('renders chat messages with the plain template', () => {
    const r = renderChat([
      { role: 'system', content: 'be brief' },
      { role: 'user', content: 'hi' },
      { role: 'assistant', content: 'hello' },
    ]);
    expect(r).toEqual({ prompt: 'System: be brief\nUser: hi\nAssistant: ', response: 'hello' });
  });

  it('reads prompt/response and messages lines', () => {
    const file = jsonl([JSON.stringify({ prompt: 'a', response: 'b' }), '', JSON.stringify({ messages: [{ role: 'user', content: 'q' }, { role: 'assistant', content: 'r' }] })]);
    const demos = readDemonstrations(file);
    expect(demos.map((d) => [d.prompt, d.response, d.source])).toEqual([
      ['a', 'b', `${file}:1`],
      ['User: q\nAssistant: ', 'r', `${file}:3`],
    ]);
  });

  it('rejects bad JSONL naming file:line', () => {
    const ok = JSON.stringify({ prompt: 'a', response: 'b' });
    const broken = jsonl([ok, '{"prompt": "a", "response": ']);
    expect(errorOf(() => readDemonstrations(broken))).toMatch(new RegExp(`${broken}:2: not valid JSON`));
    const missing = jsonl([ok, ok, JSON.stringify({ prompt: 'a' })]);
    expect(errorOf(() => readDemonstrations(missing))).toMatch(new RegExp(`${missing}:3: response: missing field`));
    const empty = jsonl([JSON.stringify({ prompt: 'a', response: '' })]);
    expect(errorOf(() => readDemonstrations(empty))).toMatch(new RegExp(`${empty}:1: response: empty response`));
    const nofile = '/nonexistent/demos.jsonl';
    expect(errorOf(() => readDemonstrations(nofile))).toMatch(/\/nonexistent\/demos\.jsonl: cannot read file/);
  });

  it('refuses text the tokenizer cannot represent (data does not match the checkpoint)', () => {
    expect(errorOf(() => tokenizeDemonstrations([{ prompt: 'a=', response: 'Ünïcode', source: 'd.jsonl:7' }], tokenizer, 32))).toMatch(
      /d\.jsonl:7: text has characters the checkpoint's tokenizer does not know/,
    );
  });
});
