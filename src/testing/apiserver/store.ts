// The test API server's storage, modelled on etcd as the API server uses it: one global,
// monotonically increasing resourceVersion; every write gets the next one; a bounded history
// of changes serves watches that start from an older resourceVersion, and anything older than
// the history ("compacted") is answered with 410 Gone, exactly as "API concepts: efficient
// detection of changes" describes.

import { randomBytes, randomUUID } from 'node:crypto';
import { API_RESOURCES, apiVersionOf, type ApiResource } from './resources.js';

export interface ObjectMeta {
  name: string;
  namespace?: string;
  generateName?: string;
  uid?: string;
  resourceVersion?: string;
  creationTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  [key: string]: unknown;
}

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
  [key: string]: unknown;
}

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface StoreEvent {
  readonly type: WatchEventType;
  readonly resource: ApiResource;
  /** The object after the change (for DELETED: the last state, with the deletion's resourceVersion). */
  readonly object: KubeObject;
  readonly rv: number;
}

/** An error the HTTP layer turns into a metav1.Status. */
export class ApiError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    readonly details?: { name?: string; group?: string; kind?: string },
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/** The serialised state (a state file), enough to restart a server where it stopped. */
export interface StoreState {
  readonly resourceVersion: number;
  readonly objects: readonly KubeObject[];
}

function keyOf(namespace: string | undefined, name: string): string {
  return namespace === undefined ? name : `${namespace}/${name}`;
}

function resourceKey(r: ApiResource): string {
  return `${r.group}/${r.plural}`;
}

function now(): string {
  // metav1.Time is RFC 3339 with second precision.
  return new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** Structural equality of two JSON values (for no-op updates, which write nothing). */
function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => jsonEqual(x, b[i]));
  const ka = Object.keys(a as object).filter((k) => (a as Record<string, unknown>)[k] !== undefined);
  const kb = Object.keys(b as object).filter((k) => (b as Record<string, unknown>)[k] !== undefined);
  if (ka.length !== kb.length) return false;
  return ka.every((k) => jsonEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}

function withoutVolatile(o: KubeObject): KubeObject {
  const { resourceVersion: _rv, managedFields: _mf, ...metadata } = o.metadata;
  return { ...o, metadata: metadata as ObjectMeta };
}

export class ObjectStore {
  private rv: number;
  private readonly objects = new Map<string, Map<string, KubeObject>>();
  private history: StoreEvent[] = [];
  /** Watches may start at any resourceVersion ≥ this one; older ones are "too old" (410). */
  private compacted: number;
  private readonly listeners = new Set<(e: StoreEvent) => void>();

  constructor(
    private readonly historyLimit = 10_000,
    state?: StoreState,
  ) {
    for (const r of API_RESOURCES) this.objects.set(resourceKey(r), new Map());
    this.rv = state?.resourceVersion ?? 1;
    // After a restart the history is gone, as after an etcd compaction: watches from before
    // the restart's resourceVersion get 410 and must re-list.
    this.compacted = this.rv;
    for (const o of state?.objects ?? []) {
      const r = API_RESOURCES.find((x) => apiVersionOf(x) === o.apiVersion && x.kind === o.kind);
      if (r) this.bucket(r).set(keyOf(o.metadata.namespace, o.metadata.name), o);
    }
  }

  get resourceVersion(): number {
    return this.rv;
  }

  get compactedResourceVersion(): number {
    return this.compacted;
  }

  state(): StoreState {
    const objects: KubeObject[] = [];
    for (const b of this.objects.values()) objects.push(...b.values());
    return { resourceVersion: this.rv, objects };
  }

