import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

export function sha256File(file: string): string {
  return crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

function fsyncDir(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Builds a directory under a temporary sibling name and renames it into place.
 * Files are fsynced before the rename so that after a crash `dir` is either the
 * previous complete version or the new complete one.
 */
export async function writeAtomicDir(dir: string, fill: (tmp: string) => void | Promise<void>): Promise<void> {
  const parent = path.dirname(dir);
  fs.mkdirSync(parent, { recursive: true });
  const tag = `${process.pid}-${Date.now()}`;
  const tmp = path.join(parent, `.${path.basename(dir)}.tmp-${tag}`);
  fs.mkdirSync(tmp);
  try {
    await fill(tmp);
    for (const f of fs.readdirSync(tmp)) {
      const fd = fs.openSync(path.join(tmp, f), 'r');
      fs.fsyncSync(fd);
      fs.closeSync(fd);
    }
    const old = path.join(parent, `.${path.basename(dir)}.old-${tag}`);
    const hadOld = fs.existsSync(dir);
    if (hadOld) fs.renameSync(dir, old);
    fs.renameSync(tmp, dir);
    fsyncDir(parent);
    if (hadOld) fs.rmSync(old, { recursive: true, force: true });
  } catch (err) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
}

/** Names writeAtomicDir (`.<name>.tmp-<pid>-<ms>`) and writeFileAtomic (`<name>.tmp-<pid>`) write to before the rename. */
const TEMPORARY = /\.tmp-\d+(-\d+)?$/;

/**
 * Deletes the temporaries a killed writer left in `dir` (not recursive) and
 * returns their paths. Only for a directory no live process is writing to
 * (e.g. a stage directory whose lock the caller holds).
 */
export function removeTemporaries(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  const stale = fs.readdirSync(dir).filter((n) => TEMPORARY.test(n)).map((n) => path.join(dir, n));
  for (const p of stale) fs.rmSync(p, { recursive: true, force: true });
  return stale;
}

/** Writes a file via a temporary sibling + rename. */
export function writeFileAtomic(file: string, content: string): void {
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, content);
  fs.renameSync(tmp, file);
}
