// Unit tests of the policy engine, one semantic rule at a time, each with the API sentence
// it checks. Every verdict is read through evaluatePair() and cross-checked against the
// class matrix of analyze(); incremental updates are compared with a fresh engine, by hand
// and by a seeded random walk.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type {
  AdminNetworkPolicy,
  AdminPeer,
  AdminPort,
  Cluster,
  ContainerPort,
  LabelSelector,
  Labels,
  NetworkPolicy,
  NetworkPolicyPeer,
  NetworkPolicyPort,
  Pod,
  Protocol,
} from '../src/model/cluster.js';
import {
  ALL_CONNS,
  NO_CONNS,
  analyze,
  evaluatePair,
  explain,
  externalEndpoint,
  formatConns,
  formatIp,
  intersect,
  isAll,
  isEmpty,
  parseIp,
  podEndpoint,
  portsConn,
  protocolConn,
  subtract,
  union,
  PolicyEngine,
  type ConnSet,
} from '../src/policy/index.js';
import { rng } from '../src/synthetic/random.js';
import { e2eModel, modelNamespace } from './helpers/model.js';
import { observedConns } from './helpers/reachability.js';
import { assertSameConnectivity, genPolicy, ipBlockPeer, nsPeer, nsPodPeer, podPeer, port, rule, Scenario, setSpecEgressRules, setSpecIngressRules } from './helpers/scenarios.js';

// ------------------------------------------------------------------ helpers

function engineOf(policies: NetworkPolicy[] = [], overrides: Partial<Cluster> = {}): PolicyEngine {
  return new PolicyEngine(e2eModel(policies, overrides));
}

/** Connections from → to as text, after checking analyze() agrees with evaluatePair() everywhere. */
function conns(engine: PolicyEngine, from: string, to: string): string {
  const all = observedConns(engine, [...engine.pods.keys()]);
  return formatConns(all.get(`${from} -> ${to}`) as ConnSet);
}

function pairText(engine: PolicyEngine, from: string, to: string): string {
  const src = engine.pods.get(from);
  const dst = engine.pods.get(to);
  assert.ok(src && dst, `pods ${from} and ${to}`);
  return formatConns(evaluatePair(engine, podEndpoint(engine, src), podEndpoint(engine, dst)).allowed);
}

/** Pod ↔ external address, by evaluatePair() and by the analyze() class that holds the address. */
function externalText(engine: PolicyEngine, podKey: string, ip: string, outbound: boolean): string {
  const value = parseIp(ip) as bigint;
  const pod = engine.pods.get(podKey) as Pod;
  const p = podEndpoint(engine, pod);
  const e = externalEndpoint(value);
  const pair = outbound ? evaluatePair(engine, p, e).allowed : evaluatePair(engine, e, p).allowed;
  const r = analyze(engine);
  const ext = r.classes.find((c) => c.kind === 'external' && c.range && c.range.start <= value && value <= c.range.end);
  const pc = r.classes.find((c) => c.pods.includes(pod));
  assert.ok(ext && pc, `classes for ${podKey} and ${ip}`);
  const fromMatrix = r.conns.get(outbound ? r.connId(pc.index, ext.index) : r.connId(ext.index, pc.index));
  assert.equal(formatConns(fromMatrix), formatConns(pair), `analyze() vs evaluatePair() for ${podKey} ${outbound ? '->' : '<-'} ${ip}`);
  return formatConns(pair);
}

function np(
  namespace: string,
  name: string,
  podSelector: LabelSelector,
  spec: { ingress?: NetworkPolicy['ingress']; egress?: NetworkPolicy['egress']; policyTypes?: NetworkPolicy['policyTypes']; mode?: NetworkPolicy['mode'] },
): NetworkPolicy {
  return {
    namespace,
    name,
    podSelector,
    policyTypes: spec.policyTypes ?? [...(spec.ingress ? (['Ingress'] as const) : []), ...(spec.egress ? (['Egress'] as const) : [])],
    ingress: spec.ingress ?? [],
    egress: spec.egress ?? [],
    mode: spec.mode ?? 'enforce',
  };
}

function customPod(ns: string, name: string, labels: Labels, ports: ContainerPort[], extra: Partial<Pod> = {}): Pod {
  return { namespace: ns, name, labels, ports, hostNetwork: false, workload: `${ns}/${name}[Pod]`, ...extra };
}

const ALL = 'All Connections';
const NONE = 'No Connections';
const sel = (labels: Labels): LabelSelector => ({ matchLabels: labels });

// ------------------------------------------------------------------ NetworkPolicy semantics

