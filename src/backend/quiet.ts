import { createRequire } from 'node:module';

/**
 * TensorFlow 2.21 logs a few lines through absl before absl's logging is
 * initialised ("oneDNN custom operations are on…"), and those ignore
 * TF_CPP_MIN_LOG_LEVEL: they go to file descriptor 2 whatever the setting. A CLI
 * whose errors must be one `rlhf:` line cannot have them, and Node has no dup2,
 * so libc's is called through koffi (an FFI whose prebuilt binaries ship in its
 * npm packages): fd 2 points at /dev/null while TensorFlow loads and first runs.
 * RLHF_TF_LOG=1 shows them. Where no libc can be loaded the lines stay.
 */

interface Libc {
  dup(fd: number): number;
  dup2(from: number, to: number): number;
  open(path: string, flags: number): number;
  close(fd: number): number;
}

const O_WRONLY = 1;
const require = createRequire(import.meta.url);

function loadLibc(): Libc | undefined {
  const names: Partial<Record<NodeJS.Platform, string>> = { linux: 'libc.so.6', darwin: 'libSystem.B.dylib' };
  const name = names[process.platform];
  if (!name) return undefined;
  try {
    const koffi = require('koffi') as typeof import('koffi');
    const lib = koffi.load(name);
    return {
      dup: lib.func('int dup(int)') as Libc['dup'],
      dup2: lib.func('int dup2(int, int)') as Libc['dup2'],
      open: lib.func('int open(const char *, int)') as Libc['open'],
      close: lib.func('int close(int)') as Libc['close'],
    };
  } catch {
    return undefined;
  }
}

export function tensorflowLogWanted(): boolean {
  return process.env.RLHF_TF_LOG === '1';
}

/** Runs `fn` with file descriptor 2 sent to /dev/null (unless RLHF_TF_LOG=1), restoring it afterwards, also on a throw. */
export function withNativeStderrSilenced<T>(fn: () => T): T {
  const libc = tensorflowLogWanted() ? undefined : loadLibc();
  const devnull = libc?.open('/dev/null', O_WRONLY) ?? -1;
  const saved = devnull >= 0 ? libc!.dup(2) : -1;
  if (saved < 0) {
    if (devnull >= 0) libc!.close(devnull);
    return fn();
  }
  libc!.dup2(devnull, 2);
  libc!.close(devnull);
  try {
    return fn();
  } finally {
    libc!.dup2(saved, 2);
    libc!.close(saved);
  }
}
