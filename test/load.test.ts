// Manifest loader: parsing, validation diagnostics (file/line/object/field/code) and
// normalization to the Cluster model.

import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import {
  buildCluster,
  loadManifests,
  loadManifestText,
  parseManifests,
  parseCIDR,
  canonicalCIDR,
  isStrictSubset,
  type LoadResult,
} from '../src/load/index.js';
import type { Diagnostic } from '../src/model/diagnostics.js';
import { hasErrors } from '../src/model/diagnostics.js';

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'load');
const F = 'm.yaml';

function load(text: string): LoadResult {
  return loadManifestText(text, F);
}

/** The single diagnostic with `code` (fails when there are zero or several). */
function only(r: LoadResult, code: string): Diagnostic {
  const found = r.diagnostics.filter((d) => d.code === code);
  assert.equal(found.length, 1, `expected one ${code}, got: ${JSON.stringify(r.diagnostics, null, 1)}`);
  return found[0];
}

function errors(r: LoadResult): Diagnostic[] {
  return r.diagnostics.filter((d) => d.severity === 'error');
}

/** Asserts exactly one error, with these properties. */
function oneError(r: LoadResult, expected: Partial<Diagnostic>): Diagnostic {
  const errs = errors(r);
  assert.equal(errs.length, 1, `expected one error, got: ${JSON.stringify(errs, null, 1)}`);
  const d = errs[0];
  const picked = Object.fromEntries(Object.keys(expected).map((k) => [k, d[k as keyof Diagnostic]]));
  assert.deepEqual(picked, expected);
  return d;
}

const NS = `apiVersion: v1
kind: Namespace
metadata:
  name: shop
`;

function np(spec: string, meta = ''): string {
  return `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: p
  namespace: shop
${meta}spec:
${spec}`;
}

// ---------------------------------------------------------------- files & documents

describe('files and documents', () => {
  test('folders load recursively in sorted order; .yaml .yml .json; hidden dirs and other files skipped', async () => {
    const r = await loadManifests([join(FIXTURES, 'tree')]);
    const c = r.cluster;
    assert.deepEqual(c.namespaces.map((n) => n.name), ['app']);
    assert.deepEqual(c.namespaces[0].labels, { team: 'blue', 'kubernetes.io/metadata.name': 'app' });
    assert.equal(c.namespaces[0].source?.file, join(FIXTURES, 'tree', 'a-namespace.yml'));
    assert.deepEqual(c.networkPolicies.map((p) => p.name), ['deny-all']);
    // pods.json: a List; web is valid, db has a bad protocol.
    assert.deepEqual(c.pods.map((p) => p.name), ['web']);
    const pod = c.pods[0];
    assert.equal(pod.ip, '10.244.1.5');
    assert.equal(pod.node, 'node-1');
    assert.equal(pod.workload, 'app/web[Pod]');
    assert.equal(pod.source?.line, 5);
    const bad = oneError(r, {
      file: join(FIXTURES, 'tree', 'sub', 'pods.json'),
      line: 16,
      object: 'Pod app/db',
      field: 'spec.containers[0].ports[0].protocol',
      code: 'invalid-value',
    });
    assert.match(bad.message, /"TCP", "UDP", "SCTP".*"TCPX"/);
  });

  test('missing path is an error, empty folder a warning', async () => {
    const r = await loadManifests([join(FIXTURES, 'nope')]);
    assert.equal(only(r, 'file-not-found').severity, 'error');
  });

  test('the same tree loads identically twice (deterministic)', async () => {
    const a = await loadManifests([join(FIXTURES, 'tree')]);
    const b = await loadManifests([join(FIXTURES, 'tree'), join(FIXTURES, 'tree', 'a-namespace.yml')]);
    assert.deepEqual(a, b);
  });

  test('multi-document YAML, empty documents, typed List items with their own lines', () => {
    const r = loadManifestText(
      // Read from the fixture so lines are those of a real file.
      readFixture('multi.yaml'),
      'multi.yaml',
    );
    assert.deepEqual(r.cluster.namespaces.map((n) => [n.name, n.source?.line]), [['one', 2], ['two', 8]]);
    // p2 is invalid: kept for what is certain, whether it applies marked in doubt (never fail open).
    assert.deepEqual(r.cluster.networkPolicies.map((p) => [p.name, p.source?.line, p.doubt?.reason]), [
      ['p1', 16, undefined],
      ['p2', 23, 'NetworkPolicy one/p2 spec.bogus'],
    ]);
    oneError(r, { file: 'multi.yaml', line: 31, object: 'NetworkPolicy one/p2', field: 'spec.bogus', code: 'unknown-field' });
  });

  test('invalid YAML reports the line; other documents still load', () => {
    const r = load(`${NS}---
apiVersion: v1
kind: Namespace
metadata:
  name: [oops
---
apiVersion: v1
kind: Namespace
metadata: { name: other }
`);
    const d = oneError(r, { file: F, code: 'invalid-yaml' });
    assert.ok(d.line !== undefined && d.line >= 9 && d.line <= 10, `line ${d.line}`);
    assert.deepEqual(r.cluster.namespaces.map((n) => n.name), ['other', 'shop']);
  });

  test('duplicate keys are invalid YAML', () => {
    const r = load(`apiVersion: v1
kind: Namespace
kind: Namespace
metadata: { name: a }
`);
    assert.equal(oneError(r, { code: 'invalid-yaml' }).line, 3);
  });

  test('a typed JSON list: items take the list kind; a bad field is reported at its own line; a broken item alone is dropped', () => {
    const text = JSON.stringify(
      {
        kind: 'PodList',
        apiVersion: 'v1',
        metadata: {},
        items: [
          { metadata: { name: 'a', namespace: 'shop' }, spec: { containers: [{ name: 'c', ports: [{ containerPort: 80 }] }] } },
          { metadata: { name: 'b', namespace: 'shop' }, spec: { containers: [{ name: 'c', ports: [{ containerPort: 'http' }] }] } },
        ],
      },
      null,
      2,
    ).replace(/\n {2}\]\n\}$/, ',\n    { "metadata": { "name": tru } }\n  ]\n}');
    const r = loadManifestText(text, 'pods.json');
    assert.deepEqual(r.cluster.pods.map((p) => p.name), ['a']);
    const lineOf = (needle: string) => text.split('\n').findIndex((l) => l.includes(needle)) + 1;
    assert.deepEqual(
      errors(r).map((d) => [d.code, d.object, d.field, d.line]),
      [
        ['invalid-type', 'Pod shop/b', 'spec.containers[0].ports[0].containerPort', lineOf('"containerPort": "http"')],
        ['invalid-json', undefined, undefined, lineOf('"name": tru')],
      ],
    );
  });

  test('a document that is not a Kubernetes object is skipped with a notice', () => {
    for (const [text, line] of [
      [`${NS}---\n- a\n- b\n`, 6],
      [`just a string\n`, 1],
      [`apiVersion: v2\nname: mychart\nversion: 1.0.0\n`, 1], // a Helm Chart.yaml
      [`replicaCount: 2\nimage: { repository: nginx }\n`, 1], // a Helm values.yaml
    ] as const) {
      const r = load(text);
      assert.deepEqual(errors(r), [], text);
      assert.deepEqual([only(r, 'not-a-manifest').severity, only(r, 'not-a-manifest').line], ['notice', line], text);
    }
  });

  test('missing kind, apiVersion, metadata.name', () => {
    oneError(load(`apiVersion: v1\nmetadata: { name: a }\n`), { code: 'missing-field', field: 'kind', line: 1, object: '<no kind> a' });
    oneError(load(`kind: Namespace\nmetadata: { name: a }\n`), { code: 'missing-field', field: 'apiVersion', line: 1 });
    oneError(load(`kind: Namespace\napiVersion: v1\nmetadata:\n  labels: {}\n`), {
      code: 'missing-field',
      field: 'metadata.name',
      line: 3,
      object: 'Namespace <no name>',
    });
    oneError(load(`kind: Namespace\napiVersion: v1\nmetadata: { name: "" }\n`), { code: 'missing-field', field: 'metadata.name' });
    oneError(load(`kind: 5\napiVersion: v1\nmetadata: { name: a }\n`), { code: 'invalid-type', field: 'kind', line: 1 });
  });

  test('unknown kinds are a notice and skipped; known kind from another API group too', () => {
    const r = load(`apiVersion: v1
kind: ConfigMap
metadata: { name: cfg, namespace: shop }
---
apiVersion: crd.projectcalico.org/v1
kind: NetworkPolicy
metadata: { name: calico, namespace: shop }
spec: {}
`);
    const u = only(r, 'unknown-kind');
    assert.deepEqual([u.severity, u.line, u.object], ['notice', 1, 'ConfigMap shop/cfg']);
    const v = only(r, 'unsupported-api-version');
    assert.deepEqual([v.severity, v.line, v.object], ['warning', 5, 'NetworkPolicy shop/calico']);
    assert.equal(r.cluster.networkPolicies.length, 0);
    assert.equal(hasErrors(r.diagnostics), false);
  });

  test('parseManifests + buildCluster load incrementally; duplicates across files', () => {
    const a = parseManifests(NS, 'a.yaml');
    const b = parseManifests(`${NS}  labels: { x: y }\n`, 'b.yaml');
    assert.deepEqual([a.diagnostics, b.diagnostics], [[], []]);
    const r = buildCluster([...a.objects, ...b.objects]);
    const d = oneError(r, { code: 'duplicate-object', file: 'b.yaml', line: 1, object: 'Namespace shop' });
    assert.match(d.message, /a\.yaml:1/);
    // first kept
    assert.deepEqual(r.cluster.namespaces[0].labels, { 'kubernetes.io/metadata.name': 'shop' });
  });

  test('defaultNamespace option', () => {
    const r = loadManifestText(np('  podSelector: {}\n').replace('  namespace: shop\n', ''), F, { defaultNamespace: 'team' });
    assert.equal(r.cluster.networkPolicies[0].namespace, 'team');
  });
});

