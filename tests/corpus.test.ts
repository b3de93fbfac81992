import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { detokenize, loadBrown, untagBrownDocument } from '../src/data/brown.js';
import { DataError, loadCorpus, splitTrainVal } from '../src/data/corpus.js';
import { generateQuickstart } from '../src/data/generate.js';

const QUICKSTART = fileURLToPath(new URL('../data/quickstart.txt', import.meta.url));

describe('quickstart corpus', () => {
  const committed = readFileSync(QUICKSTART);
  const fresh = generateQuickstart();

  it('is byte-identical to a fresh generation (regenerate: node dist/data/generate-cli.js)', () => {
    expect(Buffer.from(fresh, 'utf8').equals(committed)).toBe(true);
  });

  it('is 300-600 KB of plain ASCII paragraphs separated by blank lines', () => {
    expect(committed.length).toBeGreaterThan(300_000);
    expect(committed.length).toBeLessThan(600_000);
    expect(/^[\x20-\x7e\n]*$/.test(fresh)).toBe(true);
    expect(fresh.endsWith('\n')).toBe(true);
    expect(fresh).not.toMatch(/\n{3}/);
    const paragraphs = fresh.trimEnd().split('\n\n');
    expect(paragraphs.length).toBeGreaterThan(1000);
    for (const p of paragraphs.slice(0, 50)) {
      expect(p).toMatch(/^[A-Z"]/);
      expect(p).toMatch(/[.!?"]$/);
      expect(p).not.toContain('\n');
    }
  });

  it('has a small vocabulary of real words', () => {
    const vocab = new Set(fresh.toLowerCase().match(/[a-z']+/g));
    expect(vocab.size).toBeGreaterThan(200);
    expect(vocab.size).toBeLessThan(800);
    for (const w of ['the', 'was', 'said', 'happy', 'friends']) expect(vocab.has(w)).toBe(true);
  });

  it('depends only on its options', () => {
    const small = generateQuickstart({ targetChars: 5000 });
    expect(small.length).toBeGreaterThanOrEqual(5000);
    expect(small.length).toBeLessThan(6000);
    expect(fresh.startsWith(small.slice(0, -1) + '\n\n')).toBe(true); // same stream, stopped earlier
    expect(generateQuickstart({ seed: 'other', targetChars: 5000 })).not.toBe(generateQuickstart({ targetChars: 5000 }));
    expect(generateQuickstart({ seed: 7, targetChars: 5000 })).toBe(generateQuickstart({ seed: 7, targetChars: 5000 }));
  });
});

describe('Brown corpus', () => {
  const brown = loadBrown();

  it('has the measured size', () => {
    // Measured: 5,976,783 characters, 85 distinct characters.
    expect(brown.length).toBeGreaterThan(5_900_000);
    expect(brown.length).toBeLessThan(6_100_000);
    expect(new Set(brown).size).toBeLessThanOrEqual(90);
  });

  it('is plain text with the part-of-speech tags stripped', () => {
    expect(brown.startsWith('The Fulton County Grand Jury said Friday an investigation of Atlanta\'s recent primary election produced "no evidence" that any irregularities took place.\n\n')).toBe(true);
    expect(brown.slice(0, 200_000)).not.toMatch(/\/[a-z$*+-]+\b/);
    // Over the whole corpus only genuine slashes remain ("and/or", "1/2", "mg/l"):
    // a tagged text would have one per token (over a million).
    const slashed = brown.match(/\S\/\S/g) ?? [];
    expect(slashed.length).toBeLessThan(300);
    // (Booleans, so that a failure does not print six megabytes.)
    expect(brown.includes('``')).toBe(false);
    expect(/(^|\s)''/.test(brown)).toBe(false); // '' remains only as inches: 1/4''
    expect((brown.match(/[;?!]{2}/g) ?? []).length).toBeLessThan(5); // was ~6,000 before de-doubling
    expect((brown.match(/ [,.;:!?)]/g) ?? []).length).toBeLessThan(5);
    expect(brown.includes('\t')).toBe(false);
    expect(/\n{3}/.test(brown)).toBe(false);
  });

  it('is what loadCorpus({ source: "brown" }) returns', () => {
    expect(loadCorpus({ source: 'brown' })).toBe(brown);
  });

  it('untags and re-spaces a tagged sample', () => {
    const tagged =
      '\n\n\tThe/at Fulton/np-tl jury/nn said/vbd ,/, ``/`` it/pps is/bez (/( very/ql )/) good/jj \'\'/\'\' ./.\n' +
      'It/pps won/vbd 1/2/cd of/in Jr./np ./.\n\n\n' +
      'Big/jj-hl news/nn-hl \n\tIt/pps was/bedz ;/. ;/. fine/jj ?/. ?/. (/( (/( Yes/rb )/) )/) !/.\n';
    expect(untagBrownDocument(tagged)).toEqual([
      'The Fulton jury said, "it is (very) good". It won 1/2 of Jr.',
      'Big news',
      'It was; fine? (Yes)!',
    ]);
    expect(detokenize(['a', '--', 'b', "'", 'c'])).toBe("a -- b' c");
  });
});

describe('loadCorpus', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rlhf-corpus-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const expectDataError = (path: string, reason: RegExp): void => {
    let caught: unknown;
    try {
      loadCorpus({ path });
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(DataError);
    const message = (caught as Error).message;
    expect(message).toContain(path);
    expect(message).toMatch(reason);
    expect(message).not.toContain('\n');
  };

  it('reads a file and normalises line endings', () => {
    const p = join(dir, 'crlf.txt');
    writeFileSync(p, 'one\r\ntwo\rthree\n');
    expect(loadCorpus({ path: p })).toBe('one\ntwo\nthree\n');
    expect(loadCorpus({ path: QUICKSTART })).toBe(readFileSync(QUICKSTART, 'utf8'));
  });

  it('throws DataError for a missing file', () => {
    expectDataError(join(dir, 'nope.txt'), /not found/);
  });

  it('throws DataError for an empty file', () => {
    const p = join(dir, 'empty.txt');
    writeFileSync(p, '');
    expectDataError(p, /empty/);
  });

  it('throws DataError for a whitespace-only file', () => {
    const p = join(dir, 'blank.txt');
    writeFileSync(p, ' \n\t\r\n  \n');
    expectDataError(p, /only whitespace/);
  });

  it('throws DataError for a file that is not UTF-8', () => {
    const p = join(dir, 'latin1.txt');
    writeFileSync(p, Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x0a])); // "café" in Latin-1
    expectDataError(p, /not valid UTF-8.*offset 3/);
  });

  it('throws DataError for a directory', () => {
    expectDataError(dir, /directory/);
  });
});

describe('splitTrainVal', () => {
  const text = readFileSync(QUICKSTART, 'utf8');

  it('splits about the last fraction at a paragraph boundary', () => {
    for (const f of [0.05, 0.1, 0.25]) {
      const { train, val } = splitTrainVal(text, f);
      expect(train + val).toBe(text);
      expect(Math.abs(val.length / text.length - f)).toBeLessThan(0.01);
      expect(train.endsWith('\n\n')).toBe(true);
      expect(val).toMatch(/^[A-Z"]/);
    }
  });

  it('is deterministic', () => {
    expect(splitTrainVal(text, 0.1)).toEqual(splitTrainVal(text, 0.1));
  });

  it('falls back to a line boundary, then to the exact point', () => {
    const lines = Array.from({ length: 100 }, (_, i) => `line ${i}`).join('\n');
    const byLine = splitTrainVal(lines, 0.1);
    expect(byLine.train + byLine.val).toBe(lines);
    expect(byLine.train.endsWith('\n')).toBe(true);
    const flat = 'x'.repeat(1000);
    expect(splitTrainVal(flat, 0.1)).toEqual({ train: 'x'.repeat(900), val: 'x'.repeat(100) });
  });

  it('handles the edges', () => {
    expect(splitTrainVal('abc', 0)).toEqual({ train: 'abc', val: '' });
    const tiny = splitTrainVal('ab', 0.5);
    expect(tiny.train.length).toBe(1);
    expect(tiny.val.length).toBe(1);
    expect(() => splitTrainVal('abc', 1)).toThrow(RangeError);
    expect(() => splitTrainVal('abc', -0.1)).toThrow(RangeError);
    expect(() => splitTrainVal('abc', Number.NaN)).toThrow(RangeError);
  });
});
