import { describe, it, expect } from 'vitest';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { expectOneLineError, repoRoot, rlhf, tinyPretrainConfig, writeConfig } from './helpers.js';

function runsDir(configFile: string): string {
  return path.join(path.dirname(configFile), 'runs');
}

describe('bad input gives a one-line error, non-zero exit and no stage directory', () => {
  it('malformed YAML names file:line', async () => {
    const file = writeConfig(tinyPretrainConfig());
    fs.appendFileSync(file, 'model: {n_layer: [\n');
    expectOneLineError(await rlhf('pretrain', '-c', file), /exp\.yaml:\d+:\d+: invalid YAML/);
    expect(fs.existsSync(runsDir(file))).toBe(false);
  });

  it('unknown key names the key path and a close match', async () => {
    const file = writeConfig(tinyPretrainConfig({ lerning_rate: 0.1 }));
    expectOneLineError(await rlhf('pretrain', '-c', file), /exp\.yaml:\d+: pretrain\.lerning_rate: unknown key/);
    expect(fs.existsSync(runsDir(file))).toBe(false);
  });

  it('wrong type names the key path (also via --set)', async () => {
    const file = writeConfig(tinyPretrainConfig());
    expectOneLineError(await rlhf('pretrain', '-c', file, '--set', 'pretrain.batch_size=big'), /pretrain\.batch_size: Expected number, received string/);
    expect(fs.existsSync(runsDir(file))).toBe(false);
  });

  it('missing corpus names the file', async () => {
    const file = writeConfig(tinyPretrainConfig({ data: { path: '/nonexistent/corpus.txt' } }));
    expectOneLineError(await rlhf('pretrain', '-c', file), /\/nonexistent\/corpus\.txt: file not found/);
    expect(fs.existsSync(runsDir(file))).toBe(false);
  });

  it('empty corpus names the file', async () => {
    const file = writeConfig(tinyPretrainConfig());
    const corpus = path.join(path.dirname(file), 'empty.txt');
    fs.writeFileSync(corpus, '');
    const r = await rlhf('pretrain', '-c', file, '--set', `pretrain.data.path=${corpus}`);
    expectOneLineError(r, /empty\.txt: file is empty/);
    expect(fs.existsSync(runsDir(file))).toBe(false);
  });

  it('corpus shorter than the context names the file and the sizes', async () => {
    const file = writeConfig(tinyPretrainConfig());
    const corpus = path.join(path.dirname(file), 'short.txt');
    fs.writeFileSync(corpus, 'A short story.\n\nIt ends here, too soon to fill a window.\n');
    const r = await rlhf('pretrain', '-c', file, '--set', `pretrain.data.path=${corpus}`);
    expectOneLineError(r, /short\.txt: corpus too short: the (train|validation) split has \d+ tokens, more than model\.context_length \+ 1 = 33 are needed/);
    expect(fs.existsSync(runsDir(file))).toBe(false);
  });

  it('sample: a missing checkpoint is a one-line error', async () => {
    expectOneLineError(await rlhf('sample', '--checkpoint', '/nonexistent/ckpt'), /\/nonexistent\/ckpt\/model\.json: missing/);
  });

  it('sample: bad flag values are rejected', async () => {
    const r = await rlhf('sample', '--checkpoint', '/x', '--num', 'two');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/--num must be an integer/);
  });

  it('the installed binary exits non-zero with the same one-line error', () => {
    const file = writeConfig(tinyPretrainConfig({ max_stepz: 3 }));
    let status = 0;
    let stderr = '';
    try {
      execFileSync(process.execPath, [path.join(repoRoot, 'bin', 'rlhf.js'), 'pretrain', '-c', file], { stdio: 'pipe' });
    } catch (e) {
      const err = e as { status: number; stderr: Buffer };
      status = err.status;
      stderr = err.stderr.toString();
    }
    expect(status).toBe(2);
    expect(stderr.trim()).toMatch(/^rlhf: .*exp\.yaml:\d+: pretrain\.max_stepz: unknown key \(did you mean "max_steps"\?\)$/);
  });
});