function readFixture(name: string): string {
  return readFileSync(join(FIXTURES, name), 'utf8');
}

// ------------------------------------------------------------------------ namespaces

describe('namespaces', () => {
  test('kubernetes.io/metadata.name is always set to the name (overriding a wrong value)', () => {
    const r = load(`apiVersion: v1
kind: Namespace
metadata:
  name: shop
  labels: { kubernetes.io/metadata.name: wrong, tier: app }
`);
    assert.deepEqual(r.cluster.namespaces[0].labels, { 'kubernetes.io/metadata.name': 'shop', tier: 'app' });
    assert.equal(r.cluster.namespaces[0].implicit, undefined);
  });

  test('referenced but undeclared namespaces are implicit, with a notice each', () => {
    const r = load(np('  podSelector: {}\n') + `---
apiVersion: v1
kind: Service
metadata: { name: s }
spec: { ports: [{ port: 80 }] }
`);
    assert.deepEqual(
      r.cluster.namespaces.map((n) => [n.name, n.implicit, n.labels]),
      [
        ['default', true, { 'kubernetes.io/metadata.name': 'default' }],
        ['shop', true, { 'kubernetes.io/metadata.name': 'shop' }],
      ],
    );
    const notices = r.diagnostics.filter((d) => d.code === 'implicit-namespace');
    assert.deepEqual(notices.map((d) => [d.severity, d.object, d.line]), [
      ['notice', 'Service default/s', 9],
      ['notice', 'NetworkPolicy shop/p', 1],
    ]);
  });

  test('invalid namespace and label syntax', () => {
    // Not RFC 1123, but its meaning is plain: read with a warning (lint reports it as an error).
    const upper = load(`apiVersion: v1\nkind: Namespace\nmetadata: { name: Shop }\n`);
    assert.deepEqual(errors(upper), []);
    const w = only(upper, 'name-not-rfc1123');
    assert.deepEqual([w.severity, w.field, w.line], ['warning', 'metadata.name', 3]);
    assert.deepEqual(upper.cluster.namespaces.map((n) => n.name), ['Shop']);
    oneError(load(`apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n  labels:\n    "-bad": x\n`), {
      code: 'invalid-label',
      field: 'metadata.labels["-bad"]',
      line: 6,
    });
    oneError(load(`apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n  labels:\n    ok: "${'v'.repeat(64)}"\n`), {
      code: 'invalid-label',
      field: 'metadata.labels.ok',
    });
    oneError(load(`apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n  labels:\n    n: 3\n`), {
      code: 'invalid-type',
      field: 'metadata.labels.n',
      line: 6,
    });
  });
});

// ------------------------------------------------------------------------- workloads

