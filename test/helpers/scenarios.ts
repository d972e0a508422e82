// Building blocks for conformance scenarios: NetworkPolicy builders in the shape of the
// upstream e2e helpers (policies.go: GenNetworkPolicyWithNameAndPodMatchLabel,
// SetSpecIngressRules, SetSpecEgressRules), and a `Scenario` that keeps the desired cluster
// state next to an incrementally updated engine, so that every check can also be run on a
// fresh engine built from the same state (incremental == fresh).

import assert from 'node:assert/strict';
import type {
  AdminNetworkPolicy,
  BaselineAdminNetworkPolicy,
  Cluster,
  LabelSelector,
  Labels,
  Namespace,
  NetworkPolicy,
  NetworkPolicyPeer,
  NetworkPolicyPort,
  NetworkPolicyRule,
  Node,
  Pod,
  Protocol,
} from '../../src/model/cluster.js';
import { analyze, connKey, formatConns, formatIp, PolicyEngine, policyKey, type ConnectivityResult } from '../../src/policy/index.js';
import { e2eModel } from './model.js';
import { podMatrix, validateOrFail, type Probe, type Reachability } from './reachability.js';

// ------------------------------------------------------------------ NetworkPolicy builders

/** Upstream `SetFunc`: mutates a policy spec under construction. */
export type SetFunc = (p: MutablePolicy) => void;

interface MutablePolicy {
  podSelector: LabelSelector;
  policyTypes: ('Ingress' | 'Egress')[];
  ingress: NetworkPolicyRule[] | undefined;
  egress: NetworkPolicyRule[] | undefined;
}

/**
 * Upstream SetSpecIngressRules: the first call creates `ingress` and adds `Ingress` to
 * policyTypes, so `SetSpecIngressRules()` with no rules is a default-deny for ingress.
 */
export function setSpecIngressRules(...rules: NetworkPolicyRule[]): SetFunc {
  return (p) => {
    if (p.ingress === undefined) {
      p.ingress = [];
      p.policyTypes.push('Ingress');
    }
    p.ingress.push(...rules);
  };
}

export function setSpecEgressRules(...rules: NetworkPolicyRule[]): SetFunc {
  return (p) => {
    if (p.egress === undefined) {
      p.egress = [];
      p.policyTypes.push('Egress');
    }
    p.egress.push(...rules);
  };
}

/** Upstream GenNetworkPolicyWithNameAndPodSelector, in a namespace. */
export function genPolicy(namespace: string, name: string, podSelector: LabelSelector, ...setters: SetFunc[]): NetworkPolicy {
  const p: MutablePolicy = { podSelector, policyTypes: [], ingress: undefined, egress: undefined };
  for (const s of setters) s(p);
  return {
    namespace,
    name,
    podSelector: p.podSelector,
    policyTypes: p.policyTypes,
    ingress: p.ingress ?? [],
    egress: p.egress ?? [],
    mode: 'enforce',
  };
}

/** Upstream GenNetworkPolicyWithNameAndPodMatchLabel. */
export function genPolicyMatchLabels(namespace: string, name: string, labels: Labels, ...setters: SetFunc[]): NetworkPolicy {
  return genPolicy(namespace, name, { matchLabels: labels }, ...setters);
}

/** A rule: `peers` empty = from/to everyone; `ports` empty = every port. */
export function rule(peers: NetworkPolicyPeer[] = [], ports: NetworkPolicyPort[] = []): NetworkPolicyRule {
  return { peers, ports };
}

export function podPeer(podSelector: LabelSelector): NetworkPolicyPeer {
  return { kind: 'selector', podSelector };
}

export function nsPeer(namespaceSelector: LabelSelector): NetworkPolicyPeer {
  return { kind: 'selector', namespaceSelector };
}

export function nsPodPeer(namespaceSelector: LabelSelector, podSelector: LabelSelector): NetworkPolicyPeer {
  return { kind: 'selector', namespaceSelector, podSelector };
}

export function ipBlockPeer(cidr: string, except: string[] = []): NetworkPolicyPeer {
  return { kind: 'ipBlock', ipBlock: { cidr, except } };
}

/** A NetworkPolicyPort; protocol defaults to TCP as the API server does. */
export function port(p: number | string | undefined, protocol: Protocol = 'TCP', endPort?: number): NetworkPolicyPort {
  return endPort === undefined ? { protocol, port: p } : { protocol, port: p, endPort };
}

export const TCP80: Probe = { port: 80, protocol: 'TCP' };
export const TCP81: Probe = { port: 81, protocol: 'TCP' };
export const UDP80: Probe = { port: 80, protocol: 'UDP' };
export const UDP81: Probe = { port: 81, protocol: 'UDP' };
export const SCTP80: Probe = { port: 80, protocol: 'SCTP' };
export const SCTP81: Probe = { port: 81, protocol: 'SCTP' };

