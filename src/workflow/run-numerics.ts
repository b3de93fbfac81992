import fs from 'node:fs';
import path from 'node:path';

/**
 * The numerics settings a run's stages recorded in their manifests, each where
 * the stages agree: the TensorFlow thread count and whether oneDNN's custom ops
 * were on. Read with plain JSON so `rlhf verify` can set both before TensorFlow
 * loads (it reads them once, on load).
 */
export interface RecordedNumerics {
  threads?: number;
  onednn?: boolean;
}

interface ManifestNumerics {
  threads?: unknown;
  numerics?: { onednn?: unknown };
}

export function recordedNumerics(runDir: string): RecordedNumerics {
  const threads = new Set<number>();
  const onednn = new Set<boolean>();
  const visit = (dir: string, depth: number): void => {
    if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) return;
    for (const entry of fs.readdirSync(dir)) {
      const sub = path.join(dir, entry);
      const manifest = path.join(sub, 'manifest.json');
      if (fs.existsSync(manifest)) {
        try {
          const m = JSON.parse(fs.readFileSync(manifest, 'utf8')) as ManifestNumerics;
          if (typeof m.threads === 'number') threads.add(m.threads);
          if (typeof m.numerics?.onednn === 'boolean') onednn.add(m.numerics.onednn);
        } catch {
          // verify reports unreadable manifests itself
        }
      } else if (depth === 0 && /^round-\d+$/.test(entry)) {
        visit(sub, 1);
      }
    }
  };
  visit(runDir, 0);
  const agreed = <T>(values: Set<T>): T | undefined => (values.size === 1 ? [...values][0] : undefined);
  return { threads: agreed(threads), onednn: agreed(onednn) };
}