describe('NetworkPolicy: isolation is per direction', () => {
  // "A pod is isolated for ingress if there is any NetworkPolicy that both selects the pod and
  // has 'Ingress' in its policyTypes" — and likewise, independently, for egress.
  it('an ingress-only policy isolates ingress and leaves egress of the same pod alone', () => {
    const e = engineOf([np('x', 'deny-in', sel({ pod: 'a' }), { ingress: [] })]);
    assert.equal(conns(e, 'y/a', 'x/a'), NONE);
    assert.equal(conns(e, 'x/a', 'y/a'), ALL);
    assert.equal(conns(e, 'x/b', 'y/a'), ALL);
  });

  it('an egress-only policy isolates egress and does not isolate ingress', () => {
    const e = engineOf([np('x', 'deny-out', sel({ pod: 'a' }), { egress: [] })]);
    assert.equal(conns(e, 'x/a', 'y/a'), NONE);
    assert.equal(conns(e, 'y/a', 'x/a'), ALL);
  });

  it('rules of a direction not listed in policyTypes are ignored (no allow, no isolation)', () => {
    // policyTypes [Ingress] with an egress rule: egress stays non-isolated, and the egress
    // rule allows nothing extra.
    const e = engineOf([
      np('x', 'in-only', sel({ pod: 'a' }), {
        policyTypes: ['Ingress'],
        ingress: [rule([podPeer(sel({ pod: 'b' }))])],
        egress: [rule([podPeer(sel({ pod: 'c' }))], [port(80)])],
      }),
    ]);
    assert.equal(conns(e, 'x/a', 'y/a'), ALL);
    assert.equal(conns(e, 'x/b', 'x/a'), ALL);
    assert.equal(conns(e, 'x/c', 'x/a'), NONE);
    // policyTypes [Egress] with an ingress rule that would allow only x/b: ingress not isolated.
    const e2 = engineOf([
      np('x', 'out-only', sel({ pod: 'a' }), { policyTypes: ['Egress'], ingress: [rule([podPeer(sel({ pod: 'b' }))])], egress: [] }),
    ]);
    assert.equal(conns(e2, 'x/c', 'x/a'), ALL);
    assert.equal(conns(e2, 'x/a', 'x/b'), NONE);
  });

  it('both directions must allow: egress of the source AND ingress of the destination', () => {
    const e = engineOf([
      np('x', 'a-out-80', sel({ pod: 'a' }), { egress: [rule([], [port(80)])] }),
      np('y', 'a-in-80-81', sel({ pod: 'a' }), { ingress: [rule([], [port(80, 'TCP', 81)])] }),
    ]);
    assert.equal(conns(e, 'x/a', 'y/a'), 'TCP 80');
    assert.equal(conns(e, 'x/b', 'y/a'), 'TCP 80-81');
    assert.equal(conns(e, 'x/a', 'y/b'), 'TCP 80');
  });
});

describe('NetworkPolicy: allows are additive', () => {
  // "Network policies do not conflict; they are additive ... the allowed connections are the
  // union of what the applicable policies allow."
  it('two policies selecting the same pod allow the union, whatever the order', () => {
    const p1 = np('x', 'p1', sel({ pod: 'a' }), { ingress: [rule([podPeer(sel({ pod: 'b' }))], [port(80)])] });
    const p2 = np('x', 'p2', {}, { ingress: [rule([nsPeer(sel({ ns: 'y' }))], [port(81), port(53, 'UDP')])] });
    for (const policies of [
      [p1, p2],
      [p2, p1],
    ]) {
      const e = engineOf(policies);
      assert.equal(conns(e, 'x/b', 'x/a'), 'TCP 80');
      assert.equal(conns(e, 'y/c', 'x/a'), 'TCP 81,UDP 53');
      assert.equal(conns(e, 'y/c', 'x/b'), 'TCP 81,UDP 53');
      assert.equal(conns(e, 'x/c', 'x/b'), NONE);
      assert.equal(conns(e, 'z/a', 'x/a'), NONE);
    }
  });

  it('rules within one policy are additive too, and a rule with neither peers nor ports allows everything', () => {
    const e = engineOf([np('x', 'p', sel({ pod: 'a' }), { ingress: [rule([podPeer(sel({ pod: 'b' }))], [port(80)]), rule()] })]);
    assert.equal(conns(e, 'z/c', 'x/a'), ALL);
  });
});

describe('NetworkPolicy: empty versus absent selectors', () => {
  it('podSelector without namespaceSelector selects pods of the policy namespace only', () => {
    // "Otherwise it selects the Pods matching PodSelector in the policy's own Namespace."
    const e = engineOf([np('x', 'p', sel({ pod: 'a' }), { ingress: [rule([podPeer({})])] })]);
    assert.equal(conns(e, 'x/b', 'x/a'), ALL);
    assert.equal(conns(e, 'y/b', 'x/a'), NONE);
  });

  it('namespaceSelector {} selects all pods in all namespaces', () => {
    // "if present but empty, it selects all namespaces" and "Otherwise it selects all Pods in
    // the Namespaces selected by NamespaceSelector".
    const e = engineOf([np('x', 'p', sel({ pod: 'a' }), { ingress: [rule([nsPeer({})])] })]);
    for (const from of ['x/b', 'y/b', 'z/c']) assert.equal(conns(e, from, 'x/a'), ALL);
  });

  it('empty ingress list isolates with nothing allowed; a single empty rule allows everything', () => {
    assert.equal(conns(engineOf([np('x', 'p', {}, { ingress: [] })]), 'y/a', 'x/a'), NONE);
    assert.equal(conns(engineOf([np('x', 'p', {}, { ingress: [rule()] })]), 'y/a', 'x/a'), ALL);
  });

  it('the policy podSelector {} selects every pod of its namespace and none elsewhere', () => {
    const e = engineOf([np('x', 'p', {}, { ingress: [] })]);
    assert.equal(conns(e, 'y/a', 'x/c'), NONE);
    assert.equal(conns(e, 'x/a', 'y/c'), ALL);
  });
});

