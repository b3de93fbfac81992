import { createRequire } from 'node:module';
import type { OpAttr, TensorMeta, Trace, TypedValues } from './trace.js';

/**
 * Turns a trace (src/graph/trace.ts) into a TensorFlow GraphDef and wraps it in
 * a SavedModel, with the protobuf classes tfjs-node generated from
 * tensorflow/core/framework/*.proto for its own SavedModel reader.
 *
 * Declared feeds become Placeholders, traced ops become nodes, and every other
 * tensor an op reads (uploads made during the trace, tensors that existed before
 * it) becomes a Const holding the value it had. Node names are positional (op
 * index, order of first use), so two traces of the same code give the same bytes
 * unless a value baked into a Const differs — which is how a caller detects a
 * host value that changes from step to step (src/graph/step-graph.ts).
 */

// Minimal typings of the generated google-protobuf classes we use.
interface Msg {
  serializeBinary(): Uint8Array;
}
interface JspbMap<V> {
  set(key: string, value: V): void;
}
interface AttrValueMsg extends Msg {
  setS(v: Uint8Array): void;
  setI(v: number): void;
  setF(v: number): void;
  setB(v: boolean): void;
  setType(v: number): void;
  setShape(v: ShapeMsg): void;
  setTensor(v: TensorMsg): void;
  setList(v: ListMsg): void;
}
interface ListMsg extends Msg {
  setIList(v: number[]): void;
  setFList(v: number[]): void;
  setBList(v: boolean[]): void;
}
interface ShapeMsg extends Msg {
  addDim(d: DimMsg): void;
}
interface DimMsg extends Msg {
  setSize(v: number): void;
}
interface TensorMsg extends Msg {
  setDtype(v: number): void;
  setTensorShape(v: ShapeMsg): void;
  setTensorContent(v: Uint8Array): void;
}
interface NodeMsg extends Msg {
  setName(v: string): void;
  setOp(v: string): void;
  addInput(v: string): void;
  getAttrMap(): JspbMap<AttrValueMsg>;
}
interface GraphMsg extends Msg {
  addNode(n: NodeMsg): void;
  setVersions(v: VersionMsg): void;
}
interface VersionMsg extends Msg {
  setProducer(v: number): void;
}
interface TensorInfoMsg extends Msg {
  setName(v: string): void;
  setDtype(v: number): void;
  setTensorShape(v: ShapeMsg): void;
}
interface SignatureMsg extends Msg {
  getInputsMap(): JspbMap<TensorInfoMsg>;
  getOutputsMap(): JspbMap<TensorInfoMsg>;
  setMethodName(v: string): void;
}
interface MetaInfoMsg extends Msg {
  addTags(v: string): void;
}
interface MetaGraphMsg extends Msg {
  setMetaInfoDef(v: MetaInfoMsg): void;
  setGraphDef(v: GraphMsg): void;
  getSignatureDefMap(): JspbMap<SignatureMsg>;
}
interface SavedModelMsg extends Msg {
  setSavedModelSchemaVersion(v: number): void;
  addMetaGraphs(v: MetaGraphMsg): void;
}
type Ctor<T> = new () => T;
interface Messages {
  AttrValue: Ctor<AttrValueMsg> & { ListValue: Ctor<ListMsg> };
  TensorShape: Ctor<ShapeMsg> & { Dim: Ctor<DimMsg> };
  Tensor: Ctor<TensorMsg>;
  NodeDef: Ctor<NodeMsg>;
  GraphDef: Ctor<GraphMsg>;
  VersionDef: Ctor<VersionMsg>;
  TensorInfo: Ctor<TensorInfoMsg>;
  SignatureDef: Ctor<SignatureMsg>;
  MetaGraphDef: Ctor<MetaGraphMsg> & { MetaInfoDef: Ctor<MetaInfoMsg> };
  SavedModel: Ctor<SavedModelMsg>;
}

const require = createRequire(import.meta.url);
let messages: Messages | undefined;
function pb(): Messages {
  messages ??= require('@tensorflow/tfjs-node/dist/proto/api_pb.js') as Messages;
  return messages;
}

