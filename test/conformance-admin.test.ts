// AdminNetworkPolicy / BaselineAdminNetworkPolicy conformance, after the sig-network
// network-policy-api conformance suite (conformance/tests/admin-network-policy-core-*.go,
// baseline-admin-network-policy-core-*.go), translated from its houses model
// (gryffindor, slytherin, ...) onto the x/y/z × a/b/c model: x plays gryffindor, y slytherin.
//
// API sentences relied on:
// - "ANPs are evaluated in order of priority, lower numbers first; ... rules within a policy in
//   the order they are written; the first matching rule decides" (Allow and Deny are final).
// - Pass: "skips all further ANP rules and hands the traffic to NetworkPolicy; if no
//   NetworkPolicy applies, to the BaselineAdminNetworkPolicy".
// - BANP is evaluated only for traffic that neither an ANP nor a NetworkPolicy decided; a
//   NetworkPolicy that selects the pod (isolation) always wins over BANP.
//
// The cases in ADMIN_CASES (helpers/scenarios.ts) are defined there because
// lab-conformance.test.ts runs them with real packets too.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Pod } from '../src/model/cluster.js';
import { analyze, explain, formatConns, parseIp } from '../src/policy/index.js';
import { allPodKeys, e2eModel, modelPodIp } from './helpers/model.js';
import { podMatrix, Reachability, validateOrFail } from './helpers/reachability.js';
import {
  ADMIN_CASES,
  adminRule,
  allNamespacesPeer,
  anp,
  assertSameConnectivity,
  banp,
  genPolicy,
  genPolicyMatchLabels,
  namespacesPeer,
  nsSel,
  nsSubject,
  podPeer,
  rule,
  runCase,
  Scenario,
  setSpecIngressRules,
  TCP80,
  TCP81,
  UDP80,
} from './helpers/scenarios.js';

const reach = (pods?: readonly string[]): Reachability => new Reachability(pods);

