import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { tf, type Tensor } from '../backend/tf.js';
import { savedModelBytes, type BuiltGraph } from './graphdef.js';

const TAG = 'serve';
const SIGNATURE = 'run';

/** TensorFlow's DataType enum names, which tfjs-node's runSavedModel reads from an input's info. */
const DT_NAME: Record<number, string> = { 1: 'DT_FLOAT', 3: 'DT_INT32', 10: 'DT_BOOL' };

/** The SavedModel entry points of tfjs-node's backend (the ones `tf.node.loadSavedModel` wraps). */
interface SavedModelBackend {
  loadSavedModelMetaGraph(dir: string, tags: string): number;
  runSavedModel(id: number, inputs: Tensor[], infos: Array<{ name: string; tfDtype: string }>, outputs: string[]): Tensor[];
  deleteSavedModel(id: number): void;
}

function savedModelBackend(): SavedModelBackend {
  if (tf.getBackend() !== 'tensorflow') throw new Error('a TensorFlow graph needs the native TensorFlow backend');
  return tf.backend() as unknown as SavedModelBackend;
}

/**
 * A built graph loaded into a TensorFlow session: each `run` is one TF_SessionRun
 * over the whole graph, with TensorFlow's graph optimisations (grappler) and
 * inter-op scheduling. Loading goes through the same backend calls as
 * `tf.node.loadSavedModel` but synchronously (the graph's signature is already
 * known here), so synchronous code such as generation can build graphs on first
 * use. The SavedModel is written to a temporary directory only for the load.
 */
function missing(key: string): never {
  throw new RangeError(`GraphFunction: the graph has no port "${key}"`);
}

export class GraphFunction {
  private disposed = false;
  private readonly inputInfos: Array<{ name: string; tfDtype: string }>;
  private readonly outputNames: string[];

  private constructor(
    private readonly backend: SavedModelBackend,
    private readonly session: number,
    readonly graph: BuiltGraph,
  ) {
    this.inputInfos = graph.inputs.map((p) => ({ name: p.tensor, tfDtype: DT_NAME[p.dtype] }));
    this.outputNames = graph.outputs.map((p) => p.tensor);
  }

  static load(graph: BuiltGraph): GraphFunction {
    const backend = savedModelBackend();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rlhf-graph-'));
    try {
      fs.writeFileSync(path.join(dir, 'saved_model.pb'), savedModelBytes(graph, TAG, SIGNATURE));
      return new GraphFunction(backend, backend.loadSavedModelMetaGraph(dir, TAG), graph);
    } finally {
      // The session holds the graph; the files are not needed after loading.
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }

  /**
   * Feeds the graph's inputs by key (other keys are ignored); returns the outputs named
   * in `fetch` (default: every output) by key, new tensors the caller owns.
   */
  run(inputs: Record<string, Tensor>, fetch?: readonly string[]): Record<string, Tensor> {
    if (this.disposed) throw new Error('GraphFunction.run: the graph was disposed');
    const feeds = this.graph.inputs.map((p) => {
      const t = inputs[p.key];
      if (t === undefined) throw new RangeError(`GraphFunction.run: no value for input "${p.key}"`);
      return t;
    });
    const outputs = fetch ? fetch.map((k) => this.graph.outputs.find((p) => p.key === k) ?? missing(k)) : this.graph.outputs;
    const out = this.backend.runSavedModel(this.session, feeds, this.inputInfos, outputs.map((p) => p.tensor));
    return Object.fromEntries(outputs.map((p, i) => [p.key, out[i]]));
  }

  /** Writes the graph's session variables (src/graph/graphdef.ts) from `values` by key; they keep their values across runs. */
  assign(values: Record<string, Tensor>): void {
    if (this.disposed) throw new Error('GraphFunction.assign: the graph was disposed');
    const { variables, assign } = this.graph;
    if (!assign) throw new Error('GraphFunction.assign: the graph has no session variables');
    const feeds = variables.map((v) => values[v.key] ?? missing(v.key));
    const infos = variables.map((v) => ({ name: v.init.tensor, tfDtype: DT_NAME[v.init.dtype] }));
    for (const t of this.backend.runSavedModel(this.session, feeds, infos, [assign])) t.dispose();
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.backend.deleteSavedModel(this.session);
  }
}
