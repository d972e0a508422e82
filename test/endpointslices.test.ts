// EndpointSlices as input (discovery.k8s.io/v1): the loader reads them with the API's
// validation and nil meanings; a Service without selector gets its endpoints from them (a
// known pod's address is that pod, policies after DNAT apply to it; any other address is an
// external endpoint the client's egress decides); the controller's slice of a Service with a
// selector is ignored with a notice, another manager's is merged as kube-proxy merges them;
// not-ready endpoints are left out; what is in doubt is UNKNOWN, never allowed. The files
// source passes declared slices through, so the kernel gets the same endpoints.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { explainService, formatServiceExplanation, serviceConnectivity, serviceLineText, servicePorts } from '../src/analyze/services.js';
import { allocate } from '../src/lb/allocate.js';
import { resolveServices } from '../src/lb/endpoints.js';
import { loadManifestText } from '../src/load/index.js';
import type { Cluster } from '../src/model/cluster.js';
import { formatDiagnostic, type Diagnostic } from '../src/model/diagnostics.js';
import { analyze, PolicyEngine } from '../src/policy/index.js';
import { FilesSource } from '../src/source/files.js';
import { normalizeKubeObject } from '../src/source/kube/index.js';

const FIXTURE = 'test/fixtures/endpointslices/slices.yaml';

function load(extra = ''): { cluster: Cluster; engine: PolicyEngine; diagnostics: Diagnostic[] } {
  const { cluster, diagnostics } = loadManifestText(`${readFileSync(FIXTURE, 'utf8')}${extra}`, 'slices.yaml');
  return { cluster, engine: new PolicyEngine(cluster), diagnostics };
}

function slice(name: string, service: string, body: string, labels = ''): string {
  return `---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: ${name}
  namespace: shop
  labels: {kubernetes.io/service-name: ${service}${labels}}
${body}
`;
}

const SERVICE = (name: string, spec = 'ports: [{port: 80}]') => `---
apiVersion: v1
kind: Service
metadata: {name: ${name}, namespace: shop}
spec: {${spec}}
`;

