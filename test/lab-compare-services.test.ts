// `weir lab probe --compare` for Services, on synthetic probe results (no root): one
// connection per cell, so a Service cell is expected reachable when every usable endpoint
// allows, unreachable when none does (or there is none), and when only some allow, an answer
// must come from one that allows and a missing answer is not compared. Masqueraded connections
// (NodePort with externalTrafficPolicy Cluster, hairpin) are judged at the endpoint with the
// address of the node entered. Every kind of disagreement is caught.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { compareServiceProbe, formatServiceComparison } from '../src/lab/compare-services.js';
import { labCluster, planLab, type ProbeCell } from '../src/lab/index.js';
import { labServices, serviceTargets } from '../src/lab/probe-services.js';
import { loadManifestText } from '../src/load/index.js';
import { PolicyEngine } from '../src/policy/index.js';

const EXTRA = `---
apiVersion: v1
kind: Service
metadata: { name: empty, namespace: shop }
spec: { clusterIP: 10.96.9.9, selector: { app: nothing }, ports: [{ port: 80 }] }
---
apiVersion: v1
kind: Service
metadata: { name: local, namespace: shop }
spec: { clusterIP: 10.96.9.10, selector: { app: web }, internalTrafficPolicy: Local, ports: [{ port: 80, targetPort: http }] }
---
apiVersion: v1
kind: Service
metadata: { name: keep, namespace: shop }
spec: { type: NodePort, externalTrafficPolicy: Local, clusterIP: 10.96.9.11, selector: { app: web }, ports: [{ port: 80, targetPort: http, nodePort: 30090 }] }
---
# web admits everyone but node-1's address: masqueraded NodePort traffic entering node-1 is denied.
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: web-not-from-node-1, namespace: shop }
spec:
  podSelector: { matchLabels: { app: web } }
  policyTypes: [Ingress]
  ingress: [{ from: [{ ipBlock: { cidr: 0.0.0.0/0, except: [172.31.255.11/32] } }] }]
`;

function setup() {
  const { cluster: desired } = loadManifestText(`${readFileSync('test/fixtures/lab-services/services.yaml', 'utf8')}${EXTRA}`, 'services.yaml');
  const state = planLab(desired, { dir: '/tmp/weir-compare-services-test', prefix: 'weir-t0001-', nodes: 2 }).state;
  const cluster = labCluster(desired, state);
  const services = labServices(cluster);
  const targets = serviceTargets(state, services);
  const engine = new PolicyEngine(cluster);
  const compare = (cells: ProbeCell[]) =>
    compareServiceProbe(engine, state, services, targets, { from: [], to: [], ports: [], cells, durationMs: 1 });
  return { state, targets, compare };
}

const cell = (from: string, to: string, ok: boolean, reply?: string, port = 80): ProbeCell => ({
  from,
  to,
  port,
  protocol: 'TCP',
  ok,
  ...(reply !== undefined ? { reply } : {}),
  ...(ok ? {} : { error: 'timeout' }),
  ms: 1,
});

