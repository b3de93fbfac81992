import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { makeDirs } from '../util/fs.js';

/**
 * Stage-directory locks: one writer per stage directory at a time.
 *
 * The lock is a sibling file `<run>/.<stage>.lock` (not inside the stage
 * directory, which `--force` deletes and re-creates) created with O_EXCL and
 * holding `{pid, host, started_at}`. A second process that finds it refuses
 * with a one-line error naming the holder's pid. A lock whose pid is no longer
 * alive on this host (a crash, SIGKILL, Ctrl-C before a handler was installed;
 * a zombie not yet reaped by its parent counts as dead) is stale and is replaced. A lock written on another host (runs on a shared
 * file system) cannot be checked and is treated as held.
 *
 * Locks are released when the stage completes or fails, and in any case when
 * the process exits (an 'exit' handler), so only SIGKILL-like deaths leave a
 * stale file behind.
 */

/** Another live process holds the lock (a CLI user error: one line, exit 2). */
export class StageLockError extends Error {}

interface LockInfo {
  pid: number;
  host: string;
  started_at: string;
}

const held = new Set<string>();
let exitHandlerInstalled = false;

export function lockPath(stageDir: string): string {
  const dir = path.resolve(stageDir);
  return path.join(path.dirname(dir), `.${path.basename(dir)}.lock`);
}

/**
 * State letter of a Linux process from /proc/<pid>/stat (the field after the
 * parenthesised command name, which may itself hold spaces and parentheses);
 * undefined where there is no /proc or no such process.
 */
export function procState(pid: number): string | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0];
  } catch {
    return undefined;
  }
}

function pidAlive(pid: number): boolean {
  // A zombie (killed, not yet reaped by its parent) still answers kill(pid, 0) but holds nothing.
  const state = procState(pid);
  if (state === 'Z' || state === 'X') return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readLock(file: string): LockInfo | undefined {
  try {
    const info = JSON.parse(fs.readFileSync(file, 'utf8')) as LockInfo;
    return typeof info.pid === 'number' ? info : undefined;
  } catch {
    return undefined;
  }
}

/** Who holds the lock of a stage directory, if anyone alive does. */
export function lockHolder(stageDir: string): LockInfo | undefined {
  const info = readLock(lockPath(stageDir));
  if (!info) return undefined;
  if (info.host === os.hostname() && info.pid !== process.pid && !pidAlive(info.pid)) return undefined;
  return info;
}

function mtimeMs(file: string): number {
  try {
    return fs.statSync(file).mtimeMs;
  } catch {
    return 0;
  }
}

function installExitHandler(): void {
  if (exitHandlerInstalled) return;
  exitHandlerInstalled = true;
  process.on('exit', () => {
    for (const file of held) removeIfOurs(file);
  });
}

function removeIfOurs(file: string): void {
  const info = readLock(file);
  if (info && info.pid === process.pid && info.host === os.hostname()) fs.rmSync(file, { force: true });
  held.delete(file);
}

/**
 * Takes the lock of `stageDir` for this process; returns the function that
 * releases it (idempotent). Throws StageStateError naming the holder's pid if
 * another live process holds it.
 */
export function acquireStageLock(stageDir: string): () => void {
  const file = lockPath(stageDir);
  makeDirs(path.dirname(file));
  const me: LockInfo = { pid: process.pid, host: os.hostname(), started_at: new Date().toISOString() };
  for (let attempt = 0; ; attempt++) {
    try {
      const fd = fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o644);
      try {
        fs.writeSync(fd, JSON.stringify(me) + '\n');
      } finally {
        fs.closeSync(fd);
      }
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt >= 3) throw err;
      const info = readLock(file);
      const mine = info !== undefined && info.pid === process.pid && info.host === os.hostname();
      // Same process (a stage re-opened after an error skipped its release): take it over.
      if (mine) break;
      if (info && (info.host !== os.hostname() || pidAlive(info.pid))) {
        const where = info.host === os.hostname() ? `process ${info.pid}` : `process ${info.pid} on host ${info.host}`;
        throw new StageLockError(`${stageDir}: in use by ${where} since ${info.started_at} (lock ${file}); wait for it to finish, or delete the lock file if that process is gone`);
      }
      // Unreadable: another writer may be between create and write; give it a few seconds.
      if (!info && Date.now() - mtimeMs(file) < 5000) {
        throw new StageLockError(`${stageDir}: being locked by another process (lock ${file}); try again`);
      }
      // Stale (dead pid) or long unreadable (its writer died between create and write): replace it.
      fs.rmSync(file, { force: true });
    }
  }
  held.add(file);
  installExitHandler();
  let released = false;
  return () => {
    if (released) return;
    released = true;
    removeIfOurs(file);
  };
}