describe('EndpointSlices: the loader', () => {
  test('reads a slice with the API defaults and nil meanings', () => {
    const { cluster, diagnostics } = load();
    const s = cluster.endpointSlices?.find((x) => x.name === 'db-alias-1');
    assert.deepEqual(s, {
      namespace: 'shop',
      name: 'db-alias-1',
      service: 'db-alias',
      managedBy: 'ops.example.com',
      addressType: 'IPv4',
      ports: [{ port: 5432, protocol: 'TCP' }],
      endpoints: [{ addresses: ['10.1.0.5'], ready: true, serving: true, terminating: false, pod: 'shop/db' }],
      source: { file: 'slices.yaml', line: 62 },
    });
    // ready/serving nil: true; `endpoints: null` (kubectl's empty list) reads as none.
    const partner = cluster.endpointSlices?.find((x) => x.name === 'partner-1');
    assert.deepEqual(partner?.endpoints.map((e) => [e.addresses[0], e.ready, e.serving]), [
      ['203.0.113.10', true, true],
      ['198.51.100.9', false, false],
    ]);
    assert.deepEqual(cluster.endpointSlices?.find((x) => x.name === 'ghost-1')?.endpoints, []);
    assert.equal(diagnostics.filter((d) => d.severity === 'error').length, 0, diagnostics.map(formatDiagnostic).join('\n'));
  });

  test('bad slices: a clear error naming file, object and field; the Service is UNKNOWN, never allowed', () => {
    const bad = [
      ['bad-ip', 'addressType: IPv4\nports: [{port: 80}]\nendpoints: [{addresses: [10.1.0.999]}]', 'endpoints[0].addresses[0]', /"10\.1\.0\.999" is not an IPv4 address/],
      ['bad-family', 'addressType: IPv4\nports: [{port: 80}]\nendpoints: [{addresses: ["2001:db8::1"]}]', 'endpoints[0].addresses[0]', /not an IPv4 address/],
      ['bad-loop', 'addressType: IPv4\nports: [{port: 80}]\nendpoints: [{addresses: [127.0.0.1]}]', 'endpoints[0].addresses[0]', /loopback/],
      ['bad-type', 'addressType: IPv5\nports: [{port: 80}]\nendpoints: []', 'addressType', /one of "IPv4", "IPv6", "FQDN"/],
      ['bad-port', 'addressType: IPv4\nports: [{port: 70000}]\nendpoints: []', 'ports[0].port', /out of range/],
      ['bad-dup', 'addressType: IPv4\nports: [{name: a, port: 80}, {name: a, port: 81}]\nendpoints: []', 'ports[1].name', /used twice/],
      ['bad-fqdn', 'addressType: FQDN\nports: [{port: 80}]\nendpoints: [{addresses: [Not_A.Name]}]', 'endpoints[0].addresses[0]', /not a lowercase DNS name/],
    ] as const;
    for (const [name, body, field, message] of bad) {
      const { cluster, engine, diagnostics } = load(SERVICE('broken') + slice(name, 'broken', body));
      const err = diagnostics.find((d) => d.severity === 'error');
      assert.ok(err, `${name}: an error`);
      assert.equal(err.file, 'slices.yaml');
      assert.equal(err.object, `EndpointSlice shop/${name}`);
      assert.equal(err.field, field, name);
      assert.match(err.message, message, name);
      assert.ok(err.line !== undefined && err.line > 130, `${name}: the line of the field (${err.line})`);
      // Kept in doubt, so the Service's endpoints are unknown: UNKNOWN, naming the slice.
      const e = explainService(engine, cluster, 'shop/client', 'shop/broken', 80);
      assert.equal(e.verdict, 'Unknown', name);
      assert.match(e.reason ?? '', new RegExp(`EndpointSlice shop/${name}`));
    }
  });

  test('a slice without the service-name label belongs to no Service: skipped with a warning', () => {
    const { cluster, diagnostics } = load(`---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: orphan, namespace: shop}
addressType: IPv4
endpoints: [{addresses: [10.1.0.5]}]
`);
    assert.equal(cluster.endpointSlices?.some((s) => s.name === 'orphan'), false);
    const d = diagnostics.find((x) => x.object === 'EndpointSlice shop/orphan');
    assert.equal(d?.severity, 'warning');
    assert.equal(d?.code, 'endpointslice-without-service');
    assert.equal(d?.field, 'metadata.labels');
  });

  test('joining slices to Services: missing Service, unmatched ports, selector-less Service without slices', () => {
    const { diagnostics } = load();
    const by = (code: string) => diagnostics.filter((d) => d.code === code).map((d) => `${d.severity} ${d.object ?? ''} ${d.field ?? ''}`);
    assert.deepEqual(by('endpointslice-service-missing'), ['warning EndpointSlice shop/ghost-1 metadata.labels["kubernetes.io/service-name"]']);
    assert.deepEqual(by('service-without-endpointslices'), ['warning Service shop/nowhere spec.selector']);
    // Ports without names when the Service has several (all named): they serve none of them.
    const unmatched = diagnostics.find((d) => d.code === 'endpointslice-port-unmatched');
    assert.equal(unmatched?.object, 'EndpointSlice shop/partner-1');
    assert.match(unmatched?.message ?? '', /port 8443\/TCP without a name matches no port of Service shop\/partner .*https 443\/TCP, admin 8443\/TCP/);
    assert.deepEqual(by('endpointslice-controller-managed'), ['notice EndpointSlice shop/db-x7k2p metadata.labels["endpointslice.kubernetes.io/managed-by"]']);
  });
});