describe('lab probe --compare for Services', () => {
  test('targets: every ClusterIP, and every NodePort on every node', () => {
    const { targets, state } = setup();
    assert.equal(state.external.node, 'node-0');
    assert.deepEqual(targets.map((t) => t.id).sort(), ['svc/shop/empty', 'svc/shop/front', 'svc/shop/guarded', 'svc/shop/keep', 'svc/shop/keep@node-0', 'svc/shop/keep@node-1', 'svc/shop/local', 'svc/shop/web', 'svc/shop/web@node-0', 'svc/shop/web@node-1']);
    assert.deepEqual(targets.find((t) => t.id === 'svc/shop/web@node-1')?.ports.map((p) => p.port), [30080]);
    assert.equal(targets.find((t) => t.id === 'svc/shop/web@node-1')?.ip, state.nodes[1]?.underlayIp);
  });

  test('all endpoints allow: an answer from one of them agrees; silence or a stranger disagrees', () => {
    const { compare } = setup();
    const cmp = compare([cell('shop/client', 'svc/shop/web', true, 'shop/web-1'), cell('shop/client', 'svc/shop/web', false), cell('shop/client', 'svc/shop/web', true, 'shop/guard-0')]);
    assert.deepEqual(cmp.cells.map((c) => [c.expected, c.disagrees]), [['Allowed', false], ['Allowed', true], ['Allowed', true]]);
    assert.match(cmp.cells[1]?.why ?? '', /every endpoint allows, yet no answer/);
    assert.match(cmp.cells[2]?.why ?? '', /answered by shop\/guard-0, which is not an allowed endpoint/);
    assert.match(formatServiceComparison(cmp), /^3 Service cells, 2 disagreements$/m);
  });

  test('no endpoint allows (policy after DNAT), or no endpoint at all: an answer disagrees', () => {
    const { compare } = setup();
    const cmp = compare([cell('shop/client', 'svc/shop/guarded', false), cell('shop/client', 'svc/shop/guarded', true, 'shop/guard-0'), cell('shop/client', 'svc/shop/empty', false), cell('shop/client', 'svc/shop/empty', true, 'shop/web-0')]);
    assert.deepEqual(cmp.cells.map((c) => [c.expected, c.disagrees]), [['Denied', false], ['Denied', true], ['Denied', false], ['Denied', true]]);
    assert.deepEqual(cmp.cells[0]?.endpoints.map((e) => [e.pod, e.port, e.verdict]), [['shop/guard-0', 8081, 'Denied']]);
    assert.deepEqual(cmp.cells[2]?.endpoints, []);
  });

  test('partly reachable: only an answer is compared, and it must come from an allowing endpoint', () => {
    const { compare } = setup();
    const cmp = compare([cell('shop/web-1', 'svc/shop/front', false), cell('shop/web-1', 'svc/shop/front', true, 'shop/web-0'), cell('shop/web-1', 'svc/shop/front', true, 'shop/guard-0')]);
    assert.deepEqual(cmp.cells.map((c) => [c.expected, c.skipped ?? '', c.disagrees]), [['Partial', 'partial-no-answer', false], ['Partial', '', false], ['Partial', '', true]]);
    assert.equal(cmp.compared, 2);
  });

  test('masquerade: NodePort (Cluster) judged with the address of the node entered, hairpin compared, Local keeps the client', () => {
    const { compare, state } = setup();
    const nodeIp = (n: string) => state.nodes.find((x) => x.name === n)?.underlayIp;
    // web denies node-1's address: through node-1 no endpoint allows, whichever node it is on.
    const cmp = compare([
      cell('external', 'svc/shop/web@node-0', true, 'shop/web-1', 30080),
      cell('external', 'svc/shop/web@node-1', false, undefined, 30080),
      cell('external', 'svc/shop/web@node-1', true, 'shop/web-0', 30080),
    ]);
    assert.deepEqual(cmp.cells.map((c) => [c.expected, c.disagrees]), [['Allowed', false], ['Denied', false], ['Denied', true]]);
    assert.deepEqual(cmp.cells[0]?.endpoints.map((e) => [e.pod, e.seenAs]), [['shop/web-0', nodeIp('node-0')], ['shop/web-1', nodeIp('node-0')]]);
    assert.match(formatServiceComparison(cmp), /endpoint shop\/web-0 8080: Denied \(its policy sees 172\.31\.255\.11: masqueraded\)/);
    // A pod sent to itself: compared, its ingress judged with its node's address.
    const web0 = state.pods.find((p) => p.key === 'shop/web-0');
    const hair = compare([cell('shop/web-0', 'svc/shop/web', true, 'shop/web-0')]);
    const self = hair.cells[0]?.endpoints.find((e) => e.pod === 'shop/web-0');
    assert.equal(self?.seenAs, nodeIp(web0?.node as string));
    assert.equal(self?.verdict, web0?.node === 'node-1' ? 'Denied' : 'Allowed');
    assert.equal(hair.cells[0]?.skipped, undefined);
    assert.equal(hair.cells[0]?.disagrees, web0?.node === 'node-1');
    // externalTrafficPolicy Local: the node's own endpoints, judged with the client's address (no masquerade).
    const keep = compare(state.nodes.map((n) => cell('external', `svc/shop/keep@${n.name}`, false, undefined, 30090)));
    for (const [i, n] of state.nodes.entries()) {
      const own = state.pods.filter((p) => p.labels.app === 'web' && p.node === n.name).map((p) => p.key).sort();
      assert.deepEqual(keep.cells[i]?.endpoints.map((e) => [e.pod, e.seenAs, e.verdict]), own.map((k) => [k, undefined, 'Allowed']));
      assert.equal(keep.cells[i]?.expected, own.length > 0 ? 'Allowed' : 'Denied');
    }
  });

  test('internalTrafficPolicy Local narrows endpoints to the client node', () => {
    const { compare, state } = setup();
    const cmp = compare([cell('shop/client', 'svc/shop/local', false)]);
    const clientNode = state.pods.find((p) => p.key === 'shop/client')?.node;
    const local = state.pods.filter((p) => p.labels.app === 'web' && p.node === clientNode).map((p) => p.key).sort();
    assert.deepEqual(cmp.cells[0]?.endpoints.map((e) => e.pod).sort(), local);
    assert.equal(cmp.cells[0]?.expected, local.length > 0 ? 'Allowed' : 'Denied');
  });
});