describe('workloads and pods', () => {
  const tpl = (kind: string, apiVersion: string, specHead: string, name = 'w') => `apiVersion: ${apiVersion}
kind: ${kind}
metadata: { name: ${name}, namespace: shop }
spec:
${specHead}`;
  const template = (indent: string) =>
    `${indent}template:
${indent}  metadata: { labels: { app: x } }
${indent}  spec:
${indent}    hostNetwork: true
${indent}    nodeName: n1
${indent}    containers:
${indent}      - name: a
${indent}        ports: [{ containerPort: 80, name: http }, { containerPort: 53, protocol: UDP }]
${indent}        image: whatever
${indent}        resources: { limits: { cpu: 1 } }
${indent}      - name: b
${indent}        ports: [{ containerPort: 9090, name: metrics }]
`;

  test('every controller kind, replicas defaults, pod expansion', () => {
    const cases: [string, string, string, number][] = [
      ['Deployment', 'apps/v1', '  replicas: 3\n', 3],
      ['Deployment', 'apps/v1', '', 1],
      ['ReplicaSet', 'apps/v1', '  replicas: 2\n', 2],
      ['StatefulSet', 'apps/v1', '  replicas: 0\n', 0],
      ['DaemonSet', 'apps/v1', '', 1],
      ['ReplicationController', 'v1', '  replicas: 2\n', 2],
      ['Job', 'batch/v1', '  parallelism: 4\n', 4],
      ['Job', 'batch/v1', '', 1],
    ];
    for (const [kind, api, head, replicas] of cases) {
      const r = load(NS + '---\n' + tpl(kind, api, head + template('  ')));
      assert.deepEqual(errors(r), [], kind);
      const w = r.cluster.workloads[0];
      assert.deepEqual(
        { kind: w.kind, replicas: w.replicas, labels: w.labels, hostNetwork: w.hostNetwork },
        { kind, replicas, labels: { app: 'x' }, hostNetwork: true },
        kind,
      );
      assert.deepEqual(w.ports, [
        { name: 'http', port: 80, protocol: 'TCP' },
        { port: 53, protocol: 'UDP' },
        { name: 'metrics', port: 9090, protocol: 'TCP' },
      ]);
      // One representative pod stands for the replicas (they share one identity).
      assert.deepEqual(
        r.cluster.pods.map((p) => [p.name, p.replicas]),
        replicas === 0 ? [] : [['w-0', replicas > 1 ? replicas : undefined]],
        kind,
      );
      for (const p of r.cluster.pods) {
        assert.equal(p.workload, `shop/w[${kind}]`);
        assert.equal(p.node, 'n1');
        assert.deepEqual(p.labels, { app: 'x' });
      }
    }
  });

  test('CronJob uses spec.jobTemplate.spec.template', () => {
    const r = load(tpl('CronJob', 'batch/v1', `  schedule: "* * * * *"\n  jobTemplate:\n    spec:\n${template('      ')}`));
    assert.deepEqual(errors(r), []);
    assert.equal(r.cluster.workloads[0].replicas, 1);
    assert.deepEqual(r.cluster.pods.map((p) => [p.name, p.workload]), [['w-0', 'shop/w[CronJob]']]);
  });

  test('running Pods are grouped into their topmost controller in the input; the template is not expanded again', () => {
    const r = load(`${tpl('Deployment', 'apps/v1', template('  '), 'web')}---
apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: web-5d9c
  namespace: shop
  ownerReferences: [{ apiVersion: apps/v1, kind: Deployment, name: web, uid: u1, controller: true }]
spec:
${template('  ')}---
apiVersion: v1
kind: Pod
metadata:
  name: web-5d9c-abcde
  namespace: shop
  labels: { app: x }
  ownerReferences: [{ apiVersion: apps/v1, kind: ReplicaSet, name: web-5d9c, uid: u2, controller: true }]
spec: { containers: [] }
status: { podIP: 10.1.0.7 }
---
apiVersion: v1
kind: Pod
metadata:
  name: orphan
  namespace: shop
  labels: { app: o }
  ownerReferences: [{ apiVersion: apps/v1, kind: ReplicaSet, name: gone, uid: u3, controller: true }]
status: { podIP: "fd00::5" }
---
apiVersion: v1
kind: Pod
metadata:
  name: static-n1
  namespace: shop
  ownerReferences: [{ apiVersion: v1, kind: Node, name: n1, uid: u4, controller: true }]
`);
    assert.deepEqual(errors(r), []);
    assert.deepEqual(r.cluster.workloads.map((w) => `${w.kind}/${w.name}/${w.replicas}`), ['ReplicaSet/gone/1', 'Pod/static-n1/1', 'Deployment/web/1']);
    assert.deepEqual(
      r.cluster.pods.map((p) => [p.name, p.ip, p.workload]),
      [
        ['orphan', 'fd00::5', 'shop/gone[ReplicaSet]'],
        ['static-n1', undefined, 'shop/static-n1[Pod]'],
        ['web-5d9c-abcde', '10.1.0.7', 'shop/web[Deployment]'],
      ],
    );
    const owned = r.diagnostics.filter((d) => d.code === 'owned-by-controller');
    assert.deepEqual(owned.map((d) => [d.severity, d.object]), [['notice', 'ReplicaSet shop/web-5d9c']]);
  });

  test('Pod defaults: replicas 1, no ports, no hostNetwork, namespace default', () => {
    const r = load(`apiVersion: v1\nkind: Pod\nmetadata: { name: p }\n`);
    assert.deepEqual(r.cluster.workloads[0], {
      namespace: 'default',
      name: 'p',
      kind: 'Pod',
      labels: {},
      ports: [],
      hostNetwork: false,
      replicas: 1,
      source: { file: F, line: 1 },
    });
  });

  test('workload validation is lenient on unrelated fields but checks what weir uses', () => {
    oneError(load(tpl('Deployment', 'apps/v1', `  replicas: -1\n${template('  ')}`)), {
      code: 'out-of-range',
      field: 'spec.replicas',
      line: 5,
      object: 'Deployment shop/w',
    });
    oneError(load(tpl('Deployment', 'apps/v1', `  replicas: two\n${template('  ')}`)), { code: 'invalid-type', field: 'spec.replicas' });
    oneError(load(tpl('Deployment', 'apps/v1', `  replicas: 1\n`)), { code: 'missing-field', field: 'spec.template' });
    oneError(load(`apiVersion: v1\nkind: Pod\nmetadata: { name: p }\nspec:\n  containers:\n    - ports: [{ containerPort: 0 }]\n`), {
      code: 'invalid-port',
      field: 'spec.containers[0].ports[0].containerPort',
      line: 6,
    });
    oneError(load(`apiVersion: v1\nkind: Pod\nmetadata: { name: p }\nspec:\n  containers:\n    - ports: [{ containerPort: 80, name: HTTP }]\n`), {
      code: 'invalid-port-name',
      field: 'spec.containers[0].ports[0].name',
    });
    oneError(load(`apiVersion: v1\nkind: Pod\nmetadata: { name: p }\nspec: { hostNetwork: "yes" }\n`), { code: 'invalid-type', field: 'spec.hostNetwork' });
    oneError(load(`apiVersion: v1\nkind: Pod\nmetadata: { name: p }\nstatus: { podIP: 10.0.0.256 }\n`), { code: 'invalid-ip', field: 'status.podIP' });
  });

  test('a bare Pod whose name clashes with an expanded pod is skipped with a warning', () => {
    const r = load(`${tpl('StatefulSet', 'apps/v1', template('  '), 'db')}---
apiVersion: v1
kind: Pod
metadata: { name: db-0, namespace: shop }
`);
    assert.equal(only(r, 'duplicate-pod').severity, 'warning');
    assert.equal(r.cluster.pods.length, 1);
  });
});

