// Checks manifests against the Kubernetes API's own types, offline: @kubernetes/client-node's
// models are generated from the upstream OpenAPI specification, and each carries the JSON name
// and type of every field (`attributeTypeMap`). An unknown field (a typo such as
// `hostNetwrok`) or a value of the wrong type (`replicas: "1"`) is an error naming the object
// and the field path — what `kubectl apply --validate=strict` would refuse on a real server.
// Not checked here: required fields and enum values (the models do not carry them).

import * as k8s from '@kubernetes/client-node';
import type { Manifest } from './kustomize.js';

interface Attribute {
  readonly name: string;
  readonly baseName: string;
  readonly type: string;
  readonly format: string;
}

interface Model {
  getAttributeTypeMap(): readonly Attribute[];
}

const MODELS: ReadonlyMap<string, Model> = new Map(
  Object.entries(k8s as Record<string, unknown>)
    .filter((e): e is [string, Model] => typeof e[1] === 'function' && typeof (e[1] as Partial<Model>).getAttributeTypeMap === 'function')
    .map(([name, model]) => [name, model]),
);

/** The model type of a top-level object: apps/v1 DaemonSet → V1DaemonSet. */
export function modelTypeOf(apiVersion: string, kind: string): string | undefined {
  const version = apiVersion.includes('/') ? apiVersion.slice(apiVersion.indexOf('/') + 1) : apiVersion;
  const name = `${version.charAt(0).toUpperCase()}${version.slice(1)}${kind}`;
  return MODELS.has(name) ? name : undefined;
}

function typeName(v: unknown): string {
  return Array.isArray(v) ? 'array' : v === null ? 'null' : typeof v;
}

function check(value: unknown, type: string, format: string, path: string, out: string[]): void {
  if (value === null || value === undefined) return; // absent or null: optional here
  if (type === 'any' || type === 'object') return;
  const array = /^Array<(.*)>$/.exec(type);
  if (array) {
    if (!Array.isArray(value)) return void out.push(`${path}: expected an array, got ${typeName(value)}`);
    value.forEach((v, i) => check(v, array[1], '', `${path}[${i}]`, out));
    return;
  }
  const map = /^\{ \[key: string\]: (.*); \}$/.exec(type);
  if (map) {
    if (typeof value !== 'object' || Array.isArray(value)) return void out.push(`${path}: expected a map, got ${typeName(value)}`);
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) check(v, map[1], '', `${path}.${k}`, out);
    return;
  }
  switch (type) {
    case 'string':
    case 'Date':
      if (typeof value !== 'string') out.push(`${path}: expected a string, got ${typeName(value)}`);
      return;
    case 'boolean':
      if (typeof value !== 'boolean') out.push(`${path}: expected a boolean, got ${typeName(value)}`);
      return;
    case 'number':
      if (typeof value !== 'number') out.push(`${path}: expected a number, got ${typeName(value)}`);
      else if ((format === 'int32' || format === 'int64') && !Number.isInteger(value)) out.push(`${path}: expected an integer, got ${value}`);
      return;
    case 'IntOrString':
      if (typeof value !== 'string' && !(typeof value === 'number' && Number.isInteger(value))) out.push(`${path}: expected an integer or a string, got ${typeName(value)}`);
      return;
  }
  const model = MODELS.get(type);
  if (!model) return void out.push(`${path}: no schema for type ${type}`);
  if (typeof value !== 'object' || Array.isArray(value)) return void out.push(`${path}: expected an object (${type}), got ${typeName(value)}`);
  const attrs = new Map(model.getAttributeTypeMap().map((a) => [a.baseName, a]));
  for (const [key, v] of Object.entries(value as Record<string, unknown>)) {
    const a = attrs.get(key);
    const at = path === '' ? key : `${path}.${key}`;
    if (!a) {
      out.push(`${at}: unknown field "${key}" (${type} has no such field)`);
      continue;
    }
    check(v, a.type, a.format, at, out);
  }
}

/**
 * Problems of one manifest against its Kubernetes type, each as `Kind ns/name: path: what`.
 * A kind without a model (a custom resource) is reported: weir installs none.
 */
export function validateManifest(m: Manifest): string[] {
  const id = `${m.kind} ${m.metadata?.namespace ? `${m.metadata.namespace}/` : ''}${m.metadata?.name ?? '<no name>'}`;
  const type = modelTypeOf(m.apiVersion, m.kind);
  if (!type) return [`${id}: no Kubernetes schema for ${m.apiVersion} ${m.kind}`];
  const out: string[] = [];
  check(m, type, '', '', out);
  return out.map((p) => `${id}: ${p}`);
}
