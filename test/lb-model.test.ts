// The pure service model: ClusterIP and NodePort allocation, endpoints from selectors and
// EndpointSlices, balancing annotations, and the weight function. Services come through the
// real loader; pods are built with addresses and nodes as the lab would place them.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { loadManifestText } from '../src/load/index.js';
import type { Cluster, Node, Pod, Service } from '../src/model/cluster.js';
import { emptyCluster } from '../src/model/cluster.js';
import {
  allocate,
  computeWeights,
  endpointsForNode,
  parseBalancing,
  resolveServices,
  toIntegers,
  interleave,
  slotRuns,
  lintServices,
  type Endpoint,
  type ResolvedService,
} from '../src/lb/index.js';
import type { EndpointSlice } from '../src/source/types.js';
import { parseIP } from '../src/net/address.js';

function services(yaml: string): Service[] {
  const r = loadManifestText(yaml, 'svc.yaml');
  const errors = r.diagnostics.filter((d) => d.severity === 'error');
  assert.deepEqual(errors, []);
  return [...r.cluster.services];
}

function svc(name: string, extra = '', ns = 'shop'): string {
  return `apiVersion: v1
kind: Service
metadata: { name: ${name}, namespace: ${ns} }
spec:
  selector: { app: ${name} }
  ports: [{ name: http, port: 80, targetPort: http }]
${extra}
---
`;
}

function pod(name: string, ip: string, node: string, labels: Record<string, string>, ports: Pod['ports'] = [{ name: 'http', port: 8080, protocol: 'TCP' }], ns = 'shop'): Pod {
  return { namespace: ns, name, labels, ports, hostNetwork: false, ip, node, workload: `${ns}/${name}[Pod]` };
}

function node(name: string, labels: Record<string, string> = {}): Node {
  return { name, labels: { 'kubernetes.io/hostname': name, ...labels } };
}

function cluster(svcs: Service[], pods: Pod[], nodes: Node[] = [node('n0'), node('n1')]): Cluster {
  return { ...emptyCluster(), services: svcs, pods, nodes };
}

function resolve(c: Cluster, slices: EndpointSlice[] = []): { byName: Map<string, ResolvedService>; diagnostics: string[] } {
  const alloc = allocate(c.services);
  const r = resolveServices(c, slices, alloc);
  return {
    byName: new Map(r.services.map((s) => [s.name, s])),
    diagnostics: [...alloc.diagnostics, ...r.diagnostics].map((d) => `${d.code} ${d.object} ${d.field}: ${d.message}`),
  };
}

function inCidr(ip: string, base: string, prefix: number): boolean {
  const v = parseIP(ip)?.value ?? -1n;
  const b = parseIP(base)?.value ?? 0n;
  return v >= b && v < b + (1n << BigInt(32 - prefix));
}