/** TF_AttrType codes of TensorFlow's C API, which tfjs-node's binding passes through. */
const ATTR = { STRING: 0, INT: 1, FLOAT: 2, BOOL: 3, TYPE: 4, SHAPE: 5 } as const;

/**
 * GraphDef version the nodes are written for: TensorFlow 2.x's graph semantics,
 * old enough that no op tfjs-node calls is flagged as deprecated at it.
 */
const GRAPH_PRODUCER = 1205;

/**
 * Type attributes TensorFlow's eager runtime infers from the inputs, which
 * tfjs-node therefore leaves out, but a GraphDef must state: op → [attr, input index].
 * (Among tfjs-node's kernels only ExpandDims relies on this; LogicalAnd/Or/Not have no attrs.)
 */
const INFERRED_TYPE_ATTRS: Record<string, Array<[string, number]>> = {
  ExpandDims: [['T', 0], ['Tdim', 1]],
};

function shapeProto(shape: readonly number[]): ShapeMsg {
  const s = new (pb().TensorShape)();
  for (const d of shape) {
    const dim = new (pb().TensorShape.Dim)();
    dim.setSize(d);
    s.addDim(dim);
  }
  return s;
}

function attrProto(a: OpAttr): AttrValueMsg {
  const v = new (pb().AttrValue)();
  const list = Array.isArray(a.value);
  const asList = (fill: (l: ListMsg) => void) => {
    const l = new (pb().AttrValue.ListValue)();
    fill(l);
    v.setList(l);
  };
  switch (a.type) {
    case ATTR.STRING:
      v.setS(new TextEncoder().encode(String(a.value)));
      break;
    case ATTR.INT:
      if (list) asList((l) => l.setIList(a.value as number[]));
      else v.setI(a.value as number);
      break;
    case ATTR.FLOAT:
      if (list) asList((l) => l.setFList(a.value as number[]));
      else v.setF(a.value as number);
      break;
    case ATTR.BOOL:
      if (list) asList((l) => l.setBList(a.value as boolean[]));
      else v.setB(a.value as boolean);
      break;
    case ATTR.TYPE:
      v.setType(a.value as number);
      break;
    case ATTR.SHAPE:
      v.setShape(shapeProto(a.value as number[]));
      break;
    default:
      throw new Error(`graphdef: attribute "${a.name}" has TF_AttrType ${a.type}, which the writer does not handle`);
  }
  return v;
}

function typeAttr(t: number): AttrValueMsg {
  const v = new (pb().AttrValue)();
  v.setType(t);
  return v;
}

function shapeAttr(shape: readonly number[]): AttrValueMsg {
  const v = new (pb().AttrValue)();
  v.setShape(shapeProto(shape));
  return v;
}

function stringAttr(text: string): AttrValueMsg {
  const v = new (pb().AttrValue)();
  v.setS(new TextEncoder().encode(text));
  return v;
}

function node(name: string, op: string, inputs: string[], attrs: Array<[string, AttrValueMsg]>): NodeMsg {
  const n = new (pb().NodeDef)();
  n.setName(name);
  n.setOp(op);
  for (const i of inputs) n.addInput(i);
  const map = n.getAttrMap();
  for (const [k, v] of attrs) map.set(k, v);
  return n;
}

