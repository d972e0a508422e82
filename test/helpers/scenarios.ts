// Building blocks for conformance scenarios: NetworkPolicy builders in the shape of the
// upstream e2e helpers (policies.go: GenNetworkPolicyWithNameAndPodMatchLabel,
// SetSpecIngressRules, SetSpecEgressRules), and a `Scenario` that keeps the desired cluster
// state next to an incrementally updated engine, so that every check can also be run on a
// fresh engine built from the same state (incremental == fresh). AdminNetworkPolicy builders
// and the conformance cases shared by the engine tests (conformance*.test.ts) and the lab's
// real-packet tests (lab-conformance.test.ts) are at the end.

import assert from 'node:assert/strict';
import type {
  AdminNetworkPolicy,
  AdminPeer,
  AdminPort,
  AdminRule,
  AdminSubject,
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
import { e2eModel, modelPodIp } from './model.js';
import { podMatrix, Reachability, validateOrFail, type Probe } from './reachability.js';

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
    for (const n of initial.namespaces) this.namespaces.set(n.name, n);
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

  removeNamespace(name: string): this {
    this.namespaces.delete(name);
    this.engine.removeNamespace(name);
    return this;
  }

  upsertNode(node: Node): this {
    this.nodes.set(node.name, node);
    this.engine.upsertNode(node);
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

// ------------------------------------------------------------------ AdminNetworkPolicy builders

export const NS_LABEL = 'kubernetes.io/metadata.name';

/** A namespace selector on the immutable `kubernetes.io/metadata.name` label. */
export const nsSel = (name: string): LabelSelector => ({ matchLabels: { [NS_LABEL]: name } });
export const namespacesPeer = (name: string): AdminPeer => ({ kind: 'namespaces', namespaces: nsSel(name) });
export const allNamespacesPeer: AdminPeer = { kind: 'namespaces', namespaces: {} };
export const nsSubject = (name: string): AdminSubject => ({ namespaces: nsSel(name) });

export function adminRule(name: string, action: AdminRule['action'], peers: AdminPeer[], ports?: AdminPort[]): AdminRule {
  return ports === undefined ? { name, action, peers } : { name, action, peers, ports };
}

export function anp(
  name: string,
  priority: number,
  subject: AdminSubject,
  ingress: AdminRule[] = [],
  egress: AdminRule[] = [],
  mode: AdminNetworkPolicy['mode'] = 'enforce',
): AdminNetworkPolicy {
  return { name, priority, subject, ingress, egress, mode };
}

export function banp(subject: AdminSubject, ingress: AdminRule[] = [], egress: AdminRule[] = []): BaselineAdminNetworkPolicy {
  return { name: 'default', subject, ingress, egress, mode: 'enforce' };
}

// ------------------------------------------------------------------ shared conformance cases
//
// Cases written once and run twice: on the engine (conformance*.test.ts, `runCase`) and with
// real packets in the lab (lab-conformance.test.ts). A case is a list of steps; each step
// changes the desired state (policies, pod and namespace labels) and then names the truth
// tables that must hold, exactly as the upstream test calls ValidateOrFail after each change.

/** One truth table a step must satisfy (upstream: one `ValidateOrFail` call). */
export interface Check {
  readonly probe: Probe;
  /** A fresh Reachability per call: callers may mutate it. */
  readonly expected: () => Reachability;
  readonly label?: string;
}

export interface Step {
  readonly change: (s: Scenario) => void;
  readonly checks: readonly Check[];
}

export interface ConformanceCase {
  /** The upstream test name (the `it` title). */
  readonly name: string;
  readonly steps: readonly Step[];
}

const check = (probe: Probe, expected: () => Reachability, label?: string): Check => (label === undefined ? { probe, expected } : { probe, expected, label });
const step = (change: (s: Scenario) => void, ...checks: Check[]): Step => ({ change, checks });

/** Runs a case on the engine: every step's change, then `Scenario.validate` for each check. */
export function runCase(c: ConformanceCase, s: Scenario = new Scenario()): Scenario {
  for (const st of c.steps) {
    st.change(s);
    for (const ch of st.checks) s.validate(ch.probe, ch.expected(), ch.label);
  }
  return s;
}

const nsX = 'x';
const nsY = 'y';
const nsZ = 'z';
const pod = (ns: string, name: string): string => `${ns}/${name}`;
const reach = (pods?: readonly string[]): Reachability => new Reachability(pods);

/** Upstream makeLargeCIDRForIP: the /4 that contains the IP. */
export function makeLargeCIDRForIP(ip: string): string {
  const first = Number(ip.split('.')[0]) & 0xf0;
  return `${first}.0.0.0/4`;
}

/**
 * The upstream NetworkPolicy e2e cases (test/e2e/network/netpol/network_policy.go) that both
 * the engine and the lab run; the rest of that file stays inline in conformance.test.ts.
 */
export const UPSTREAM_CASES = {
  defaultDenyIngress: {
    name: "should support a 'default-deny-ingress' policy",
    steps: [step((s) => s.createPolicy(genPolicy(nsX, 'deny-ingress', {}, setSpecIngressRules())), check(TCP80, () => reach().expectPeer({}, { namespace: nsX }, false)))],
  },
  defaultDenyAll: {
    name: "should support a 'default-deny-all' policy",
    steps: [
      step(
        (s) => s.createPolicy(genPolicy(nsX, 'deny-all', {}, setSpecIngressRules(), setSpecEgressRules())),
        check(TCP80, () => reach().expectPeer({}, { namespace: nsX }, false).expectPeer({ namespace: nsX }, {}, false)),
      ),
    ],
  },
  podSelectorSameNamespace: {
    name: 'should enforce policy to allow traffic from pods within server namespace based on PodSelector',
    steps: [
      step(
        (s) => s.createPolicy(genPolicyMatchLabels(nsX, 'x-a-allows-x-b', { pod: 'a' }, setSpecIngressRules(rule([podPeer({ matchLabels: { pod: 'b' } })])))),
        check(TCP80, () => reach().expectAllIngress(pod(nsX, 'a'), false).expect(pod(nsX, 'b'), pod(nsX, 'a'), true)),
      ),
    ],
  },
  namespaceSelectorMatchExpressions: {
    name: 'should enforce policy based on NamespaceSelector with MatchExpressions',
    steps: [
      step(
        (s) =>
          s.createPolicy(
            genPolicyMatchLabels(
              nsX,
              'allow-ns-y-match-selector',
              { pod: 'a' },
              setSpecIngressRules(rule([nsPeer({ matchExpressions: [{ key: NS_LABEL, operator: 'In', values: [nsY] }] })])),
            ),
          ),
        check(TCP80, () =>
          reach().expectPeer({ namespace: nsX }, { namespace: nsX, pod: 'a' }, false).expectPeer({ namespace: nsZ }, { namespace: nsX, pod: 'a' }, false),
        ),
      ),
    ],
  },
  podSelectorOrNamespaceSelector: {
    name: 'should enforce policy based on PodSelector or NamespaceSelector',
    steps: [
      step(
        (s) =>
          s.createPolicy(
            genPolicyMatchLabels(
              nsX,
              'allow-ns-y-match-selector',
              { pod: 'a' },
              setSpecIngressRules(
                rule([nsPeer({ matchExpressions: [{ key: NS_LABEL, operator: 'NotIn', values: [nsX] }] }), podPeer({ matchLabels: { pod: 'b' } })]),
              ),
            ),
          ),
        check(TCP80, () => reach().expect(pod(nsX, 'a'), pod(nsX, 'a'), false).expect(pod(nsX, 'c'), pod(nsX, 'a'), false)),
      ),
    ],
  },
  podSelectorAndNamespaceSelector: {
    name: 'should enforce policy based on PodSelector and NamespaceSelector',
    steps: [
      step(
        (s) =>
          s.createPolicy(
            genPolicyMatchLabels(
              nsX,
              'allow-ns-y-podselector-and-nsselector',
              { pod: 'a' },
              setSpecIngressRules(
                rule([nsPodPeer({ matchExpressions: [{ key: NS_LABEL, operator: 'NotIn', values: [nsX] }] }, { matchLabels: { pod: 'b' } })]),
              ),
            ),
          ),
        check(TCP80, () =>
          reach().expectAllIngress(pod(nsX, 'a'), false).expect(pod(nsY, 'b'), pod(nsX, 'a'), true).expect(pod(nsZ, 'b'), pod(nsX, 'a'), true),
        ),
      ),
    ],
  },
  ports: {
    name: 'should enforce policy based on Ports',
    steps: [
      step(
        (s) =>
          s.createPolicy(
            genPolicyMatchLabels(
              nsX,
              'allow-client-a-via-ns-selector',
              { pod: 'a' },
              setSpecIngressRules(rule([nsPeer({ matchLabels: { [NS_LABEL]: nsY } })], [port(81, 'TCP')])),
            ),
          ),
        check(TCP81, () =>
          reach()
            .expectPeer({ namespace: nsX }, { namespace: nsX, pod: 'a' }, false)
            .expectPeer({ namespace: nsY }, { namespace: nsX, pod: 'a' }, true)
            .expectPeer({ namespace: nsZ }, { namespace: nsX, pod: 'a' }, false),
        ),
      ),
    ],
  },
  stackedPolicies: {
    name: 'should enforce multiple, stacked policies with overlapping podSelectors',
    steps: (() => {
      const allowedLabels = { matchLabels: { [NS_LABEL]: nsY } };
      const reachabilityALLOW = (): Reachability =>
        reach()
          .expectPeer({ namespace: nsX }, { namespace: nsX, pod: 'a' }, false)
          .expectPeer({ namespace: nsY }, { namespace: nsX, pod: 'a' }, true)
          .expectPeer({ namespace: nsZ }, { namespace: nsX, pod: 'a' }, false);
      return [
        step(
          (s) =>
            s.createPolicy(
              genPolicyMatchLabels(nsX, 'allow-client-a-via-ns-selector', { pod: 'a' }, setSpecIngressRules(rule([nsPeer(allowedLabels)], [port(81, 'TCP')]))),
            ),
          check(TCP81, reachabilityALLOW, 'port 81'),
          check(TCP80, () => reach().expectAllIngress(pod(nsX, 'a'), false), 'port 80 before'),
        ),
        step(
          (s) =>
            s.createPolicy(
              genPolicyMatchLabels(nsX, 'allow-client-a-via-ns-selector-80', { pod: 'a' }, setSpecIngressRules(rule([nsPeer(allowedLabels)], [port(80, 'TCP')]))),
            ),
          check(TCP80, reachabilityALLOW, 'port 80 after'),
        ),
      ];
    })(),
  },
  namedPortFromNamespace: {
    name: 'should allow ingress access from namespace on one named port',
    steps: [
      step(
        (s) =>
          s.createPolicy(
            genPolicyMatchLabels(
              nsX,
              'allow-client-a-via-ns-selector-80',
              { pod: 'a' },
              setSpecIngressRules(rule([nsPeer({ matchLabels: { [NS_LABEL]: nsY } })], [port('serve-80-tcp', 'TCP')])),
            ),
          ),
        check(TCP80, () =>
          reach().expectPeer({ namespace: nsX }, { namespace: nsX, pod: 'a' }, false).expectPeer({ namespace: nsZ }, { namespace: nsX, pod: 'a' }, false),
        ),
        check(TCP81, () => reach().expectAllIngress(pod(nsX, 'a'), false)),
      ),
    ],
  },
  updatedPolicy: {
    name: 'should enforce updated policy',
    steps: [
      step((s) => s.createPolicy(genPolicyMatchLabels(nsX, 'allow-all-mutate-to-deny-all', {}, setSpecIngressRules(rule()))), check(TCP81, () => reach(), 'allow all')),
      step(
        (s) => s.updatePolicy(genPolicyMatchLabels(nsX, 'allow-all-mutate-to-deny-all', {}, setSpecIngressRules())),
        check(TCP81, () => reach().expectPeer({}, { namespace: nsX }, false), 'deny all'),
      ),
    ],
  },
  updatedNamespace: {
    name: 'should allow ingress access from updated namespace',
    steps: [
      step(
        (s) =>
          s.createPolicy(
            genPolicyMatchLabels(nsX, 'allow-client-a-via-ns-selector', { pod: 'a' }, setSpecIngressRules(rule([nsPeer({ matchLabels: { ns2: 'updated' } })]))),
          ),
        check(TCP80, () => reach().expectAllIngress(pod(nsX, 'a'), false), 'before'),
      ),
      step(
        (s) => s.addNamespaceLabel(nsY, 'ns2', 'updated'),
        check(TCP80, () => reach().expectAllIngress(pod(nsX, 'a'), false).expectPeer({ namespace: nsY }, {}, true), 'after'),
      ),
    ],
  },
  updatedPod: {
    name: 'should allow ingress access from updated pod',
    steps: [
      step(
        (s) =>
          s.createPolicy(
            genPolicyMatchLabels(nsX, 'allow-client-a-via-pod-selector', { pod: 'a' }, setSpecIngressRules(rule([podPeer({ matchLabels: { pod: 'b', pod2: 'updated' } })]))),
          ),
        check(TCP80, () => reach().expectAllIngress(pod(nsX, 'a'), false), 'before'),
      ),
      step(
        (s) => s.addPodLabels(pod(nsX, 'b'), { pod: 'b', pod2: 'updated' }),
        check(TCP80, () => reach().expectAllIngress(pod(nsX, 'a'), false).expect(pod(nsX, 'b'), pod(nsX, 'a'), true), 'after'),
      ),
    ],
  },
  deniedUpdatedPod: {
    name: 'should deny ingress access to updated pod',
    steps: [
      step((s) => s.createPolicy(genPolicy(nsX, 'deny-ingress-via-label-selector', { matchLabels: { target: 'isolated' } }, setSpecIngressRules())), check(TCP80, () => reach(), 'before')),
      step((s) => s.addPodLabels(pod(nsX, 'a'), { target: 'isolated' }), check(TCP80, () => reach().expectAllIngress(pod(nsX, 'a'), false), 'after')),
    ],
  },
  denyEgressByPodSelector: {
    name: 'should deny egress from pods based on PodSelector',
    steps: [
      step((s) => s.createPolicy(genPolicy(nsX, 'deny-egress-pod-a', { matchLabels: { pod: 'a' } }, setSpecEgressRules())), check(TCP80, () => reach().expectAllEgress(pod(nsX, 'a'), false))),
    ],
  },
  ingressAndEgress: {
    name: 'should work with Ingress, Egress specified together',
    steps: [
      step(
        (s) => {
          const base = genPolicyMatchLabels(nsX, 'allow-client-a-via-pod-selector', { pod: 'a' }, setSpecIngressRules(rule([podPeer({ matchLabels: { pod: 'b' } })])));
          // Upstream appends an egress rule on port 80 (no protocol: TCP) and sets both policyTypes.
          s.createPolicy({ ...base, egress: [rule([], [port(80)])], policyTypes: ['Egress', 'Ingress'] });
        },
        check(TCP80, () => reach().expectAllIngress(pod(nsX, 'a'), false).expect(pod(nsX, 'b'), pod(nsX, 'a'), true), 'port 80'),
        check(
          TCP81,
          () => reach().expectAllIngress(pod(nsX, 'a'), false).expectAllEgress(pod(nsX, 'a'), false).expect(pod(nsX, 'b'), pod(nsX, 'a'), true),
          'port 81',
        ),
      ),
    ],
  },
  clientSideEgressDeny: {
    name: 'should support denying of egress traffic on the client side (even if the server explicitly allows this traffic)',
    steps: [
      step(
        (s) => {
          const ingressRule = rule([nsPodPeer({ matchLabels: { [NS_LABEL]: nsX } }, { matchLabels: { pod: 'a' } })]);
          s.createPolicy(
            genPolicyMatchLabels(
              nsX,
              'allow-to-ns-y-pod-a',
              { pod: 'a' },
              setSpecEgressRules(rule([nsPodPeer({ matchLabels: { [NS_LABEL]: nsY } }, { matchLabels: { pod: 'a' } })])),
            ),
          )
            .createPolicy(genPolicyMatchLabels(nsY, 'allow-from-xa-on-ya-match-selector', { pod: 'a' }, setSpecIngressRules(ingressRule)))
            .createPolicy(genPolicyMatchLabels(nsY, 'allow-from-xa-on-yb-match-selector', { pod: 'b' }, setSpecIngressRules(ingressRule)));
        },
        check(TCP80, () =>
          reach()
            .expectPeer({ namespace: nsX, pod: 'a' }, {}, false)
            .expectPeer({}, { namespace: nsY, pod: 'a' }, false)
            .expectPeer({ namespace: nsX, pod: 'a' }, { namespace: nsY, pod: 'a' }, true)
            .expectPeer({}, { namespace: nsY, pod: 'b' }, false),
        ),
      ),
    ],
  },
  ingressAllowAllPrecedence: {
    name: 'should enforce multiple ingress policies with ingress allow-all policy taking precedence',
    steps: [
      step(
        (s) => s.createPolicy(genPolicyMatchLabels(nsX, 'allow-ingress-port-80', {}, setSpecIngressRules(rule([], [port(80)])))),
        check(TCP81, () => reach().expectPeer({}, { namespace: nsX }, false), 'port 80 only'),
      ),
      step((s) => s.createPolicy(genPolicyMatchLabels(nsX, 'allow-ingress', {}, setSpecIngressRules(rule()))), check(TCP81, () => reach(), 'allow all')),
    ],
  },
  egressToCidr: {
    name: 'should allow egress access to server in CIDR block',
    steps: [
      step(
        (s) =>
          s.createPolicy(
            genPolicyMatchLabels(nsX, 'allow-client-a-via-cidr-egress-rule', { pod: 'a' }, setSpecEgressRules(rule([ipBlockPeer(`${modelPodIp(nsY, 'b')}/32`)]))),
          ),
        check(TCP80, () => reach().expectAllEgress(pod(nsX, 'a'), false).expect(pod(nsX, 'a'), pod(nsY, 'b'), true)),
      ),
    ],
  },
  ipBlockExcept: {
    name: 'should enforce except clause while egress access to server in CIDR block',
    steps: [
      step(
        (s) => {
          const podB = modelPodIp(nsX, 'b');
          s.createPolicy(
            genPolicyMatchLabels(
              nsX,
              'allow-client-a-via-cidr-egress-rule',
              { pod: 'a' },
              setSpecEgressRules(rule([ipBlockPeer(makeLargeCIDRForIP(podB), [`${podB}/32`])])),
            ),
          );
        },
        check(TCP80, () => reach().expect(pod(nsX, 'a'), pod(nsX, 'b'), false)),
      ),
    ],
  },
  sctpIsNotTcp: {
    name: "should not mistakenly treat 'protocol: SCTP' as 'protocol: TCP', even if the plugin doesn't support SCTP",
    steps: [
      step(
        (s) =>
          s
            .createPolicy(genPolicy(nsX, 'deny-ingress', {}, setSpecIngressRules()))
            .createPolicy(genPolicyMatchLabels(nsX, 'allow-only-sctp-ingress-on-port-81', { pod: 'a' }, setSpecIngressRules(rule([], [port(81, 'SCTP')])))),
        check(TCP81, () => reach().expectPeer({}, { namespace: nsX }, false)),
        // Beyond upstream (this machine's kernel has no SCTP, the analyzer checks it): SCTP/81
        // to x/a is what the second policy allows.
        check(SCTP81, () => reach().expectPeer({}, { namespace: nsX }, false).expectAllIngress(pod(nsX, 'a'), true), 'SCTP'),
      ),
    ],
  },
  udpOnly: {
    name: 'should not allow access by TCP when a policy specifies only UDP',
    steps: [
      step(
        (s) => s.createPolicy(genPolicyMatchLabels(nsX, 'allow-only-udp-ingress-on-port-81', { pod: 'a' }, setSpecIngressRules(rule([], [port(81, 'UDP')])))),
        check(TCP81, () => reach().expectAllIngress(pod(nsX, 'a'), false)),
        check(UDP81, () => reach(), 'UDP 81 (beyond upstream)'),
      ),
    ],
  },
  endPortBothModelPorts: {
    name: 'should support enforcing policy based on port range (endPort) covering both model ports',
    steps: (() => {
      const onlyY = (): Reachability =>
        reach().expectPeer({ namespace: nsX }, { namespace: nsX, pod: 'a' }, false).expectPeer({ namespace: nsZ }, { namespace: nsX, pod: 'a' }, false);
      return [
        step(
          (s) =>
            s.createPolicy(
              genPolicyMatchLabels(
                nsX,
                'allow-ns-y-ports-80-81',
                { pod: 'a' },
                setSpecIngressRules(rule([nsPeer({ matchLabels: { [NS_LABEL]: nsY } })], [port(80, 'TCP', 81)])),
              ),
            ),
          check(TCP80, onlyY, 'TCP 80'),
          check(TCP81, onlyY, 'TCP 81'),
          check(UDP80, () => reach().expectAllIngress(pod(nsX, 'a'), false), 'UDP 80'),
        ),
      ];
    })(),
  },
} satisfies Record<string, ConformanceCase>;

/**
 * AdminNetworkPolicy / BaselineAdminNetworkPolicy cases (network-policy-api conformance,
 * translated onto the x/y/z model: x plays gryffindor, y slytherin) that both the engine and
 * the lab run; see conformance-admin.test.ts for the API sentences they rely on.
 */
export const ADMIN_CASES = {
  priority: {
    name: 'priority: the lower priority value decides (Allow at 5 over Deny at 10), and re-prioritising flips it',
    steps: [
      step(
        (s) =>
          s
            .createAdminPolicy(anp('allow-from-y', 5, nsSubject('x'), [adminRule('allow-y', 'Allow', [namespacesPeer('y')])]))
            .createAdminPolicy(anp('deny-from-y', 10, nsSubject('x'), [adminRule('deny-y', 'Deny', [namespacesPeer('y')])])),
        check(TCP80, () => reach(), 'allow first'),
      ),
      step(
        (s) => s.createAdminPolicy(anp('allow-from-y', 20, nsSubject('x'), [adminRule('allow-y', 'Allow', [namespacesPeer('y')])])),
        check(TCP80, () => reach().expectPeer({ namespace: 'y' }, { namespace: 'x' }, false), 'deny first'),
      ),
    ],
  },
  denyOverNetworkPolicyAllow: {
    name: 'ANP Deny wins over a NetworkPolicy that allows',
    steps: [
      step(
        (s) =>
          s
            .createPolicy(genPolicyMatchLabels('x', 'allow-all', {}, setSpecIngressRules(rule())))
            .createAdminPolicy(anp('deny-from-y', 10, nsSubject('x'), [adminRule('deny-y', 'Deny', [namespacesPeer('y')])])),
        check(TCP80, () => reach().expectPeer({ namespace: 'y' }, { namespace: 'x' }, false)),
      ),
    ],
  },
  allowOverNetworkPolicyDeny: {
    name: 'ANP Allow wins over a NetworkPolicy default deny',
    steps: [
      step(
        (s) =>
          s
            .createPolicy(genPolicy('x', 'deny-ingress', {}, setSpecIngressRules()))
            .createAdminPolicy(anp('allow-from-y', 10, nsSubject('x'), [adminRule('allow-y', 'Allow', [namespacesPeer('y')])])),
        check(TCP80, () => reach().expectPeer({}, { namespace: 'x' }, false).expectPeer({ namespace: 'y' }, { namespace: 'x' }, true)),
      ),
    ],
  },
  allowOverBaselineDeny: {
    name: 'ANP Allow wins over a BANP Deny (the baseline never sees what an ANP decided)',
    steps: [
      step(
        (s) =>
          s
            .setBaseline(banp(nsSubject('x'), [adminRule('deny-from-y', 'Deny', [namespacesPeer('y')])]))
            .createAdminPolicy(
              anp('allow-from-y-a', 10, nsSubject('x'), [
                adminRule('allow-y-a', 'Allow', [{ kind: 'pods', pods: { namespaceSelector: nsSel('y'), podSelector: { matchLabels: { pod: 'a' } } } }]),
              ]),
            ),
        check(TCP80, () => reach().expectPeer({ namespace: 'y' }, { namespace: 'x' }, false).expectPeer({ namespace: 'y', pod: 'a' }, { namespace: 'x' }, true)),
      ),
    ],
  },
  passToNetworkPolicy: {
    name: 'Pass delegates to NetworkPolicy, which then isolates the pod',
    steps: [
      step(
        (s) =>
          s
            .createAdminPolicy(anp('pass-from-y', 10, nsSubject('x'), [adminRule('pass-y', 'Pass', [namespacesPeer('y')])]))
            // A lower-priority Deny must not see what was passed.
            .createAdminPolicy(anp('deny-from-y', 20, nsSubject('x'), [adminRule('deny-y', 'Deny', [namespacesPeer('y')])]))
            .createPolicy(
              genPolicyMatchLabels(
                'x',
                'allow-from-y-a',
                {},
                setSpecIngressRules(rule([{ kind: 'selector', namespaceSelector: nsSel('y'), podSelector: { matchLabels: { pod: 'a' } } }])),
              ),
            ),
        check(TCP80, () => reach().expectPeer({}, { namespace: 'x' }, false).expectPeer({ namespace: 'y', pod: 'a' }, { namespace: 'x' }, true)),
      ),
    ],
  },
  anpNpBanp: {
    name: 'integration (core-anp-np-banp): Deny, then Pass to a NetworkPolicy Allow, then Pass to a BANP Deny',
    steps: (() => {
      const passExample = (ingressAction: AdminRule['action'], egressAction: AdminRule['action']): AdminNetworkPolicy =>
        anp(
          'pass-example',
          16,
          nsSubject('x'),
          [adminRule('deny-all-ingress-from-y', ingressAction, [namespacesPeer('y')])],
          [adminRule('deny-all-egress-to-y', egressAction, [namespacesPeer('y')])],
        );
      return [
        step(
          (s) =>
            s
              .createAdminPolicy(passExample('Deny', 'Deny'))
              .createPolicy(
                genPolicy('x', 'allow-gress-from-to-y-to-x', {}, setSpecIngressRules(rule([nsPeer(nsSel('y'))])), (p) => {
                  p.egress = [rule([nsPeer(nsSel('y'))]), rule([nsPeer(nsSel('x'))]), rule([nsPeer(nsSel('z'))])];
                  p.policyTypes.push('Egress');
                }),
              )
              .setBaseline(banp(nsSubject('x'), [adminRule('deny-from-y', 'Deny', [namespacesPeer('y')])], [adminRule('deny-to-y', 'Deny', [namespacesPeer('y')])])),
          // The NetworkPolicy isolates x for ingress: only y is allowed, and the ANP denies y.
          check(TCP80, () => reach().expectPeer({}, { namespace: 'x' }, false).expectPeer({ namespace: 'x' }, { namespace: 'y' }, false), 'ANP denies'),
        ),
        step(
          (s) => s.createAdminPolicy(passExample('Pass', 'Pass')),
          check(
            TCP80,
            () => reach().expectPeer({ namespace: 'x' }, { namespace: 'x' }, false).expectPeer({ namespace: 'z' }, { namespace: 'x' }, false),
            'passed to NetworkPolicy',
          ),
        ),
        step(
          (s) => s.deletePolicy('x', 'allow-gress-from-to-y-to-x'),
          check(TCP80, () => reach().expectPeer({ namespace: 'y' }, { namespace: 'x' }, false).expectPeer({ namespace: 'x' }, { namespace: 'y' }, false), 'passed to BANP'),
        ),
      ];
    })(),
  },
  baselineDefaultDeny: {
    name: 'BANP as a default deny, overridden by a NetworkPolicy that selects the pod',
    steps: [
      step((s) => s.setBaseline(banp({ namespaces: {} }, [adminRule('deny-all', 'Deny', [allNamespacesPeer])])), check(TCP80, () => reach(undefined).expectPeer({}, {}, false), 'BANP only')),
      step(
        (s) => s.createPolicy(genPolicyMatchLabels('x', 'allow-from-all-ns', {}, setSpecIngressRules(rule([nsPeer({})])))),
        check(TCP80, () => reach().expectPeer({}, {}, false).expectPeer({}, { namespace: 'x' }, true), 'NetworkPolicy in x'),
      ),
    ],
  },
  portRange: {
    name: 'ANP portRange: denies every port of the range for its protocol only',
    steps: [
      step(
        (s) =>
          s.createAdminPolicy(
            anp('deny-range', 10, nsSubject('x'), [adminRule('deny-z-80-81', 'Deny', [namespacesPeer('z')], [{ kind: 'portRange', protocol: 'TCP', start: 80, end: 81 }])]),
          ),
        check(TCP80, () => reach().expectPeer({ namespace: 'z' }, { namespace: 'x' }, false), 'TCP 80'),
        check(TCP81, () => reach().expectPeer({ namespace: 'z' }, { namespace: 'x' }, false), 'TCP 81'),
        check(UDP80, () => reach(), 'UDP 80'),
      ),
    ],
  },
  podSubject: {
    name: 'ANP subject by pods: only the selected pods are affected; deleting the ANP restores everything',
    steps: [
      step(
        (s) =>
          s.createAdminPolicy(
            anp('deny-into-x-a', 10, { pods: { namespaceSelector: nsSel('x'), podSelector: { matchLabels: { pod: 'a' } } } }, [adminRule('deny-all', 'Deny', [allNamespacesPeer])]),
          ),
        check(TCP80, () => reach().expectAllIngress('x/a', false), 'with ANP'),
      ),
      step((s) => s.deleteAdminPolicy('deny-into-x-a'), check(TCP80, () => reach(), 'deleted')),
    ],
  },
} satisfies Record<string, ConformanceCase>;
