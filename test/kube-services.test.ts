// `weir agent --services` without root: endpoints from EndpointSlices only (as kube-proxy reads
// a cluster: the controller's slices carry readiness), the ClusterAgent rendering the Service
// NAT section from its source's snapshot and following slice events, masqueraded ingress judged
// after SNAT only with weir's own NAT, and how the balancing loop shares health.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ClusterAgent } from '../src/agent/cluster.js';
import { FileExchange } from '../src/agent/lb-exchange.js';
import { LbRemote } from '../src/agent/lb-remote.js';
import { balancingExchange, NodeOnlyExchange } from '../src/agent/kube-services.js';
import { endpointKeysOfRuleset } from '../src/agent/stale-endpoints.js';
import { allocate, resolveServices } from '../src/lb/index.js';
import { SLICE_CONTROLLER } from '../src/load/endpointslice.js';
import { loadManifestText } from '../src/load/index.js';
import { emptyCluster, type Cluster, type Pod } from '../src/model/cluster.js';
import { snapshotEvents } from '../src/source/diff.js';
import type { ClusterSnapshot, ClusterSource, ClusterSourceHandlers, EndpointSlice } from '../src/source/types.js';

const SERVICE = loadManifestText(
  `apiVersion: v1
kind: Service
metadata: { name: web, namespace: shop }
spec: { clusterIP: 10.96.0.80, type: NodePort, selector: { app: web }, ports: [{ name: http, port: 80, targetPort: http, nodePort: 30080 }] }
`,
  'svc.yaml',
).cluster.services;

function pod(name: string, ip: string, node: string, labels: Record<string, string> = { app: 'web' }): Pod {
  return { namespace: 'shop', name, labels, ports: [{ name: 'http', port: 8080, protocol: 'TCP' }], hostNetwork: false, ip, node, workload: `shop/${name}[Pod]` };
}

const PODS = [pod('web-0', '10.1.0.10', 'n1'), pod('web-1', '10.1.0.11', 'n1'), pod('web-2', '10.2.0.10', 'n2'), pod('client', '10.1.0.20', 'n1', { app: 'client' })];

function cluster(pods: readonly Pod[] = PODS): Cluster {
  return { ...emptyCluster(), namespaces: [{ name: 'shop', labels: { 'kubernetes.io/metadata.name': 'shop' } }], nodes: [{ name: 'n1', labels: {}, ip: '192.168.0.1' }, { name: 'n2', labels: {}, ip: '192.168.0.2' }], services: SERVICE, pods: [...pods] };
}

/** The controller's slice: `ready` per pod name. */
function controllerSlice(ready: Record<string, boolean>): EndpointSlice {
  return {
    namespace: 'shop',
    name: 'web-abcde',
    service: 'web',
    managedBy: SLICE_CONTROLLER,
    addressType: 'IPv4',
    ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
    endpoints: Object.entries(ready).map(([name, r]) => {
      const p = PODS.find((x) => x.name === name) as Pod;
      return { addresses: [p.ip as string], ready: r, serving: r, terminating: false, nodeName: p.node as string, pod: `shop/${name}` };
    }),
  };
}

describe('endpoints from EndpointSlices only (endpointsFrom: slices)', () => {
  test("the controller's slice decides: a pod the selector matches but the slice lists as not ready is no endpoint", () => {
    const c = cluster();
    const slices = [controllerSlice({ 'web-0': true, 'web-1': false, 'web-2': true })];
    const eps = (from: 'pods' | 'slices') =>
      resolveServices(c, slices, allocate(c.services), { endpointsFrom: from })
        .services[0]?.ports[0]?.endpoints.map((e) => `${e.pod ?? '?'} ${e.key} ${e.node ?? '?'} ${e.labels.app ?? ''}`);
    assert.deepEqual(eps('slices'), ['shop/web-0 10.1.0.10:8080 n1 web', 'shop/web-2 10.2.0.10:8080 n2 web']);
    // From pods (files, the lab): every selected pod, the controller's slice ignored.
    assert.deepEqual(eps('pods'), ['shop/web-0 10.1.0.10:8080 n1 web', 'shop/web-1 10.1.0.11:8080 n1 web', 'shop/web-2 10.2.0.10:8080 n2 web']);
    // No slice yet (the controller has not written it): no endpoint, the Service rejects.
    assert.deepEqual(resolveServices(c, [], allocate(c.services), { endpointsFrom: 'slices' }).services[0]?.ports[0]?.endpoints, []);
  });
});

/** A source whose snapshot and events the test sets. */
class PushSource implements ClusterSource {
  readonly description = 'test';
  handlers: ClusterSourceHandlers | undefined;
  constructor(public current: ClusterSnapshot) {}
  start(h: ClusterSourceHandlers): Promise<void> {
    this.handlers = h;
    h.onEvents(snapshotEvents(this.current));
    h.onSynced?.();
    return Promise.resolve();
  }
  stop(): Promise<void> {
    return Promise.resolve();
  }
  snapshot(): ClusterSnapshot {
    return this.current;
  }
}