describe('NetworkPolicy: namespaceSelector and podSelector in one peer versus two peers', () => {
  // One peer: "the NetworkPolicyPeer as a whole selects the Pods matching PodSelector in the
  // Namespaces selected by NamespaceSelector" (AND). Two peers: either matches (OR).
  it('one peer is the intersection', () => {
    const e = engineOf([np('x', 'p', sel({ pod: 'a' }), { ingress: [rule([nsPodPeer(sel({ ns: 'y' }), sel({ pod: 'b' }))])] })]);
    assert.equal(conns(e, 'y/b', 'x/a'), ALL);
    assert.equal(conns(e, 'y/a', 'x/a'), NONE);
    assert.equal(conns(e, 'x/b', 'x/a'), NONE);
    assert.equal(conns(e, 'z/b', 'x/a'), NONE);
  });

  it('two peers are the union', () => {
    const e = engineOf([np('x', 'p', sel({ pod: 'a' }), { ingress: [rule([nsPeer(sel({ ns: 'y' })), podPeer(sel({ pod: 'b' }))])] })]);
    assert.equal(conns(e, 'y/a', 'x/a'), ALL);
    assert.equal(conns(e, 'y/c', 'x/a'), ALL);
    assert.equal(conns(e, 'x/b', 'x/a'), ALL);
    assert.equal(conns(e, 'z/b', 'x/a'), NONE);
    assert.equal(conns(e, 'x/c', 'x/a'), NONE);
  });

  it('matchExpressions operators: In, NotIn (absent key matches), Exists, DoesNotExist', () => {
    const pods = e2eModel().pods.map((p) => (p.namespace === 'y' && p.name === 'c' ? { ...p, labels: { pod: 'c', tier: 'web' } } : p));
    const mk = (expr: LabelSelector) => engineOf([np('x', 'p', sel({ pod: 'a' }), { ingress: [rule([nsPodPeer({}, expr)])] })], { pods });
    const notIn = mk({ matchExpressions: [{ key: 'tier', operator: 'NotIn', values: ['web'] }] });
    assert.equal(conns(notIn, 'y/c', 'x/a'), NONE);
    assert.equal(conns(notIn, 'y/b', 'x/a'), ALL);
    const exists = mk({ matchExpressions: [{ key: 'tier', operator: 'Exists' }] });
    assert.equal(conns(exists, 'y/c', 'x/a'), ALL);
    assert.equal(conns(exists, 'y/b', 'x/a'), NONE);
    const dne = mk({ matchExpressions: [{ key: 'tier', operator: 'DoesNotExist' }] });
    assert.equal(conns(dne, 'y/c', 'x/a'), NONE);
    assert.equal(conns(dne, 'z/b', 'x/a'), ALL);
    const both = mk({ matchLabels: { pod: 'c' }, matchExpressions: [{ key: 'tier', operator: 'In', values: ['web', 'db'] }] });
    assert.equal(conns(both, 'y/c', 'x/a'), ALL);
    assert.equal(conns(both, 'z/c', 'x/a'), NONE);
  });
});

describe('NetworkPolicy: ipBlock with except', () => {
  // "IPBlock describes a particular CIDR ... The except entry describes CIDRs that should not be
  // included within this rule."
  it('matches pods by IP and honours except', () => {
    const e = engineOf([np('x', 'p', sel({ pod: 'a' }), { egress: [rule([ipBlockPeer('10.2.0.0/16', ['10.2.0.11/32'])])] })]);
    assert.equal(conns(e, 'x/a', 'y/a'), ALL); // 10.2.0.10
    assert.equal(conns(e, 'x/a', 'y/b'), NONE); // 10.2.0.11, excepted
    assert.equal(conns(e, 'x/a', 'y/c'), ALL);
    assert.equal(conns(e, 'x/a', 'z/a'), NONE);
  });

  it('external addresses: atoms split exactly at cidr and except borders', () => {
    const e = engineOf([
      np('x', 'p', sel({ pod: 'a' }), { egress: [rule([ipBlockPeer('192.0.2.0/24', ['192.0.2.128/25'])], [port(443)])], ingress: [rule([ipBlockPeer('198.51.100.0/24')])] }),
    ]);
    assert.equal(externalText(e, 'x/a', '192.0.2.0', true), 'TCP 443');
    assert.equal(externalText(e, 'x/a', '192.0.2.127', true), 'TCP 443');
    assert.equal(externalText(e, 'x/a', '192.0.2.128', true), NONE);
    assert.equal(externalText(e, 'x/a', '192.0.2.255', true), NONE);
    assert.equal(externalText(e, 'x/a', '192.0.3.0', true), NONE);
    assert.equal(externalText(e, 'x/b', '192.0.2.200', true), ALL);
    assert.equal(externalText(e, 'x/a', '198.51.100.9', false), ALL);
    assert.equal(externalText(e, 'x/a', '198.51.101.9', false), NONE);
    // The class ranges of analyze() are the atoms.
    const ranges = analyze(e)
      .classes.filter((c) => c.kind === 'external')
      .map((c) => c.range);
    // (The except range needs no atom of its own: nothing tells it apart from what follows.)
    const text = ranges.map((r) => (r ? `${formatIp(r.start)}-${formatIp(r.end)}` : '?'));
    assert.ok(text.includes('192.0.2.0-192.0.2.127'), text.join(' '));
    assert.ok(text.some((t) => t.startsWith('192.0.2.128-')), text.join(' '));
    assert.ok(text.includes('198.51.100.0-198.51.100.255'), text.join(' '));
  });

  it('an IPv4 block never matches IPv6 addresses', () => {
    const e = engineOf([np('x', 'p', sel({ pod: 'a' }), { egress: [rule([ipBlockPeer('0.0.0.0/0')])] })]);
    assert.equal(formatConns(evaluatePair(e, podEndpoint(e, e.pods.get('x/a') as Pod), externalEndpoint(parseIp('2001:db8::1') as bigint)).allowed), NONE);
    assert.equal(formatConns(evaluatePair(e, podEndpoint(e, e.pods.get('x/a') as Pod), externalEndpoint(parseIp('8.8.8.8') as bigint)).allowed), ALL);
  });
});

