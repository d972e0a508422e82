// Identities and the selector cache (after Cilium's pkg/policy): endpoints with the same
// namespace, labels and container ports share one identity, and every distinct peer or
// subject selector is a *group* evaluated once, against identities rather than pods.

import { createHash } from 'node:crypto';
import type { ContainerPort, LabelSelector, Labels, Namespace, Node, Pod } from '../model/cluster.js';
import { blockIntervals, cidrInterval, type IpInterval } from './ip.js';
import { formatSelector, isEmptySelector, labelsKey, matchesSelector, selectorKey } from './selector.js';

export interface Identity {
  readonly id: number;
  readonly key: string;
  readonly namespace: string;
  readonly labels: Labels;
  readonly ports: readonly ContainerPort[];
  readonly hostNetwork: boolean;
  /** Pod keys (`ns/name`). */
  readonly pods: Set<string>;
}

export type GroupSpec =
  /** Pods matching podSelector in one namespace (`namespace`) or in namespaces matching `namespaceSelector`. */
  | {
      readonly kind: 'pods';
      readonly namespace?: string;
      readonly namespaceSelector?: LabelSelector;
      readonly podSelector: LabelSelector;
    }
  /** Addresses: cidr minus except, as intervals. */
  | { readonly kind: 'cidr'; readonly cidrs: readonly string[]; readonly except: readonly string[]; readonly intervals: readonly IpInterval[] }
  /** Nodes (host-network endpoints) matching a node selector. */
  | { readonly kind: 'nodes'; readonly nodeSelector: LabelSelector };

export interface Group {
  readonly id: number;
  readonly key: string;
  readonly spec: GroupSpec;
  readonly description: string;
  /** Identities in the group (kind `pods` only). */
  readonly identities: Set<number>;
  refs: number;
}

export function portsKey(ports: readonly ContainerPort[]): string {
  return ports
    .map((p) => `${p.name ?? ''}:${p.port}/${p.protocol}`)
    .sort()
    .join(',');
}

export function identityKey(pod: Pick<Pod, 'namespace' | 'labels' | 'ports' | 'hostNetwork'>): string {
  return `${pod.namespace}\u0000${labelsKey(pod.labels)}\u0000${portsKey(pod.ports)}\u0000${pod.hostNetwork ? 'h' : ''}`;
}

/**
 * Identity ids live in [256, 2^31): positive as a JSON number and as a 32-bit packet mark
 * should the data plane ever carry one; below 256 is kept for reserved identities (the world,
 * the host), as in Cilium.
 */
export const IDENTITY_ID_MIN = 256;
export const IDENTITY_ID_MAX = 0x7fffffff;

/**
 * The id an identity key hashes to. Ids are derived from the key (namespace, labels, ports),
 * not counted, so every process that sees the same cluster — the agents, `lab status`, the
 * flow server — gives a group the same number, whatever order it saw the pods in. Two keys
 * hash to the same id with probability ~n²/2^32 (2·10⁻⁴ at 1,000 identities, 4 % at
 * 12,500); the later one then takes the next free id (linear probing), which is the only case
 * where the order of arrival can matter.
 */
export function identityIdOf(key: string): number {
  const v = createHash('sha256').update(key).digest().readUInt32BE(0) & IDENTITY_ID_MAX;
  return v < IDENTITY_ID_MIN ? v + IDENTITY_ID_MIN : v;
}

function groupKey(spec: GroupSpec): string {
  switch (spec.kind) {
    case 'pods':
      return spec.namespace !== undefined
        ? `pods:ns=${spec.namespace}:${selectorKey(spec.podSelector)}`
        : `pods:nssel=${selectorKey(spec.namespaceSelector ?? {})}:${selectorKey(spec.podSelector)}`;
    case 'cidr':
      return `cidr:${[...spec.cidrs].sort().join(',')}:except=${[...spec.except].sort().join(',')}`;
    case 'nodes':
      return `nodes:${selectorKey(spec.nodeSelector)}`;
  }
}