describe('the cluster agent with services', () => {
  const locals = (a: ClusterAgent) => a.agent.lastRuleset;
  const lbElements = (a: ClusterAgent): string[] => [...(locals(a)?.sets.values() ?? [])].filter((s) => s.name.startsWith('lb_')).flatMap((s) => s.elements);

  test('renders the Service NAT from the snapshot, follows an EndpointSlice event, and judges masqueraded ingress after SNAT', async () => {
    const scripts: string[] = [];
    const source = new PushSource({ cluster: cluster(), endpointSlices: [controllerSlice({ 'web-0': true, 'web-1': true, 'web-2': true })] });
    const agent = new ClusterAgent({ node: 'n1', source, policyOnly: { podCidrs: ['10.1.0.0/24'] }, runner: (s) => (scripts.push(s), Promise.resolve({ ok: true, stderr: '' })), batchWindowMs: 5, services: true });
    await agent.start();
    const rs = agent.agent.lastRuleset;
    assert.ok(rs);
    assert.ok(rs.sets.get('svc_ports')?.elements.some((e) => e.startsWith('10.96.0.80 . tcp . 80 : ')), 'the ClusterIP in the one lookup map');
    assert.deepEqual(rs.sets.get('nodeport_ips')?.elements, ['192.168.0.1'], "NodePorts on the Node's InternalIP");
    assert.deepEqual(lbElements(agent).map((e) => e.split(' : ')[1]).sort(), ['10.1.0.10 . 8080', '10.1.0.11 . 8080', '10.2.0.10 . 8080']);
    assert.deepEqual([...endpointKeysOfRuleset(rs)].sort(), ['10.1.0.10 8080', '10.1.0.11 8080', '10.2.0.10 8080'], 'the endpoints read back from what was applied');
    assert.match(rs.chains.get('ingress_snat')?.hook ?? '', /hook postrouting priority srcnat \+ 10/);
    assert.equal(rs.chains.get('ingress')?.rules[0], 'meta mark & 0x00004000 == 0x00004000 accept');

    // The controller marks web-1 not ready: the slice event takes it out of the weight map.
    const before = scripts.length;
    const slice = controllerSlice({ 'web-0': true, 'web-1': false, 'web-2': true });
    const old = source.current.endpointSlices[0] as EndpointSlice;
    source.current = { ...source.current, endpointSlices: [slice] };
    source.handlers?.onEvents([{ type: 'updated', kind: 'EndpointSlice', object: slice, old }]);
    await agent.idle();
    assert.deepEqual(lbElements(agent).map((e) => e.split(' : ')[1]).sort(), ['10.1.0.10 . 8080', '10.2.0.10 . 8080']);
    assert.equal(scripts.length, before + 1, 'one transaction');
    assert.doesNotMatch(scripts.at(-1) ?? '', /flush table|delete table/, 'a partial change, not a reload');
    await agent.stop();
  });

  test('without services: no Service NAT, and masqueraded connections are left to kube-proxy', async () => {
    const source = new PushSource({ cluster: cluster(), endpointSlices: [controllerSlice({ 'web-0': true })] });
    const agent = new ClusterAgent({ node: 'n1', source, policyOnly: { podCidrs: ['10.1.0.0/24'] }, runner: () => Promise.resolve({ ok: true, stderr: '' }), batchWindowMs: 5 });
    await agent.start();
    const rs = agent.agent.lastRuleset;
    assert.ok(rs);
    assert.equal(rs.sets.has('svc_ports'), false);
    assert.equal([...rs.chains.keys()].some((c) => c.startsWith('svc_')), false);
    assert.equal(rs.chains.has('ingress_snat'), false);
    assert.deepEqual(rs.chains.get('ingress')?.rules, ['ct mark set ip daddr map @in_pod ct mark vmap @in_id', 'accept']);
    await agent.stop();
  });
});

describe('how the balancing loop of a node agent shares health and drains', () => {
  test('through the server when given, else the status directory, else not at all', async () => {
    const remote = balancingExchange({ node: 'n1', statusDir: '/tmp/x', services: { server: { server: 'http://127.0.0.1:1', token: 't' } } });
    assert.ok(remote.exchange instanceof LbRemote);
    remote.exchange.close();
    assert.ok(balancingExchange({ node: 'n1', statusDir: '/tmp/x', services: {} }).exchange instanceof FileExchange);
    const alone = balancingExchange({ node: 'n1', services: {} });
    assert.ok(alone.exchange instanceof NodeOnlyExchange);
    assert.deepEqual([...(await alone.exchange.drains())], []);
    assert.deepEqual(await alone.exchange.peers(), []);
    assert.match(alone.how, /own probes only/);
  });
});