describe('NetworkPolicy: ports and protocols', () => {
  it('a TCP port allows only TCP; a protocol without port allows every port of that protocol only', () => {
    const e = engineOf([np('x', 'p', sel({ pod: 'a' }), { ingress: [rule([], [port(80, 'TCP'), port(undefined, 'UDP')])] })]);
    assert.equal(conns(e, 'y/a', 'x/a'), 'TCP 80,UDP 1-65535');
    const s = engineOf([np('x', 'p', sel({ pod: 'a' }), { ingress: [rule([], [port(81, 'SCTP')])] })]);
    assert.equal(conns(s, 'y/a', 'x/a'), 'SCTP 81');
  });

  it('endPort: the range from port to endPort, inclusive', () => {
    const e = engineOf([np('x', 'p', sel({ pod: 'a' }), { ingress: [rule([], [port(80, 'TCP'), port(8080, 'TCP', 8090), port(53, 'UDP')])] })]);
    assert.equal(conns(e, 'y/a', 'x/a'), 'TCP 80,8080-8090,UDP 53');
  });

  it('named ports resolve per destination pod: same name, different numbers', () => {
    // "port ... This can either be a numerical or named port on a pod."
    const pods = [
      customPod('x', 'client', { app: 'client' }, [], { ip: '10.9.0.1' }),
      customPod('y', 'web1', { app: 'web' }, [{ name: 'http', port: 8080, protocol: 'TCP' }], { ip: '10.9.0.2' }),
      customPod('y', 'web2', { app: 'web' }, [{ name: 'http', port: 9090, protocol: 'TCP' }, { name: 'metrics', port: 9100, protocol: 'TCP' }], { ip: '10.9.0.3' }),
      customPod('y', 'udp', { app: 'web' }, [{ name: 'http', port: 7070, protocol: 'UDP' }], { ip: '10.9.0.4' }),
      customPod('y', 'none', { app: 'web' }, [{ name: 'other', port: 80, protocol: 'TCP' }], { ip: '10.9.0.5' }),
    ];
    const cluster: Partial<Cluster> = { pods, namespaces: [modelNamespace('x'), modelNamespace('y')] };
    const eg = engineOf([np('x', 'p', sel({ app: 'client' }), { egress: [rule([nsPeer({})], [port('http')])] })], cluster);
    assert.equal(conns(eg, 'x/client', 'y/web1'), 'TCP 8080');
    assert.equal(conns(eg, 'x/client', 'y/web2'), 'TCP 9090');
    // The named port's protocol (defaulted TCP) must match the container port's.
    assert.equal(conns(eg, 'x/client', 'y/udp'), NONE);
    assert.equal(conns(eg, 'x/client', 'y/none'), NONE);
    const ing = engineOf([np('y', 'p', sel({ app: 'web' }), { ingress: [rule([], [port('http'), port('http', 'UDP')])] })], cluster);
    assert.equal(conns(ing, 'x/client', 'y/web1'), 'TCP 8080');
    assert.equal(conns(ing, 'x/client', 'y/web2'), 'TCP 9090');
    assert.equal(conns(ing, 'x/client', 'y/udp'), 'UDP 7070');
    assert.equal(conns(ing, 'x/client', 'y/none'), NONE);
    // A named port towards an external address matches nothing.
    assert.equal(externalText(eg, 'x/client', '203.0.113.1', true), NONE);
  });

  it('named ports stay exact with more than 4096 distinct destination port sets (regression)', () => {
    // analyze() once packed (peer mask, port signature) as mask * 4096 + signature: with more
    // than 4096 signatures a destination outside the rule's peers inherited an allow.
    const pods: Pod[] = [customPod('a', 'client', { app: 'client' }, [], { ip: '10.0.0.1' })];
    const n = 4100;
    for (let i = 0; i < n; i++) {
      const name = `s${String(i).padStart(5, '0')}`;
      pods.push(customPod('b', name, { app: i === 0 ? 'target' : 'other' }, [{ name: 'web', port: 1000 + i, protocol: 'TCP' }], { ip: `10.1.${Math.floor(i / 250)}.${(i % 250) + 1}` }));
    }
    const e = new PolicyEngine({
      ...e2eModel(),
      namespaces: [modelNamespace('a'), modelNamespace('b')],
      pods,
      networkPolicies: [np('a', 'eg', {}, { egress: [rule([nsPodPeer({}, sel({ app: 'target' }))], [port('web')])] })],
    });
    const r = analyze(e);
    const classOf = new Map<string, number>();
    for (const c of r.classes) for (const p of c.pods) classOf.set(`${p.namespace}/${p.name}`, c.index);
    const client = classOf.get('a/client') as number;
    const wrong: string[] = [];
    for (let i = 0; i < n; i++) {
      const key = `b/s${String(i).padStart(5, '0')}`;
      const got = formatConns(r.conns.get(r.connId(client, classOf.get(key) as number)));
      const want = i === 0 ? 'TCP 1000' : NONE;
      if (got !== want) wrong.push(`${key}: ${got}`);
    }
    assert.deepEqual(wrong, []);
  });
});

