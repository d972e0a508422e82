// The dashboard's Services-on-the-map model (src/ui/web/src/serviceMap.ts), pure: which flows go
// into which Service node (ClusterIP, NodePort, unreported), what is left of the direct edges,
// the weight shares per endpoint group over nodes, and which Services a crowded map keeps.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ServiceApiView } from '../src/api/services-schema.js';
import type { Edge } from '../src/flows/aggregate.js';
import { buildServiceMap, type ServiceMapOptions } from '../src/ui/web/src/serviceMap.js';

type LiveEdge = Edge & { key: string; rev: number };

type Ep = ServiceApiView['nodes'][number]['endpoints'][number];
const ep = (key: string, pod: string, workload: string, o: Partial<Ep> = {}): Ep => ({ key, pod, workload, weight: 500, healthy: true, drained: false, errorRate: 0, inFlight: 0, connections: 0, ...o });
const view = (service: string, frontend: 'cluster' | 'node-port', port: number, nodes: Ep[][], clusterIP?: string): ServiceApiView => {
  const [namespace = '', name = ''] = service.split('/');
  return { service, namespace, name, portIndex: 0, port, protocol: 'TCP', frontend, ...(clusterIP ? { clusterIP } : {}), mode: 'equal', nodes: nodes.map((endpoints, i) => ({ node: `node-${i}`, updatedAt: '', reject: false, notes: [], endpoints, history: [] })) };
};
const edge = (src: string, dst: string, flows: number, via?: Edge['via']): LiveEdge => ({ key: `${src}\u0000${dst}`, rev: 0, src, dst, flows, bytes: flows * 100, packets: flows, forwarded: flows, dropped: 0, audit: 0, lastSeen: 1, ...(via ? { via } : {}) });
const v = (ip: string, port: number, flows: number, name?: string) => ({ ip, port, ...(name ? { name } : {}), flows, bytes: flows * 100, forwarded: flows, dropped: 0, audit: 0 });
const opts: ServiceMapOptions = { group: 'workload', filter: '', max: 40, selected: undefined, podGroups: new Map() };

const WEB = [
  [ep('10.1.0.3:80', 'shop/web-a-0', 'shop/web-a[Deployment]', { weight: 900 }), ep('10.1.0.4:80', 'shop/web-b-0', 'shop/web-b[Deployment]', { weight: 100 })],
  [ep('10.1.0.3:80', 'shop/web-a-0', 'shop/web-a[Deployment]', { weight: 500 }), ep('10.1.0.4:80', 'shop/web-b-0', 'shop/web-b[Deployment]', { weight: 500, healthy: false })],
];
const services = [view('shop/web', 'cluster', 80, WEB, '10.96.0.80'), view('shop/web', 'node-port', 30080, WEB)];

test('service map: ClusterIP and NodePort flows go into one node per Service port; the rest stays direct; shares are means over nodes', () => {
  const edges = [
    edge('front/ui[Deployment]', 'shop/web-a[Deployment]', 12, { 'shop/web|10.96.0.80|80': v('10.96.0.80', 80, 8, 'shop/web'), 'shop/web|192.168.0.2|30080': v('192.168.0.2', 30080, 3, 'shop/web') }),
    edge('front/ui[Deployment]', 'shop/web-b[Deployment]', 2, { '|10.96.0.80|80': v('10.96.0.80', 80, 2) }),
    edge('front/ui[Deployment]', 'data/db[Deployment]', 5, { '|10.96.9.9|5432': v('10.96.9.9', 5432, 5) }),
  ];
  const m = buildServiceMap(services, edges, opts);
  assert.deepEqual(m.nodes.map((n) => [n.id, n.label, n.address, n.state, n.flows]), [
    ['svc:?|10.96.9.9:5432', '10.96.9.9:5432', '10.96.9.9:5432', 'unknown', 5],
    ['svc:shop/web', 'shop/web', '10.96.0.80:80', 'degraded', 13],
  ]);
  assert.equal(m.nodes.find((n) => n.state === 'unknown')?.namespace, 'data', 'an unreported Service sits with its endpoints');
  assert.deepEqual(m.clients.map((c) => [c.src, c.dst, c.flows]).sort(), [
    ['front/ui[Deployment]', 'svc:?|10.96.9.9:5432', 5],
    ['front/ui[Deployment]', 'svc:shop/web', 13],
  ]);
  // 12 flows, 11 through the Service: one stays direct; the others went entirely through Services.
  assert.deepEqual(m.direct.map((e) => [e.dst, e.flows]), [['shop/web-a[Deployment]', 1]]);
  const links = Object.fromEntries(m.links.map((l) => [l.group, l]));
  assert.ok(Math.abs((links['shop/web-a[Deployment]']?.share ?? 0) - 0.7) < 1e-9, '(0.9 + 0.5) / 2');
  assert.ok(Math.abs((links['shop/web-b[Deployment]']?.share ?? 0) - 0.3) < 1e-9);
  assert.equal(links['shop/web-b[Deployment]']?.state, 'down', 'its only endpoint fails on a node');
  assert.deepEqual(m.extraGroups, [], 'both endpoint groups have flows');
});

