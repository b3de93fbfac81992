import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/** File-system refusals the user can act on (free space, permissions, mounts), as the CLI words them. */
const FS_REFUSALS: Record<string, string> = {
  ENOSPC: 'no space left on device',
  EDQUOT: 'disk quota exceeded',
  EROFS: 'read-only file system',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  ENOTDIR: 'a component of the path is not a directory',
  EISDIR: 'is a directory',
};

/**
 * One line for a file-system error the user can act on, naming the path:
 * "runs/x/pretrain/checkpoints: no space left on device (ENOSPC)"; undefined
 * for any other error.
 */
export function describeFsError(err: unknown): string | undefined {
  const e = err as Partial<NodeJS.ErrnoException> | null;
  const what = typeof e?.code === 'string' ? FS_REFUSALS[e.code] : undefined;
  if (!what) return undefined;
  return `${e!.path ?? `(${e!.syscall ?? 'file system'} call)`}: ${what} (${e!.code})`;
}

/**
 * Names `file` in a file-system error that lacks a path (write(2) on a
 * descriptor: ENOSPC) or names only a temporary sibling `tmp`; returns the error.
 */
export function withPath(err: unknown, file: string, tmp?: string): unknown {
  const e = err as Partial<NodeJS.ErrnoException> | null;
  if (typeof e?.code === 'string' && (!e.path || (tmp !== undefined && e.path.startsWith(tmp)))) e.path = file;
  return err;
}

/**
 * fs.mkdirSync(dir, { recursive: true }) with the real cause of a failure:
 * Node's recursive mkdir reports ENOENT when a level cannot be created for
 * another reason (EROFS on a read-only mount), so on ENOENT the missing
 * levels are made one at a time, which throws the real error and its path
 * (or succeeds, if a concurrent removal caused the ENOENT).
 */
export function makeDirs(dir: string): void {
  try {
    fs.mkdirSync(dir, { recursive: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    const missing: string[] = [];
    for (let d = path.resolve(dir); !fs.existsSync(d) && d !== path.dirname(d); d = path.dirname(d)) missing.unshift(d);
    for (const d of missing) fs.mkdirSync(d);
  }
}

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
  makeDirs(parent);
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
    throw withPath(err, dir, tmp);
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
  try {
    fs.writeFileSync(tmp, content);
    fs.renameSync(tmp, file);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw withPath(err, file, tmp);
  }
}
