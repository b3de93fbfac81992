import { describe, it, expect } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { UsageError } from '../src/workflow/errors.js';
import { expandIntegerRange, parseGrid } from '../src/workflow/sweep.js';
import { expectOneLineError, oneLineError, rlhf, runsDir, tinyRlhfConfig, writeConfig } from './helpers.js';

/** `--grid` integer ranges, and a sweep that refuses bad input before it runs or writes anything. */
describe('--grid integer ranges', () => {
  it('a..b is inclusive, a..b:step strides, and ranges mix with plain values', () => {
    expect(parseGrid('seed=1..5')).toEqual({ key: 'seed', values: ['1', '2', '3', '4', '5'] });
    expect(parseGrid('seed=4..4').values).toEqual(['4']);
    expect(parseGrid('seed=1..10:3').values).toEqual(['1', '4', '7', '10']);
    expect(parseGrid('seed=1..8:3').values).toEqual(['1', '4', '7']);
    expect(parseGrid('seed=-2..1').values).toEqual(['-2', '-1', '0', '1']);
    expect(parseGrid('seed=1..3, 20').values).toEqual(['1', '2', '3', '20']);
  });

  it('values that are not ranges stay as they are', () => {
    expect(expandIntegerRange('../data/a.jsonl', 'x')).toBeUndefined();
    expect(expandIntegerRange('0.1', 'x')).toBeUndefined();
    expect(parseGrid('sft.data.path=../a.jsonl,../b.jsonl').values).toEqual(['../a.jsonl', '../b.jsonl']);
  });

  it('malformed ranges are one-line errors naming the spec', () => {
    expect(oneLineError(UsageError, () => parseGrid('seed=5..1'))).toBe('--grid seed=5..1: range 5..1 ends below its start');
    expect(oneLineError(UsageError, () => parseGrid('seed=1.5..3'))).toMatch(/^--grid seed=1\.5\.\.3: "1\.5\.\.3" is not a range: expected integers a\.\.b/);
    expect(oneLineError(UsageError, () => parseGrid('seed=1..x'))).toMatch(/"1\.\.x" is not a range/);
    expect(oneLineError(UsageError, () => parseGrid('seed=1..'))).toMatch(/"1\.\." is not a range/);
    expect(oneLineError(UsageError, () => parseGrid('seed=1..5:0'))).toMatch(/needs a step ≥ 1/);
    expect(oneLineError(UsageError, () => parseGrid('seed=1..5:-1'))).toMatch(/is not a range/);
    expect(oneLineError(UsageError, () => parseGrid('seed=0..100000000'))).toMatch(/has 100000001 values \(at most 10000\)/);
  });
});

describe('rlhf sweep with a bad trial config', () => {
  it('exits with one line naming the trial and key, and leaves an existing sweep directory byte-identical', async () => {
    const file = writeConfig(tinyRlhfConfig('badgrid'));
    const sweepDir = path.join(runsDir(file), 'badgrid-sweep');
    fs.mkdirSync(sweepDir, { recursive: true });
    const before: Record<string, string> = { 'summary.md': '# Sweep\n\nearlier results\n', 'summary.csv': 'rank,trial\n1,trial-001\n', 'sweep.json': '{"trials":[]}\n' };
    for (const [name, text] of Object.entries(before)) fs.writeFileSync(path.join(sweepDir, name), text);

    // the second value of kl_coef is bad: no trial may start, not even the valid first ones
    const r = await rlhf('sweep', '-c', file, '--grid', 'seed=1..2', '--grid', 'ppo.kl_coef=0.1,high', '--jobs', '1');
    expectOneLineError(r, /^rlhf: sweep trial-002 \(seed=1 ppo\.kl_coef=high\): .*exp\.yaml:\d+: ppo\.kl_coef: Expected number, received string$/);
    expect(fs.readdirSync(sweepDir).sort()).toEqual(Object.keys(before).sort());
    for (const [name, text] of Object.entries(before)) expect(fs.readFileSync(path.join(sweepDir, name), 'utf8')).toBe(text);
    // nor did the shared upstream stages run
    expect(fs.existsSync(path.join(runsDir(file), 'badgrid'))).toBe(false);
  });
});