function describe(spec: GroupSpec): string {
  switch (spec.kind) {
    case 'pods': {
      const ns =
        spec.namespace !== undefined
          ? `namespace ${spec.namespace}`
          : isEmptySelector(spec.namespaceSelector ?? {})
            ? 'all namespaces'
            : `namespaces ${formatSelector(spec.namespaceSelector ?? {})}`;
      const pods = isEmptySelector(spec.podSelector) ? 'all pods' : `pods ${formatSelector(spec.podSelector)}`;
      return `${pods} in ${ns}`;
    }
    case 'cidr':
      return `${spec.cidrs.join(', ')}${spec.except.length ? ` except ${spec.except.join(', ')}` : ''}`;
    case 'nodes':
      return `nodes ${formatSelector(spec.nodeSelector)}`;
  }
}

export function cidrGroupSpec(cidrs: readonly string[], except: readonly string[]): GroupSpec {
  const exceptIv = except.map(cidrInterval).filter((c) => c !== undefined).map((c) => c.interval);
  const intervals: IpInterval[] = [];
  for (const text of cidrs) {
    const c = cidrInterval(text);
    if (c) intervals.push(...blockIntervals(c.interval, exceptIv));
  }
  intervals.sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  return { kind: 'cidr', cidrs, except, intervals };
}

/**
 * The identity registry and selector cache. Changes are incremental: a new identity is
 * matched against the cached groups that could contain it (those of its namespace and the
 * namespace-selector groups), and a changed namespace re-checks only its own identities.
 */
export class SelectorCache {
  readonly namespaces = new Map<string, Namespace>();
  readonly nodes = new Map<string, Node>();
  readonly identities = new Map<number, Identity>();
  private readonly identityByKey = new Map<string, Identity>();
  private readonly identitiesByNamespace = new Map<string, Set<number>>();
  readonly groups = new Map<number, Group>();
  private readonly groupByKey = new Map<string, Group>();
  /** Groups bound to one namespace, and groups that select namespaces by label. */
  private readonly nsGroups = new Map<string, Set<number>>();
  private readonly selectorGroups = new Set<number>();
  private nextGroup = 1;
  /** Called when an identity joins or leaves a group. */
  onMembership: (group: Group, identity: number, member: boolean) => void = () => {};

  namespaceLabels(name: string): Labels {
    return this.namespaces.get(name)?.labels ?? { 'kubernetes.io/metadata.name': name };
  }

  private podGroupMatches(spec: Extract<GroupSpec, { kind: 'pods' }>, id: Identity): boolean {
    if (id.hostNetwork) return false; // host-network pods are seen as their node, not as pods
    if (spec.namespace !== undefined) {
      if (spec.namespace !== id.namespace) return false;
    } else if (!matchesSelector(spec.namespaceSelector ?? {}, this.namespaceLabels(id.namespace))) {
      return false;
    }
    return matchesSelector(spec.podSelector, id.labels);
  }

  acquireIdentity(pod: Pod): Identity {
    const key = identityKey(pod);
    let id = this.identityByKey.get(key);
    if (!id) {
      let n = identityIdOf(key);
      while (this.identities.has(n)) n = n >= IDENTITY_ID_MAX ? IDENTITY_ID_MIN : n + 1;
      id = {
        id: n,
        key,
        namespace: pod.namespace,
        labels: pod.labels,
        ports: pod.ports,
        hostNetwork: pod.hostNetwork,
        pods: new Set(),
      };
      this.identityByKey.set(key, id);
      this.identities.set(id.id, id);
      let byNs = this.identitiesByNamespace.get(id.namespace);
      if (!byNs) this.identitiesByNamespace.set(id.namespace, (byNs = new Set()));
      byNs.add(id.id);
      for (const gid of this.candidateGroups(id.namespace)) {
        const g = this.groups.get(gid) as Group;
        if (g.spec.kind === 'pods' && this.podGroupMatches(g.spec, id)) {
          g.identities.add(id.id);
          this.onMembership(g, id.id, true);
        }
      }
    }
    id.pods.add(`${pod.namespace}/${pod.name}`);
    return id;
  }