describe('host-network pods', () => {
  const hostPod = (ns: string, name: string): Pod =>
    customPod(ns, name, { pod: name }, [{ name: 'serve-80-tcp', port: 80, protocol: 'TCP' }], { hostNetwork: true, node: 'n1' });
  const base = (policies: NetworkPolicy[]) => {
    const m = e2eModel();
    return new PolicyEngine({ ...m, nodes: [{ name: 'n1', labels: { role: 'worker' }, ip: '192.168.10.1' }], pods: [...m.pods, hostPod('x', 'h')], networkPolicies: policies });
  };

  it('are not selected by a policy podSelector: a namespace default deny does not isolate them', () => {
    const e = base([np('x', 'deny', {}, { ingress: [], egress: [] })]);
    assert.equal(conns(e, 'y/a', 'x/h'), ALL);
    assert.equal(conns(e, 'x/h', 'y/a'), ALL);
    assert.equal(conns(e, 'y/a', 'x/a'), NONE);
  });

  it('are not matched by pod selectors as peers', () => {
    const e = base([np('y', 'from-all-pods', {}, { ingress: [rule([nsPodPeer({}, {})])] })]);
    assert.equal(conns(e, 'x/a', 'y/a'), ALL);
    assert.equal(conns(e, 'x/h', 'y/a'), NONE);
  });

  it('are matched by an ipBlock on their node IP', () => {
    const e = base([np('y', 'from-node', {}, { ingress: [rule([ipBlockPeer('192.168.10.0/24')], [port(80)])] })]);
    assert.equal(conns(e, 'x/h', 'y/a'), 'TCP 80');
    assert.equal(conns(e, 'x/a', 'y/a'), NONE);
    const step = explain(e, 'x/h', 'y/a', 'TCP', 80).egress.decidedBy;
    assert.match(step.text, /host network/);
  });
});

describe('connection sets (connections.ts)', () => {
  it('formatConns in the netpol-analyzer style', () => {
    assert.equal(formatConns(ALL_CONNS), 'All Connections');
    assert.equal(formatConns(NO_CONNS), 'No Connections');
    const c = union(union(portsConn('TCP', 8080, 8090), portsConn('UDP', 53, 53)), portsConn('TCP', 80, 80));
    assert.equal(formatConns(c), 'TCP 80,8080-8090,UDP 53');
    assert.equal(formatConns(union(c, portsConn('SCTP', 9, 10))), 'SCTP 9-10,TCP 80,8080-8090,UDP 53');
    assert.equal(formatConns(subtract(ALL_CONNS, { ...NO_CONNS, other: true })), 'SCTP 1-65535,TCP 1-65535,UDP 1-65535');
  });

  it('union merges adjacent and overlapping ranges; intersect and subtract are exact', () => {
    const a = union(portsConn('TCP', 1, 10), portsConn('TCP', 11, 20));
    assert.deepEqual(a.TCP, [1, 20]);
    const b = union(portsConn('TCP', 5, 8), portsConn('TCP', 30, 40));
    assert.deepEqual(intersect(a, b).TCP, [5, 8]);
    assert.deepEqual(subtract(a, b).TCP, [1, 4, 9, 20]);
    assert.deepEqual(subtract(portsConn('TCP', 1, 100), union(portsConn('TCP', 1, 1), portsConn('TCP', 100, 100))).TCP, [2, 99]);
    assert.ok(isEmpty(intersect(protocolConn('TCP'), protocolConn('UDP'))), 'TCP ∩ UDP');
    assert.ok(isAll(union(subtract(ALL_CONNS, portsConn('UDP', 7, 9)), portsConn('UDP', 7, 9))), 'all - x + x');
    assert.ok(!isAll(subtract(ALL_CONNS, portsConn('SCTP', 65535, 65535))), 'all - SCTP 65535');
  });

  it('random ranges: set algebra agrees with a per-port model', () => {
    let seed = 7;
    const rnd = (k: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % k;
    };
    const randSet = (): ConnSet => {
      let c = NO_CONNS;
      for (let i = 0; i < 4; i++) {
        const s = 1 + rnd(60);
        c = union(c, portsConn((['TCP', 'UDP', 'SCTP'] as Protocol[])[rnd(3)], s, s + rnd(8)));
      }
      return c;
    };
    const has = (c: ConnSet, p: Protocol, port: number) => {
      for (let i = 0; i < c[p].length; i += 2) if (port >= c[p][i] && port <= c[p][i + 1]) return true;
      return false;
    };
    for (let t = 0; t < 300; t++) {
      const a = randSet();
      const b = randSet();
      for (const p of ['TCP', 'UDP', 'SCTP'] as Protocol[]) {
        for (let port = 1; port <= 70; port++) {
          assert.equal(has(union(a, b), p, port), has(a, p, port) || has(b, p, port));
          assert.equal(has(intersect(a, b), p, port), has(a, p, port) && has(b, p, port));
          assert.equal(has(subtract(a, b), p, port), has(a, p, port) && !has(b, p, port));
        }
      }
    }
  });
});

