import type { Tensor } from '../backend/tf.js';
import type { BuiltGraph } from './graphdef.js';
import { GraphFunction } from './session.js';

/** Why a traced graph could not be used (the eager code then runs). */
export class GraphUnavailable extends Error {}

/** A traced graph and what the eager run it was traced from computed for each fetch. */
export interface TracedGraph {
  built: BuiltGraph;
  eager: Map<string, Float32Array>;
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/**
 * Loads `first`, a graph traced at one set of inputs, after the checks that make a
 * traced graph trustworthy: `second`, traced at other values of the same shapes,
 * must be the identical graph (otherwise a host value was baked in as a constant),
 * TensorFlow must load it, and run on first's inputs (`runFirst`, whose outputs this
 * disposes) it must reproduce every fetch of the eager run within `tolerance`.
 * Throws GraphUnavailable with the reason otherwise.
 */
export function loadChecked(first: TracedGraph, second: TracedGraph, runFirst: (fn: GraphFunction) => Record<string, Tensor>, tolerance: number): GraphFunction {
  if (!equalBytes(first.built.bytes, second.built.bytes)) {
    throw new GraphUnavailable('two traces at different inputs gave different graphs (a per-call host value would be baked in)');
  }
  let fn: GraphFunction;
  try {
    fn = GraphFunction.load(first.built);
  } catch (err) {
    throw new GraphUnavailable(`TensorFlow did not load the traced graph: ${(err as Error).message.split('\n')[0]}`);
  }
  let worst = 0;
  try {
    const out = runFirst(fn);
    for (const [key, want] of first.eager) {
      const got = out[key].dataSync();
      for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]));
    }
    for (const t of Object.values(out)) t.dispose();
  } catch (err) {
    fn.dispose();
    throw err;
  }
  if (!(worst < tolerance)) {
    fn.dispose();
    throw new GraphUnavailable(`the graph differs from the eager code it was traced from by ${Number.isNaN(worst) ? NaN : worst} (tolerance ${tolerance})`);
  }
  return fn;
}