function constNode(name: string, meta: TensorMeta, values: TypedValues): NodeMsg {
  const t = new (pb().Tensor)();
  t.setDtype(meta.dtype);
  t.setTensorShape(shapeProto(meta.shape));
  t.setTensorContent(new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
  const v = new (pb().AttrValue)();
  v.setTensor(t);
  return node(name, 'Const', [], [['dtype', typeAttr(meta.dtype)], ['value', v]]);
}

/** One named input or output of the graph: the tensor id it stands for in the trace. */
export interface Endpoint {
  key: string;
  id: number;
}

/** An input or output of the built graph: signature key, graph tensor name, dtype and shape. */
export interface GraphPort extends TensorMeta {
  key: string;
  tensor: string;
}

/** A feed kept inside the session as a resource variable: `init` is the placeholder `assign` (a tensor to fetch) writes it from. */
export interface GraphVariable {
  key: string;
  init: GraphPort;
}

export interface BuiltGraph {
  graph: GraphMsg;
  /** The serialized GraphDef: equal bytes mean equal graphs. */
  bytes: Uint8Array;
  inputs: GraphPort[];
  outputs: GraphPort[];
  /** Feeds turned into session variables; `assign` is the tensor whose fetch assigns them all from their `init` placeholders. */
  variables: GraphVariable[];
  assign?: string;
  /** Number of nodes (ops, constants, placeholders, output identities). */
  nodes: number;
}

/**
 * GraphDef of `trace` with the given feeds (become Placeholders; unused ones are dropped) and fetches
 * (read through an Identity each, so a fetch may also be a feed or a Const).
 * `read(id)` supplies the value of a tensor made before the trace.
 *
 * A feed listed in `variables` becomes a resource variable that lives in the session
 * instead: the traced code may only overwrite part of it with one TensorScatterUpdate,
 * which becomes an in-place ResourceScatterNdUpdate followed by a read of the variable
 * (so a decode step writes one cache slot instead of copying the whole cache it was fed).
 * A variable the traced code never overwrites is read once per run (weights kept in the session).
 */
export function buildGraphDef(trace: Trace, feeds: readonly Endpoint[], fetches: readonly Endpoint[], read: (id: number) => TypedValues, variables: readonly Endpoint[] = []): BuiltGraph {
  const graph = new (pb().GraphDef)();
  const names = new Map<number, string>();
  const inputs: GraphPort[] = [];
  const metaOf = (id: number): TensorMeta => {
    const m = trace.produced.get(id) ?? trace.uploads.get(id) ?? trace.seen.get(id);
    if (!m) throw new Error(`graphdef: tensor ${id} was never seen in the trace`);
    return m;
  };
  let count = 0;
  const used = new Set(trace.ops.flatMap((op) => op.inputs));
  for (const f of fetches) used.add(f.id);
  const vars = new Map<number, string>();
  const built: GraphVariable[] = [];
  const assigns: string[] = [];
  variables.forEach((v, i) => {
    const meta = metaOf(v.id);
    const name = `var_${i}`;
    const init = `var_${i}_init`;
    graph.addNode(node(name, 'VarHandleOp', [], [['dtype', typeAttr(meta.dtype)], ['shape', shapeAttr(meta.shape)], ['shared_name', stringAttr(name)]]));
    graph.addNode(node(init, 'Placeholder', [], [['dtype', typeAttr(meta.dtype)], ['shape', shapeAttr(meta.shape)]]));
    graph.addNode(node(`${name}_assign`, 'AssignVariableOp', [name, init], [['dtype', typeAttr(meta.dtype)]]));
    vars.set(v.id, name);
    assigns.push(`^${name}_assign`);
    built.push({ key: v.key, init: { key: v.key, tensor: `${init}:0`, ...meta } });
    count += 3;
  });
  // A variable the traced code overwrites (the KV cache) is reached only through that one
  // TensorScatterUpdate; any other variable (weights) is only read.
  const written = new Set(trace.ops.filter((op) => op.op === 'TensorScatterUpdate' && vars.has(op.inputs[0])).map((op) => op.inputs[0]));
  const scattered = new Set<number>();
  // A feed the traced code never read is left out of the graph (and its signature).
  feeds.filter((f) => used.has(f.id) && !vars.has(f.id)).forEach((f, i) => {
    const meta = metaOf(f.id);
    const name = `input_${i}`;
    graph.addNode(node(name, 'Placeholder', [], [['dtype', typeAttr(meta.dtype)], ['shape', shapeAttr(meta.shape)]]));
    names.set(f.id, name);
    inputs.push({ key: f.key, tensor: `${name}:0`, ...meta });
    count++;
  });
  let consts = 0;
  const ref = (id: number): string => {
    if (written.has(id)) throw new Error('graphdef: a session variable that is written may only be read through its one TensorScatterUpdate');
    let name = names.get(id);
    const variable = vars.get(id);
    if (name === undefined && variable !== undefined) {
      name = `${variable}_read`;
      graph.addNode(node(name, 'ReadVariableOp', [variable], [['dtype', typeAttr(metaOf(id).dtype)]]));
      names.set(id, name);
      count++;
    } else if (name === undefined) {
      const upload = trace.uploads.get(id);
      name = `const_${consts++}`;
      graph.addNode(constNode(name, metaOf(id), upload ? upload.values : read(id)));
      names.set(id, name);
      count++;
    }
    return name;
  };
  trace.ops.forEach((op, i) => {
    const name = `op_${i}`;
    const variable = vars.get(op.inputs[0]);
    if (variable !== undefined && op.op === 'TensorScatterUpdate' && !scattered.has(op.inputs[0])) {
      scattered.add(op.inputs[0]);
      const meta = metaOf(op.inputs[0]);
      graph.addNode(node(`${name}_update`, 'ResourceScatterNdUpdate', [variable, ref(op.inputs[1]), ref(op.inputs[2])], [['T', typeAttr(meta.dtype)], ['Tindices', typeAttr(metaOf(op.inputs[1]).dtype)]]));
      graph.addNode(node(name, 'ReadVariableOp', [variable, `^${name}_update`], [['dtype', typeAttr(meta.dtype)]]));
      names.set(op.outputs[0], name);
      count += 2;
      return;
    }
    const ins = op.inputs.map(ref);
    const attrs: Array<[string, AttrValueMsg]> = op.attrs.map((a) => [a.name, attrProto(a)]);
    for (const [attr, input] of INFERRED_TYPE_ATTRS[op.op] ?? []) {
      if (!op.attrs.some((a) => a.name === attr)) attrs.push([attr, typeAttr(metaOf(op.inputs[input]).dtype)]);
    }
    graph.addNode(node(name, op.op, ins, attrs));
    op.outputs.forEach((id, k) => names.set(id, k === 0 ? name : `${name}:${k}`));
    count++;
  });
  const outputs = fetches.map((f, i): GraphPort => {
    const meta = metaOf(f.id);
    const name = `output_${i}`;
    graph.addNode(node(name, 'Identity', [ref(f.id)], [['T', typeAttr(meta.dtype)]]));
    count++;
    return { key: f.key, tensor: `${name}:0`, ...meta };
  });
  let assign: string | undefined;
  if (assigns.length) {
    graph.addNode(constNode('assign_zero', { dtype: 1, shape: [] }, Float32Array.of(0)));
    graph.addNode(node('assign', 'Identity', ['assign_zero', ...assigns], [['T', typeAttr(1)]]));
    assign = 'assign:0';
    count += 2;
  }
  const versions = new (pb().VersionDef)();
  versions.setProducer(GRAPH_PRODUCER);
  graph.setVersions(versions);
  return { graph, bytes: graph.serializeBinary(), inputs, outputs, variables: built, assign, nodes: count };
}

function tensorInfo(p: GraphPort): TensorInfoMsg {
  const t = new (pb().TensorInfo)();
  t.setName(p.tensor);
  t.setDtype(p.dtype);
  t.setTensorShape(shapeProto(p.shape));
  return t;
}

/** saved_model.pb bytes: one MetaGraphDef tagged `tag` holding `built` and one signature over its ports. */
export function savedModelBytes(built: BuiltGraph, tag: string, signature: string): Uint8Array {
  const sig = new (pb().SignatureDef)();
  for (const p of built.inputs) sig.getInputsMap().set(p.key, tensorInfo(p));
  for (const p of built.outputs) sig.getOutputsMap().set(p.key, tensorInfo(p));
  sig.setMethodName('tensorflow/serving/predict');
  const info = new (pb().MetaGraphDef.MetaInfoDef)();
  info.addTags(tag);
  const meta = new (pb().MetaGraphDef)();
  meta.setMetaInfoDef(info);
  meta.setGraphDef(built.graph);
  meta.getSignatureDefMap().set(signature, sig);
  const model = new (pb().SavedModel)();
  model.setSavedModelSchemaVersion(1);
  model.addMetaGraphs(meta);
  return model.serializeBinary();
}
