import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { tf, type NamedTensorMap, type Tensor } from '../backend/tf.js';
import { savedModelBytes, type BuiltGraph } from './graphdef.js';

const TAG = 'serve';
const SIGNATURE = 'run';

type SavedModel = Awaited<ReturnType<typeof tf.node.loadSavedModel>>;

/**
 * A built graph loaded into a TensorFlow session through tfjs-node's SavedModel
 * loader: each `run` is one TF_SessionRun over the whole graph, with
 * TensorFlow's graph optimisations (grappler) and inter-op scheduling. The
 * SavedModel is written to a temporary directory only for the load.
 */
export class GraphFunction {
  private constructor(
    private readonly model: SavedModel,
    readonly graph: BuiltGraph,
  ) {}

  static async load(graph: BuiltGraph): Promise<GraphFunction> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rlhf-graph-'));
    try {
      fs.writeFileSync(path.join(dir, 'saved_model.pb'), savedModelBytes(graph, TAG, SIGNATURE));
      return new GraphFunction(await tf.node.loadSavedModel(dir, [TAG], SIGNATURE), graph);
    } finally {
      // The session holds the graph; the files are not needed after loading.
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }

  /** Feeds the graph's inputs by key (other keys are ignored); returns every output by key (new tensors the caller owns). */
  run(inputs: Record<string, Tensor>): Record<string, Tensor> {
    const feeds: NamedTensorMap = {};
    for (const p of this.graph.inputs) {
      const t = inputs[p.key];
      if (t === undefined) throw new RangeError(`GraphFunction.run: no value for input "${p.key}"`);
      feeds[p.key] = t;
    }
    return this.model.predict(feeds) as Record<string, Tensor>;
  }

  dispose(): void {
    this.model.dispose();
  }
}