describe('AdminNetworkPolicy / BaselineAdminNetworkPolicy conformance (network-policy-api, on the x/y/z model)', () => {
  it(ADMIN_CASES.priority.name, () => {
    runCase(ADMIN_CASES.priority);
  });

  it('rule order inside one ANP: the first matching rule wins', () => {
    const s = new Scenario().createAdminPolicy(
      anp(
        'ordered',
        10,
        nsSubject('x'),
        [adminRule('allow-y-a', 'Allow', [{ kind: 'pods', pods: { namespaceSelector: nsSel('y'), podSelector: { matchLabels: { pod: 'a' } } } }]), adminRule('deny-y', 'Deny', [namespacesPeer('y')])],
      ),
    );
    s.validate(TCP80, reach().expectPeer({ namespace: 'y' }, { namespace: 'x' }, false).expectPeer({ namespace: 'y', pod: 'a' }, { namespace: 'x' }, true));
  });

  it(ADMIN_CASES.denyOverNetworkPolicyAllow.name, () => {
    runCase(ADMIN_CASES.denyOverNetworkPolicyAllow);
  });

  it(ADMIN_CASES.allowOverNetworkPolicyDeny.name, () => {
    runCase(ADMIN_CASES.allowOverNetworkPolicyDeny);
  });

  it(ADMIN_CASES.allowOverBaselineDeny.name, () => {
    runCase(ADMIN_CASES.allowOverBaselineDeny);
  });

  it(ADMIN_CASES.passToNetworkPolicy.name, () => {
    runCase(ADMIN_CASES.passToNetworkPolicy);
  });

  it(ADMIN_CASES.anpNpBanp.name, () => {
    runCase(ADMIN_CASES.anpNpBanp);
  });

  it(ADMIN_CASES.baselineDefaultDeny.name, () => {
    runCase(ADMIN_CASES.baselineDefaultDeny);
  });

  it('BANP Allow does not override a NetworkPolicy deny (NetworkPolicy wins)', () => {
    const s = new Scenario()
      .setBaseline(banp(nsSubject('x'), [adminRule('allow-y', 'Allow', [namespacesPeer('y')])]))
      .createPolicy(genPolicy('x', 'deny-ingress', {}, setSpecIngressRules()));
    s.validate(TCP80, reach().expectPeer({}, { namespace: 'x' }, false));
  });

  it('ANP egress to networks (CIDR): Allow one address, Deny the rest of the range; external addresses too', () => {
    const ya = modelPodIp('y', 'a');
    const s = new Scenario().createAdminPolicy(
      anp('egress-networks', 10, nsSubject('x'), [], [
        adminRule('allow-y-a', 'Allow', [{ kind: 'networks', networks: [`${ya}/32`] }]),
        adminRule('deny-ns-y-range', 'Deny', [{ kind: 'networks', networks: ['10.2.0.0/16', '203.0.113.0/24'] }]),
      ]),
    );
    s.validate(TCP80, reach().expectPeer({ namespace: 'x' }, { namespace: 'y' }, false).expectPeer({ namespace: 'x' }, { namespace: 'y', pod: 'a' }, true));
    assert.equal(explain(s.engine, 'x/a', '203.0.113.7', 'TCP', 443).verdict, 'Denied');
    assert.equal(explain(s.engine, 'x/a', '198.51.100.7', 'TCP', 443).verdict, 'Allowed');
    assert.equal(explain(s.engine, 'y/a', '203.0.113.7', 'TCP', 443).verdict, 'Allowed');
    const step = explain(s.engine, 'x/a', '203.0.113.7', 'TCP', 443).egress.decidedBy;
    assert.equal(step.policy, 'AdminNetworkPolicy egress-networks');
    assert.equal(step.rule, 'egress[1] "deny-ns-y-range"');
  });

  it('ANP namedPort: resolved on the destination pod, protocol from the container port', () => {
    const s = new Scenario().createAdminPolicy(
      anp('deny-named', 10, nsSubject('x'), [adminRule('deny-serve-80-tcp', 'Deny', [namespacesPeer('y')], [{ kind: 'namedPort', name: 'serve-80-tcp' }])]),
    );
    s.validate(TCP80, reach().expectPeer({ namespace: 'y' }, { namespace: 'x' }, false), 'TCP 80');
    s.validate(TCP81, reach(), 'TCP 81');
    s.validate(UDP80, reach(), 'UDP 80');
  });

  it(ADMIN_CASES.portRange.name, () => {
    runCase(ADMIN_CASES.portRange);
  });

  it('ANP nodes peer matches a host-network pod on a matching node; the host-network pod is never a subject', () => {
    const hostPod: Pod = {
      namespace: 'y',
      name: 'h',
      labels: { pod: 'h' },
      ports: [{ name: 'serve-80-tcp', port: 80, protocol: 'TCP' }],
      hostNetwork: true,
      node: 'n1',
      workload: 'y/h[Pod]',
    };
    const cluster = e2eModel([], { nodes: [{ name: 'n1', labels: { role: 'worker' }, ip: '192.168.10.1' }] });
    const s = new Scenario({ ...cluster, pods: [...cluster.pods, hostPod] })
      .createAdminPolicy(anp('deny-nodes', 10, nsSubject('x'), [adminRule('deny-workers', 'Deny', [{ kind: 'nodes', nodes: { matchLabels: { role: 'worker' } } }])]))
      // Subject y (which holds the host-network pod) denies all ingress: must not apply to y/h.
      .createAdminPolicy(anp('deny-into-y', 20, nsSubject('y'), [adminRule('deny-all', 'Deny', [allNamespacesPeer])]));
    const pods = [...allPodKeys(), 'y/h'];
    s.validate(
      TCP80,
      reach(pods)
        .expectPeer({}, { namespace: 'y' }, false)
        // Host-network pods are their node to policy (weir's documented choice, in line with
        // the ANP API excluding host-network pods from namespace/pod selection): y/h is
        // neither isolated by deny-into-y nor matched as its peer.
        .expectAllIngress('y/h', true)
        .expectAllEgress('y/h', true)
        // ... but it is its node for the nodes peer of deny-nodes.
        .expect('y/h', 'x/a', false)
        .expect('y/h', 'x/b', false)
        .expect('y/h', 'x/c', false),
    );
    // The node's own address (kubelet, anything on the host) is the node too: the kernel
    // matches `nodes` peers by node IP, and so must the analyzer.
    assert.equal(explain(s.engine, '192.168.10.1', 'x/a', 'TCP', 80).verdict, 'Denied');
    assert.equal(explain(s.engine, '192.168.10.2', 'x/a', 'TCP', 80).verdict, 'Allowed');
  });

  it('ANP egress to nodes: traffic to a selected node address is denied, also when no pod runs on the host network', () => {
    const nodes = [
      { name: 'n1', labels: { role: 'worker' }, ip: '192.168.10.1' },
      { name: 'n2', labels: { role: 'infra' }, ip: '192.168.10.2' },
    ];
    const s = new Scenario(e2eModel([], { nodes })).createAdminPolicy(
      anp('deny-to-workers', 10, nsSubject('x'), [], [adminRule('deny-workers', 'Deny', [{ kind: 'nodes', nodes: { matchLabels: { role: 'worker' } } }])]),
    );
    s.validate(TCP80, reach());
    const toNode = (from: string, ip: string) => explain(s.engine, from, ip, 'TCP', 10250);
    assert.equal(toNode('x/a', '192.168.10.1').verdict, 'Denied');
    assert.equal(toNode('x/a', '192.168.10.1').egress.decidedBy.rule, 'egress[0] "deny-workers"');
    assert.equal(toNode('x/a', '192.168.10.2').verdict, 'Allowed');
    assert.equal(toNode('y/a', '192.168.10.1').verdict, 'Allowed');
    // The analyzer's matrix has the node address as its own external class, with the same verdict.
    const r = analyze(s.engine);
    const node1 = r.classes.find((c) => c.kind === 'external' && c.range?.start === c.range?.end && c.range?.start === parseIp('192.168.10.1'));
    const xa = r.classes.find((c) => c.pods.some((p) => p.namespace === 'x' && p.name === 'a'));
    assert.ok(node1 && xa, 'classes for 192.168.10.1 and x/a');
    assert.equal(formatConns(r.conns.get(r.connId(xa.index, node1.index))), 'No Connections');
    // Relabelling the node (incrementally) lifts the deny, and incremental == fresh.
    s.upsertNode({ ...nodes[0], labels: { role: 'infra' } });
    assertSameConnectivity(s.engine, s.fresh());
    assert.equal(toNode('x/a', '192.168.10.1').verdict, 'Allowed');
  });

  it('audit-mode ANP is not enforced, but explain shows what it would do', () => {
    const s = new Scenario().createAdminPolicy(anp('audit-deny-y', 10, nsSubject('x'), [adminRule('deny-y', 'Deny', [namespacesPeer('y')])], [], 'audit'));
    s.validate(TCP80, reach());
    const e = explain(s.engine, 'y/a', 'x/a', 'TCP', 80);
    assert.equal(e.verdict, 'Allowed');
    assert.ok(e.audit, 'explain must report the audit-mode policy');
    assert.equal(e.audit.verdict, 'Denied');
    assert.equal(e.audit.ingress.decidedBy.policy, 'AdminNetworkPolicy audit-deny-y');
    assert.equal(e.audit.ingress.decidedBy.audit, true);
    // analyze in `full` mode enforces audit policies: y -> x is denied there.
    const full = podMatrix(s.engine, analyze(s.engine, 'full'));
    for (const from of ['y/a', 'y/b', 'y/c']) for (const to of ['x/a', 'x/b', 'x/c']) assert.equal(full.get(`${from} -> ${to}`)?.TCP.length, 0, `${from} -> ${to}`);
    // Nothing to report where the audit policy does not apply.
    assert.equal(explain(s.engine, 'z/a', 'x/a', 'TCP', 80).audit, undefined);
  });

  it(ADMIN_CASES.podSubject.name, () => {
    runCase(ADMIN_CASES.podSubject);
  });

  it('BANP egress deny with a NetworkPolicy egress isolating a different pod', () => {
    const s = new Scenario()
      .setBaseline(banp(nsSubject('y'), [], [adminRule('deny-to-z', 'Deny', [namespacesPeer('z')])]))
      .createPolicy(genPolicyMatchLabels('y', 'egress-a-to-z-b', { pod: 'a' }, (p) => {
        p.egress = [rule([{ kind: 'selector', namespaceSelector: nsSel('z'), podSelector: { matchLabels: { pod: 'b' } } }])];
        p.policyTypes.push('Egress');
      }));
    s.validate(
      TCP80,
      reach()
        .expectPeer({ namespace: 'y' }, { namespace: 'z' }, false)
        // y/a is isolated for egress by the NetworkPolicy: only z/b, and nothing else.
        .expectAllEgress('y/a', false)
        .expect('y/a', 'z/b', true),
    );
  });

  it('ANP podSelector peer in the same namespace with matchExpressions, and a NetworkPolicy for the rest', () => {
    const s = new Scenario()
      .createAdminPolicy(
        anp('deny-bc', 10, nsSubject('x'), [
          adminRule('deny-x-bc', 'Deny', [{ kind: 'pods', pods: { namespaceSelector: nsSel('x'), podSelector: { matchExpressions: [{ key: 'pod', operator: 'In', values: ['b', 'c'] }] } } }]),
        ]),
      )
      .createPolicy(genPolicyMatchLabels('x', 'from-x-only', {}, setSpecIngressRules(rule([podPeer({})]))));
    s.validate(
      TCP80,
      reach()
        .expectPeer({ namespace: 'y' }, { namespace: 'x' }, false)
        .expectPeer({ namespace: 'z' }, { namespace: 'x' }, false)
        .expectPeer({ namespace: 'x', pod: 'b' }, { namespace: 'x' }, false)
        .expectPeer({ namespace: 'x', pod: 'c' }, { namespace: 'x' }, false),
    );
  });
});

// A direct check that the truth table helper and the engine use the same pod list.
describe('reachability helper sanity', () => {
  it('validateOrFail fails on a wrong expectation', () => {
    const s = new Scenario().createPolicy(genPolicy('x', 'deny', {}, setSpecIngressRules()));
    assert.throws(() => validateOrFail(s.engine, TCP80, new Reachability()), /wrong results/);
  });
});
