// The Kubernetes API as a ClusterSource: one reflector (list-then-watch) per kind, their
// events gathered into batches, the initial state delivered as one batch in kind order
// (namespaces before the pods in them), then `onSynced`.

import {
  workloadKey,
  type AdminNetworkPolicy,
  type BaselineAdminNetworkPolicy,
  type Cluster,
  type Namespace,
  type NetworkPolicy,
  type Node,
  type Pod,
  type Service,
  type Workload,
  type WorkloadKind,
} from '../../model/cluster.js';
import {
  SOURCE_KINDS,
  type ClusterEvent,
  type ClusterSnapshot,
  type ClusterSource,
  type ClusterSourceHandlers,
  type EndpointSlice,
  type SourceKind,
} from '../types.js';
import { KUBE_KINDS } from './kinds.js';
import type { NormalizeOptions } from './normalize.js';
import { DEFAULT_TIMING, Reflector, type ReflectorStats, type ReflectorTiming } from './reflector.js';
import { KubeTransport, loadKubeConfig, type KubeAuth } from './transport.js';

export interface KubeSourceOptions {
  /** Where the API server and the credentials come from (default: $KUBECONFIG or ~/.kube/config). */
  readonly auth?: KubeAuth;
  /** The node this source serves; pods elsewhere keep only what selecting them needs. */
  readonly node?: string;
  /** Timing of watches, the watchdog and backoff (tests shorten them). */
  readonly timing?: Partial<ReflectorTiming>;
}

const byName = (a: { name: string }, b: { name: string }) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
const byNsName = (a: { namespace: string; name: string }, b: { namespace: string; name: string }) =>
  a.namespace < b.namespace ? -1 : a.namespace > b.namespace ? 1 : byName(a, b);

/** Workloads as the model lists them, derived from the real pods (one per controller). */
function workloadsOf(pods: readonly Pod[]): Workload[] {
  const out = new Map<string, Workload>();
  for (const p of pods) {
    const w = out.get(p.workload);
    if (w) {
      out.set(p.workload, { ...w, replicas: w.replicas + 1 });
      continue;
    }
    const m = /^(.*)\/(.*)\[(\w+)\]$/.exec(p.workload);
    const [namespace, name, kind] = m ? [m[1], m[2], m[3] as WorkloadKind] : [p.namespace, p.name, 'Pod' as WorkloadKind];
    out.set(p.workload, { namespace, name, kind, labels: p.labels, ports: p.ports, hostNetwork: p.hostNetwork, replicas: 1 });
  }
  return [...out.values()].sort((a, b) => byNsName(a, b) || (workloadKey(a.namespace, a.name, a.kind) < workloadKey(b.namespace, b.name, b.kind) ? -1 : 1));
}

export class KubeSource implements ClusterSource {
  readonly description: string;
  private readonly transport: KubeTransport;
  private readonly reflectors: { [K in SourceKind]: Reflector<K> };
  private handlers: ClusterSourceHandlers | undefined;
  private synced = false;
  private readonly syncedKinds = new Set<SourceKind>();
  /** Until synced: events per kind, delivered in kind order as the initial batch. */
  private readonly initial = new Map<SourceKind, ClusterEvent[]>();
  private pending: ClusterEvent[] = [];
  private flushScheduled = false;
  private onSyncedOnce: (() => void) | undefined;
  private stopped = false;

  constructor(opts: KubeSourceOptions = {}) {
    const kc = loadKubeConfig(opts.auth ?? { kind: 'kubeconfig' });
    this.transport = new KubeTransport(kc);
    this.description = `kubernetes ${this.transport.server}${opts.node !== undefined ? ` (node ${opts.node})` : ''}`;
    const timing: ReflectorTiming = { ...DEFAULT_TIMING, ...opts.timing };
    const normalize: NormalizeOptions = opts.node !== undefined ? { node: opts.node } : {};
    const sink = {
      events: (kind: SourceKind, events: ClusterEvent[]) => this.accept(kind, events),
      synced: (kind: SourceKind) => this.kindSynced(kind),
      error: (e: Error) => this.handlers?.onError?.(e),
    };
    const make = <K extends SourceKind>(kind: K): Reflector<K> => new Reflector<K>(KUBE_KINDS[kind], this.transport, sink, timing, normalize);
    this.reflectors = {
      Namespace: make('Namespace'),
      Node: make('Node'),
      Pod: make('Pod'),
      Service: make('Service'),
      EndpointSlice: make('EndpointSlice'),
      NetworkPolicy: make('NetworkPolicy'),
      AdminNetworkPolicy: make('AdminNetworkPolicy'),
      BaselineAdminNetworkPolicy: make('BaselineAdminNetworkPolicy'),
    };
  }

