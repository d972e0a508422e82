// Snapshots → events. A source that re-reads a whole state (files, the lab's state file and
// desired folder) turns "before" and "after" into the events of what changed, object by object,
// keyed by kind, namespace and name: what an informer would have delivered. Consumers then
// never diff whole clusters themselves.
//
// Cheap by construction: unchanged objects are usually the same references (a source keeps its
// previous objects), and otherwise are compared structurally with early exits, never through
// JSON.stringify (2 × 10k pods serialised cost tens of milliseconds per sync).

import type { Cluster } from '../model/cluster.js';
import { SOURCE_KINDS, type ClusterEvent, type ClusterSnapshot, type KindObjects, type SourceKind } from './types.js';

/** `namespace/name` for namespaced kinds, `name` for cluster-scoped ones. */
export function objectKey<K extends SourceKind>(kind: K, object: KindObjects[K]): string {
  return 'namespace' in object && typeof object.namespace === 'string' && kind !== 'Namespace' ? `${object.namespace}/${object.name}` : object.name;
}

/** The objects of one kind in a snapshot. */
export function objectsOf<K extends SourceKind>(snapshot: ClusterSnapshot, kind: K): readonly KindObjects[K][] {
  const c = snapshot.cluster;
  const table: { [P in SourceKind]: readonly KindObjects[P][] } = {
    Namespace: c.namespaces,
    Node: c.nodes,
    Pod: c.pods,
    Service: c.services,
    EndpointSlice: snapshot.endpointSlices,
    NetworkPolicy: c.networkPolicies,
    AdminNetworkPolicy: c.adminNetworkPolicies,
    BaselineAdminNetworkPolicy: c.baselineAdminNetworkPolicy ? [c.baselineAdminNetworkPolicy] : [],
  };
  return table[kind];
}

/** Structural equality of plain data (what the model is made of): no cycles, no classes. */
export function sameValue(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!sameValue(a[i], b[i])) return false;
    return true;
  }
  if (Array.isArray(b)) return false;
  const ra = a as Record<string, unknown>;
  const rb = b as Record<string, unknown>;
  // Absent and `undefined` are the same field for the model (optional properties).
  let na = 0;
  for (const k in ra) {
    if (ra[k] === undefined) continue;
    na++;
    if (!sameValue(ra[k], rb[k])) return false;
  }
  let nb = 0;
  for (const k in rb) if (rb[k] !== undefined) nb++;
  return na === nb;
}

/** Added/updated first (in SOURCE_KINDS order: namespaces before the pods in them), then deletions in reverse. */
const DELETE_ORDER: readonly SourceKind[] = [...SOURCE_KINDS].reverse();

function byKey(a: [string, unknown], b: [string, unknown]): number {
  return a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0;
}

/**
 * The events that bring a consumer from `prev` to `next`: `added`/`updated` per kind in
 * SOURCE_KINDS order, then `deleted` in the reverse order, each kind sorted by key so two
 * sources with the same states emit the same list whatever their internal order.
 */
export function diffSnapshots(prev: ClusterSnapshot, next: ClusterSnapshot): ClusterEvent[] {
  const changes: ClusterEvent[] = [];
  const deletions = new Map<SourceKind, ClusterEvent[]>();
  for (const kind of SOURCE_KINDS) {
    const before = objectsOf(prev, kind);
    const after = objectsOf(next, kind);
    if (before === after) continue;
    const old = new Map<string, KindObjects[typeof kind]>();
    for (const o of before) old.set(objectKey(kind, o), o);
    const upserts: [string, ClusterEvent][] = [];
    const seen = new Set<string>();
    for (const o of after) {
      const key = objectKey(kind, o);
      seen.add(key);
      const was = old.get(key);
      if (was === undefined) upserts.push([key, { type: 'added', kind, object: o } as ClusterEvent]);
      else if (was !== o && !sameValue(was, o)) upserts.push([key, { type: 'updated', kind, object: o, old: was } as ClusterEvent]);
    }
    const removed: [string, ClusterEvent][] = [];
    for (const [key, o] of old) if (!seen.has(key)) removed.push([key, { type: 'deleted', kind, object: o } as ClusterEvent]);
    for (const [, e] of upserts.sort(byKey)) changes.push(e);
    if (removed.length > 0) deletions.set(kind, removed.sort(byKey).map(([, e]) => e));
  }
  for (const kind of DELETE_ORDER) for (const d of deletions.get(kind) ?? []) changes.push(d);
  return changes;
}

export const EMPTY_SNAPSHOT: ClusterSnapshot = {
  cluster: { namespaces: [], nodes: [], workloads: [], pods: [], services: [], networkPolicies: [], adminNetworkPolicies: [] },
  endpointSlices: [],
};

/** The initial delivery of a snapshot: every object as `added`. */
export function snapshotEvents(snapshot: ClusterSnapshot): ClusterEvent[] {
  return diffSnapshots(EMPTY_SNAPSHOT, snapshot);
}

/**
 * Applies events to a snapshot (what a consumer that keeps its own copy does): the snapshot
 * after the events, with unchanged objects kept by reference. Workloads are not events; they
 * are carried over from `snapshot` unless `workloads` is given.
 */
export function applyEventsToSnapshot(snapshot: ClusterSnapshot, events: readonly ClusterEvent[], workloads?: Cluster['workloads']): ClusterSnapshot {
  if (events.length === 0) return snapshot;
  const maps = new Map<SourceKind, Map<string, unknown>>();
  const mapOf = (kind: SourceKind): Map<string, unknown> => {
    let m = maps.get(kind);
    if (!m) {
      m = new Map<string, unknown>(objectsOf(snapshot, kind).map((o) => [objectKey(kind, o), o]));
      maps.set(kind, m);
    }
    return m;
  };
  for (const e of events) {
    const m = mapOf(e.kind);
    const key = objectKey(e.kind, e.object);
    if (e.type === 'deleted') m.delete(key);
    else m.set(key, e.object);
  }
  const get = <K extends SourceKind>(kind: K): readonly KindObjects[K][] => {
    const m = maps.get(kind);
    return m ? ([...m.values()] as KindObjects[K][]) : objectsOf(snapshot, kind);
  };
  const banp = get('BaselineAdminNetworkPolicy')[0];
  const cluster: Cluster = {
    namespaces: get('Namespace'),
    nodes: get('Node'),
    workloads: workloads ?? snapshot.cluster.workloads,
    pods: get('Pod'),
    services: get('Service'),
    networkPolicies: get('NetworkPolicy'),
    adminNetworkPolicies: get('AdminNetworkPolicy'),
    ...(banp ? { baselineAdminNetworkPolicy: banp } : {}),
  };
  return { cluster, endpointSlices: get('EndpointSlice') };
}
