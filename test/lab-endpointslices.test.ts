// suite: lab (needs root: real network namespaces and nftables; `npm run test:lab`)
// EndpointSlices declared in manifests, with real packets: Services without selector whose
// slices name lab pods' addresses are DNATed to them by the real agents; a not-ready endpoint
// gets no connection; the NetworkPolicy of the pod behind the slice holds after DNAT.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { loadManifestText } from '../src/load/index.js';
import type { Cluster } from '../src/model/cluster.js';
import { labUp, labExec } from '../src/lab/index.js';
import { labEnforcer } from '../src/lab/agent.js';
import { netnsSkipReason } from './helpers/netns.js';
import { scratchLab } from './helpers/lab.js';

const skip = await netnsSkipReason();

const PODS = `apiVersion: v1
kind: Namespace
metadata: { name: shop }
---
apiVersion: v1
kind: Pod
metadata: { name: db, namespace: shop, labels: { app: db } }
spec: { containers: [{ name: c, ports: [{ containerPort: 8080 }] }] }
---
apiVersion: v1
kind: Pod
metadata: { name: guard, namespace: shop, labels: { app: guarded } }
spec: { containers: [{ name: c, ports: [{ containerPort: 8080 }] }] }
---
apiVersion: v1
kind: Pod
metadata: { name: client, namespace: shop, labels: { app: client } }
spec: { containers: [{ name: c, ports: [{ containerPort: 9 }] }] }
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: guard-from-nobody, namespace: shop }
spec: { podSelector: { matchLabels: { app: guarded } }, policyTypes: [Ingress] }
`;

function slices(db: string, guard: string): string {
  const svc = (name: string, ip: string) => `---
apiVersion: v1
kind: Service
metadata: { name: ${name}, namespace: shop }
spec: { clusterIP: ${ip}, ports: [{ port: 80, targetPort: 8080 }] }
`;
  const slice = (name: string, service: string, endpoints: string) => `---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: ${name}, namespace: shop, labels: { kubernetes.io/service-name: ${service} } }
addressType: IPv4
ports: [{ port: 8080, protocol: TCP }]
endpoints: ${endpoints}
`;
  return [
    svc('alias', '10.96.0.81'),
    slice('alias-1', 'alias', `[{ addresses: [${db}] }]`),
    svc('guarded', '10.96.0.82'),
    slice('guarded-1', 'guarded', `[{ addresses: [${guard}] }]`),
    svc('mixed', '10.96.0.83'),
    slice('mixed-1', 'mixed', `[{ addresses: [${db}], conditions: { ready: true } }, { addresses: [${guard}], conditions: { ready: false } }]`),
  ].join('');
}

const CLIENT = `
const net = require('node:net');
const [ip, n] = [process.argv[1], Number(process.argv[2])];
const counts = {}; const errors = {};
function one() {
  return new Promise((resolve) => {
    let data = ''; let done = false;
    const s = net.connect({ host: ip, port: 80 });
    const finish = (err) => { if (done) return; done = true; s.destroy();
      if (err) errors[err] = (errors[err] ?? 0) + 1; else { const id = data.trim(); counts[id] = (counts[id] ?? 0) + 1; }
      resolve(); };
    s.setTimeout(800, () => finish('timeout'));
    s.setEncoding('utf8'); s.on('data', (d) => (data += d));
    s.on('error', (e) => finish(e.code)); s.on('end', () => finish(data ? undefined : 'empty'));
  });
}
(async () => { for (let i = 0; i < n; i++) await one(); process.stdout.write(JSON.stringify({ counts, errors })); })();
`;

async function connect(dir: string, ip: string, n: number): Promise<{ counts: Record<string, number>; errors: Record<string, number> }> {
  const r = await labExec(dir, 'shop/client', [process.execPath, '-e', CLIENT, ip, String(n)]);
  return JSON.parse(r.stdout) as { counts: Record<string, number>; errors: Record<string, number> };
}

describe('EndpointSlices in the kernel (lab, root)', { skip }, () => {
  test('a Service without selector reaches the pods its slice names; not-ready excluded; policy after DNAT', async (t) => {
    const { prefix, dir } = await scratchLab(t);
    const first = loadManifestText(PODS, 'pods.yaml');
    assert.deepEqual(first.diagnostics.filter((d) => d.severity === 'error'), []);
    let desired: Cluster = first.cluster;
    const enforcer = labEnforcer(() => desired);
    const state = await labUp(desired, { prefix, dir, nodes: 1, ...enforcer });
    const ipOf = (key: string) => state.pods.find((p) => p.key === key)?.ip as string;
    // The slices name the addresses the lab gave the pods, as a real cluster's would.
    const withSlices = loadManifestText(PODS + slices(ipOf('shop/db'), ipOf('shop/guard')), 'slices.yaml');
    assert.deepEqual(withSlices.diagnostics.filter((d) => d.severity !== 'notice'), []);
    desired = withSlices.cluster;
    await enforcer.syncAll(state);

    const alias = await connect(dir, '10.96.0.81', 10);
    assert.deepEqual(alias, { counts: { 'shop/db': 10 }, errors: {} });
    // The not-ready endpoint (guard) gets nothing.
    const mixed = await connect(dir, '10.96.0.83', 20);
    assert.deepEqual(mixed, { counts: { 'shop/db': 20 }, errors: {} });
    // guard admits nobody: the ingress filter on the real pod drops what the Service sends there.
    const guarded = await connect(dir, '10.96.0.82', 3);
    assert.deepEqual(guarded, { counts: {}, errors: { timeout: 3 } });
  });
});
