import fs from 'node:fs';
import path from 'node:path';

/**
 * The TensorFlow thread count a run's stages recorded in their manifests, when
 * they agree. Read with plain JSON so `rlhf verify` can set the threads before
 * TensorFlow loads (src/backend/threads.ts).
 */
export function recordedThreads(runDir: string): number | undefined {
  const counts = new Set<number>();
  const visit = (dir: string, depth: number): void => {
    if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) return;
    for (const entry of fs.readdirSync(dir)) {
      const sub = path.join(dir, entry);
      const manifest = path.join(sub, 'manifest.json');
      if (fs.existsSync(manifest)) {
        try {
          const threads = (JSON.parse(fs.readFileSync(manifest, 'utf8')) as { threads?: unknown }).threads;
          if (typeof threads === 'number') counts.add(threads);
        } catch {
          // verify reports unreadable manifests itself
        }
      } else if (depth === 0 && /^round-\d+$/.test(entry)) {
        visit(sub, 1);
      }
    }
  };
  visit(runDir, 0);
  return counts.size === 1 ? [...counts][0] : undefined;
}