// -------------------------------------------------------------------------- services

describe('services and nodes', () => {
  test('service defaults: targetPort = port, TCP, ClusterIP, sessionAffinity None', () => {
    const r = load(`apiVersion: v1
kind: Service
metadata: { name: web, namespace: shop, annotations: { weir.dev/weights: "a=1" } }
spec:
  selector: { app: web }
  ports:
    - { name: http, port: 80 }
    - { port: 53, targetPort: dns, protocol: UDP }
`);
    assert.deepEqual(r.cluster.services[0], {
      namespace: 'shop',
      name: 'web',
      selector: { app: 'web' },
      ports: [
        { name: 'http', port: 80, targetPort: 80, protocol: 'TCP' },
        { port: 53, targetPort: 'dns', protocol: 'UDP' },
      ],
      type: 'ClusterIP',
      sessionAffinity: 'None',
      internalTrafficPolicy: 'Cluster',
      annotations: { 'weir.dev/weights': 'a=1' },
      source: { file: F, line: 1 },
    });
  });

  test('service affinity timeout and traffic policies: declared values and defaults', () => {
    const r = load(`apiVersion: v1
kind: Service
metadata: { name: a, namespace: shop }
spec:
  type: NodePort
  selector: { app: a }
  ports: [{ port: 80 }]
  sessionAffinity: ClientIP
  externalTrafficPolicy: Local
---
apiVersion: v1
kind: Service
metadata: { name: b, namespace: shop }
spec:
  clusterIP: None
  selector: { app: b }
  sessionAffinity: ClientIP
  sessionAffinityConfig: { clientIP: { timeoutSeconds: 60 } }
  internalTrafficPolicy: Local
`);
    const [a, b] = r.cluster.services;
    assert.equal(a.sessionAffinityTimeoutSeconds, 10800);
    assert.equal(a.externalTrafficPolicy, 'Local');
    assert.equal(a.internalTrafficPolicy, 'Cluster');
    assert.equal(b.sessionAffinityTimeoutSeconds, 60);
    assert.equal(b.internalTrafficPolicy, 'Local');
    assert.equal(b.externalTrafficPolicy, undefined);
    assert.equal(b.clusterIP, 'None');
  });

  test('externalTrafficPolicy on a Service no one reaches from outside is an error, as the API server says', () => {
    const svc = (spec: string) => `apiVersion: v1
kind: Service
metadata: { name: internal, namespace: shop }
spec:
  selector: { app: a }
  ports: [{ port: 80 }]
${spec}
`;
    const d = oneError(load(svc('  externalTrafficPolicy: Local')), { code: 'invalid-external-traffic-policy', field: 'spec.externalTrafficPolicy', object: 'Service shop/internal' });
    assert.match(d.message, /may only be set for externally-accessible services .*ClusterIP/);
    assert.equal(errors(load(svc('  type: ExternalName\n  externalTrafficPolicy: Cluster'))).length, 1);
    // With external IPs a ClusterIP Service is reachable from outside: accepted.
    assert.deepEqual(errors(load(svc('  externalTrafficPolicy: Local\n  externalIPs: [203.0.113.7]'))), []);
    assert.deepEqual(errors(load(svc('  type: LoadBalancer\n  externalTrafficPolicy: Local'))), []);
  });

  test('node InternalIP', () => {
    const r = load(`apiVersion: v1
kind: Node
metadata: { name: n1, labels: { zone: a } }
status: { addresses: [{ type: Hostname, address: n1 }, { type: InternalIP, address: 192.168.0.10 }] }
`);
    assert.deepEqual(r.cluster.nodes, [{ name: 'n1', labels: { zone: 'a' }, ip: '192.168.0.10', source: { file: F, line: 1 } }]);
  });
});

// --------------------------------------------------------------------- NetworkPolicy

describe('NetworkPolicy normalization', () => {
  test('policyTypes defaulting as the API server does', () => {
    const types = (spec: string) => load(np(spec)).cluster.networkPolicies[0].policyTypes;
    assert.deepEqual(types('  podSelector: {}\n'), ['Ingress']);
    assert.deepEqual(types('  podSelector: {}\n  ingress: [{}]\n'), ['Ingress']);
    assert.deepEqual(types('  podSelector: {}\n  egress: [{}]\n'), ['Ingress', 'Egress']);
    // An empty egress list is not "at least one rule".
    assert.deepEqual(types('  podSelector: {}\n  egress: []\n'), ['Ingress']);
    // Explicit empty policyTypes is defaulted too (len == 0 in SetDefaults_NetworkPolicy).
    assert.deepEqual(types('  podSelector: {}\n  policyTypes: []\n  egress: [{}]\n'), ['Ingress', 'Egress']);
    assert.deepEqual(types('  podSelector: {}\n  policyTypes: [Egress]\n'), ['Egress']);
    assert.deepEqual(types('  podSelector: {}\n  policyTypes: [Egress, Ingress]\n'), ['Ingress', 'Egress']);
  });

  test('rules, peers, ports: defaults and the selector / ipBlock union', () => {
    const r = load(
      np(`  podSelector:
    matchLabels: { app: web }
  ingress:
    - {}
    - from:
        - podSelector: {}
        - namespaceSelector: { matchLabels: { team: a } }
        - namespaceSelector: {}
          podSelector:
            matchExpressions: [{ key: role, operator: Exists }]
        - ipBlock: { cidr: 10.0.0.0/8, except: [10.1.0.0/16] }
        - ipBlock: { cidr: "2001:db8::/32" }
      ports:
        - {}
        - { port: 80 }
        - { port: http, protocol: UDP }
        - { port: 8000, endPort: 8080, protocol: SCTP }
  egress:
    - to: []
      ports: []
`),
    );
    assert.deepEqual(errors(r), []);
    const p = r.cluster.networkPolicies[0];
    assert.deepEqual(p.podSelector, { matchLabels: { app: 'web' } });
    assert.deepEqual(p.ingress[0], { peers: [], ports: [] });
    assert.deepEqual(p.ingress[1].peers, [
      { kind: 'selector', podSelector: {} },
      { kind: 'selector', namespaceSelector: { matchLabels: { team: 'a' } } },
      { kind: 'selector', namespaceSelector: {}, podSelector: { matchExpressions: [{ key: 'role', operator: 'Exists' }] } },
      { kind: 'ipBlock', ipBlock: { cidr: '10.0.0.0/8', except: ['10.1.0.0/16'] } },
      { kind: 'ipBlock', ipBlock: { cidr: '2001:db8::/32', except: [] } },
    ]);
    assert.deepEqual(p.ingress[1].ports, [
      { protocol: 'TCP' },
      { protocol: 'TCP', port: 80 },
      { protocol: 'UDP', port: 'http' },
      { protocol: 'SCTP', port: 8000, endPort: 8080 },
    ]);
    assert.deepEqual(p.egress, [{ peers: [], ports: [] }]);
    assert.deepEqual(p.policyTypes, ['Ingress', 'Egress']);
    assert.equal(p.mode, 'enforce');
    assert.deepEqual(p.source, { file: F, line: 1 });
  });

  test('null values mean absent, as in Go decoding', () => {
    const r = load(np('  podSelector:\n  ingress:\n    - from:\n      ports:\n'));
    assert.deepEqual(errors(r), []);
    const p = r.cluster.networkPolicies[0];
    assert.deepEqual([p.podSelector, p.ingress], [{}, [{ peers: [], ports: [] }]]);
  });

  test('host bits in ipBlock are accepted, masked, with a warning', () => {
    const r = load(np('  podSelector: {}\n  egress:\n    - to:\n        - ipBlock: { cidr: 10.0.0.7/24 }\n'));
    const d = only(r, 'cidr-host-bits');
    assert.deepEqual([d.severity, d.line, d.field], ['warning', 10, 'spec.egress[0].to[0].ipBlock.cidr']);
    assert.equal(r.cluster.networkPolicies[0].egress[0].peers[0].kind === 'ipBlock' && r.cluster.networkPolicies[0].egress[0].peers[0].ipBlock.cidr, '10.0.0.0/24');
  });

  test('rules of a direction missing from policyTypes draw a notice', () => {
    const r = load(np('  podSelector: {}\n  policyTypes: [Ingress]\n  egress: [{}]\n'));
    assert.equal(only(r, 'ignored-rules').field, 'spec.egress');
  });

  test('weir.dev/mode annotation', () => {
    const mode = (v: string) => load(np('  podSelector: {}\n', `  annotations: { weir.dev/mode: ${v} }\n`));
    assert.equal(mode('audit').cluster.networkPolicies[0].mode, 'audit');
    assert.equal(mode('enforce').cluster.networkPolicies[0].mode, 'enforce');
    const bad = mode('dry-run');
    oneError(bad, { code: 'invalid-mode', line: 6, field: 'metadata.annotations["weir.dev/mode"]', object: 'NetworkPolicy shop/p' });
    // Kept, never dropped (dropping fails open): whether it is enforced is in doubt.
    assert.equal(bad.cluster.networkPolicies[0].doubt?.reason, 'NetworkPolicy shop/p metadata.annotations["weir.dev/mode"]');
  });
});

