import fs from 'node:fs';
import path from 'node:path';
import { isMap, isSeq, LineCounter, parseDocument, parse as parseYaml, type Document } from 'yaml';
import { z } from 'zod';
import { experimentSchema, pathKeys, type ExperimentConfig } from './schema.js';
import { closestMatch } from '../util/strings.js';

/** Bad experiment file or override: the message is one line naming file:line or the key path. */
export class ConfigError extends Error {}

export interface LoadedConfig {
  config: ExperimentConfig;
  /** Absolute path of the YAML file. */
  file: string;
}

/** Read, override (`--set a.b=value`), validate and resolve paths of an experiment file. */
export function loadConfig(file: string, overrides: readonly string[] = []): LoadedConfig {
  const abs = path.resolve(file);
  let text: string;
  try {
    text = fs.readFileSync(abs, 'utf8');
  } catch {
    throw new ConfigError(`${file}: cannot read config file`);
  }
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false });
  if (doc.errors.length > 0) {
    const err = doc.errors[0];
    const { line, col } = lines.linePos(err.pos[0]);
    throw new ConfigError(`${file}:${line}:${col}: invalid YAML: ${err.message.split('\n')[0]}`);
  }
  const raw: unknown = doc.toJS() ?? {};
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new ConfigError(`${file}: expected a mapping at the top level`);
  const bad = forbiddenKeyPath(raw);
  if (bad) {
    const where = lineOf(doc, lines, bad);
    throw new ConfigError(`${file}${where ? `:${where}` : ''}: ${forbiddenKeyMessage(bad)}`);
  }
  for (const o of overrides) applyOverride(raw as Record<string, unknown>, o);

  const parsed = experimentSchema.safeParse(raw);
  if (!parsed.success) {
    // A misspelt key also makes its intended key "missing": report the typo.
    const issues = parsed.error.issues;
    const first = issues.find((i) => i.code === 'unrecognized_keys') ?? issues[0];
    throw new ConfigError(describeIssue(file, doc, lines, first));
  }
  const config = parsed.data;
  resolvePaths(config as unknown as Record<string, unknown>, path.dirname(abs));
  return { config, file: abs };
}

/** Keys that reach an object's prototype when assigned (`a.__proto__.x = 1`): never config keys. */
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

/** Path to the first forbidden key in a parsed value (own keys, nested maps and lists), if any. */
function forbiddenKeyPath(value: unknown, at: string[] = []): string[] | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  for (const [key, child] of Object.entries(value)) {
    if (FORBIDDEN_KEYS.has(key)) return [...at, key];
    const found = forbiddenKeyPath(child, [...at, key]);
    if (found) return found;
  }
  return undefined;
}

function forbiddenKeyMessage(keyPath: readonly string[]): string {
  return `${keyPath.join('.')}: key "${keyPath.find((k) => FORBIDDEN_KEYS.has(k))}" is not allowed (it would reach Object.prototype)`;
}

/** `a.b.c=value`; value is read as a YAML scalar/flow value so numbers and lists keep their types. */
export function applyOverride(target: Record<string, unknown>, assignment: string): void {
  const eq = assignment.indexOf('=');
  if (eq <= 0) throw new ConfigError(`--set ${assignment}: expected key.path=value`);
  const keyPath = assignment.slice(0, eq).split('.');
  if (keyPath.some((k) => k === '')) throw new ConfigError(`--set ${assignment}: empty key in path`);
  let value: unknown;
  try {
    value = parseYaml(assignment.slice(eq + 1));
  } catch {
    value = assignment.slice(eq + 1);
  }
  const bad = keyPath.some((k) => FORBIDDEN_KEYS.has(k)) ? keyPath : forbiddenKeyPath(value, keyPath);
  if (bad) throw new ConfigError(`--set ${forbiddenKeyMessage(bad)}`);
  let node = target;
  for (const key of keyPath.slice(0, -1)) {
    // Own keys only: an inherited member (toString, ...) is not a section to descend into.
    const next = Object.hasOwn(node, key) ? node[key] : undefined;
    if (next === undefined || next === null) node[key] = {};
    else if (typeof next !== 'object' || Array.isArray(next)) {
      throw new ConfigError(`--set ${assignment}: ${key} is not a section`);
    }
    node = node[key] as Record<string, unknown>;
  }
  node[keyPath[keyPath.length - 1]] = value;
}

function describeIssue(file: string, doc: Document, lines: LineCounter, issue: z.ZodIssue): string {
  let keyPath = issue.path.map(String);
  let message = issue.message;
  if (issue.code === 'unrecognized_keys') {
    const key = issue.keys[0];
    const known = knownKeys(issue.path);
    const hint = closestMatch(key, known);
    keyPath = [...keyPath, key];
    message = `unknown key${hint ? ` (did you mean "${hint}"?)` : ''}`;
  } else if (issue.code === 'invalid_type' && issue.received === 'undefined') {
    message = 'required key is missing';
  } else if (issue.code === 'invalid_union_discriminator' || issue.code === 'invalid_union') {
    message = `${message}: check the allowed forms for ${keyPath.join('.') || 'this section'}`;
  }
  const where = lineOf(doc, lines, keyPath);
  return `${file}${where ? `:${where}` : ''}: ${keyPath.join('.') || '(top level)'}: ${message}`;
}

/** Line of the deepest existing node on the path, or '' if none (an override or a missing key). */
function lineOf(doc: Document, lines: LineCounter, keyPath: readonly string[]): string {
  for (let n = keyPath.length; n > 0; n--) {
    const parent = n > 1 ? doc.getIn(keyPath.slice(0, n - 1), true) : doc.contents;
    if (!isMap(parent) && !isSeq(parent)) continue;
    const pair = isMap(parent) ? parent.items.find((p) => String((p.key as { value?: unknown })?.value ?? p.key) === keyPath[n - 1]) : undefined;
    const node = (pair?.key ?? doc.getIn(keyPath.slice(0, n), true)) as { range?: [number, number, number] } | undefined;
    if (node?.range) return String(lines.linePos(node.range[0]).line);
  }
  return '';
}

/** Keys the schema allows at a path, for "did you mean" hints. */
function knownKeys(keyPath: readonly (string | number)[]): string[] {
  let schema: z.ZodTypeAny = experimentSchema;
  for (const key of [...keyPath, null]) {
    while (true) {
      if (schema instanceof z.ZodOptional || schema instanceof z.ZodNullable) schema = schema.unwrap();
      else if (schema instanceof z.ZodDefault) schema = schema._def.innerType;
      else if (schema instanceof z.ZodEffects) schema = schema.innerType();
      else break;
    }
    if (key === null) break;
    if (schema instanceof z.ZodObject) schema = schema.shape[key] ?? z.never();
    else if (schema instanceof z.ZodArray) schema = schema.element;
    else return [];
  }
  if (schema instanceof z.ZodObject) return Object.keys(schema.shape);
  if (schema instanceof z.ZodUnion || schema instanceof z.ZodDiscriminatedUnion) {
    return (schema.options as z.ZodTypeAny[]).flatMap((o) => (o instanceof z.ZodObject ? Object.keys(o.shape) : []));
  }
  return [];
}

function resolvePaths(config: Record<string, unknown>, baseDir: string): void {
  for (const keyPath of pathKeys) {
    let node: Record<string, unknown> | undefined = config;
    for (const key of keyPath.slice(0, -1)) node = node?.[key] as Record<string, unknown> | undefined;
    const last = keyPath[keyPath.length - 1];
    if (node && typeof node[last] === 'string') node[last] = path.resolve(baseDir, node[last] as string);
  }
}