describe('explain', () => {
  it('names the policy and rule that allowed, and the default deny of an isolated pod', () => {
    const e = engineOf([
      np('x', 'deny-all', {}, { ingress: [] }),
      np('x', 'allow-b', sel({ pod: 'a' }), { ingress: [rule([podPeer(sel({ pod: 'c' }))]), rule([podPeer(sel({ pod: 'b' }))], [port(80)])] }),
    ]);
    const ok = explain(e, 'x/b', 'x/a', 'TCP', 80);
    assert.equal(ok.verdict, 'Allowed');
    assert.equal(ok.ingress.decidedBy.policy, 'NetworkPolicy x/allow-b');
    assert.equal(ok.ingress.decidedBy.rule, 'ingress[1]');
    assert.equal(ok.egress.decidedBy.tier, 'default');
    const denied = explain(e, 'x/b', 'x/a', 'TCP', 81);
    assert.equal(denied.verdict, 'Denied');
    assert.equal(denied.ingress.decidedBy.tier, 'default');
    assert.equal(denied.ingress.decidedBy.action, 'Deny');
    assert.match(denied.ingress.decidedBy.text, /isolated/);
  });

  it('names the ANP rule that denied over a NetworkPolicy allow', () => {
    const anpDeny: AdminNetworkPolicy = {
      name: 'block-y',
      priority: 3,
      subject: { namespaces: sel({ ns: 'x' }) },
      ingress: [{ name: 'no-y', action: 'Deny', peers: [{ kind: 'namespaces', namespaces: sel({ ns: 'y' }) }] }],
      egress: [],
      mode: 'enforce',
    };
    const e = engineOf([np('x', 'allow-all', {}, { ingress: [rule()] })], { adminNetworkPolicies: [anpDeny] });
    const x = explain(e, 'y/a', 'x/a', 'TCP', 80);
    assert.equal(x.verdict, 'Denied');
    assert.equal(x.ingress.decidedBy.policy, 'AdminNetworkPolicy block-y');
    assert.equal(x.ingress.decidedBy.rule, 'ingress[0] "no-y"');
    assert.match(x.ingress.decidedBy.text, /priority 3/);
  });
});

describe('audit mode (weir.dev/mode: audit)', () => {
  it('an audit NetworkPolicy neither isolates nor allows, and explain says what it would do', () => {
    const e = engineOf([np('x', 'would-deny', sel({ pod: 'a' }), { ingress: [rule([podPeer(sel({ pod: 'b' }))])], mode: 'audit' })]);
    assert.equal(conns(e, 'y/a', 'x/a'), ALL);
    const full = analyze(e, 'full');
    const cls = (k: string) => full.classes.find((c) => c.pods.some((p) => `${p.namespace}/${p.name}` === k))?.index as number;
    assert.equal(formatConns(full.conns.get(full.connId(cls('y/a'), cls('x/a')))), NONE);
    assert.equal(formatConns(full.conns.get(full.connId(cls('x/b'), cls('x/a')))), ALL);
    const x = explain(e, 'y/a', 'x/a', 'TCP', 80);
    assert.equal(x.verdict, 'Allowed');
    assert.equal(x.audit?.verdict, 'Denied');
    const allowedByAudit = explain(e, 'x/b', 'x/a', 'TCP', 80);
    assert.equal(allowedByAudit.audit?.ingress.decidedBy.policy, 'NetworkPolicy x/would-deny');
    assert.equal(allowedByAudit.audit?.ingress.decidedBy.audit, true);
  });
});

// ------------------------------------------------------------------ incremental updates