describe('NetworkPolicy validation', () => {
  const ingressPeer = (peer: string) => np(`  podSelector: {}\n  ingress:\n    - from:\n        - ${peer}\n`);
  const ingressPort = (port: string) => np(`  podSelector: {}\n  ingress:\n    - ports:\n        - ${port}\n`);
  const P = 'NetworkPolicy shop/p';

  test('an invalid policy is kept with its invalid part marked in doubt (never an allow), valid ones load', () => {
    const r = load(np('  podSelector: {}\n  ingress:\n    - from: [{}]\n') + '---\n' + np('  podSelector: {}\n').replace('name: p', 'name: q'));
    assert.equal(errors(r).length, 1);
    assert.deepEqual(r.cluster.networkPolicies.map((p) => p.name), ['p', 'q']);
    assert.equal(r.cluster.networkPolicies[0].ingress[0].doubt?.reason, 'NetworkPolicy shop/p spec.ingress[0].from[0]');
    assert.equal(r.cluster.networkPolicies[1].ingress.length, 0);
  });

  test('unknown fields name the field and its line', () => {
    oneError(load(np('  podSelector: {}\n  ingres: []\n')), { code: 'unknown-field', field: 'spec.ingres', line: 8, object: P });
    oneError(load(ingressPeer('{ podSelector: {}, namespaceSelectr: {} }')), { code: 'unknown-field', field: 'spec.ingress[0].from[0].namespaceSelectr', line: 10 });
    oneError(load(ingressPeer('{ podSelector: { matchLabel: { a: b } } }')), { code: 'unknown-field', field: 'spec.ingress[0].from[0].podSelector.matchLabel' });
    oneError(load(np('  podSelector: {}\n') + 'extra: 1\n'), { code: 'unknown-field', field: 'extra', line: 8 });
  });

  test('wrong types', () => {
    oneError(load(np('  podSelector: {}\n  ingress: {}\n')), { code: 'invalid-type', field: 'spec.ingress', line: 8 });
    oneError(load(np('  podSelector: []\n')), { code: 'invalid-type', field: 'spec.podSelector', line: 7 });
    oneError(load(np('  podSelector: {}\n  policyTypes: [Ingres]\n')), { code: 'invalid-value', field: 'spec.policyTypes[0]' });
    oneError(load(np('  podSelector: {}\n  policyTypes: [Ingress, Ingress]\n')), { code: 'invalid-policy-types', field: 'spec.policyTypes' });
    oneError(load(ingressPort('{ port: 80.5 }')), { code: 'invalid-type', field: 'spec.ingress[0].ports[0].port' });
    oneError(load(ingressPort('{ port: [80] }')), { code: 'invalid-type', field: 'spec.ingress[0].ports[0].port' });
    oneError(load(`apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: { name: p }\n`), { code: 'missing-field', field: 'spec', object: 'NetworkPolicy default/p' });
  });

  test('peers: nothing set, ipBlock with a selector', () => {
    const none = oneError(load(ingressPeer('{}')), { code: 'invalid-peer', field: 'spec.ingress[0].from[0]', line: 10, object: P });
    assert.match(none.message, /must specify a peer/);
    const both = oneError(load(ingressPeer('{ ipBlock: { cidr: 10.0.0.0/8 }, podSelector: {} }')), { code: 'invalid-peer', field: 'spec.ingress[0].from[0]' });
    assert.match(both.message, /may not specify more than 1 peer type/);
    // namespaceSelector + podSelector together is the legitimate AND form.
    assert.deepEqual(errors(load(ingressPeer('{ namespaceSelector: {}, podSelector: {} }'))), []);
  });

  test('CIDRs: IPv4 and IPv6 syntax, except must be valid and inside cidr', () => {
    const block = (b: string) => load(ingressPeer(`ipBlock: ${b}`));
    for (const bad of ['10.0.0.0', '10.0.0.0/33', '10.0.0/8', '256.0.0.0/8', '010.0.0.0/8', 'fe80::1%eth0/64', '2001:db8::/129', '2001:db8:::/32', '1:2:3:4:5:6:7:8:9/64', 'x/8', '10.0.0.0/08']) {
      oneError(block(`{ cidr: "${bad}" }`), { code: 'invalid-cidr', field: 'spec.ingress[0].from[0].ipBlock.cidr', line: 10 });
    }
    for (const good of ['0.0.0.0/0', '::/0', '2001:db8::/32', '::ffff:10.0.0.0/104', '1:2:3:4:5:6:7:8/128', 'fd00::/8']) {
      assert.deepEqual(errors(block(`{ cidr: "${good}" }`)), [], good);
    }
    oneError(block('{ cidr: 10.0.0.0/8, except: [10.0.0.0/33] }'), { code: 'invalid-cidr', field: 'spec.ingress[0].from[0].ipBlock.except[0]' });
    oneError(block('{ cidr: 10.0.0.0/8, except: [10.1.0.0/16, 11.0.0.0/16] }'), { code: 'except-outside-cidr', field: 'spec.ingress[0].from[0].ipBlock.except[1]' });
    oneError(block('{ cidr: 10.0.0.0/8, except: [10.0.0.0/8] }'), { code: 'except-outside-cidr' });
    oneError(block('{ cidr: 10.0.0.0/8, except: ["fd00::/16"] }'), { code: 'except-outside-cidr' });
    oneError(block('{ except: [10.0.0.0/16] }'), { code: 'missing-field', field: 'spec.ingress[0].from[0].ipBlock.cidr' });
  });

  test('label selectors: operators, values, key and value syntax', () => {
    const sel = (s: string) => load(np(`  podSelector: ${s}\n`));
    const F0 = 'spec.podSelector.matchExpressions[0]';
    oneError(sel('{ matchExpressions: [{ key: a, operator: In }] }'), { code: 'invalid-selector', field: `${F0}.values`, line: 7 });
    oneError(sel('{ matchExpressions: [{ key: a, operator: NotIn, values: [] }] }'), { code: 'invalid-selector', field: `${F0}.values` });
    oneError(sel('{ matchExpressions: [{ key: a, operator: Exists, values: [x] }] }'), { code: 'invalid-selector', field: `${F0}.values` });
    oneError(sel('{ matchExpressions: [{ key: a, operator: DoesNotExist, values: [x] }] }'), { code: 'invalid-selector', field: `${F0}.values` });
    oneError(sel('{ matchExpressions: [{ key: a, operator: Equals, values: [x] }] }'), { code: 'invalid-value', field: `${F0}.operator` });
    oneError(sel('{ matchExpressions: [{ key: "a b", operator: Exists }] }'), { code: 'invalid-selector', field: `${F0}.key` });
    oneError(sel('{ matchExpressions: [{ key: a, operator: In, values: ["-x"] }] }'), { code: 'invalid-selector', field: `${F0}.values[0]` });
    oneError(sel('{ matchLabels: { "Example.com/app": x } }'), { code: 'invalid-selector', field: 'spec.podSelector.matchLabels["Example.com/app"]' });
    oneError(sel(`{ matchLabels: { ${'k'.repeat(64)}: x } }`), { code: 'invalid-selector' });
    oneError(sel('{ matchLabels: { a/b/c: x } }'), { code: 'invalid-selector' });
    oneError(sel('{ matchLabels: { app: "x_" } }'), { code: 'invalid-selector', field: 'spec.podSelector.matchLabels.app' });
    for (const ok of ['{ matchLabels: { app.kubernetes.io/name: web, empty: "" } }', '{ matchExpressions: [{ key: example.com/a_b.c-d, operator: NotIn, values: [x, A.b-c_1] }] }']) {
      assert.deepEqual(errors(sel(ok)), [], ok);
    }
  });

  test('ports: range, named port syntax, protocol, endPort rules', () => {
    const F0 = 'spec.ingress[0].ports[0]';
    oneError(load(ingressPort('{ port: 0 }')), { code: 'invalid-port', field: `${F0}.port`, line: 10, object: P });
    oneError(load(ingressPort('{ port: 65536 }')), { code: 'invalid-port', field: `${F0}.port` });
    assert.deepEqual(errors(load(ingressPort('{ port: 65535 }'))), []);
    oneError(load(ingressPort('{ protocol: ICMP, port: 1 }')), { code: 'invalid-value', field: `${F0}.protocol` });
    oneError(load(ingressPort('{ protocol: tcp, port: 1 }')), { code: 'invalid-value', field: `${F0}.protocol` });
    oneError(load(ingressPort('{ endPort: 90 }')), { code: 'endport-without-port', field: `${F0}.endPort` });
    oneError(load(ingressPort('{ port: http, endPort: 90 }')), { code: 'endport-named-port', field: `${F0}.endPort` });
    oneError(load(ingressPort('{ port: 90, endPort: 80 }')), { code: 'invalid-endport', field: `${F0}.endPort` });
    oneError(load(ingressPort('{ port: 90, endPort: 70000 }')), { code: 'invalid-port', field: `${F0}.endPort` });
    assert.deepEqual(errors(load(ingressPort('{ port: 90, endPort: 90 }'))), []);
    for (const bad of ['"80"', 'Http', 'a-very-long-port-name', '-http', 'http-', 'ht--tp', 'ht_tp', '""']) {
      oneError(load(ingressPort(`{ port: ${bad} }`)), { code: 'invalid-port-name', field: `${F0}.port` });
    }
    for (const ok of ['http', 'serve-80-tcp', 'h2c', 'a']) assert.deepEqual(errors(load(ingressPort(`{ port: ${ok} }`))), [], ok);
  });

  test('duplicate policies: error, first kept', () => {
    const r = load(np('  podSelector: {}\n') + '---\n' + np('  podSelector: { matchLabels: { a: b } }\n'));
    oneError(r, { code: 'duplicate-object', line: 9, object: P });
    assert.deepEqual(r.cluster.networkPolicies[0].podSelector, {});
  });
});

