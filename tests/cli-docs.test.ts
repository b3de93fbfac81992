import { describe, it, expect } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { buildProgram } from '../src/cli/main.js';
import { repoRoot } from './helpers.js';

/**
 * The docs and the CLI agree: every `--flag` on a line that names `rlhf <command>` (README.md,
 * and each command's --help examples) is an option of that command. `rlhf eval --force` was once
 * documented but rejected as an unknown option.
 */
const program = buildProgram();
const optionsOf = new Map(program.commands.map((c) => [c.name(), new Set(c.options.flatMap((o) => [o.long, o.short].filter((f): f is string => !!f)))]));
const everywhere = new Set(['--help', '-h', ...program.options.flatMap((o) => [o.long, o.short].filter((f): f is string => !!f))]);

/** [command, flag] pairs found in `text`, and the flags no command named on their line has. */
function documentedFlags(text: string): { seen: string[]; unknown: string[] } {
  const seen: string[] = [];
  const unknown: string[] = [];
  for (const line of text.split('\n')) {
    const named = [...line.matchAll(/rlhf ([a-z-]+)/g)].map((m) => m[1]).filter((c) => optionsOf.has(c));
    if (!named.length) continue;
    for (const [flag] of line.matchAll(/(?<![\w-])--[a-z][a-z0-9-]*/g)) {
      if (everywhere.has(flag)) continue;
      const owner = named.find((c) => optionsOf.get(c)!.has(flag));
      if (owner) seen.push(`${owner} ${flag}`);
      else unknown.push(`${flag} (rlhf ${named.join(' / rlhf ')}): ${line.trim().slice(0, 120)}`);
    }
  }
  return { seen, unknown };
}

function helpText(cmd: Command): string {
  let text = '';
  cmd.configureOutput({ writeOut: (s) => (text += s), writeErr: (s) => (text += s) });
  cmd.outputHelp();
  return text;
}

describe('docs and CLI agree', () => {
  it("every flag README.md shows with a command is one of that command's options", () => {
    const { seen, unknown } = documentedFlags(fs.readFileSync(path.join(repoRoot, 'README.md'), 'utf8'));
    expect(unknown).toEqual([]);
    // the check reaches the workflow commands' documented flags
    for (const f of ['eval --policy', 'eval --force', 'sweep --grid', 'sweep --jobs', 'sweep --print-commands', 'report --out', 'report --json']) expect(seen).toContain(f);
  });

  it("every flag in a command's --help examples is one of the options of the command it runs", () => {
    const all = program.commands.map((c) => documentedFlags(helpText(c)));
    expect(all.flatMap((r) => r.unknown)).toEqual([]);
    expect(all.flatMap((r) => r.seen)).toContain('sweep --print-commands');
  });
});