describe('incremental updates equal a fresh engine', () => {
  it('pod add, label change and removal', () => {
    const s = new Scenario().createPolicy(genPolicy('x', 'from-b', sel({ pod: 'a' }), setSpecIngressRules(rule([podPeer(sel({ role: 'client' }))]))));
    s.upsertPod(customPod('x', 'd', { pod: 'd', role: 'client' }, [], { ip: '10.1.0.50' }));
    assertSameConnectivity(s.engine, s.fresh());
    assert.equal(pairText(s.engine, 'x/d', 'x/a'), ALL);
    s.setPodLabels('x/d', { pod: 'd' });
    assertSameConnectivity(s.engine, s.fresh());
    assert.equal(pairText(s.engine, 'x/d', 'x/a'), NONE);
    s.setPodLabels('x/a', { pod: 'a2' }); // no longer selected: not isolated any more
    assertSameConnectivity(s.engine, s.fresh());
    assert.equal(pairText(s.engine, 'x/d', 'x/a'), ALL);
    s.removePod('x', 'd').removePod('x', 'a');
    assertSameConnectivity(s.engine, s.fresh());
    assert.equal(s.engine.pods.has('x/a'), false);
  });

  it('namespace label change moves pods in and out of namespaceSelector groups', () => {
    const s = new Scenario().createPolicy(genPolicy('x', 'from-team', {}, setSpecIngressRules(rule([nsPeer(sel({ team: 'blue' }))]))));
    assert.equal(pairText(s.engine, 'y/a', 'x/a'), NONE);
    s.addNamespaceLabel('y', 'team', 'blue');
    assertSameConnectivity(s.engine, s.fresh());
    assert.equal(pairText(s.engine, 'y/a', 'x/a'), ALL);
    s.setNamespaceLabels('y', { 'kubernetes.io/metadata.name': 'y' });
    assertSameConnectivity(s.engine, s.fresh());
    assert.equal(pairText(s.engine, 'y/a', 'x/a'), NONE);
  });

  it('policy add, update and removal', () => {
    const s = new Scenario();
    s.createPolicy(genPolicy('x', 'p', {}, setSpecEgressRules(rule([], [port(80)]))));
    assertSameConnectivity(s.engine, s.fresh());
    s.updatePolicy(genPolicy('x', 'p', {}, setSpecIngressRules(rule([], [port(81)]))));
    assertSameConnectivity(s.engine, s.fresh());
    assert.equal(pairText(s.engine, 'x/a', 'y/a'), ALL);
    assert.equal(pairText(s.engine, 'y/a', 'x/a'), 'TCP 81');
    s.deletePolicy('x', 'p');
    assertSameConnectivity(s.engine, s.fresh());
    assert.equal(pairText(s.engine, 'y/a', 'x/a'), ALL);
  });

  it('seeded random walk: 200 mutations, incremental == fresh after every one', () => {
    runRandomWalk(20240601, 200);
  });

  it('a second seed, with admin policies and host-network pods', () => {
    runRandomWalk(7, 200);
  });
});

// ------------------------------------------------------------------ random walk