// ------------------------------------------------------------------ scenario state

function nsKey(n: string): string {
  return n;
}

/**
 * The desired state of a cluster plus an engine kept up to date with incremental calls only.
 * `fresh()` builds a new engine from the same desired state.
 */
export class Scenario {
  readonly namespaces = new Map<string, Namespace>();
  readonly nodes = new Map<string, Node>();
  readonly pods = new Map<string, Pod>();
  readonly networkPolicies = new Map<string, NetworkPolicy>();
  readonly adminPolicies = new Map<string, AdminNetworkPolicy>();
  baseline: BaselineAdminNetworkPolicy | undefined;
  readonly engine: PolicyEngine;

  constructor(initial: Cluster = e2eModel()) {
    for (const n of initial.namespaces) this.namespaces.set(nsKey(n.name), n);
    for (const n of initial.nodes) this.nodes.set(n.name, n);
    for (const p of initial.pods) this.pods.set(`${p.namespace}/${p.name}`, p);
    for (const np of initial.networkPolicies) this.networkPolicies.set(`${np.namespace}/${np.name}`, np);
    for (const a of initial.adminNetworkPolicies) this.adminPolicies.set(a.name, a);
    this.baseline = initial.baselineAdminNetworkPolicy;
    this.engine = new PolicyEngine(initial);
  }

  cluster(): Cluster {
    return {
      namespaces: [...this.namespaces.values()],
      nodes: [...this.nodes.values()],
      workloads: [],
      pods: [...this.pods.values()],
      services: [],
      networkPolicies: [...this.networkPolicies.values()],
      adminNetworkPolicies: [...this.adminPolicies.values()],
      baselineAdminNetworkPolicy: this.baseline,
    };
  }

  fresh(): PolicyEngine {
    return new PolicyEngine(this.cluster());
  }

  // Mutations go to the desired state and, incrementally, to the engine.

  createPolicy(np: NetworkPolicy): this {
    this.networkPolicies.set(`${np.namespace}/${np.name}`, np);
    this.engine.upsertNetworkPolicy(np);
    return this;
  }

  /** UpdatePolicy upstream: same namespace/name, new spec. */
  updatePolicy(np: NetworkPolicy): this {
    assert.ok(this.networkPolicies.has(`${np.namespace}/${np.name}`), `no policy ${np.namespace}/${np.name} to update`);
    return this.createPolicy(np);
  }

  deletePolicy(namespace: string, name: string): this {
    const np = this.networkPolicies.get(`${namespace}/${name}`);
    assert.ok(np, `no policy ${namespace}/${name}`);
    this.networkPolicies.delete(`${namespace}/${name}`);
    this.engine.removePolicy(policyKey({ tier: 'NetworkPolicy', policy: np }));
    return this;
  }

  /** Upstream cleanNetworkPolicies: every NetworkPolicy in every namespace. */
  deleteAllPolicies(): this {
    for (const np of [...this.networkPolicies.values()]) this.deletePolicy(np.namespace, np.name);
    return this;
  }

  createAdminPolicy(anp: AdminNetworkPolicy): this {
    this.adminPolicies.set(anp.name, anp);
    this.engine.upsertAdminNetworkPolicy(anp);
    return this;
  }

  deleteAdminPolicy(name: string): this {
    const anp = this.adminPolicies.get(name);
    assert.ok(anp, `no AdminNetworkPolicy ${name}`);
    this.adminPolicies.delete(name);
    this.engine.removePolicy(policyKey({ tier: 'AdminNetworkPolicy', policy: anp }));
    return this;
  }

  setBaseline(banp: BaselineAdminNetworkPolicy | undefined): this {
    this.baseline = banp;
    this.engine.setBaselineAdminNetworkPolicy(banp);
    return this;
  }

  upsertPod(pod: Pod): this {
    this.pods.set(`${pod.namespace}/${pod.name}`, pod);
    this.engine.upsertPod(pod);
    return this;
  }

  removePod(namespace: string, name: string): this {
    this.pods.delete(`${namespace}/${name}`);
    this.engine.removePod(namespace, name);
    return this;
  }

  /** Upstream AddPodLabels: merges labels into the pod's. */
  addPodLabels(podKey: string, labels: Labels): this {
    const pod = this.pods.get(podKey);
    assert.ok(pod, `no pod ${podKey}`);
    return this.upsertPod({ ...pod, labels: { ...pod.labels, ...labels } });
  }

