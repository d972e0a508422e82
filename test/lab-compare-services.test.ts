// `weir lab probe --compare` for Services, on synthetic probe results (no root): one
// connection per cell, so a Service cell is expected reachable when every usable endpoint
// allows, unreachable when none does (or there is none), and when only some allow, an answer
// must come from one that allows and a missing answer is not compared; a pod reaching itself
// through its Service (hairpin) is not compared. Every kind of disagreement is caught.

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
  test('targets: every ClusterIP, and every NodePort on the external host\'s node', () => {
    const { targets, state } = setup();
    assert.equal(state.external.node, 'node-0');
    assert.deepEqual(targets.map((t) => t.id).sort(), ['svc/shop/empty', 'svc/shop/front', 'svc/shop/guarded', 'svc/shop/local', 'svc/shop/web', 'svc/shop/web@node-0']);
    assert.deepEqual(targets.find((t) => t.id === 'svc/shop/web@node-0')?.ports.map((p) => p.port), [30080]);
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

  test('hairpin is not compared; NodePorts from the external host; Local traffic policy narrows endpoints', () => {
    const { compare, state } = setup();
    const cmp = compare([cell('shop/web-0', 'svc/shop/web', false), cell('external', 'svc/shop/web@node-0', true, 'shop/web-1', 30080), cell('shop/client', 'svc/shop/local', false)]);
    assert.equal(cmp.cells[0]?.skipped, 'hairpin');
    assert.deepEqual([cmp.cells[1]?.expected, cmp.cells[1]?.disagrees], ['Allowed', false]);
    const clientNode = state.pods.find((p) => p.key === 'shop/client')?.node;
    const local = state.pods.filter((p) => p.labels.app === 'web' && p.node === clientNode).map((p) => p.key).sort();
    assert.deepEqual(cmp.cells[2]?.endpoints.map((e) => e.pod).sort(), local);
    assert.equal(cmp.cells[2]?.expected, local.length > 0 ? 'Allowed' : 'Denied');
  });
});