  subscribe(listener: (e: StoreEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private bucket(r: ApiResource): Map<string, KubeObject> {
    const b = this.objects.get(resourceKey(r));
    if (!b) throw new Error(`no storage for ${r.plural}`);
    return b;
  }

  get(r: ApiResource, namespace: string | undefined, name: string): KubeObject {
    const o = this.bucket(r).get(keyOf(r.namespaced ? namespace : undefined, name));
    if (!o) throw new ApiError(404, 'NotFound', `${r.plural}${r.group ? '.' + r.group : ''} "${name}" not found`, { name, group: r.group, kind: r.plural });
    return o;
  }

  /** The objects of a resource (optionally one namespace), sorted by namespace/name as etcd keys are. */
  list(r: ApiResource, namespace?: string): KubeObject[] {
    const out = [...this.bucket(r).entries()]
      .filter(([, o]) => !r.namespaced || namespace === undefined || o.metadata.namespace === namespace)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([, o]) => o);
    return out;
  }

  /** Changes after `rv` (exclusive) for one resource, or undefined if they were compacted. */
  since(r: ApiResource, rv: number): StoreEvent[] | undefined {
    if (rv < this.compacted) return undefined;
    return this.history.filter((e) => e.rv > rv && e.resource === r);
  }

  private record(e: StoreEvent): void {
    this.history.push(e);
    if (this.history.length > this.historyLimit) {
      const dropped = this.history.splice(0, this.history.length - this.historyLimit);
      this.compacted = dropped[dropped.length - 1].rv;
    }
    for (const l of this.listeners) l(e);
  }

  /** Forgets all history: every watch or list from an earlier resourceVersion gets 410 Gone. */
  compact(): void {
    this.history = [];
    this.compacted = this.rv;
  }

  private checkNamespace(r: ApiResource, o: KubeObject): void {
    if (!r.namespaced) return;
    const ns = o.metadata.namespace;
    if (!ns) throw new ApiError(400, 'BadRequest', 'the namespace of the object is required');
    // The NamespaceLifecycle admission plugin: no objects in a namespace that does not exist.
    const nsRes = API_RESOURCES.find((x) => x.kind === 'Namespace');
    if (nsRes && !this.bucket(nsRes).has(ns)) throw new ApiError(404, 'NotFound', `namespaces "${ns}" not found`, { name: ns, kind: 'namespaces' });
  }

  create(r: ApiResource, input: KubeObject): KubeObject {
    const meta = { ...input.metadata };
    if (!meta.name && meta.generateName) meta.name = `${meta.generateName}${randomBytes(3).toString('hex').slice(0, 5)}`;
    if (!meta.name) throw new ApiError(422, 'Invalid', `${r.kind} "" is invalid: metadata.name: Required value: name or generateName is required`, { kind: r.kind });
    if (!r.namespaced) delete meta.namespace;
    const key = keyOf(r.namespaced ? meta.namespace : undefined, meta.name);
    const b = this.bucket(r);
    if (b.has(key)) {
      throw new ApiError(409, 'AlreadyExists', `${r.plural}${r.group ? '.' + r.group : ''} "${meta.name}" already exists`, { name: meta.name, group: r.group, kind: r.plural });
    }
    const object: KubeObject = { ...input, apiVersion: apiVersionOf(r), kind: r.kind, metadata: meta };
    this.checkNamespace(r, object);
    if (r.kind === 'Namespace') {
      // Set by the API server on every namespace (beta since 1.21, GA 1.22).
      meta.labels = { ...(meta.labels ?? {}), 'kubernetes.io/metadata.name': meta.name };
    }
    meta.uid = randomUUID();
    meta.creationTimestamp = now();
    meta.resourceVersion = String(++this.rv);
    b.set(key, object);
    this.record({ type: 'ADDED', resource: r, object, rv: this.rv });
    return object;
  }

  update(r: ApiResource, input: KubeObject): KubeObject {
    const ns = r.namespaced ? input.metadata.namespace : undefined;
    const current = this.get(r, ns, input.metadata.name);
    const given = input.metadata.resourceVersion;
    if (given !== undefined && given !== '' && given !== current.metadata.resourceVersion) {
      throw new ApiError(
        409,
        'Conflict',
        `Operation cannot be fulfilled on ${r.plural}${r.group ? '.' + r.group : ''} "${input.metadata.name}": the object has been modified; please apply your changes to the latest version and try again`,
        { name: input.metadata.name, group: r.group, kind: r.plural },
      );
    }
    const metadata: ObjectMeta = {
      ...input.metadata,
      uid: current.metadata.uid,
      creationTimestamp: current.metadata.creationTimestamp,
      resourceVersion: current.metadata.resourceVersion,
    };
    if (!r.namespaced) delete metadata.namespace;
    if (r.kind === 'Namespace') metadata.labels = { ...(metadata.labels ?? {}), 'kubernetes.io/metadata.name': metadata.name };
    const next: KubeObject = { ...input, apiVersion: apiVersionOf(r), kind: r.kind, metadata };
    // An update that changes nothing writes nothing: no new resourceVersion, no event.
    if (jsonEqual(withoutVolatile(next), withoutVolatile(current))) return current;
    metadata.resourceVersion = String(++this.rv);
    this.bucket(r).set(keyOf(ns, metadata.name), next);
    this.record({ type: 'MODIFIED', resource: r, object: next, rv: this.rv });
    return next;
  }

  delete(r: ApiResource, namespace: string | undefined, name: string): KubeObject {
    const current = this.get(r, namespace, name);
    if (r.kind === 'Namespace') {
      // A real namespace terminates and its controller deletes the contents first; here that
      // happens at once, in the same order (contents, then the namespace).
      for (const inner of API_RESOURCES.filter((x) => x.namespaced)) {
        for (const o of this.list(inner, name)) this.delete(inner, name, o.metadata.name);
      }
    }
    this.bucket(r).delete(keyOf(r.namespaced ? namespace : undefined, name));
    const gone: KubeObject = { ...current, metadata: { ...current.metadata, resourceVersion: String(++this.rv) } };
    this.record({ type: 'DELETED', resource: r, object: gone, rv: this.rv });
    return gone;
  }
}