// -------------------------------------------------------- AdminNetworkPolicy / Baseline

const anp = (spec: string, name = 'a') => `apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata:
  name: ${name}
spec:
${spec}`;
const banp = (spec: string, name = 'default') => `apiVersion: policy.networking.k8s.io/v1alpha1
kind: BaselineAdminNetworkPolicy
metadata:
  name: ${name}
spec:
${spec}`;

describe('AdminNetworkPolicy', () => {
  test('normalization: subject, peers, ports union, rule names, order by priority', () => {
    const r = load(
      anp(`  priority: 20
  subject:
    pods:
      namespaceSelector: { matchLabels: { tier: data } }
      podSelector: {}
  ingress:
    - name: pass-mon
      action: Pass
      from:
        - namespaces: { matchLabels: { monitoring: "true" } }
        - pods: { namespaceSelector: {}, podSelector: { matchLabels: { app: x } } }
      ports:
        - portNumber: { port: 80 }
        - portNumber: { protocol: UDP, port: 53 }
        - namedPort: http
        - portRange: { start: 9000, end: 9100 }
  egress:
    - action: Deny
      to:
        - nodes: { matchLabels: { role: control-plane } }
        - networks: [10.0.0.0/8, "fd00::/8"]
`, 'second') +
        '---\n' +
        anp('  priority: 3\n  subject: { namespaces: {} }\n', 'first'),
    );
    assert.deepEqual(errors(r), []);
    const [first, second] = r.cluster.adminNetworkPolicies;
    assert.deepEqual([first.name, first.priority, first.subject, first.ingress, first.egress], ['first', 3, { namespaces: {} }, [], []]);
    assert.equal(second.priority, 20);
    assert.deepEqual(second.subject, { pods: { namespaceSelector: { matchLabels: { tier: 'data' } }, podSelector: {} } });
    assert.deepEqual(second.ingress, [
      {
        name: 'pass-mon',
        action: 'Pass',
        peers: [
          { kind: 'namespaces', namespaces: { matchLabels: { monitoring: 'true' } } },
          { kind: 'pods', pods: { namespaceSelector: {}, podSelector: { matchLabels: { app: 'x' } } } },
        ],
        ports: [
          { kind: 'portNumber', protocol: 'TCP', port: 80 },
          { kind: 'portNumber', protocol: 'UDP', port: 53 },
          { kind: 'namedPort', name: 'http' },
          { kind: 'portRange', protocol: 'TCP', start: 9000, end: 9100 },
        ],
      },
    ]);
    assert.deepEqual(second.egress, [
      {
        name: 'egress[0]',
        action: 'Deny',
        peers: [
          { kind: 'nodes', nodes: { matchLabels: { role: 'control-plane' } } },
          { kind: 'networks', networks: ['10.0.0.0/8', 'fd00::/8'] },
        ],
      },
    ]);
    assert.equal(second.mode, 'enforce');
    assert.deepEqual(second.source, { file: F, line: 1 });
  });

  test('validation', () => {
    const O = 'AdminNetworkPolicy a';
    oneError(load(anp('  priority: 1001\n  subject: { namespaces: {} }\n')), { code: 'invalid-priority', field: 'spec.priority', line: 6, object: O });
    oneError(load(anp('  priority: -1\n  subject: { namespaces: {} }\n')), { code: 'invalid-priority' });
    assert.deepEqual(errors(load(anp('  priority: 0\n  subject: { namespaces: {} }\n'))), []);
    assert.deepEqual(errors(load(anp('  priority: 1000\n  subject: { namespaces: {} }\n'))), []);
    oneError(load(anp('  subject: { namespaces: {} }\n')), { code: 'missing-field', field: 'spec.priority' });
    oneError(load(anp('  priority: 1\n  subject: {}\n')), { code: 'invalid-subject', field: 'spec.subject', line: 7 });
    oneError(load(anp('  priority: 1\n  subject: { namespaces: {}, pods: { namespaceSelector: {}, podSelector: {} } }\n')), { code: 'invalid-subject' });
    // A pods selector the API requires but whose meaning is plain: read as {} with a warning.
    const lenient = load(anp('  priority: 1\n  subject: { pods: { podSelector: { matchLabels: { app: a } } } }\n'));
    assert.deepEqual(errors(lenient), []);
    assert.deepEqual([only(lenient, 'anp-selector-missing').severity, only(lenient, 'anp-selector-missing').field], ['warning', 'spec.subject.pods']);
    assert.deepEqual(lenient.cluster.adminNetworkPolicies[0].subject, { pods: { namespaceSelector: {}, podSelector: { matchLabels: { app: 'a' } } } });
    const rule = (r: string) => load(anp(`  priority: 1\n  subject: { namespaces: {} }\n${r}`));
    oneError(rule('  ingress:\n    - action: Drop\n      from: [{ namespaces: {} }]\n'), { code: 'invalid-value', field: 'spec.ingress[0].action', line: 9 });
    oneError(rule('  ingress:\n    - action: Allow\n      from: [{}]\n'), { code: 'invalid-peer', field: 'spec.ingress[0].from[0]', line: 10 });
    oneError(rule('  ingress:\n    - action: Allow\n      from: [{ namespaces: {}, pods: { namespaceSelector: {}, podSelector: {} } }]\n'), { code: 'invalid-peer' });
    // networks/nodes are egress-only peers: the field is unknown in ingress (and then no peer is set).
    const ingressNetworks = rule('  ingress:\n    - action: Allow\n      from: [{ networks: [10.0.0.0/8] }]\n');
    assert.deepEqual(errors(ingressNetworks).map((d) => [d.code, d.field]), [
      ['unknown-field', 'spec.ingress[0].from[0].networks'],
      ['invalid-peer', 'spec.ingress[0].from[0]'],
    ]);
    oneError(rule('  ingress:\n    - action: Allow\n      from: []\n'), { code: 'out-of-range', field: 'spec.ingress[0].from' });
    oneError(rule('  ingress:\n    - action: Allow\n'), { code: 'missing-field', field: 'spec.ingress[0].from' });
    const hostBits = rule('  egress:\n    - action: Allow\n      to: [{ networks: [10.0.0.1/8] }]\n');
    assert.deepEqual(errors(hostBits), []);
    assert.deepEqual([only(hostBits, 'cidr-host-bits').severity, only(hostBits, 'cidr-host-bits').field], ['warning', 'spec.egress[0].to[0].networks[0]']);
    assert.deepEqual(hostBits.cluster.adminNetworkPolicies[0].egress[0].peers, [{ kind: 'networks', networks: ['10.0.0.0/8'] }]);
    oneError(rule('  egress:\n    - action: Allow\n      to: [{ networks: [bogus] }]\n'), { code: 'invalid-cidr', field: 'spec.egress[0].to[0].networks[0]' });
    oneError(rule('  egress:\n    - action: Allow\n      to: [{ nodes: {}, networks: [10.0.0.0/8] }]\n'), { code: 'invalid-peer', field: 'spec.egress[0].to[0]' });
    const port = (p: string) => rule(`  ingress:\n    - action: Allow\n      from: [{ namespaces: {} }]\n      ports:\n        - ${p}\n`);
    oneError(port('{}'), { code: 'invalid-port', field: 'spec.ingress[0].ports[0]', line: 12 });
    oneError(port('{ namedPort: http, portNumber: { port: 80 } }'), { code: 'invalid-port', field: 'spec.ingress[0].ports[0]' });
    oneError(port('{ portNumber: { port: 0 } }'), { code: 'invalid-port', field: 'spec.ingress[0].ports[0].portNumber.port' });
    oneError(port('{ portNumber: { port: 80, protocol: ICMP } }'), { code: 'invalid-value', field: 'spec.ingress[0].ports[0].portNumber.protocol' });
    oneError(port('{ namedPort: Web_1 }'), { code: 'invalid-port-name', field: 'spec.ingress[0].ports[0].namedPort' });
    oneError(port('{ portRange: { start: 90, end: 80 } }'), { code: 'invalid-port-range', field: 'spec.ingress[0].ports[0].portRange.end' });
    oneError(port('{ portRange: { start: 80, end: 80 } }'), { code: 'invalid-port-range' });
    oneError(port('{ portRange: { start: 80, end: 70000 } }'), { code: 'invalid-port', field: 'spec.ingress[0].ports[0].portRange.end' });
    oneError(port('{ portNumber: { port: 80, endPort: 90 } }'), { code: 'unknown-field', field: 'spec.ingress[0].ports[0].portNumber.endPort' });
  });

  test('mode annotation and cluster scope', () => {
    const r = load(anp('  priority: 1\n  subject: { namespaces: {} }\n').replace('  name: a\n', '  name: a\n  namespace: ignored\n  annotations: { weir.dev/mode: audit }\n'));
    assert.deepEqual(errors(r), []);
    assert.equal(r.cluster.adminNetworkPolicies[0].mode, 'audit');
    // Cluster-scoped: no namespace is implied.
    assert.deepEqual(r.cluster.namespaces, []);
  });
});