describe('ClusterIP allocation', () => {
  test('deterministic, inside 10.96.0.0/12, distinct, independent of input order', () => {
    const list = services(Array.from({ length: 200 }, (_, i) => svc(`s${i}`)).join(''));
    const a = allocate(list);
    const b = allocate([...list].reverse());
    const ips = new Set<string>();
    for (const s of list) {
      const addr = a.addresses.get(`shop/${s.name}`);
      assert.equal(addr?.kind, 'virtual');
      if (addr?.kind !== 'virtual') continue;
      assert.ok(inCidr(addr.ip, '10.96.0.0', 12), addr.ip);
      assert.notEqual(addr.ip, '10.96.0.0');
      assert.notEqual(addr.ip, '10.96.0.1', 'the first address is kept for default/kubernetes');
      ips.add(addr.ip);
      assert.deepEqual(b.addresses.get(`shop/${s.name}`), addr);
    }
    assert.equal(ips.size, 200);
  });

  test('a declared clusterIP is honoured; None is headless; a clash or an outside address is reported', () => {
    const list = services(
      svc('a', '  clusterIP: 10.96.5.5') +
        svc('b', '  clusterIP: None') +
        svc('c', '  clusterIP: 10.96.5.5') +
        svc('d', '  clusterIP: 192.168.1.1') +
        `apiVersion: v1
kind: Service
metadata: { name: kubernetes, namespace: default }
spec: { ports: [{ port: 443 }] }
`,
    );
    const a = allocate(list);
    assert.deepEqual(a.addresses.get('shop/a'), { kind: 'virtual', ip: '10.96.5.5' });
    assert.deepEqual(a.addresses.get('shop/b'), { kind: 'headless' });
    assert.deepEqual(a.addresses.get('default/kubernetes'), { kind: 'virtual', ip: '10.96.0.1' });
    const c = a.addresses.get('shop/c');
    assert.ok(c?.kind === 'virtual' && c.ip !== '10.96.5.5');
    const codes = a.diagnostics.map((d) => `${d.code} ${d.object} ${d.field}`);
    assert.deepEqual(codes.sort(), ['service-ip-clash Service shop/c spec.clusterIP', 'service-ip-outside-cidr Service shop/d spec.clusterIP']);
  });

  test('a previous address is kept when a new Service would collide with it', () => {
    // In a /29 (6 usable after the reserved ones) collisions are certain; a Service keeps its
    // previous address whatever comes later.
    const first = services(svc('a') + svc('b'));
    const before = allocate(first, { serviceCidr: '10.96.0.0/29' });
    const previous = new Map([...before.addresses].flatMap(([k, v]) => (v.kind === 'virtual' ? [[k, v.ip] as [string, string]] : [])));
    const more = services(svc('a') + svc('b') + svc('c') + svc('d') + svc('e'));
    const after = allocate(more, { serviceCidr: '10.96.0.0/29', previous });
    assert.deepEqual(after.addresses.get('shop/a'), before.addresses.get('shop/a'));
    assert.deepEqual(after.addresses.get('shop/b'), before.addresses.get('shop/b'));
  });

  test('NodePort: declared kept, missing allocated in 30000-32767 deterministically', () => {
    const list = services(
      `apiVersion: v1
kind: Service
metadata: { name: web, namespace: shop }
spec:
  type: NodePort
  selector: { app: web }
  ports: [{ name: http, port: 80, nodePort: 30080 }, { name: https, port: 443 }]
`,
    );
    const a = allocate(list);
    assert.equal(a.nodePorts.get('shop/web/0'), 30080);
    const p = a.nodePorts.get('shop/web/1') ?? 0;
    assert.ok(p >= 30000 && p <= 32767 && p !== 30080);
    assert.equal(allocate(list).nodePorts.get('shop/web/1'), p);
  });
});

