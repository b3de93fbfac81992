/**
 * The safetensors file format, float32 only: an 8-byte little-endian header
 * length N, N bytes of JSON ({name: {dtype, shape, data_offsets: [begin, end]}},
 * plus an optional "__metadata__" map of strings), then the raw little-endian
 * tensor bytes, offsets relative to the end of the header.
 */

export interface NamedArray {
  shape: number[];
  data: Float32Array;
}

export interface SafetensorsFile {
  tensors: Map<string, NamedArray>;
  metadata: Record<string, string>;
}

/** A file that is not valid safetensors, or holds what this project cannot use. */
export class SafetensorsError extends Error {}

const METADATA = '__metadata__';
/** The reference writer pads the header with spaces so tensor data starts 8-byte aligned. */
const ALIGN = 8;
/** Refuse absurd headers before allocating for them (the reference library's own limit). */
const MAX_HEADER_BYTES = 100_000_000;

const count = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

/** Serialises tensors (in the given order) and string metadata into one safetensors buffer. */
export function encodeSafetensors(tensors: ReadonlyMap<string, NamedArray>, metadata: Record<string, string> = {}): Buffer {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header[METADATA] = metadata;
  let offset = 0;
  for (const [name, t] of tensors) {
    if (t.data.length !== count(t.shape)) throw new Error(`safetensors: ${name} has ${t.data.length} values for shape [${t.shape.join(',')}]`);
    header[name] = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  let json = JSON.stringify(header);
  const bytes = Buffer.byteLength(json, 'utf8');
  json += ' '.repeat((ALIGN - ((8 + bytes) % ALIGN)) % ALIGN);
  const head = Buffer.from(json, 'utf8');
  const out = Buffer.alloc(8 + head.length + offset);
  out.writeBigUInt64LE(BigInt(head.length), 0);
  head.copy(out, 8);
  let at = 8 + head.length;
  for (const t of tensors.values()) {
    const src = Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    if (isBigEndianHost) for (let i = 0; i < t.data.length; i++) out.writeFloatLE(t.data[i], at + 4 * i);
    else src.copy(out, at);
    at += t.data.byteLength;
  }
  return out;
}

const isBigEndianHost = new Uint8Array(Uint16Array.of(1).buffer)[0] === 0;

/** Parses and checks a safetensors buffer; `file` names it in errors. Every tensor must be F32. */
export function decodeSafetensors(buf: Buffer, file: string): SafetensorsFile {
  const fail = (why: string): never => {
    throw new SafetensorsError(`${file}: ${why}`);
  };
  if (buf.length < 8) fail(`${buf.length} bytes: too short for a safetensors file`);
  const n = buf.readBigUInt64LE(0);
  if (n > BigInt(Math.min(MAX_HEADER_BYTES, buf.length - 8))) fail(`header length ${n} exceeds the file (not a safetensors file?)`);
  let header: unknown;
  try {
    header = JSON.parse(buf.toString('utf8', 8, 8 + Number(n)));
  } catch {
    fail('header is not valid JSON (not a safetensors file?)');
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) return fail('header is not a JSON object');
  const dataStart = 8 + Number(n);
  const dataBytes = buf.length - dataStart;
  const tensors = new Map<string, NamedArray>();
  let metadata: Record<string, string> = {};
  const spans: [number, number, string][] = [];
  for (const [name, entry] of Object.entries(header as Record<string, unknown>)) {
    if (name === METADATA) {
      const m = entry as Record<string, unknown>;
      if (m === null || typeof m !== 'object' || Object.values(m).some((v) => typeof v !== 'string')) fail(`${METADATA} must map names to strings`);
      metadata = m as Record<string, string>;
      continue;
    }
    const e = entry as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof e?.dtype !== 'string') return fail(`${name}: no dtype`);
    if (e.dtype !== 'F32') fail(`${name}: dtype ${e.dtype} is not supported (float32 "F32" only; convert the model to float32 first)`);
    const shape = e.shape;
    if (!Array.isArray(shape) || shape.some((d) => !Number.isInteger(d) || d < 0)) return fail(`${name}: shape must be a list of non-negative integers`);
    const off = e.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !off.every((x) => Number.isInteger(x) && x >= 0) || off[0] > off[1] || off[1] > dataBytes) {
      return fail(`${name}: data_offsets ${JSON.stringify(off)} do not lie within the ${dataBytes} data bytes`);
    }
    const [begin, end] = off as [number, number];
    if (end - begin !== 4 * count(shape)) fail(`${name}: ${end - begin} bytes for shape [${shape.join(',')}] of F32 (expected ${4 * count(shape)})`);
    spans.push([begin, end, name]);
    const data = new Float32Array(count(shape));
    const at = dataStart + begin;
    if (isBigEndianHost) for (let i = 0; i < data.length; i++) data[i] = buf.readFloatLE(at + 4 * i);
    else Buffer.from(data.buffer).set(buf.subarray(at, dataStart + end));
    tensors.set(name, { shape: shape as number[], data });
  }
  spans.sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < spans.length; i++) {
    if (spans[i][0] < spans[i - 1][1]) fail(`${spans[i][2]} overlaps ${spans[i - 1][2]} (corrupt file)`);
  }
  return { tensors, metadata };
}