describe('BaselineAdminNetworkPolicy', () => {
  test('normalization', () => {
    const r = load(banp('  subject: { namespaces: {} }\n  ingress:\n    - action: Deny\n      from: [{ namespaces: {} }]\n'));
    assert.deepEqual(errors(r), []);
    assert.deepEqual(r.cluster.baselineAdminNetworkPolicy, {
      name: 'default',
      subject: { namespaces: {} },
      ingress: [{ name: 'ingress[0]', action: 'Deny', peers: [{ kind: 'namespaces', namespaces: {} }] }],
      egress: [],
      mode: 'enforce',
      source: { file: F, line: 1 },
    });
  });

  test('validation: name must be default, no Pass, no priority, singleton', () => {
    oneError(load(banp('  subject: { namespaces: {} }\n', 'other')), { code: 'invalid-name', field: 'metadata.name', line: 4, object: 'BaselineAdminNetworkPolicy other' });
    oneError(load(banp('  subject: { namespaces: {} }\n  ingress:\n    - action: Pass\n      from: [{ namespaces: {} }]\n')), {
      code: 'invalid-value',
      field: 'spec.ingress[0].action',
      line: 8,
    });
    oneError(load(banp('  priority: 1\n  subject: { namespaces: {} }\n')), { code: 'unknown-field', field: 'spec.priority' });
    const two = load(banp('  subject: { namespaces: {} }\n') + '---\n' + banp('  subject: { namespaces: {} }\n'));
    oneError(two, { code: 'duplicate-object', line: 8, object: 'BaselineAdminNetworkPolicy default' });
    assert.ok(two.cluster.baselineAdminNetworkPolicy);
  });
});