describe('endpoints', () => {
  test('ready pods the selector matches, named targetPort resolved per pod, other namespaces ignored', () => {
    const c = cluster(services(svc('web')), [
      pod('web-0', '10.244.0.2', 'n0', { app: 'web' }),
      // Same name "http", another number: resolved per pod, as upstream.
      pod('web-1', '10.244.1.2', 'n1', { app: 'web' }, [{ name: 'http', port: 9090, protocol: 'TCP' }]),
      // No port named http: not an endpoint of this port.
      pod('web-2', '10.244.1.3', 'n1', { app: 'web' }, [{ name: 'metrics', port: 9100, protocol: 'TCP' }]),
      pod('db-0', '10.244.0.3', 'n0', { app: 'db' }),
      pod('web-x', '10.244.0.9', 'n0', { app: 'web' }, undefined, 'other'),
    ]);
    const { byName } = resolve(c);
    const eps = byName.get('web')?.ports[0].endpoints.map((e) => `${e.pod} ${e.key}`);
    assert.deepEqual(eps, ['shop/web-0 10.244.0.2:8080', 'shop/web-1 10.244.1.2:9090']);
  });

  test('isReady removes a pod; a selector matching nothing and a name resolving nowhere are warned', () => {
    const c = cluster(services(svc('web') + svc('ghost')), [
      pod('web-0', '10.244.0.2', 'n0', { app: 'web' }, [{ name: 'other', port: 1, protocol: 'TCP' }]),
    ]);
    const alloc = allocate(c.services);
    const r = resolveServices(c, [], alloc, { isReady: () => false });
    assert.deepEqual(r.services.map((s) => s.ports[0].endpoints.length), [0, 0]);
    const codes = r.diagnostics.map((d) => `${d.code} ${d.object} ${d.field}`).sort();
    assert.deepEqual(codes, [
      'service-port-name-unresolved Service shop/web spec.ports[0].targetPort',
      'service-selects-nothing Service shop/ghost spec.selector',
    ]);
  });

  test('location from node labels: weir.dev/location, else zone, else region', () => {
    const c = cluster(
      services(svc('web')),
      [pod('a', '10.0.0.1', 'n0', { app: 'web' }), pod('b', '10.0.0.2', 'n1', { app: 'web' }), pod('c', '10.0.0.3', 'n2', { app: 'web' })],
      [
        node('n0', { 'weir.dev/location': 'onprem', 'topology.kubernetes.io/zone': 'z1' }),
        node('n1', { 'topology.kubernetes.io/zone': 'eu-west-1a', 'topology.kubernetes.io/region': 'eu-west-1' }),
        node('n2', { 'topology.kubernetes.io/region': 'us-east-1' }),
      ],
    );
    const eps = resolve(c).byName.get('web')?.ports[0].endpoints ?? [];
    assert.deepEqual(eps.map((e) => e.location), ['onprem', 'eu-west-1a', 'us-east-1']);
  });

  test('EndpointSlices feed a Service without selector; not-ready endpoints and other ports skipped', () => {
    const list = services(`apiVersion: v1
kind: Service
metadata: { name: ext, namespace: shop }
spec:
  ports: [{ name: http, port: 80 }]
`);
    const slice: EndpointSlice = {
      namespace: 'shop',
      name: 'ext-abc',
      service: 'ext',
      addressType: 'IPv4',
      ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
      endpoints: [
        { addresses: ['192.0.2.10'], ready: true, nodeName: 'n0', zone: 'z-a' },
        { addresses: ['192.0.2.11'], ready: false },
        { addresses: ['192.0.2.12'], ready: true, zone: 'z-b' },
      ],
    };
    const other: EndpointSlice = { ...slice, name: 'x', service: 'other' };
    const eps = resolve(cluster(list, []), [slice, other]).byName.get('ext')?.ports[0].endpoints ?? [];
    assert.deepEqual(eps.map((e) => `${e.key} ${e.location}`), ['192.0.2.10:8080 z-a', '192.0.2.12:8080 z-b']);
  });

  test('EndpointSlice conditions: terminating endpoints that still serve are used only when none is ready (KEP-1669)', () => {
    const list = services(`apiVersion: v1
kind: Service
metadata: { name: ext, namespace: shop }
spec:
  ports: [{ name: http, port: 80 }]
`);
    const slice = (endpoints: EndpointSlice['endpoints']): EndpointSlice => ({ namespace: 'shop', name: 'ext-abc', service: 'ext', addressType: 'IPv4', ports: [{ name: 'http', port: 8080, protocol: 'TCP' }], endpoints });
    const draining = { addresses: ['192.0.2.20'], ready: false, serving: true, terminating: true };
    const gone = { addresses: ['192.0.2.21'], ready: false, serving: false, terminating: true };
    const keys = (sl: EndpointSlice): string[] => (resolve(cluster(list, []), [sl]).byName.get('ext')?.ports[0].endpoints ?? []).map((e) => e.key);
    // A ready endpoint is there: the terminating ones get no new connections.
    assert.deepEqual(keys(slice([{ addresses: ['192.0.2.10'], ready: true }, draining, gone])), ['192.0.2.10:8080']);
    // None ready: the one still serving takes them (not the one that stopped serving).
    assert.deepEqual(keys(slice([draining, gone])), ['192.0.2.20:8080']);
    // Not ready and not terminating (failing its readiness probe): never.
    assert.deepEqual(keys(slice([{ addresses: ['192.0.2.30'], ready: false, serving: false, terminating: false }])), []);
  });

  test('affinity timeout, and internal/external traffic policy Local restrict to the node', () => {
    const list = services(
      `apiVersion: v1
kind: Service
metadata: { name: web, namespace: shop }
spec:
  type: NodePort
  selector: { app: web }
  ports: [{ port: 80, targetPort: 8080 }]
  sessionAffinity: ClientIP
  sessionAffinityConfig: { clientIP: { timeoutSeconds: 30 } }
  internalTrafficPolicy: Local
`,
    );
    const c = cluster(list, [pod('a', '10.0.0.1', 'n0', { app: 'web' }), pod('b', '10.0.0.2', 'n1', { app: 'web' })]);
    const s = resolve(c).byName.get('web');
    assert.ok(s);
    assert.equal(s.affinityTimeoutSeconds, 30);
    const port = s.ports[0];
    assert.deepEqual(endpointsForNode(s, port, 'cluster', 'n0').map((e) => e.ip), ['10.0.0.1']);
    assert.deepEqual(endpointsForNode(s, port, 'cluster', 'n9'), []);
    assert.equal(endpointsForNode(s, port, 'node-port', 'n0').length, 2, 'externalTrafficPolicy defaults to Cluster');
  });
});

