// Exposure analysis: one case per kind of exposure — the entire cluster, namespaces by label,
// pods by label in any namespace, pods that do not exist yet in a namespace, external
// addresses, and workloads no policy protects — in np-guard's section format; and the lint
// warning for a cluster-wide exposure nobody here uses.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { connectivityList, renderTxt } from '../src/analyze/index.js';
import { exposure, exposureJson, renderExposureMd, renderExposureTxt } from '../src/analyze/exposure.js';
import { lint } from '../src/analyze/lint.js';
import { loadManifestText } from '../src/load/index.js';
import { analyze, PolicyEngine } from '../src/policy/index.js';

const workload = (ns: string, name: string, port: number) => `apiVersion: apps/v1
kind: Deployment
metadata: { name: ${name}, namespace: ${ns} }
spec:
  template:
    metadata: { labels: { app: ${name} } }
    spec: { containers: [{ name: c, image: i, ports: [{ containerPort: ${port} }] }] }
`;
const policy = (ns: string, name: string, spec: string) => `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: ${name}, namespace: ${ns} }
spec:
${spec}`;

function run(docs: string[]): { text: string; engine: PolicyEngine; cluster: ReturnType<typeof loadManifestText>['cluster'] } {
  const { cluster } = loadManifestText(docs.join('---\n'), 'x.yaml');
  const engine = new PolicyEngine(cluster);
  const result = analyze(engine);
  const lines = connectivityList(engine, result);
  const x = exposure(engine, result, lines);
  return { text: `${renderTxt(lines)}\n${renderExposureTxt(x)}`, engine, cluster };
}

const FRONTEND = policy(
  'default',
  'frontend',
  `  podSelector: { matchLabels: { app: frontend } }
  policyTypes: [Ingress, Egress]
  ingress:
    - ports: [{ port: 8080 }]
  egress:
    - to: [{ podSelector: { matchLabels: { app: backend } } }]
      ports: [{ port: 9090 }]
    - to: [{ namespaceSelector: { matchLabels: { team: dns } }, podSelector: { matchLabels: { k8s-app: kube-dns } } }]
      ports: [{ port: 53, protocol: UDP }]
`,
);
const BACKEND = policy(
  'default',
  'backend',
  `  podSelector: { matchLabels: { app: backend } }
  policyTypes: [Ingress, Egress]
  ingress:
    - from: [{ namespaceSelector: {} }]
      ports: [{ port: 9090 }]
    - from: [{ namespaceSelector: { matchLabels: { env: prod } } }]
    - from: [{ namespaceSelector: {}, podSelector: { matchLabels: { role: monitoring } } }]
      ports: [{ port: 9100 }]
    - from: [{ podSelector: { matchLabels: { app: backend-new } } }]
      ports: [{ port: 7000 }]
  egress:
    - to: [{ ipBlock: { cidr: 192.0.2.0/24 } }]
      ports: [{ port: 443 }]
`,
);