// ------------------------------------------------------------------------------ cidr

describe('cidr helpers', () => {
  test('parse, canonicalize, subset', () => {
    const c = (s: string) => {
      const p = parseCIDR(s);
      assert.ok(p, s);
      return p;
    };
    assert.equal(canonicalCIDR(c('10.1.2.3/16')), '10.1.0.0/16');
    assert.equal(canonicalCIDR(c('2001:db8::1/32')), '2001:db8::/32');
    assert.equal(isStrictSubset(c('10.1.0.0/16'), c('10.0.0.0/8')), true);
    assert.equal(isStrictSubset(c('10.0.0.0/8'), c('10.0.0.0/8')), false);
    assert.equal(isStrictSubset(c('11.0.0.0/16'), c('10.0.0.0/8')), false);
    assert.equal(isStrictSubset(c('::/1'), c('::/0')), true);
  });
});

// -------------------------------------------------------------------------- examples

describe('examples', () => {
  const root = join(dirname(fileURLToPath(import.meta.url)), '..', 'examples');

  test('demo loads without errors or warnings', async () => {
    const r = await loadManifests([join(root, 'demo')]);
    assert.deepEqual(r.diagnostics.filter((d) => d.severity !== 'notice'), []);
    const c = r.cluster;
    assert.deepEqual(c.namespaces.map((n) => n.name), ['data', 'ingress', 'kube-system', 'ops', 'shop']);
    assert.ok(c.workloads.length >= 10);
    assert.ok(c.networkPolicies.length >= 12);
    assert.equal(c.adminNetworkPolicies.length, 1);
    assert.equal(c.baselineAdminNetworkPolicy?.name, 'default');
    assert.ok(c.networkPolicies.some((p) => p.mode === 'audit'));
    assert.ok(c.networkPolicies.some((p) => p.egress.some((r) => r.ports.some((pt) => pt.endPort !== undefined))));
    assert.ok(c.networkPolicies.some((p) => p.egress.some((r) => r.peers.some((pe) => pe.kind === 'ipBlock' && pe.ipBlock.except.length > 0))));
    for (const s of c.services) assert.ok(c.pods.some((p) => p.namespace === s.namespace && Object.entries(s.selector ?? {}).every(([k, v]) => p.labels[k] === v)), s.name);
  });

  test('e2e model: x/y/z × a/b/c, TCP+UDP on 80 and 81 with upstream port names', async () => {
    const r = await loadManifests([join(root, 'e2e-model')]);
    assert.deepEqual(errors(r), []);
    const c = r.cluster;
    assert.deepEqual(c.namespaces.map((n) => n.labels), ['x', 'y', 'z'].map((n) => ({ ns: n, 'kubernetes.io/metadata.name': n })));
    assert.deepEqual(c.pods.map((p) => `${p.namespace}/${p.name}`), ['x/a', 'x/b', 'x/c', 'y/a', 'y/b', 'y/c', 'z/a', 'z/b', 'z/c']);
    for (const p of c.pods) {
      assert.deepEqual(p.labels, { pod: p.name });
      assert.deepEqual(p.ports, [
        { name: 'serve-80-tcp', port: 80, protocol: 'TCP' },
        { name: 'serve-80-udp', port: 80, protocol: 'UDP' },
        { name: 'serve-81-tcp', port: 81, protocol: 'TCP' },
        { name: 'serve-81-udp', port: 81, protocol: 'UDP' },
      ]);
    }
    assert.equal(c.networkPolicies.length, 0);
  });

  test('bad examples: every file yields errors, nothing valid leaks through', async () => {
    const r = await loadManifests([join(root, 'bad')]);
    const files = new Set(errors(r).map((d) => d.file?.split('/').pop()));
    assert.deepEqual([...files].sort(), ['bad-admin.yaml', 'bad-cidr.yaml', 'bad-ports.yaml', 'broken.yaml', 'typo-in-policy.yaml']);
    // Invalid policies are kept for what is certain, every one of them marked in doubt.
    const policies = [...r.cluster.networkPolicies, ...r.cluster.adminNetworkPolicies];
    assert.ok(policies.length > 0);
    for (const p of policies) assert.ok(p.doubt !== undefined || [...p.ingress, ...p.egress].some((x) => x.doubt !== undefined), p.name);
  });
});