  releaseIdentity(id: Identity, podKey: string): void {
    id.pods.delete(podKey);
    if (id.pods.size > 0) return;
    this.identityByKey.delete(id.key);
    this.identities.delete(id.id);
    this.identitiesByNamespace.get(id.namespace)?.delete(id.id);
    for (const gid of this.candidateGroups(id.namespace)) {
      const g = this.groups.get(gid) as Group;
      if (g.identities.delete(id.id)) this.onMembership(g, id.id, false);
    }
  }

  /**
   * The pod groups `id` is a member of, found among the groups that could hold it (its
   * namespace's and the namespace-selector ones), not among every group of the cluster: the
   * data plane asks this per pod add (src/render/filter.ts).
   */
  *podGroupsOf(id: Identity): Iterable<Group> {
    for (const gid of this.candidateGroups(id.namespace)) {
      const g = this.groups.get(gid) as Group;
      if (g.identities.has(id.id)) yield g;
    }
  }

  private *candidateGroups(namespace: string): Iterable<number> {
    yield* this.nsGroups.get(namespace) ?? [];
    yield* this.selectorGroups;
  }

  setNamespace(ns: Namespace): void {
    this.namespaces.set(ns.name, ns);
    this.recheckNamespace(ns.name);
  }

  removeNamespace(name: string): void {
    this.namespaces.delete(name);
    this.recheckNamespace(name);
  }

  private recheckNamespace(name: string): void {
    for (const iid of this.identitiesByNamespace.get(name) ?? []) {
      const id = this.identities.get(iid) as Identity;
      for (const gid of this.selectorGroups) {
        const g = this.groups.get(gid) as Group;
        if (g.spec.kind !== 'pods') continue;
        const should = this.podGroupMatches(g.spec, id);
        if (should !== g.identities.has(iid)) {
          if (should) g.identities.add(iid);
          else g.identities.delete(iid);
          this.onMembership(g, iid, should);
        }
      }
    }
  }

  /** Returns the cached group for a selector, evaluating it only the first time it is seen. */
  acquireGroup(spec: GroupSpec): Group {
    const key = groupKey(spec);
    let g = this.groupByKey.get(key);
    if (!g) {
      g = { id: this.nextGroup++, key, spec, description: describe(spec), identities: new Set(), refs: 0 };
      this.groupByKey.set(key, g);
      this.groups.set(g.id, g);
      if (spec.kind === 'pods') {
        const candidates =
          spec.namespace !== undefined ? (this.identitiesByNamespace.get(spec.namespace) ?? []) : this.identities.keys();
        for (const iid of candidates) {
          if (this.podGroupMatches(spec, this.identities.get(iid) as Identity)) g.identities.add(iid);
        }
        if (spec.namespace !== undefined) {
          let set = this.nsGroups.get(spec.namespace);
          if (!set) this.nsGroups.set(spec.namespace, (set = new Set()));
          set.add(g.id);
        } else {
          this.selectorGroups.add(g.id);
        }
      }
    }
    g.refs++;
    return g;
  }

  releaseGroup(id: number): void {
    const g = this.groups.get(id);
    if (!g || --g.refs > 0) return;
    this.groups.delete(id);
    this.groupByKey.delete(g.key);
    if (g.spec.kind === 'pods') {
      if (g.spec.namespace !== undefined) this.nsGroups.get(g.spec.namespace)?.delete(id);
      else this.selectorGroups.delete(id);
    }
  }

  identitiesInNamespace(ns: string): Iterable<number> {
    return this.identitiesByNamespace.get(ns) ?? [];
  }
}
