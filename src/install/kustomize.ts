// Renders weir's own kustomizations (deploy/) without kubectl: the subset of kustomize they
// use — `resources` (files and folders), `namespace`, `labels` (metadata only), `images` and
// `patches` (inline JSON 6902 operations on a target named by kind and name).
// A test renders every overlay with both this and `kubectl kustomize` and requires the same
// objects, so the subset cannot drift from the real thing unnoticed. Anything else in a
// kustomization is refused by name rather than ignored.

import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { parseAllDocuments } from 'yaml';

export interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; [key: string]: unknown };
  [key: string]: unknown;
}

export class KustomizeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KustomizeError';
  }
}

/** Kinds without a namespace among those weir installs (and a few a user overlay may add). */
export const CLUSTER_SCOPED = new Set([
  'Namespace',
  'ClusterRole',
  'ClusterRoleBinding',
  'CustomResourceDefinition',
  'PriorityClass',
  'Node',
  'AdminNetworkPolicy',
  'BaselineAdminNetworkPolicy',
  'StorageClass',
  'PersistentVolume',
  'ValidatingWebhookConfiguration',
  'MutatingWebhookConfiguration',
]);

const KNOWN_FIELDS = new Set(['apiVersion', 'kind', 'resources', 'namespace', 'labels', 'images', 'patches']);

interface Kustomization {
  resources?: string[];
  namespace?: string;
  labels?: { pairs: Record<string, string>; includeSelectors?: boolean; includeTemplates?: boolean }[];
  images?: { name: string; newName?: string; newTag?: string }[];
  patches?: { target?: { kind?: string; name?: string; namespace?: string; [key: string]: unknown }; patch?: string; path?: string; options?: unknown }[];
}

interface JsonPatchOp {
  op: string;
  path: string;
  value?: unknown;
}

function readYamlObjects(file: string): Manifest[] {
  const out: Manifest[] = [];
  for (const doc of parseAllDocuments(readFileSync(file, 'utf8'))) {
    if (doc.errors.length > 0) throw new KustomizeError(`${file}: invalid YAML: ${doc.errors[0].message}`);
    const v = doc.toJS() as unknown;
    if (v === null || v === undefined) continue;
    const m = v as Partial<Manifest>;
    if (typeof m !== 'object' || !m.kind || !m.apiVersion || !m.metadata?.name) throw new KustomizeError(`${file}: every document needs apiVersion, kind and metadata.name`);
    out.push(m as Manifest);
  }
  return out;
}

function kustomizationFile(dir: string): string {
  for (const name of ['kustomization.yaml', 'kustomization.yml', 'Kustomization']) {
    const f = join(dir, name);
    if (existsSync(f)) return f;
  }
  throw new KustomizeError(`${dir}: no kustomization.yaml`);
}

function podSpecs(m: Manifest): Record<string, unknown>[] {
  const spec = m.spec as { template?: { spec?: Record<string, unknown> }; jobTemplate?: { spec?: { template?: { spec?: Record<string, unknown> } } } } | undefined;
  const out: Record<string, unknown>[] = [];
  if (spec?.template?.spec) out.push(spec.template.spec);
  if (spec?.jobTemplate?.spec?.template?.spec) out.push(spec.jobTemplate.spec.template.spec);
  if (m.kind === 'Pod' && m.spec) out.push(m.spec as Record<string, unknown>);
  return out;
}

/** Every container of a workload manifest (containers and initContainers). */
export function containersOf(m: Manifest): { name: string; image?: string }[] {
  return podSpecs(m).flatMap((s) => [...((s.initContainers as { name: string; image?: string }[] | undefined) ?? []), ...((s.containers as { name: string; image?: string }[] | undefined) ?? [])]);
}

function imageName(image: string): string {
  // registry/name:tag or name@digest → registry/name
  const at = image.indexOf('@');
  const noDigest = at >= 0 ? image.slice(0, at) : image;
  const slash = noDigest.lastIndexOf('/');
  const colon = noDigest.lastIndexOf(':');
  return colon > slash ? noDigest.slice(0, colon) : noDigest;
}

/** Renders the kustomization in `dir` (recursively) into a list of objects. */
export function kustomize(dir: string): Manifest[] {
  const file = kustomizationFile(resolve(dir));
  const k = (readYamlObjectsLoose(file) ?? {}) as Kustomization & Record<string, unknown>;
  for (const key of Object.keys(k)) if (!KNOWN_FIELDS.has(key)) throw new KustomizeError(`${file}: "${key}" is not supported by weir's renderer (use kubectl kustomize)`);
  let objects: Manifest[] = [];
  for (const r of k.resources ?? []) {
    const path = resolve(dirname(file), r);
    if (!existsSync(path)) throw new KustomizeError(`${file}: resource ${r} does not exist`);
    objects.push(...(statSync(path).isDirectory() ? kustomize(path) : readYamlObjects(path)));
  }
  if (k.namespace) objects = objects.map((o) => setNamespace(o, k.namespace as string, undefined));
  for (const l of k.labels ?? []) {
    if (l.includeSelectors || l.includeTemplates) throw new KustomizeError(`${file}: labels with includeSelectors/includeTemplates are not supported by weir's renderer`);
    objects = objects.map((o) => ({ ...o, metadata: { ...o.metadata, labels: { ...(o.metadata.labels ?? {}), ...l.pairs } } }));
  }
  for (const img of k.images ?? []) objects = objects.map((o) => setImage(o, (name) => name === img.name, `${img.newName ?? img.name}${img.newTag ? `:${img.newTag}` : ''}`));
  (k.patches ?? []).forEach((p, i) => {
    const where = `${file}: patches[${i}]`;
    const t = p.target;
    const extra = Object.keys(p).filter((key) => key !== 'target' && key !== 'patch');
    if (extra.length > 0 || !t || typeof p.patch !== 'string') throw new KustomizeError(`${where}: weir's renderer takes only an inline JSON 6902 \`patch\` with a \`target\` (use kubectl kustomize)`);
    const unknown = Object.keys(t).filter((key) => !['kind', 'name', 'namespace'].includes(key));
    if (unknown.length > 0 || !t.kind || !t.name) throw new KustomizeError(`${where}.target: weir's renderer selects by kind and name (and namespace) only`);
    const ops = readPatchOps(p.patch, where);
    let hits = 0;
    objects = objects.map((o) => {
      if (o.kind !== t.kind || o.metadata.name !== t.name || (t.namespace !== undefined && o.metadata.namespace !== t.namespace)) return o;
      hits++;
      return applyJsonPatch(o, ops, where);
    });
    if (hits === 0) throw new KustomizeError(`${where}: no ${t.kind} ${t.name} to patch`);
  });
  return objects;
}