describe('EndpointSlices: the analyzer', () => {
  test('a Service without selector whose slice points at a pod: policies of that pod apply after DNAT', () => {
    const { cluster, engine } = load();
    const allowed = explainService(engine, cluster, 'shop/client', 'shop/db-alias', 5432);
    assert.equal(allowed.verdict, 'Allowed');
    assert.deepEqual(allowed.endpoints.map((e) => [e.endpoint.pod, e.endpoint.ip, e.endpoint.port]), [['shop/db', '10.1.0.5', 5432]]);
    const denied = explainService(engine, cluster, 'shop/other', 'shop/db-alias', 5432);
    assert.equal(denied.verdict, 'Denied');
    assert.match(formatServiceExplanation(denied), /endpoint shop\/db \(shop\/db\[Pod\]\) TCP 5432: DENIED/);
    assert.match(JSON.stringify(denied.endpoints[0]?.explanation.ingress), /db-from-client/);
  });

  test('an external address: the egress policy of the client decides, as for an ipBlock peer', () => {
    const { cluster, engine } = load();
    const ok = explainService(engine, cluster, 'shop/client', 'shop/partner', 'https');
    assert.equal(ok.verdict, 'Allowed');
    assert.deepEqual(ok.endpoints.map((e) => [e.endpoint.pod, e.endpoint.ip, e.endpoint.workload]), [[undefined, '203.0.113.10', '203.0.113.10[External]']]);
    assert.match(formatServiceExplanation(ok), /endpoint 203\.0\.113\.10 \(External\) TCP 443: ALLOWED/);
    assert.match(JSON.stringify(ok.endpoints[0]?.explanation.egress), /client-egress/);
    const no = explainService(engine, cluster, 'shop/other', 'shop/partner', 443);
    assert.equal(no.verdict, 'Denied');
    // analyze --services: the client's line goes through the external endpoint; `other` has none.
    const sc = serviceConnectivity(engine, cluster, analyze(engine));
    const partner = sc.lines.filter((l) => l.service === 'shop/partner[Service]').map(serviceLineText);
    assert.deepEqual(partner, [
      'shop/client[Pod] => shop/partner[Service] : TCP 443 (ClusterIP 10.96.156.128) via 203.0.113.10[External] TCP 443',
      'shop/db[Pod] => shop/partner[Service] : TCP 443 (ClusterIP 10.96.156.128) via 203.0.113.10[External] TCP 443',
    ]);
    // The named Service port the slice's unnamed port does not serve has no endpoint.
    assert.deepEqual(sc.withoutEndpoints.filter((w) => w.service === 'shop/partner[Service]').map((w) => `${w.port} ${w.reason}`), [
      '8443 no EndpointSlice of it has a TCP port named "admin" with an endpoint',
    ]);
  });

  test('not-ready endpoints are excluded; when none is ready, serving and terminating ones are used (kube-proxy)', () => {
    const { cluster } = load(
      SERVICE('flaky') +
        slice('flaky-1', 'flaky', 'addressType: IPv4\nports: [{port: 80}]\nendpoints:\n- {addresses: [10.1.0.5], conditions: {ready: false}}\n- {addresses: [10.1.0.8]}') +
        SERVICE('draining') +
        slice('draining-1', 'draining', 'addressType: IPv4\nports: [{port: 80}]\nendpoints:\n- {addresses: [10.1.0.5], conditions: {ready: false, serving: true, terminating: true}}\n- {addresses: [10.1.0.8], conditions: {ready: false, serving: false}}') +
        SERVICE('down') +
        slice('down-1', 'down', 'addressType: IPv4\nports: [{port: 80}]\nendpoints:\n- {addresses: [10.1.0.5], conditions: {ready: false, serving: false}}'),
    );
    const views = servicePorts(cluster);
    const eps = (svc: string) => views.find((v) => v.service === svc)?.endpoints.map((e) => e.pod);
    assert.deepEqual(eps('shop/flaky'), ['shop/other']);
    assert.deepEqual(eps('shop/draining'), ['shop/db']);
    assert.deepEqual(eps('shop/down'), []);
    const engine = new PolicyEngine(cluster);
    const down = explainService(engine, cluster, 'shop/client', 'shop/down', 80);
    assert.equal(down.verdict, 'Denied');
    assert.match(down.reason ?? '', /no endpoint/);
    // The kernel gets the same endpoints.
    const resolved = resolveServices(cluster, cluster.endpointSlices ?? [], allocate(cluster.services)).services;
    const keys = (svc: string) => resolved.find((s) => s.key === svc)?.ports[0]?.endpoints.map((e) => e.key);
    assert.deepEqual([keys('shop/flaky'), keys('shop/draining'), keys('shop/down')], [['10.1.0.8:80'], ['10.1.0.5:80'], []]);
  });

  test('a Service with a selector: the controller slice is ignored, another manager\'s is merged', () => {
    const { cluster, engine } = load();
    assert.deepEqual(servicePorts(cluster).find((v) => v.service === 'shop/db')?.endpoints.map((e) => `${e.pod ?? e.ip}:${e.port}`), ['shop/db:5432']);
    const merged = load(slice('db-mesh', 'db', 'addressType: IPv4\nports: [{port: 5432}]\nendpoints: [{addresses: [203.0.113.20]}]', ', endpointslice.kubernetes.io/managed-by: mesh.example.com'));
    const view = servicePorts(merged.cluster).find((v) => v.service === 'shop/db');
    assert.deepEqual(view?.endpoints.map((e) => `${e.pod ?? e.ip}:${e.port}`), ['203.0.113.20:5432', 'shop/db:5432']);
    assert.ok(merged.diagnostics.some((d) => d.code === 'endpointslice-merged' && d.object === 'EndpointSlice shop/db-mesh'));
    // Client: the pod allows it, its egress does not reach 203.0.113.20:5432 → partial.
    assert.equal(explainService(merged.engine, merged.cluster, 'shop/client', 'shop/db', 5432).verdict, 'Partial');
    assert.equal(explainService(engine, cluster, 'shop/client', 'shop/db', 5432).verdict, 'Allowed');
    // A dump holds one controller slice per selector Service: one notice for all of them.
    const dump = load(slice('db-q9z8w', 'db', 'addressType: IPv4\nports: [{port: 5432}]\nendpoints: [{addresses: [10.1.0.98]}]', ', endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io'));
    const notices = dump.diagnostics.filter((d) => d.code === 'endpointslice-controller-managed');
    assert.equal(notices.length, 1);
    assert.match(notices[0]?.message ?? '', /^2 EndpointSlices of the EndpointSlice controller for Services with a selector \(shop\/db-x7k2p, shop\/db-q9z8w\): ignored/);
    assert.deepEqual(servicePorts(dump.cluster).find((v) => v.service === 'shop/db')?.endpoints.map((e) => e.pod), ['shop/db']);
  });

  test('doubt stays UNKNOWN: no slice at all, a targetRef to a pod not in the input or at another address', () => {
    const { cluster, engine } = load(
      SERVICE('ref-missing') +
        slice('ref-missing-1', 'ref-missing', 'addressType: IPv4\nports: [{port: 80}]\nendpoints: [{addresses: [10.1.0.50], targetRef: {kind: Pod, name: gone}}]') +
        SERVICE('ref-moved') +
        slice('ref-moved-1', 'ref-moved', 'addressType: IPv4\nports: [{port: 80}]\nendpoints: [{addresses: [10.1.0.51], targetRef: {kind: Pod, name: db}}]'),
    );
    for (const [svc, why] of [
      ['shop/nowhere', /no EndpointSlice in the input names it/],
      ['shop/ref-missing', /targetRef names pod shop\/gone, which is not in the input/],
      ['shop/ref-moved', /whose IP is 10\.1\.0\.5/],
    ] as const) {
      const e = explainService(engine, cluster, 'shop/client', svc, 80);
      assert.equal(e.verdict, 'Unknown', svc);
      assert.match(e.reason ?? '', why);
    }
  });

  test('the first address of an endpoint; addresses of the other family than the ClusterIP are not proxied', () => {
    const { cluster } = load(
      SERVICE('multi') +
        slice('multi-1', 'multi', 'addressType: IPv4\nports: [{port: 80}]\nendpoints: [{addresses: [10.1.0.5, 10.1.0.8]}]') +
        slice('multi-6', 'multi', 'addressType: IPv6\nports: [{port: 80}]\nendpoints: [{addresses: ["2001:db8::5"]}]'),
    );
    assert.deepEqual(servicePorts(cluster).find((v) => v.service === 'shop/multi')?.endpoints.map((e) => e.ip), ['10.1.0.5']);
    const resolved = resolveServices(cluster, cluster.endpointSlices ?? [], allocate(cluster.services)).services;
    assert.deepEqual(resolved.find((s) => s.key === 'shop/multi')?.ports[0]?.endpoints.map((e) => e.key), ['10.1.0.5:80']);
  });

  test('FQDN slices are not proxied: no endpoint, said so', () => {
    const { cluster, engine } = load(SERVICE('named') + slice('named-1', 'named', 'addressType: FQDN\nports: [{port: 80}]\nendpoints: [{addresses: [db.example.com]}]'));
    const e = explainService(engine, cluster, 'shop/client', 'shop/named', 80);
    assert.equal(e.verdict, 'Denied');
    const sc = serviceConnectivity(engine, cluster, analyze(engine));
    assert.match(sc.withoutEndpoints.find((w) => w.service === 'shop/named[Service]')?.reason ?? '', /FQDN/);
  });
});

