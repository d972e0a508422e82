// Where the cluster's state comes from. Every consumer (the agent, the visibility server,
// `lab probe --compare`, the analyzer) reads the cluster through this one interface, so
// files, the lab and the Kubernetes API are interchangeable: an initial snapshot, then typed
// events per kind, and a "synced" signal once the snapshot is complete (as an informer's
// HasSynced). Events carry the normalized model (src/model), never raw manifests: defaulting
// happens once, in the source.

import type {
  AdminNetworkPolicy,
  BaselineAdminNetworkPolicy,
  Cluster,
  EndpointSlice,
  Namespace,
  NetworkPolicy,
  Node,
  Pod,
  Service,
} from '../model/cluster.js';
import type { Diagnostic } from '../model/diagnostics.js';

export type { EndpointSlice } from '../model/cluster.js';

/** The kinds a source reports, and the object each carries. */
export interface KindObjects {
  Namespace: Namespace;
  Node: Node;
  Pod: Pod;
  Service: Service;
  EndpointSlice: EndpointSlice;
  NetworkPolicy: NetworkPolicy;
  AdminNetworkPolicy: AdminNetworkPolicy;
  BaselineAdminNetworkPolicy: BaselineAdminNetworkPolicy;
}

export type SourceKind = keyof KindObjects;

export const SOURCE_KINDS: readonly SourceKind[] = [
  'Namespace',
  'Node',
  'Pod',
  'Service',
  'EndpointSlice',
  'NetworkPolicy',
  'AdminNetworkPolicy',
  'BaselineAdminNetworkPolicy',
];

/** One change. `updated` carries the new object; `deleted` the last known one. */
export type ClusterEvent = {
  [K in SourceKind]:
    | { readonly type: 'added'; readonly kind: K; readonly object: KindObjects[K] }
    | { readonly type: 'updated'; readonly kind: K; readonly object: KindObjects[K]; readonly old: KindObjects[K] }
    | { readonly type: 'deleted'; readonly kind: K; readonly object: KindObjects[K] };
}[SourceKind];

/** The whole state at one moment, in the model's shape plus EndpointSlices. */
export interface ClusterSnapshot {
  readonly cluster: Cluster;
  readonly endpointSlices: readonly EndpointSlice[];
}

export interface ClusterSourceHandlers {
  /**
   * A batch of events, in order. Sources deliver changes that arrive together as one batch so
   * a consumer can turn them into one transaction.
   */
  onEvents(events: readonly ClusterEvent[]): void;
  /** The initial state has been delivered completely (called once, after the first batch). */
  onSynced?(): void;
  /** A problem the source recovered from or reports (an unreadable state file, a dropped watch). */
  onError?(error: Error): void;
  /**
   * The input's diagnostics (file, object, field) after each read, before its events: a source
   * drops an invalid object and keeps the rest, and says so here.
   */
  onDiagnostics?(diagnostics: readonly Diagnostic[]): void;
}

/**
 * One source of cluster state. `start` delivers the initial snapshot as `added` events, then
 * `onSynced`, then changes as they happen until `stop`.
 */
export interface ClusterSource {
  /** A short human name for logs and status ("files examples/demo", "lab /run/weir/lab"). */
  readonly description: string;
  start(handlers: ClusterSourceHandlers): Promise<void>;
  stop(): Promise<void>;
  /** The current state as this source knows it (the snapshot plus every change delivered). */
  snapshot(): ClusterSnapshot;
}
