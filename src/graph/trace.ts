import { tf, type Tensor } from '../backend/tf.js';

/**
 * Records the TensorFlow ops a piece of tfjs code runs. tfjs-node executes every
 * kernel as `binding.executeOp(name, attrs, inputIds, numOutputs)` on tensor
 * handles it names by integer id, and uploads host data with
 * `binding.createTensor(shape, dtype, values)`; wrapping those two calls while
 * the code runs eagerly yields the dataflow graph of that run (op names, attrs,
 * which ids feed which) with real shapes, ready to become a GraphDef
 * (src/graph/graphdef.ts). A host read-back inside the traced code would be a
 * value the graph cannot reproduce, so it is an error.
 */

export type TypedValues = Float32Array | Int32Array | Uint8Array;

/** An op attribute exactly as tfjs-node passes it to the binding (type is a TF_ATTR_* code). */
export interface OpAttr {
  name: string;
  type: number;
  value: unknown;
}

export interface TracedOp {
  op: string;
  attrs: OpAttr[];
  /** Binding ids of the inputs, in order. */
  inputs: number[];
  /** Binding ids of the outputs, in order. */
  outputs: number[];
}

export interface TensorMeta {
  /** TF_DataType code. */
  dtype: number;
  shape: number[];
}

export interface Trace {
  ops: TracedOp[];
  /** Tensors uploaded from the host during the trace (constants unless declared as feeds). */
  uploads: Map<number, TensorMeta & { values: TypedValues }>;
  /** Every output of a traced op. */
  produced: Map<number, TensorMeta>;
  /** Every tensor handed to an op, including ones that existed before the trace. */
  seen: Map<number, TensorMeta>;
}

export class TraceError extends Error {}

interface Binding {
  createTensor(shape: number[], dtype: number, values: TypedValues): number;
  executeOp(op: string, attrs: OpAttr[], inputs: number[], n: number): Array<{ id: number; shape: number[]; dtype: number }>;
  tensorDataSync(id: number): TypedValues;
}

interface Backend {
  binding: Binding;
  getInputTensorIds(ts: Tensor[]): number[];
}

/** tfjs dtype → TF_DataType code (the GraphDef enum uses the same numbers). */
export const TF_DTYPE: Record<string, number> = { float32: 1, int32: 3, bool: 10 };

function nodeBackend(): Backend {
  if (tf.getBackend() !== 'tensorflow') throw new TraceError('tracing needs the native TensorFlow backend');
  return tf.backend() as unknown as Backend;
}

/** The binding id of a tensor's handle (uploading it first if tfjs still holds its values on the host). */
export function tensorId(t: Tensor): number {
  return nodeBackend().getInputTensorIds([t])[0];
}

/** The values behind a binding id (a host read-back, for tensors that exist before a trace). */
export function readTensor(id: number): TypedValues {
  return nodeBackend().binding.tensorDataSync(id);
}

let active = false;

/** Runs `fn` eagerly and records the ops it executes. Not re-entrant. */
export function traceOps<T>(fn: () => T): { result: T; trace: Trace } {
  if (active) throw new TraceError('traceOps is not re-entrant');
  const backend = nodeBackend();
  const real = backend.binding;
  const trace: Trace = { ops: [], uploads: new Map(), produced: new Map(), seen: new Map() };
  // tfjs-node reads `this.binding` on every call, so a stand-in object intercepts them all.
  const recorder: Binding = Object.create(real) as Binding;
  // The binding's own properties are read-only, so the stand-in defines its own instead of assigning.
  const override = <K extends keyof Binding>(key: K, f: Binding[K]) => Object.defineProperty(recorder, key, { value: f });
  override('createTensor', (shape, dtype, values) => {
    const id = real.createTensor(shape, dtype, values);
    trace.uploads.set(id, { dtype, shape: [...shape], values: values.slice() as TypedValues });
    return id;
  });
  override('executeOp', (op, attrs, inputs, n) => {
    const out = real.executeOp(op, attrs, inputs, n);
    trace.ops.push({ op, attrs: attrs.map((a) => ({ ...a })), inputs: [...inputs], outputs: out.map((o) => o.id) });
    for (const o of out) trace.produced.set(o.id, { dtype: o.dtype, shape: [...o.shape] });
    return out;
  });
  override('tensorDataSync', () => {
    throw new TraceError('a host read-back (dataSync) inside the traced code: its value would be frozen into the graph');
  });
  // The backend resolves tfjs tensors to ids here: the one place an id's shape and dtype are known for tensors made before the trace.
  const realIds = backend.getInputTensorIds;
  backend.getInputTensorIds = function (this: Backend, ts: Tensor[]) {
    const ids = realIds.call(this, ts);
    ts.forEach((t, i) => {
      const dtype = TF_DTYPE[t.dtype];
      if (dtype !== undefined && !trace.seen.has(ids[i])) trace.seen.set(ids[i], { dtype, shape: [...t.shape] });
    });
    return ids;
  };
  active = true;
  backend.binding = recorder;
  try {
    return { result: fn(), trace };
  } finally {
    backend.binding = real;
    delete (backend as Partial<Backend>).getInputTensorIds; // the prototype's method shows through again
    active = false;
  }
}
