import fs from 'node:fs';
import path from 'node:path';

/**
 * A checkpoint's model width read as plain JSON, without loading TensorFlow:
 * commands given only a checkpoint choose TensorFlow's threads from it before
 * TensorFlow loads (src/backend/threads.ts). Undefined when unreadable; loading
 * the checkpoint later reports what is wrong with it.
 */
export function checkpointWidth(dir: string): number | undefined {
  try {
    const meta = JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8')) as { model?: { d_model?: unknown } };
    const d = meta.model?.d_model;
    return typeof d === 'number' ? d : undefined;
  } catch {
    return undefined;
  }
}