function runRandomWalk(seed: number, steps: number): void {
  const rnd = rng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)];
  const chance = (p: number): boolean => rnd() < p;
  const NS = ['x', 'y', 'z', 'w'];
  const NAMES = ['a', 'b', 'c', 'd'];
  const labelValues = ['a', 'b', 'c'];
  const labels = (): Labels => {
    const l: Record<string, string> = {};
    if (chance(0.8)) l.pod = pick(labelValues);
    if (chance(0.4)) l.tier = pick(['web', 'db']);
    return l;
  };
  const selector = (): LabelSelector => {
    const r = rnd();
    if (r < 0.25) return {};
    if (r < 0.6) return { matchLabels: { pod: pick(labelValues) } };
    if (r < 0.8) return { matchExpressions: [{ key: 'tier', operator: pick(['In', 'NotIn'] as const), values: [pick(['web', 'db'])] }] };
    return { matchExpressions: [{ key: 'tier', operator: pick(['Exists', 'DoesNotExist'] as const) }] };
  };
  const nsSelector = (): LabelSelector => (chance(0.3) ? {} : chance(0.5) ? { matchLabels: { team: pick(['red', 'blue']) } } : { matchLabels: { 'kubernetes.io/metadata.name': pick(NS) } });
  const ports = (): ContainerPort[] => {
    const out: ContainerPort[] = [];
    if (chance(0.7)) out.push({ name: 'http', port: pick([80, 8080]), protocol: 'TCP' });
    if (chance(0.4)) out.push({ name: 'dns', port: 53, protocol: 'UDP' });
    if (chance(0.2)) out.push({ name: 'http', port: 81, protocol: 'SCTP' });
    return out;
  };
  const npPort = (): NetworkPolicyPort => {
    const r = rnd();
    if (r < 0.3) return port(pick([80, 81, 53]), pick(['TCP', 'UDP'] as const));
    if (r < 0.5) return port(80, 'TCP', pick([80, 81, 8080]));
    if (r < 0.75) return port(pick(['http', 'dns']), pick(['TCP', 'UDP', 'SCTP'] as const));
    return port(undefined, pick(['TCP', 'UDP', 'SCTP'] as const));
  };
  const npPeer = (): NetworkPolicyPeer => {
    const r = rnd();
    if (r < 0.3) return podPeer(selector());
    if (r < 0.5) return nsPeer(nsSelector());
    if (r < 0.75) return nsPodPeer(nsSelector(), selector());
    return ipBlockPeer(pick(['10.0.0.0/8', '10.2.0.0/16', '192.0.2.0/24', '0.0.0.0/0']), chance(0.5) ? [pick(['10.2.0.0/24', '10.1.0.11/32', '192.0.2.128/25'])] : []);
  };
  const npRule = () => rule(chance(0.2) ? [] : Array.from({ length: 1 + Math.floor(rnd() * 2) }, npPeer), chance(0.4) ? [] : Array.from({ length: 1 + Math.floor(rnd() * 2) }, npPort));
  const randomNp = (): NetworkPolicy => {
    const types = pick([['Ingress'], ['Egress'], ['Ingress', 'Egress']] as ('Ingress' | 'Egress')[][]);
    return {
      namespace: pick(NS),
      name: pick(['p1', 'p2', 'p3']),
      podSelector: selector(),
      policyTypes: types,
      ingress: Array.from({ length: Math.floor(rnd() * 3) }, npRule),
      egress: Array.from({ length: Math.floor(rnd() * 3) }, npRule),
      mode: chance(0.15) ? 'audit' : 'enforce',
    };
  };
  const adminPeer = (): AdminPeer => {
    const r = rnd();
    if (r < 0.35) return { kind: 'namespaces', namespaces: nsSelector() };
    if (r < 0.7) return { kind: 'pods', pods: { namespaceSelector: nsSelector(), podSelector: selector() } };
    if (r < 0.85) return { kind: 'nodes', nodes: chance(0.5) ? {} : { matchLabels: { role: 'worker' } } };
    return { kind: 'networks', networks: [pick(['10.2.0.0/16', '192.0.2.0/25', '10.0.0.0/8'])] };
  };
  const adminPorts = (): AdminPort[] | undefined =>
    chance(0.5)
      ? undefined
      : [pick<AdminPort>([
          { kind: 'portNumber', protocol: 'TCP', port: 80 },
          { kind: 'portRange', protocol: 'TCP', start: 80, end: 8080 },
          { kind: 'namedPort', name: 'http' },
          { kind: 'portNumber', protocol: 'UDP', port: 53 },
        ])];
  const adminRules = (actions: readonly ('Allow' | 'Deny' | 'Pass')[]) =>
    Array.from({ length: Math.floor(rnd() * 3) }, (_, i) => ({ name: `r${i}`, action: pick(actions), peers: [adminPeer()], ports: adminPorts() }));
  const subject = () => (chance(0.5) ? { namespaces: nsSelector() } : { pods: { namespaceSelector: nsSelector(), podSelector: selector() } });

  const s = new Scenario({ ...e2eModel(), nodes: [{ name: 'n1', labels: { role: 'worker' }, ip: '10.0.9.1' }] });
  const ops: string[] = [];
  for (let step = 0; ops.length < steps; step++) {
    const r = rnd();
    let op: string;
    if (r < 0.25) {
      const ns = pick(NS);
      const name = pick(NAMES);
      const host = chance(0.1);
      const podIndex = NAMES.indexOf(name);
      const p = customPod(ns, name, labels(), ports(), host ? { hostNetwork: true, node: 'n1' } : { ip: chance(0.9) ? `10.${NS.indexOf(ns) + 1}.0.${10 + podIndex}` : undefined });
      s.upsertPod(p);
      op = `upsertPod ${ns}/${name}${host ? ' (host)' : ''} ${JSON.stringify(p.labels)}`;
    } else if (r < 0.35) {
      const key = pick([...s.pods.keys()]);
      if (key === undefined) continue;
      const [ns, name] = key.split('/');
      s.removePod(ns, name);
      op = `removePod ${key}`;
    } else if (r < 0.47) {
      const ns = pick(NS);
      const l: Record<string, string> = { 'kubernetes.io/metadata.name': ns };
      if (chance(0.6)) l.team = pick(['red', 'blue']);
      s.upsertNamespace({ name: ns, labels: l });
      op = `upsertNamespace ${ns} ${JSON.stringify(l)}`;
    } else if (r < 0.5) {
      const ns = pick(NS);
      s.removeNamespace(ns);
      op = `removeNamespace ${ns}`;
    } else if (r < 0.7) {
      const p = randomNp();
      s.createPolicy(p);
      op = `upsertNetworkPolicy ${p.namespace}/${p.name}`;
    } else if (r < 0.78) {
      const p = pick([...s.networkPolicies.values()]);
      if (!p) continue;
      s.deletePolicy(p.namespace, p.name);
      op = `removeNetworkPolicy ${p.namespace}/${p.name}`;
    } else if (r < 0.88) {
      const a: AdminNetworkPolicy = {
        name: pick(['anp1', 'anp2']),
        priority: Math.floor(rnd() * 4),
        subject: subject(),
        ingress: adminRules(['Allow', 'Deny', 'Pass']),
        egress: adminRules(['Allow', 'Deny', 'Pass']),
        mode: chance(0.15) ? 'audit' : 'enforce',
      };
      s.createAdminPolicy(a);
      op = `upsertAdminNetworkPolicy ${a.name}`;
    } else if (r < 0.92) {
      const a = pick([...s.adminPolicies.keys()]);
      if (a === undefined) continue;
      s.deleteAdminPolicy(a);
      op = `removeAdminNetworkPolicy ${a}`;
    } else if (r < 0.97) {
      const b = chance(0.8) ? { name: 'default', subject: subject(), ingress: adminRules(['Allow', 'Deny']), egress: adminRules(['Allow', 'Deny']), mode: 'enforce' as const } : undefined;
      s.setBaseline(b);
      op = `setBaseline ${b ? 'set' : 'cleared'}`;
    } else {
      const labelsOfNode = chance(0.5) ? { role: 'worker' } : { role: 'infra' };
      s.upsertNode({ name: 'n1', labels: labelsOfNode, ip: '10.0.9.1' });
      op = `upsertNode n1 ${JSON.stringify(labelsOfNode)}`;
    }
    ops.push(op);
    try {
      assertSameConnectivity(s.engine, s.fresh());
      if (step % 10 === 0) observedConns(s.engine, [...s.engine.pods.keys()], step % 20 === 0 ? 'full' : 'enforce');
    } catch (err) {
      const msg = err instanceof Error ? err.message : String(err);
      throw new assert.AssertionError({ message: `seed ${seed}, step ${step} (${op}); last ops:\n  ${ops.slice(-8).join('\n  ')}\n${msg}` });
    }
  }
}