  setPodLabels(podKey: string, labels: Labels): this {
    const pod = this.pods.get(podKey);
    assert.ok(pod, `no pod ${podKey}`);
    return this.upsertPod({ ...pod, labels });
  }

  upsertNamespace(ns: Namespace): this {
    this.namespaces.set(ns.name, ns);
    this.engine.upsertNamespace(ns);
    return this;
  }

  /** Upstream AddNamespaceLabel. */
  addNamespaceLabel(name: string, key: string, value: string): this {
    const ns = this.namespaces.get(name);
    assert.ok(ns, `no namespace ${name}`);
    return this.upsertNamespace({ ...ns, labels: { ...ns.labels, [key]: value } });
  }

  setNamespaceLabels(name: string, labels: Labels): this {
    const ns = this.namespaces.get(name);
    assert.ok(ns, `no namespace ${name}`);
    return this.upsertNamespace({ ...ns, labels });
  }

  /**
   * Upstream ValidateOrFail, run on the incremental engine and on a fresh engine built from
   * the same state; the two must also agree on every pod pair and external range.
   */
  validate(probe: Probe, reach: Reachability, label?: string): void {
    validateOrFail(this.engine, probe, reach, { label: label ? `${label} (incremental)` : 'incremental' });
    const fresh = this.fresh();
    validateOrFail(fresh, probe, reach, { label: label ? `${label} (fresh)` : 'fresh' });
    assertSameConnectivity(this.engine, fresh);
  }
}

// ------------------------------------------------------------------ engine equivalence

function classOfPod(result: ConnectivityResult, podKey: string): number | undefined {
  return result.classes.find((c) => c.pods.some((p) => `${p.namespace}/${p.name}` === podKey))?.index;
}

function classOfAddress(result: ConnectivityResult, ip: bigint): number | undefined {
  return result.classes.find((c) => c.kind === 'external' && c.range !== undefined && c.range.start <= ip && ip <= c.range.end)?.index;
}

/** Pod ↔ external connections, keyed by the first address of every external atom of `result`. */
function externalProbes(result: ConnectivityResult): { ip: bigint; pod: string; outbound: boolean }[] {
  const out: { ip: bigint; pod: string; outbound: boolean }[] = [];
  for (const ext of result.classes) {
    if (ext.kind !== 'external' || !ext.range) continue;
    for (const c of result.classes) {
      for (const p of c.pods) {
        const pod = `${p.namespace}/${p.name}`;
        out.push({ ip: ext.range.start, pod, outbound: true }, { ip: ext.range.start, pod, outbound: false });
      }
    }
  }
  return out;
}

function externalConn(result: ConnectivityResult, ip: bigint, pod: string, outbound: boolean): string | undefined {
  const e = classOfAddress(result, ip);
  const p = classOfPod(result, pod);
  if (e === undefined || p === undefined) return undefined;
  return formatConns(result.conns.get(outbound ? result.connId(p, e) : result.connId(e, p)));
}

/**
 * Two engines agree when every ordered pod pair has the same connection set, and every
 * external range either engine tells apart (probed by its first address) gets the same
 * connections with every pod in both.
 */
export function assertSameConnectivity(a: PolicyEngine, b: PolicyEngine, names: readonly [string, string] = ['incremental', 'fresh']): void {
  const ra = analyze(a);
  const rb = analyze(b);
  const ma = podMatrix(a, ra);
  const mb = podMatrix(b, rb);
  const problems: string[] = [];
  for (const k of new Set([...ma.keys(), ...mb.keys()])) {
    const ca = ma.get(k);
    const cb = mb.get(k);
    if (!ca || !cb) problems.push(`${k}: only in ${ca ? names[0] : names[1]}`);
    else if (connKey(ca) !== connKey(cb)) problems.push(`${k}: ${names[0]}=${formatConns(ca)} ${names[1]}=${formatConns(cb)}`);
  }
  for (const probe of [...externalProbes(ra), ...externalProbes(rb)]) {
    const ca = externalConn(ra, probe.ip, probe.pod, probe.outbound);
    const cb = externalConn(rb, probe.ip, probe.pod, probe.outbound);
    if (ca !== cb) {
      const what = probe.outbound ? `${probe.pod} -> ${formatIp(probe.ip)}` : `${formatIp(probe.ip)} -> ${probe.pod}`;
      problems.push(`${what}: ${names[0]}=${ca ?? 'absent'} ${names[1]}=${cb ?? 'absent'}`);
    }
  }
  if (problems.length > 0) {
    throw new assert.AssertionError({ message: `${names[0]} and ${names[1]} engines disagree:\n${problems.slice(0, 40).join('\n')}` });
  }
}