  /** Resolves once every kind has been listed and the initial batch delivered. */
  start(handlers: ClusterSourceHandlers): Promise<void> {
    if (this.handlers) throw new Error('KubeSource.start called twice');
    this.handlers = handlers;
    const done = new Promise<void>((ok) => (this.onSyncedOnce = ok));
    for (const kind of SOURCE_KINDS) this.reflectors[kind].start();
    return done;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(SOURCE_KINDS.map((k) => this.reflectors[k].stop()));
    this.transport.close();
    this.onSyncedOnce?.();
  }

  /** Per-kind counters: resourceVersion, lists, watches, re-lists by cause, failures, bookmarks. */
  stats(): ReflectorStats[] {
    return SOURCE_KINDS.map((k) => ({ ...this.reflectors[k].stats }));
  }

  get isSynced(): boolean {
    return this.synced;
  }

  /**
   * The resourceVersion up to which every change has been delivered to the handlers: the least
   * of the kinds' resourceVersions (kinds the server does not serve aside), which bookmarks move
   * on while nothing changes. Lets a writer wait until a consumer has seen its write (the lab's
   * `apply`). Undefined before the initial sync or when versions are not numbers (they are
   * opaque in the API; etcd's revisions and the test API server's are numbers).
   */
  deliveredResourceVersion(): number | undefined {
    if (!this.synced) return undefined;
    if (this.pending.length === 0 && !this.flushScheduled) this.delivered = this.currentResourceVersion();
    return this.delivered;
  }

  private delivered: number | undefined;

  private currentResourceVersion(): number | undefined {
    let least: number | undefined;
    for (const k of SOURCE_KINDS) {
      const st = this.reflectors[k].stats;
      if (st.absent) continue;
      const rv = Number(st.resourceVersion);
      if (st.resourceVersion === undefined || !Number.isFinite(rv)) return undefined;
      least = least === undefined ? rv : Math.min(least, rv);
    }
    return least;
  }

  private accept(kind: SourceKind, events: ClusterEvent[]): void {
    if (this.stopped) return;
    if (!this.synced) {
      const list = this.initial.get(kind) ?? [];
      for (const e of events) list.push(e); // not push(...): a kind's list can be 100k objects
      this.initial.set(kind, list);
      return;
    }
    for (const e of events) this.pending.push(e);
    // Events that arrive together (one chunk of a stream, one re-list) go out as one batch.
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.pending.length === 0 || this.stopped) return;
    const batch = this.pending;
    this.pending = [];
    this.delivered = this.currentResourceVersion();
    this.handlers?.onEvents(batch);
  }

  private kindSynced(kind: SourceKind): void {
    this.syncedKinds.add(kind);
    if (this.synced || this.syncedKinds.size < SOURCE_KINDS.length) return;
    this.synced = true;
    const batch = SOURCE_KINDS.flatMap((k) => this.initial.get(k) ?? []);
    this.initial.clear();
    this.delivered = this.currentResourceVersion();
    this.handlers?.onEvents(batch);
    this.handlers?.onSynced?.();
    this.onSyncedOnce?.();
  }

  snapshot(): ClusterSnapshot {
    const r = this.reflectors;
    const pods = r.Pod.objects().sort(byNsName);
    const baseline = r.BaselineAdminNetworkPolicy.objects().find((b: BaselineAdminNetworkPolicy) => b.name === 'default');
    const cluster: Cluster = {
      namespaces: r.Namespace.objects().sort(byName) as Namespace[],
      nodes: r.Node.objects().sort(byName) as Node[],
      workloads: workloadsOf(pods),
      pods,
      services: r.Service.objects().sort(byNsName) as Service[],
      networkPolicies: r.NetworkPolicy.objects().sort(byNsName) as NetworkPolicy[],
      // Equal priorities have no defined order in the API; name order keeps weir deterministic.
      adminNetworkPolicies: (r.AdminNetworkPolicy.objects() as AdminNetworkPolicy[]).sort((a, b) => a.priority - b.priority || byName(a, b)),
      ...(baseline ? { baselineAdminNetworkPolicy: baseline } : {}),
    };
    return { cluster, endpointSlices: (r.EndpointSlice.objects() as EndpointSlice[]).sort(byNsName) };
  }
}