test('service map: a quiet Service brings its endpoint groups; over the cap the selected, the troubled and the busiest stay; the filter finds by address', () => {
  const many: ServiceApiView[] = Array.from({ length: 60 }, (_, i) => view(`ns/s${String(i).padStart(2, '0')}`, 'cluster', 80, [[ep(`10.2.0.${i}:80`, `ns/p${i}`, `ns/w${i}[Deployment]`, { healthy: i !== 50 })]], `10.96.1.${i}`));
  const edges = [edge('a/x[Deployment]', 'ns/w30[Deployment]', 4, { '|10.96.1.30|80': v('10.96.1.30', 80, 4) })];
  const m = buildServiceMap(many, edges, { ...opts, max: 5, selected: 'ns/s45/0/cluster' });
  assert.deepEqual(m.nodes.map((n) => n.label), ['ns/s00', 'ns/s01', 'ns/s30', 'ns/s45', 'ns/s50']);
  assert.equal(m.total, 60);
  assert.deepEqual(m.extraGroups, ['ns/w0[Deployment]', 'ns/w1[Deployment]', 'ns/w45[Deployment]', 'ns/w50[Deployment]']);
  const f = buildServiceMap(many, edges, { ...opts, filter: '10.96.1.4' });
  assert.deepEqual(f.nodes.map((n) => n.label), ['ns/s04', 'ns/s40', 'ns/s41', 'ns/s42', 'ns/s43', 'ns/s44', 'ns/s45', 'ns/s46', 'ns/s47', 'ns/s48', 'ns/s49']);
  // A hidden Service's flows stay on their direct edge.
  assert.deepEqual(f.direct.map((e) => [e.dst, e.flows]), [['ns/w30[Deployment]', 4]]);
  assert.notEqual(m.layoutKey, f.layoutKey);
  assert.equal(buildServiceMap(many, edges, { ...opts, max: 5, selected: 'ns/s45/0/cluster' }).layoutKey, m.layoutKey, 'the layout key is stable');
});

test('service map: a Service with two ports is one node, its address lists both, its shares average the ports', () => {
  const http = view('shop/catalog', 'cluster', 80, [[ep('10.3.0.1:8080', 'shop/catalog-0', 'shop/catalog[Deployment]', { weight: 1000 }), ep('10.3.0.2:8080', 'shop/catalog-canary-0', 'shop/catalog-canary[Deployment]', { weight: 0 })]], '10.96.3.3');
  const grpc = { ...view('shop/catalog', 'cluster', 9090, [[ep('10.3.0.1:9090', 'shop/catalog-0', 'shop/catalog[Deployment]', { weight: 500 }), ep('10.3.0.2:9090', 'shop/catalog-canary-0', 'shop/catalog-canary[Deployment]', { weight: 500 })]], '10.96.3.3'), portIndex: 1 };
  const edges = [edge('front/ui[Deployment]', 'shop/catalog[Deployment]', 3, { 'shop/catalog|10.96.3.3|9090': v('10.96.3.3', 9090, 3, 'shop/catalog') })];
  const m = buildServiceMap([http, grpc], edges, opts);
  assert.deepEqual(m.nodes.map((n) => [n.id, n.address, n.flows]), [['svc:shop/catalog', '10.96.3.3:80,9090', 3]]);
  const shares = Object.fromEntries(m.links.map((l) => [l.group, [l.share, l.endpoints.length]]));
  assert.deepEqual(shares, { 'shop/catalog[Deployment]': [0.75, 1], 'shop/catalog-canary[Deployment]': [0.25, 1] }, 'one dot per pod, whichever of its ports');
});