describe('weir analyze --exposure', () => {
  it('every kind of exposure, in np-guard\'s section format', () => {
    const { text } = run([workload('default', 'frontend', 8080), workload('default', 'backend', 9090), FRONTEND, BACKEND]);
    assert.deepEqual(text.split('\n'), [
      '0.0.0.0-255.255.255.255[External] => default/frontend[Deployment] : TCP 8080',
      'default/backend[Deployment] => 192.0.2.0-192.0.2.255[External] : TCP 443',
      'default/frontend[Deployment] => default/backend[Deployment] : TCP 9090',
      '',
      'Exposure Analysis Result:',
      'Egress Exposure:',
      // External addresses.
      'default/backend[Deployment]  \t=> \t192.0.2.0-192.0.2.255[External] : TCP 443',
      // Pods by label in namespaces by label, none of which exists.
      'default/frontend[Deployment] \t=> \t[namespace with {team=dns}]/[pod with {k8s-app=kube-dns}] : UDP 53',
      '',
      'Ingress Exposure:',
      // Pods by label in any namespace.
      'default/backend[Deployment]  \t<= \t[all namespaces]/[pod with {role=monitoring}] : TCP 9090,9100',
      // Namespaces by label.
      'default/backend[Deployment]  \t<= \t[namespace with {env=prod}]/[all pods] : All Connections',
      // Pods that do not exist yet in the policy's own namespace.
      'default/backend[Deployment]  \t<= \tdefault/[pod with {app=backend-new}] : TCP 7000,9090',
      // The entire cluster.
      'default/backend[Deployment]  \t<= \tentire-cluster : TCP 9090',
      'default/frontend[Deployment] \t<= \t0.0.0.0-255.255.255.255[External] : TCP 8080',
      'default/frontend[Deployment] \t<= \tentire-cluster : TCP 8080',
      '',
    ]);
  });

  it('workloads no policy protects: exposed both ways to the entire cluster and listed', () => {
    const { text } = run([workload('shop', 'web', 80)]);
    assert.deepEqual(text.split('\n'), [
      '0.0.0.0-255.255.255.255[External] => shop/web[Deployment] : All Connections',
      'shop/web[Deployment] => 0.0.0.0-255.255.255.255[External] : All Connections',
      '',
      'Exposure Analysis Result:',
      'Egress Exposure:',
      'shop/web[Deployment] \t=> \t0.0.0.0-255.255.255.255[External] : All Connections',
      'shop/web[Deployment] \t=> \tentire-cluster : All Connections',
      '',
      'Ingress Exposure:',
      'shop/web[Deployment] \t<= \t0.0.0.0-255.255.255.255[External] : All Connections',
      'shop/web[Deployment] \t<= \tentire-cluster : All Connections',
      '',
      'Workloads not protected by network policies:',
      'shop/web[Deployment] is not protected on Egress',
      'shop/web[Deployment] is not protected on Ingress',
      '',
    ]);
  });

  it('a pod selector that real pods already stand for is not an exposure', () => {
    const allowWeb = policy('shop', 'db', '  podSelector: { matchLabels: { app: db } }\n  ingress:\n    - from: [{ podSelector: { matchLabels: { app: web } } }]\n');
    const { text } = run([workload('shop', 'web', 80), workload('shop', 'db', 5432), allowWeb]);
    assert.ok(!/<= \tshop\/\[pod with \{app=web\}\]/.test(text), text);
    assert.ok(!/shop\/db\[Deployment\] +\t<= \tentire-cluster/.test(text), text);
  });

  it('md and json', () => {
    const { cluster } = loadManifestText([workload('default', 'frontend', 8080), workload('default', 'backend', 9090), FRONTEND, BACKEND].join('---\n'), 'x.yaml');
    const engine = new PolicyEngine(cluster);
    const result = analyze(engine);
    const x = exposure(engine, result, connectivityList(engine, result));
    const md = renderExposureMd(x).split('\n');
    assert.deepEqual(md.slice(0, 5), ['## Exposure Analysis Result:', '### Egress Exposure:', '| src | dst | conn |', '|-----|-----|------|', '| default/backend[Deployment] | 192.0.2.0-192.0.2.255[External] | TCP 443 |']);
    assert.ok(md.includes('| default/backend[Deployment] | entire-cluster | TCP 9090 |'));
    const j = exposureJson(x) as { ingressExposure: { src: string; dst: string; conn: string }[] };
    assert.ok(j.ingressExposure.some((e) => e.src === 'entire-cluster' && e.dst === 'default/frontend[Deployment]' && e.conn === 'TCP 8080'));
  });
});

describe('weir lint: exposed to the entire cluster on a port nobody here uses', () => {
  it('warns for frontend (8080: nobody connects), not for backend (9090: frontend does)', () => {
    const { engine, cluster } = run([workload('default', 'frontend', 8080), workload('default', 'backend', 9090), FRONTEND, BACKEND]);
    const found = lint(engine, cluster).filter((f) => f.code === 'exposed-to-cluster');
    assert.deepEqual(
      found.map((f) => [f.severity, f.object, f.message.split(',')[0]]),
      [['warning', 'Deployment default/frontend', 'exposed to the entire cluster on TCP 8080']],
    );
  });
});