function readPatchOps(text: string, where: string): JsonPatchOp[] {
  const docs = parseAllDocuments(text);
  if (docs[0]?.errors.length) throw new KustomizeError(`${where}.patch: invalid YAML: ${docs[0].errors[0].message}`);
  const v = docs[0]?.toJS() as unknown;
  if (!Array.isArray(v)) throw new KustomizeError(`${where}.patch: weir's renderer takes JSON 6902 operations (a list), not a strategic merge patch`);
  return v.map((op: unknown, j) => {
    const o = op as Partial<JsonPatchOp> | null;
    if (!o || typeof o.op !== 'string' || typeof o.path !== 'string' || !['add', 'replace', 'remove'].includes(o.op)) throw new KustomizeError(`${where}.patch[${j}]: expected {op: add|replace|remove, path, value}`);
    return o as JsonPatchOp;
  });
}

/** RFC 6902 add, replace and remove on a copy of `o`. */
function applyJsonPatch(o: Manifest, ops: readonly JsonPatchOp[], where: string): Manifest {
  const copy = structuredClone(o) as unknown as Record<string, unknown>;
  for (const op of ops) {
    // RFC 6901: "~1" is "/", "~0" is "~".
    const keys = op.path.split('/').slice(1).map((k) => k.replaceAll('~1', '/').replaceAll('~0', '~'));
    const last = keys.pop();
    if (last === undefined) throw new KustomizeError(`${where}: path "${op.path}" names the whole object`);
    let at: unknown = copy;
    for (const key of keys) {
      at = Array.isArray(at) ? at[Number(key)] : typeof at === 'object' && at !== null ? (at as Record<string, unknown>)[key] : undefined;
      if (at === undefined) throw new KustomizeError(`${where}: path "${op.path}" does not exist in ${o.kind} ${o.metadata.name}`);
    }
    if (Array.isArray(at)) {
      const index = last === '-' ? at.length : Number(last);
      if (!Number.isInteger(index) || index < 0 || index > at.length - (op.op === 'add' ? 0 : 1)) throw new KustomizeError(`${where}: index "${last}" of "${op.path}" is out of range`);
      if (op.op === 'add') at.splice(index, 0, structuredClone(op.value));
      else if (op.op === 'replace') at[index] = structuredClone(op.value);
      else at.splice(index, 1);
    } else if (typeof at === 'object' && at !== null) {
      const obj = at as Record<string, unknown>;
      if (op.op !== 'add' && !(last in obj)) throw new KustomizeError(`${where}: path "${op.path}" does not exist in ${o.kind} ${o.metadata.name}`);
      if (op.op === 'remove') delete obj[last];
      else obj[last] = structuredClone(op.value);
    } else {
      throw new KustomizeError(`${where}: path "${op.path}" does not exist in ${o.kind} ${o.metadata.name}`);
    }
  }
  return copy as unknown as Manifest;
}

function readYamlObjectsLoose(file: string): unknown {
  const docs = parseAllDocuments(readFileSync(file, 'utf8'));
  if (docs[0]?.errors.length) throw new KustomizeError(`${file}: invalid YAML: ${docs[0].errors[0].message}`);
  return docs[0]?.toJS();
}

/**
 * Puts a namespaced object into `namespace` (as kustomize's `namespace:` does) and points
 * ServiceAccount subjects of bindings there. With `from`, only objects in namespace `from`
 * move, the Namespace object named `from` is renamed.
 */
export function setNamespace(o: Manifest, namespace: string, from: string | undefined): Manifest {
  if (o.kind === 'Namespace') {
    if (from !== undefined && o.metadata.name === from) return { ...o, metadata: { ...o.metadata, name: namespace } };
    return o;
  }
  let next = o;
  if (!CLUSTER_SCOPED.has(o.kind) && (from === undefined || (o.metadata.namespace ?? from) === from)) {
    next = { ...next, metadata: { ...next.metadata, namespace } };
  }
  if ((o.kind === 'ClusterRoleBinding' || o.kind === 'RoleBinding') && Array.isArray(o.subjects)) {
    const subjects = (o.subjects as { kind: string; namespace?: string }[]).map((s) =>
      s.kind === 'ServiceAccount' && (from === undefined || s.namespace === from) ? { ...s, namespace } : s,
    );
    next = { ...next, subjects };
  }
  return next;
}

/** Replaces the image of every container whose image name matches. */
export function setImage(o: Manifest, match: (name: string) => boolean, image: string): Manifest {
  if (containersOf(o).length === 0) return o;
  const copy = structuredClone(o);
  for (const c of containersOf(copy)) if (c.image !== undefined && match(imageName(c.image))) c.image = image;
  return copy;
}

export { imageName };