// ------------------------------------------------------------------ annotations, weights

function annotated(annotations: Record<string, string>): Service {
  return {
    namespace: 'shop',
    name: 'web',
    ports: [],
    type: 'ClusterIP',
    sessionAffinity: 'None',
    internalTrafficPolicy: 'Cluster',
    annotations,
    source: { file: 'svc.yaml', line: 3 },
  };
}

function ep(name: string, location?: string, labels: Record<string, string> = {}): Endpoint {
  const n = Number(name.replace(/\D/g, '') || 0);
  return { key: `10.0.0.${n + 1}:80`, ip: `10.0.0.${n + 1}`, port: 80, pod: `shop/${name}`, ...(location ? { location } : {}), labels };
}

function byPod(eps: readonly Endpoint[], weights: ReadonlyMap<string, number>): Record<string, number> {
  return Object.fromEntries(eps.map((e) => [e.pod?.split('/')[1] ?? e.key, weights.get(e.key) ?? -1]));
}

describe('balancing annotations', () => {
  test('defaults to equal; weights imply weighted', () => {
    assert.equal(parseBalancing(annotated({})).config.mode, 'equal');
    const r = parseBalancing(annotated({ 'weir.dev/weights': 'pod/web-0: 3, version=v2: 1' }));
    assert.equal(r.config.mode, 'weighted');
    assert.deepEqual(r.diagnostics, []);
    assert.deepEqual(r.config.weights?.map((w) => w.target), [
      { kind: 'pod', name: 'web-0' },
      { kind: 'label', key: 'version', value: 'v2' },
    ]);
  });

  test('invalid values are reported with Service, file and annotation, and fall back to equal', () => {
    for (const [annotations, code] of [
      [{ 'weir.dev/balancing': 'fastest' }, 'lb-invalid-mode'],
      [{ 'weir.dev/weights': 'pod/web-0: -1' }, 'lb-invalid-weights'],
      [{ 'weir.dev/weights': 'pod/web-0: 0' }, 'lb-invalid-weights'],
      [{ 'weir.dev/weights': 'web-0 3' }, 'lb-invalid-weights'],
      [{ 'weir.dev/balancing': 'weighted' }, 'lb-missing-weights'],
      [{ 'weir.dev/balancing': 'equal', 'weir.dev/weights': 'pod/a: 1' }, 'lb-conflicting-annotations'],
      [{ 'weir.dev/weight': 'pod/a: 1' }, 'lb-unknown-annotation'],
    ] as const) {
      const r = parseBalancing(annotated(annotations));
      assert.equal(r.config.mode, 'equal', JSON.stringify(annotations));
      assert.equal(r.config.weights, undefined);
      assert.equal(r.diagnostics.length, 1, JSON.stringify(r.diagnostics));
      const d = r.diagnostics[0];
      assert.equal(d.code, code);
      assert.equal(d.object, 'Service shop/web');
      assert.equal(d.file, 'svc.yaml');
      assert.match(d.field ?? '', /^metadata\.annotations\.weir\.dev\//);
    }
  });

  test('split and prefer-local conflict: the split applies; an invalid fence fails closed', () => {
    const r = parseBalancing(annotated({ 'weir.dev/locality': 'prefer-local', 'weir.dev/location-split': 'eu: 90, us: 10' }));
    assert.equal(r.config.preferLocal, false);
    assert.deepEqual([...(r.config.split ?? [])], [['eu', 90], ['us', 10]]);
    assert.equal(r.diagnostics[0].code, 'lb-conflicting-annotations');
    const fence = parseBalancing(annotated({ 'weir.dev/allowed-locations': ' , ' }));
    assert.equal(fence.config.allowedLocations?.size, 0);
    assert.equal(fence.diagnostics[0].severity, 'error');
    const w = computeWeights({ endpoints: [ep('web-0', 'eu')], config: fence.config });
    assert.equal(w.reject, true);
  });
});

describe('weights', () => {
  const four = [ep('web-0', 'eu', { version: 'v1' }), ep('web-1', 'eu', { version: 'v1' }), ep('web-2', 'us', { version: 'v1' }), ep('web-3', 'us', { version: 'v2' })];

  test('equal: integers summing to 1000, as equal as integers allow', () => {
    const w = computeWeights({ endpoints: [...four, ep('web-4')], config: parseBalancing(annotated({})).config });
    assert.deepEqual(Object.values(byPod([...four, ep('web-4')], w.weights)), [200, 200, 200, 200, 200]);
    const three = computeWeights({ endpoints: four.slice(0, 3), config: parseBalancing(annotated({})).config });
    assert.deepEqual([...three.weights.values()].sort(), [333, 333, 334]);
  });

  test('per-pod weights; per-group weights are shared by the group, and hold when a member fails', () => {
    const perPod = computeWeights({ endpoints: four, config: parseBalancing(annotated({ 'weir.dev/weights': 'pod/web-0: 3, pod/web-1: 1' })).config });
    assert.deepEqual(byPod(four, perPod.weights), { 'web-0': 750, 'web-1': 250, 'web-2': 0, 'web-3': 0 });
    const cfg = parseBalancing(annotated({ 'weir.dev/weights': 'version=v1: 90, version=v2: 10' })).config;
    const groups = computeWeights({ endpoints: four, config: cfg });
    assert.deepEqual(byPod(four, groups.weights), { 'web-0': 300, 'web-1': 300, 'web-2': 300, 'web-3': 100 });
    const failed = computeWeights({ endpoints: four, config: cfg, health: new Map([[four[0].key, false]]) });
    assert.deepEqual(byPod(four, failed.weights), { 'web-0': 0, 'web-1': 450, 'web-2': 450, 'web-3': 100 });
  });

  test('unhealthy endpoints leave the rotation; all unhealthy → panic keeps them all', () => {
    const cfg = parseBalancing(annotated({})).config;
    const one = computeWeights({ endpoints: four, config: cfg, health: new Map([[four[1].key, false]]) });
    assert.deepEqual(byPod(four, one.weights), { 'web-0': 334, 'web-1': 0, 'web-2': 333, 'web-3': 333 });
    const all = computeWeights({ endpoints: four, config: cfg, health: new Map(four.map((e) => [e.key, false])) });
    assert.equal(all.reject, false);
    assert.deepEqual(Object.values(byPod(four, all.weights)), [250, 250, 250, 250]);
    assert.match(all.notes.join(), /panic/);
  });

  test('location split 90/10, spill-over when one location has nothing left', () => {
    const cfg = parseBalancing(annotated({ 'weir.dev/location-split': 'eu: 90, us: 10' })).config;
    const w = computeWeights({ endpoints: four, config: cfg });
    assert.deepEqual(byPod(four, w.weights), { 'web-0': 450, 'web-1': 450, 'web-2': 50, 'web-3': 50 });
    const euDown = computeWeights({ endpoints: four, config: cfg, health: new Map([[four[0].key, false], [four[1].key, false]]) });
    assert.deepEqual(byPod(four, euDown.weights), { 'web-0': 0, 'web-1': 0, 'web-2': 500, 'web-3': 500 });
  });

  test('prefer-local with spill-over; drain moves new connections unless nothing is left', () => {
    const cfg = parseBalancing(annotated({ 'weir.dev/locality': 'prefer-local' })).config;
    const local = computeWeights({ endpoints: four, config: cfg, clientLocation: 'us' });
    assert.deepEqual(byPod(four, local.weights), { 'web-0': 0, 'web-1': 0, 'web-2': 500, 'web-3': 500 });
    const spill = computeWeights({ endpoints: four, config: cfg, clientLocation: 'us', health: new Map([[four[2].key, false], [four[3].key, false]]) });
    assert.deepEqual(byPod(four, spill.weights), { 'web-0': 500, 'web-1': 500, 'web-2': 0, 'web-3': 0 });
    const drained = computeWeights({ endpoints: four, config: cfg, clientLocation: 'us', drained: new Set(['us']) });
    assert.deepEqual(byPod(four, drained.weights), { 'web-0': 500, 'web-1': 500, 'web-2': 0, 'web-3': 0 });
    const allDrained = computeWeights({ endpoints: four, config: parseBalancing(annotated({})).config, drained: new Set(['us', 'eu']) });
    assert.deepEqual(Object.values(byPod(four, allDrained.weights)), [250, 250, 250, 250]);
  });

  test('allowed-locations is a fence: never elsewhere, even when everything inside is down', () => {
    const cfg = parseBalancing(annotated({ 'weir.dev/allowed-locations': 'eu' })).config;
    const w = computeWeights({ endpoints: four, config: cfg });
    assert.deepEqual(byPod(four, w.weights), { 'web-0': 500, 'web-1': 500, 'web-2': 0, 'web-3': 0 });
    const down = computeWeights({ endpoints: four, config: cfg, health: new Map([[four[0].key, false], [four[1].key, false]]) });
    // Panic keeps the fenced endpoints, never the others.
    assert.deepEqual(byPod(four, down.weights), { 'web-0': 500, 'web-1': 500, 'web-2': 0, 'web-3': 0 });
    const gone = computeWeights({ endpoints: four.slice(2), config: cfg });
    assert.equal(gone.reject, true);
    assert.deepEqual([...gone.weights.values()], [0, 0]);
    assert.equal(computeWeights({ endpoints: [], config: parseBalancing(annotated({})).config }).reject, true);
  });

  test('adaptive factors multiply static weights; weights matching nothing fall back to equal', () => {
    const cfg = parseBalancing(annotated({ 'weir.dev/balancing': 'adaptive' })).config;
    const w = computeWeights({ endpoints: four, config: cfg, adaptive: new Map([[four[0].key, 0.2], [four[1].key, 1.8 / 3], [four[2].key, 1.8 / 3], [four[3].key, 1.8 / 3]]) });
    assert.deepEqual(byPod(four, w.weights), { 'web-0': 100, 'web-1': 300, 'web-2': 300, 'web-3': 300 });
    const none = computeWeights({ endpoints: four, config: parseBalancing(annotated({ 'weir.dev/weights': 'pod/nobody: 5' })).config });
    assert.deepEqual(Object.values(byPod(four, none.weights)), [250, 250, 250, 250]);
  });

  test('toIntegers: sums to the total and gives every positive weight at least 1', () => {
    const m = toIntegers(new Map([['a', 1e-9], ['b', 1], ['c', 0]]), 1000);
    assert.deepEqual([...m], [['a', 1], ['b', 999], ['c', 0]]);
  });
});

describe('interleave (the slots of `numgen inc`)', () => {
  test('slots in proportion, each run as short as the weights allow', () => {
    const slots = interleave(new Map([['a', 700], ['b', 200], ['c', 100]])) ?? assert.fail('no slots');
    assert.equal(slots.length, 100);
    assert.deepEqual(['a', 'b', 'c'].map((k) => slots.filter((x) => x === k).length), [70, 20, 10]);
    // Smooth: in any 10 consecutive slots (the cycle wraps), 7 a, 2 b, 1 c, each ± 1.
    for (let i = 0; i < 100; i++) {
      const window = Array.from({ length: 10 }, (_, k) => slots[(i + k) % 100]);
      for (const [k, n] of [['a', 7], ['b', 2], ['c', 1]] as const) {
        const got = window.filter((x) => x === k).length;
        assert.ok(Math.abs(got - n) <= 1, `slots ${i}…: ${k} ${got} times in ${window.join('')}`);
      }
    }
    // Weighted random would give runs; here a never takes more than 3 slots in a row (7:3).
    assert.ok(!slots.join('').includes('aaaa'), slots.join(''));
  });

  test('a tiny weight keeps a slot; zero weights get none; one endpoint takes all; too many endpoints → undefined', () => {
    const tiny = interleave(new Map([['a', 999], ['b', 1], ['z', 0]])) ?? assert.fail('no slots');
    assert.equal(tiny.filter((x) => x === 'b').length, 1);
    assert.ok(!tiny.includes('z'));
    assert.deepEqual(interleave(new Map([['a', 1000]])), new Array(100).fill('a'));
    assert.equal(interleave(new Map([['a', 0]])), undefined);
    assert.equal(interleave(new Map(Array.from({ length: 101 }, (_, i) => [`e${i}`, 1]))), undefined);
    assert.equal(interleave(new Map(Array.from({ length: 100 }, (_, i) => [`e${i}`, 1])))?.length, 100);
    // As map elements: runs of one endpoint, in slot order, covering every slot once.
    assert.deepEqual(slotRuns(['a', 'a', 'b', 'a']), [{ from: 0, to: 1, key: 'a' }, { from: 2, to: 2, key: 'b' }, { from: 3, to: 3, key: 'a' }]);
    assert.deepEqual(slotRuns([]), []);
  });
});

describe('lintServices', () => {
  test('bad input: selector matching nothing, invalid weights, unknown locations, unresolved port names', () => {
    const list = services(
      svc('ghost').replace('namespace: shop }', 'namespace: shop, annotations: { weir.dev/balancing: fast } }') +
        `apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
  annotations: { weir.dev/weights: "pod/web-9: 1", weir.dev/location-split: "mars: 50, eu: 50" }
spec:
  selector: { app: web }
  ports: [{ port: 80, targetPort: http }, { port: 81, targetPort: nope }]
`,
    );
    const c = cluster(list, [pod('web-0', '10.0.0.1', 'n0', { app: 'web' })], [node('n0', { 'weir.dev/location': 'eu' })]);
    const findings = lintServices(c).map((d) => `${d.code} ${d.object} ${d.field}`).sort();
    assert.deepEqual(findings, [
      'lb-invalid-mode Service shop/ghost metadata.annotations.weir.dev/balancing',
      'lb-unknown-location Service shop/web metadata.annotations.weir.dev/location-split',
      'lb-weight-matches-nothing Service shop/web metadata.annotations.weir.dev/weights',
      'service-port-name-unresolved Service shop/web spec.ports[1].targetPort',
      'service-selects-nothing Service shop/ghost spec.selector',
    ]);
  });
});