describe('EndpointSlices: the files source and the kernel', () => {
  test('declared slices pass through, so a Service without selector is DNATed to them', async () => {
    const src = new FilesSource([FIXTURE]);
    await src.start({ onEvents: () => undefined });
    const snap = src.snapshot();
    await src.stop();
    const names = snap.endpointSlices.map((s) => `${s.namespace}/${s.name}`);
    assert.ok(names.includes('shop/db-alias-1') && names.includes('shop/partner-1'), names.join(' '));
    const resolved = resolveServices(snap.cluster, snap.endpointSlices, allocate(snap.cluster.services)).services;
    const keys = (svc: string) => resolved.find((s) => s.key === svc)?.ports.map((p) => p.endpoints.map((e) => e.key));
    assert.deepEqual(keys('shop/db-alias'), [['10.1.0.5:5432']]);
    assert.deepEqual(keys('shop/partner'), [['203.0.113.10:443'], []]);
    // The controller's stale slice (10.1.0.99) is not used; the pod is.
    assert.deepEqual(keys('shop/db'), [['10.1.0.5:5432']]);
    assert.equal(resolved.find((s) => s.key === 'shop/db-alias')?.ports[0]?.endpoints[0]?.pod, 'shop/db');
  });
});

describe('EndpointSlices: the Kubernetes source validates them through the loader', () => {
  test('valid, invalid (kept in doubt) and unlabelled slices from the API', () => {
    
    const meta = (name: string, labels: Record<string, string> = { 'kubernetes.io/service-name': 'db' }) => ({ name, namespace: 'shop', labels });
    const ok = normalizeKubeObject('EndpointSlice', { metadata: meta('db-1'), addressType: 'IPv4', ports: [{ name: '', port: 5432, protocol: 'TCP' }], endpoints: [{ addresses: ['10.1.0.5'], conditions: { ready: null } }] });
    assert.equal(ok.ok, true);
    assert.deepEqual(ok.ok && ok.object?.endpoints, [{ addresses: ['10.1.0.5'], ready: true, serving: true, terminating: false }]);
    const bad = normalizeKubeObject('EndpointSlice', { metadata: meta('db-2'), addressType: 'IPv4', endpoints: [{ addresses: ['10.1.0.300'] }] });
    assert.equal(bad.ok, true);
    assert.match(bad.ok ? (bad.object?.doubt?.reason ?? '') : '', /EndpointSlice shop\/db-2 endpoints\[0\]\.addresses\[0\]/);
    assert.match((bad.problems ?? []).join('\n'), /kubernetes:EndpointSlice shop\/db-2.*not an IPv4 address/);
    // The API writes a slice without endpoints as `endpoints: null`.
    const empty = normalizeKubeObject('EndpointSlice', { metadata: meta('db-3'), addressType: 'IPv4', ports: null, endpoints: null });
    assert.deepEqual(empty.ok && [empty.object?.endpoints, empty.object?.doubt, empty.problems], [[], undefined, undefined]);
    const orphan = normalizeKubeObject('EndpointSlice', { metadata: meta('x', {}), addressType: 'IPv4', endpoints: [] });
    assert.equal(orphan.ok, false);
  });
});
