import { describe, expect, it } from 'vitest';
import { distinctN } from '../src/stages/eval.js';
import { getTask } from '../src/tasks/index.js';

describe('distinctN', () => {
  it('counts word n-grams by default', () => {
    // bigrams: "a b", "b a", "a b" | "a b" → 2 distinct of 4
    expect(distinctN(['a b a b', 'a  b\n'], 2)).toBe(0.5);
    expect(distinctN(['a b a b', 'a  b\n'], 1)).toBe(2 / 6);
    // one-word answers have no word bigrams at all
    expect(distinctN(['81\n', '17\n'], 2)).toBe(0);
  });

  it('counts characters before the stop sequence with unit chars', () => {
    // "81", "18", "811" (cut at \n): bigrams 81 | 18 | 81 11 → {81, 18, 11} of 4
    expect(distinctN(['81\n9', '18\n', '811'], 2, 'chars', ['\n'])).toBe(3 / 4);
    // unigrams 8 1 | 1 8 | 8 1 1 → {8, 1} of 7
    expect(distinctN(['81\n9', '18\n', '811'], 1, 'chars', ['\n'])).toBe(2 / 7);
    // a policy that always answers the same collapses to 1 / (number of bigrams)
    expect(distinctN(Array(10).fill('100\n'), 2, 'chars', ['\n'])).toBe(2 / 20);
  });

  it('arithmetic uses characters, the word-level tasks words', () => {
    expect(getTask('arithmetic').diversityUnit).toBe('chars');
    expect(getTask('sentiment').diversityUnit ?? 'words').toBe('words');
    expect(getTask('randomwalks').diversityUnit ?? 'words').toBe('words');
  });
});
