// Kubernetes source normalization: `npx tsx bench/kube-normalize.ts [--pods 5000] [--policies 2500]`.
// API objects (as a list or watch delivers them: parsed JSON) → the model, through the manifest
// loader's one-object entry (src/source/kube/normalize.ts); prints µs per pod and per policy.

import { parseArgs } from 'node:util';
import { normalizeKubeObject } from '../src/source/kube/normalize.js';

const { values } = parseArgs({ options: { pods: { type: 'string', default: '5000' }, policies: { type: 'string', default: '2500' } } });
const PODS = Number(values.pods);
const POLICIES = Number(values.policies);

const pods = Array.from({ length: PODS }, (_, i) => ({
  metadata: { name: `web-5d4f8-${i}`, namespace: `ns-${i % 50}`, resourceVersion: String(i + 1), labels: { app: `web-${i % 40}`, 'pod-template-hash': '5d4f8' }, ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: `web-${i % 40}-5d4f8`, uid: 'u', controller: true }] },
  spec: { nodeName: `node-${i % 10}`, containers: [{ name: 'main', image: 'app:1', ports: [{ name: 'http', containerPort: 8080, protocol: 'TCP' }] }] },
  status: { phase: 'Running', podIP: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, podIPs: [{ ip: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}` }] },
}));
const policies = Array.from({ length: POLICIES }, (_, i) => ({
  metadata: { name: `p-${i}`, namespace: `ns-${i % 50}`, resourceVersion: String(PODS + i + 1) },
  spec: {
    podSelector: { matchLabels: { app: `web-${i % 40}` } },
    policyTypes: ['Ingress', 'Egress'],
    ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: 'a' } }, podSelector: { matchLabels: { app: `web-${(i + 1) % 40}` } } }], ports: [{ protocol: 'TCP', port: 8080 }] }],
    egress: [{ to: [{ ipBlock: { cidr: '203.0.113.0/24', except: ['203.0.113.128/25'] } }], ports: [{ protocol: 'TCP', port: 443 }] }],
  },
}));

function time(label: string, fn: () => void, n: number): void {
  const t0 = performance.now();
  fn();
  const ms = performance.now() - t0;
  console.log(`${label}: ${n} in ${Math.round(ms)} ms, ${((ms * 1000) / n).toFixed(0)} µs each`);
}

// Warm-up (JIT), then measured.
for (const p of pods.slice(0, 200)) normalizeKubeObject('Pod', p, { node: 'node-0' });
time('pods', () => {
  for (const p of pods) if (!normalizeKubeObject('Pod', p, { node: 'node-0' }).ok) throw new Error('pod not read');
}, PODS);
time('NetworkPolicies', () => {
  for (const p of policies) if (!normalizeKubeObject('NetworkPolicy', p).ok) throw new Error('policy not read');
}, POLICIES);
