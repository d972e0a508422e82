// suite: integration (runs the real CLI in child processes; no root)
// Services in the analyzer: `explain --to svc/…` explains each endpoint after DNAT (the real
// pod and target port, named ports resolved per pod), `analyze --services` lists who reaches
// which Service port (partial where some endpoints deny), and nothing it cannot know is ever
// listed as allowed (no selector, Local traffic policy without the client's node, invalid
// policies → UNKNOWN). Library calls and the real CLI on one fixture.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { explainService, formatServiceExplanation, renderServiceConnectivity, serviceConnectivity, serviceLineText, servicePorts, ServiceNotFoundError } from '../src/analyze/services.js';
import { loadManifestText } from '../src/load/index.js';
import type { Cluster } from '../src/model/cluster.js';
import { analyze, PolicyEngine } from '../src/policy/index.js';
import { weir } from './helpers/cli.js';

const FIXTURE = 'test/fixtures/services-analyze/services.yaml';

function load(extra = ''): { cluster: Cluster; engine: PolicyEngine } {
  const { cluster } = loadManifestText(`${readFileSync(FIXTURE, 'utf8')}${extra}`, 'services.yaml');
  return { cluster, engine: new PolicyEngine(cluster) };
}

describe('Services in the analyzer', () => {
  test('endpoints: selected pods with the container port a named targetPort resolves to per pod', () => {
    const { cluster } = load();
    const front = servicePorts(cluster).find((v) => v.service === 'shop/front');
    assert.deepEqual(front?.endpoints.map((e) => `${e.pod}:${e.port}`), ['shop/legacy:9000', 'shop/web-0:8080']);
    const outside = servicePorts(cluster).find((v) => v.service === 'shop/outside');
    assert.match(outside?.unresolved ?? '', /spec\.selector: absent/);
  });

  test('explain: each endpoint after DNAT; partial when one denies; never fail open', () => {
    const { cluster, engine } = load();
    const partial = explainService(engine, cluster, 'ops/scraper', 'shop/front', 80);
    assert.equal(partial.verdict, 'Partial');
    assert.deepEqual(partial.endpoints.map((e) => [e.endpoint.pod, e.endpoint.port, e.explanation.verdict]), [
      ['shop/legacy', 9000, 'Denied'],
      ['shop/web-0', 8080, 'Allowed'],
    ]);
    // The deny names the policy of the real destination pod.
    assert.match(JSON.stringify(partial.endpoints[0]?.explanation.ingress), /legacy-from-shop/);
    assert.equal(explainService(engine, cluster, 'shop/client', 'shop/front', 80).verdict, 'Allowed');
    // By port name; an external client goes through the NodePort.
    const ext = explainService(engine, cluster, '8.8.8.8', 'shop/web', 'http');
    assert.equal(ext.frontend, 'node-port');
    assert.equal(ext.verdict, 'Allowed');
    // No endpoint: denied (rejected), with the reason.
    const empty = explainService(engine, cluster, 'shop/client', 'shop/empty', 80);
    assert.equal(empty.verdict, 'Denied');
    assert.match(empty.reason ?? '', /no endpoint/);
    // Endpoints the manifests cannot name: UNKNOWN, never allowed.
    assert.equal(explainService(engine, cluster, 'shop/client', 'shop/outside', 5432).verdict, 'Unknown');
    assert.equal(explainService(engine, cluster, 'shop/client', 'shop/local', 80).verdict, 'Unknown');
    assert.throws(() => explainService(engine, cluster, 'shop/client', 'shop/web', 81), ServiceNotFoundError);
    assert.throws(() => explainService(engine, cluster, 'shop/client', 'shop/nope', 80), /no Service shop\/nope/);
  });

  test('explain: a policy in doubt on an endpoint makes the Service verdict UNKNOWN', () => {
    const { cluster, engine } = load(`---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: doubtful, namespace: shop }
spec:
  podSelector: { matchExpressions: [{ key: app, operator: in, values: [web] }] }
  policyTypes: [Ingress]
`);
    const e = explainService(engine, cluster, 'shop/client', 'shop/front', 80);
    assert.equal(e.verdict, 'Unknown');
    assert.match((e.unknownBecause ?? []).join(), /doubtful/);
  });

  test('analyze --services: all, partial, unknown and no-endpoint Services', () => {
    const { cluster, engine } = load();
    const sc = serviceConnectivity(engine, cluster, analyze(engine));
    const text = sc.lines.map(serviceLineText);
    assert.ok(text.includes('ops/scraper[Pod] => shop/front[Service] : TCP 80 (ClusterIP ' + (servicePorts(cluster).find((v) => v.service === 'shop/front')?.address as { ip: string }).ip + ') PARTIAL via shop/web[Deployment] TCP 8080; not via shop/legacy[Pod] TCP 9000'), text.join('\n'));
    assert.ok(text.some((l) => l.startsWith("0.0.0.0-255.255.255.255[External] => shop/web[Service] : TCP 80 (NodePort 30080 on any node, masqueraded: the endpoints' policy sees the node's address) via shop/web[Deployment] TCP 8080")), text.join('\n'));
    // External clients reach no ClusterIP-only Service.
    assert.ok(!text.some((l) => l.includes('[External] => shop/front')));
    assert.ok(sc.lines.filter((l) => l.service === 'shop/outside[Service]').every((l) => l.reach === 'unknown' && l.allowed.length === 0));
    assert.deepEqual(sc.withoutEndpoints.map((w) => w.service), ['shop/empty[Service]']);
    const focused = serviceConnectivity(engine, cluster, analyze(engine), { focus: 'ops/scraper' });
    assert.ok(focused.lines.length > 0 && focused.lines.every((l) => l.src === 'ops/scraper[Pod]'));
    const csv = renderServiceConnectivity(sc, 'csv').split('\n');
    assert.equal(csv[0], 'src,service,port,via,reach,allowed,denied,unknown');
    assert.ok(csv.some((r) => r.startsWith('ops/scraper[Pod],shop/front[Service],TCP 80,') && r.includes(',partial,shop/web[Deployment] TCP 8080,shop/legacy[Pod] TCP 9000,')));
    const md = renderServiceConnectivity(sc, 'md');
    assert.match(md, /^\| src \| service \| port \| via \| reach \| allowed \| denied \|$/m);
    assert.match(md, /Services without endpoints/);
    const json = JSON.parse(renderServiceConnectivity(sc, 'json')) as { connections: { reach: string }[]; withoutEndpoints: unknown[] };
    assert.equal(json.connections.length, sc.lines.length);
  });

  test('NodePort per node entered: Cluster masquerades (the endpoints judge the node\'s address), Local keeps the client', () => {
    const NODES = `---
apiVersion: v1
kind: Node
metadata: { name: n0 }
status: { addresses: [{ type: InternalIP, address: 172.31.255.10 }] }
---
apiVersion: v1
kind: Node
metadata: { name: n1 }
status: { addresses: [{ type: InternalIP, address: 172.31.255.11 }] }
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: web-not-from-n1, namespace: shop }
spec:
  podSelector: { matchLabels: { app: web } }
  policyTypes: [Ingress]
  ingress: [{ from: [{ ipBlock: { cidr: 0.0.0.0/0, except: [172.31.255.11/32, 8.8.8.0/24] } }] }]
`;
    const { cluster, engine } = load(NODES);
    assert.deepEqual(cluster.nodes.map((n) => [n.name, n.ip]), [['n0', '172.31.255.10'], ['n1', '172.31.255.11']]);
    // 8.8.8.8 is itself refused, yet through n0 it gets in: the endpoint sees n0's address.
    const e = explainService(engine, cluster, '8.8.8.8', 'shop/web', 80);
    assert.equal(e.verdict, 'Partial');
    assert.deepEqual(e.nodes?.map((n) => [n.node, n.verdict, n.masquerade]), [['n0', 'Allowed', true], ['n1', 'Denied', true]]);
    assert.deepEqual(e.endpoints.map((x) => [x.entered, x.seenAs, x.explanation.verdict]), [['n0', '172.31.255.10', 'Allowed'], ['n1', '172.31.255.11', 'Denied']]);
    assert.match(formatServiceExplanation(e), /^entered on n1 \(172\.31\.255\.11\), masqueraded: the endpoints' policy sees 172\.31\.255\.11: DENIED$/m);
    const lines = serviceConnectivity(engine, cluster, analyze(engine)).lines.filter((l) => l.service === 'shop/web[Service]' && l.frontend === 'node-port');
    assert.deepEqual(lines.map((l) => [l.src, l.node, l.seenAs, l.reach]), [['0.0.0.0-255.255.255.255[External]', 'n0', '172.31.255.10', 'all']]);
    // externalTrafficPolicy Local: no masquerade, the client's own address is judged, and a
    // node without a local endpoint drops.
    const local = load(NODES + `---
apiVersion: v1
kind: Pod
metadata: { name: pinned, namespace: shop, labels: { app: pinned } }
spec: { nodeName: n0, containers: [{ name: c, ports: [{ name: http, containerPort: 8080 }] }] }
---
apiVersion: v1
kind: Service
metadata: { name: keep, namespace: shop }
spec: { type: NodePort, externalTrafficPolicy: Local, selector: { app: pinned }, ports: [{ port: 80, targetPort: http, nodePort: 30090 }] }
`);
    const k = explainService(local.engine, local.cluster, '8.8.8.8', 'shop/keep', 80);
    assert.deepEqual(k.nodes?.map((n) => [n.node, n.verdict, n.masquerade]), [['n0', 'Allowed', false], ['n1', 'Denied', false]]);
    assert.match(k.nodes?.[1]?.reason ?? '', /externalTrafficPolicy Local and no endpoint on n1: dropped/);
    assert.equal(k.endpoints[0]?.seenAs, undefined);
  });

  test('the CLI: explain --to svc/…, analyze --services, exit codes and errors', async () => {
    const ok = await weir(['explain', FIXTURE, '--from', 'ops/scraper', '--to', 'svc/shop/front', '--port', '80']);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /^verdict: PARTIAL \(1 of 2 endpoints allow/m);
    assert.match(ok.stdout, /^endpoint shop\/legacy \(shop\/legacy\[Pod\]\) TCP 9000: DENIED$/m);
    const deny = await weir(['explain', FIXTURE, '--from', 'ops/scraper', '--to', 'svc/shop/front', '--port', '80', '--fail-on-deny']);
    assert.equal(deny.code, 1);
    const json = await weir(['explain', FIXTURE, '--from', 'shop/client', '--to', 'svc/shop/web', '--port', 'http', '-f', 'json']);
    assert.equal((JSON.parse(json.stdout) as { verdict: string }).verdict, 'Allowed');
    const unknown = await weir(['explain', FIXTURE, '--from', 'shop/client', '--to', 'svc/shop/outside', '--port', '5432']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stdout, /verdict: UNKNOWN \(endpoints not known/);
    const missing = await weir(['explain', FIXTURE, '--from', 'shop/client', '--to', 'svc/shop/web', '--port', '81']);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /Service shop\/web has no port 81: its ports are 80\/TCP \(http\)/);
    const list = await weir(['analyze', FIXTURE, '--services', '-f', 'md']);
    assert.equal(list.code, 2, 'UNKNOWN lines raise the input-error status');
    assert.match(list.stdout, /\| ops\/scraper\[Pod\] \| shop\/front\[Service\] \| TCP 80 \|/);
    const dot = await weir(['analyze', FIXTURE, '--services', '-f', 'dot']);
    assert.equal(dot.code, 2);
    assert.match(dot.stderr, /--services is printed as txt, json, csv, md/);
  });

  test('weir lint: each bad Service input is a warning naming the Service and the field', async () => {
    const r = await weir(['lint', 'test/fixtures/services-analyze-lint/bad.yaml', '-f', 'json']);
    assert.equal(r.code, 0, r.stderr);
    const findings = JSON.parse(r.stdout) as { code: string; object?: string; field?: string; message: string }[];
    const has = (code: string, object: string, field: string, message: RegExp) =>
      assert.ok(findings.some((f) => f.code === code && f.object === object && f.field === field && message.test(f.message)), `${code} ${object} ${field}\n${JSON.stringify(findings, null, 1)}`);
    has('service-selects-nothing', 'Service shop/nomatch', 'spec.selector', /matches no pod/);
    has('lb-invalid-weights', 'Service shop/badweights', 'metadata.annotations.weir.dev/weights', /weight "lots" must be an integer/);
    has('lb-invalid-weights', 'Service shop/zero', 'metadata.annotations.weir.dev/weights', /every weight is 0/);
    // Found on pods without addresses too (manifests rarely carry one).
    has('lb-weight-matches-nothing', 'Service shop/ghost', 'metadata.annotations.weir.dev/weights', /"version=v9" matches no endpoint/);
    has('lb-unknown-location', 'Service shop/where', 'metadata.annotations.weir.dev/location-split', /"mars" \(known: eu-west\)/);
    has('lb-unknown-location', 'Service shop/where', 'metadata.annotations.weir.dev/allowed-locations', /"moon"/);
    has('lb-conflicting-annotations', 'Service shop/conflict', 'metadata.annotations.weir.dev/weights', /"equal", so these weights are ignored/);
    has('lb-conflicting-annotations', 'Service shop/conflict', 'metadata.annotations.weir.dev/locality', /split applies/);
    has('service-port-name-unresolved', 'Service shop/named', 'spec.ports[0].targetPort', /named "https"/);
    has('lb-unknown-annotation', 'Service shop/typo', 'metadata.annotations.weir.dev/balance', /misspelled/);
    has('lb-invalid-mode', 'Service shop/typo', 'metadata.annotations.weir.dev/balancing', /got "fastest"/);
  });
});
