// suite: lab (needs root: real network namespaces, nftables and packets; `npm run test:lab`)
// NodePorts on every node, as kube-proxy does them, with real packets: the external host
// reaches an endpoint on node-0 through node-1's NodePort and back (externalTrafficPolicy
// Cluster masquerades to node-1's address, which conntrack on node-0 shows); Local keeps the
// client's address, answers on the endpoint's node and drops (a timeout, not a reset) on a
// node without a local endpoint, except for that node's pods (kube-proxy's short-circuit); a backend's deny against a node's address holds for
// masqueraded traffic entering that node — on another node and on its own node (judged after
// SNAT); a pod reaching itself through its Service (hairpin) is answered; and `lab probe`'s
// Service cells agree with the analyzer.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { loadManifestText } from '../src/load/index.js';
import type { Cluster } from '../src/model/cluster.js';
import { labUp, runInNetns } from '../src/lab/index.js';
import { labEnforcer } from '../src/lab/agent.js';
import { labCluster } from '../src/lab/cluster.js';
import { compareServiceProbe, formatServiceComparison } from '../src/lab/compare-services.js';
import { labServices, probeServices, serviceTargets } from '../src/lab/probe-services.js';
import { PolicyEngine } from '../src/policy/index.js';
import { netnsSkipReason } from './helpers/netns.js';
import { scratchLab } from './helpers/lab.js';

const skip = await netnsSkipReason();

const pod = (name: string, node: string, app: string): string => `apiVersion: v1
kind: Pod
metadata: { name: ${name}, namespace: np, labels: { app: ${app} } }
spec: { nodeName: ${node}, containers: [{ name: c, ports: [{ name: http, containerPort: 8080 }] }] }
---
`;
const service = (name: string, app: string, nodePort: number, extra = ''): string => `apiVersion: v1
kind: Service
metadata: { name: ${name}, namespace: np }
spec: { type: NodePort, selector: { app: ${app} }, ports: [{ port: 80, targetPort: http, nodePort: ${nodePort} }]${extra} }
---
`;
// Node addresses in the lab: node-i is 172.31.255.(10+i) on the underlay.
const except = (name: string, app: string, ip: string): string => `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: ${name}, namespace: np }
spec:
  podSelector: { matchLabels: { app: ${app} } }
  policyTypes: [Ingress]
  ingress: [{ from: [{ ipBlock: { cidr: 0.0.0.0/0, except: [${ip}/32] } }] }]
---
`;

const MANIFESTS = `apiVersion: v1
kind: Namespace
metadata: { name: np }
---
${pod('web-0', 'node-0', 'web')}${pod('keep-1', 'node-1', 'keep')}${pod('own-0', 'node-0', 'own')}${pod('far-0', 'node-0', 'far')}${service('web', 'web', 30080)}${service('keep', 'keep', 30081, ', externalTrafficPolicy: Local')}${service('own', 'own', 30082)}${service('far', 'far', 30083)}${except('own-not-from-node-0', 'own', '172.31.255.10')}${except('far-not-from-node-1', 'far', '172.31.255.11')}${pod('nodes-0', 'node-0', 'nodes')}${service('nodes', 'nodes', 30084)}apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: nodes-only, namespace: np }
spec:
  podSelector: { matchLabels: { app: nodes } }
  policyTypes: [Ingress]
  ingress: [{ from: [{ ipBlock: { cidr: 172.31.255.0/24 } }] }]
`;

/** `n` sequential connections to ip:port; one line per outcome (the endpoint's identity, or the error). */
const CLIENT = `
const net = require('node:net');
const [ip, port, n] = process.argv.slice(1);
function one() {
  return new Promise((resolve) => {
    const t0 = performance.now(); let d = ''; const s = net.connect({ host: ip, port: Number(port) });
    s.setTimeout(1500, () => { s.destroy(); resolve('timeout'); });
    s.on('data', (x) => (d += x)); s.on('error', (e) => resolve(e.code)); s.on('end', () => resolve(d.trim() || 'empty'));
  });
}
(async () => { for (let i = 0; i < Number(n); i++) console.log(await one()); })();
`;

describe('NodePorts on every node (lab, root)', { skip }, () => {
  test('Cluster masquerades to the node entered, Local drops without a local endpoint, policy sees the node, hairpin', async (t) => {
    const { prefix, dir } = await scratchLab(t);
    const loaded = loadManifestText(MANIFESTS, 'nodeport.yaml');
    assert.deepEqual(loaded.diagnostics.filter((d) => d.severity === 'error'), []);
    const desired: Cluster = loaded.cluster;
    const enforcer = labEnforcer(() => desired);
    const state = await labUp(desired, { prefix, dir, nodes: 2, ...enforcer });
    await enforcer.syncAll(state);
    const [n0, n1] = state.nodes;
    assert.ok(n0 && n1 && state.external.node === 'node-0');
    assert.deepEqual([n0.underlayIp, n1.underlayIp], ['172.31.255.10', '172.31.255.11'], 'the node addresses the policies name');
    const podIp = (key: string) => state.pods.find((p) => p.key === key)?.ip as string;
    const from = async (netns: string, ip: string, port: number, n: number): Promise<string[]> =>
      (await runInNetns(netns, [process.execPath, '-e', CLIENT, ip, String(port), String(n)], undefined, { timeoutMs: 60_000 })).stdout.trim().split('\n');
    const ext = (ip: string, port: number, n = 3) => from(state.external.netns, ip, port, n);

    // 1. Cluster: node-1's NodePort reaches web-0 on node-0 and the reply comes back through
    //    node-1 (it answers the external host from 172.31.255.11:30080); node-0's works too.
    assert.deepEqual(await ext(n1.underlayIp, 30080), ['np/web-0', 'np/web-0', 'np/web-0']);
    assert.deepEqual(await ext(n0.underlayIp, 30080), ['np/web-0', 'np/web-0', 'np/web-0']);
    //    web-0's node saw node-1's address as the source, not the external host's.
    const ct = await runInNetns(n0.netns, ['conntrack', '-L', '-p', 'tcp', '--dport', '8080', '-d', podIp('np/web-0')], undefined, { allowFailure: true });
    assert.match(ct.stdout, /src=172\.31\.255\.11 dst=10\.244\.\d+\.\d+ sport=\d+ dport=8080/, ct.stdout + ct.stderr);
    assert.doesNotMatch(ct.stdout, /src=203\.0\.113\.10 dst=10\.244/, 'the external address never reaches the backend');

    // 2. Local: answered on keep-1's node with the client's address kept; dropped (a timeout,
    //    as kube-proxy drops, not a reset) on node-0, which has no keep endpoint.
    assert.deepEqual(await ext(n1.underlayIp, 30081), ['np/keep-1', 'np/keep-1', 'np/keep-1']);
    //    (The reply tuple: keep-1 answers the external host itself, no SNAT in between.)
    const kept = await runInNetns(n1.netns, ['conntrack', '-L', '-p', 'tcp', '--reply-src', podIp('np/keep-1')], undefined, { allowFailure: true });
    assert.match(kept.stdout, /dport=30081 src=10\.244\.\d+\.\d+ dst=203\.0\.113\.10 sport=8080/, kept.stdout + kept.stderr);
    assert.deepEqual(await ext(n0.underlayIp, 30081, 2), ['timeout', 'timeout']);
    //    …but a pod on node-0 is short-circuited to every endpoint, as kube-proxy does.
    const podNs = (key: string) => state.pods.find((p) => p.key === key)?.netns as string;
    assert.deepEqual(await from(podNs('np/far-0'), n0.underlayIp, 30081, 2), ['np/keep-1', 'np/keep-1']);

    // 3. Policy sees the node entered. own-0 (node-0) refuses node-0's address: through node-0
    //    itself (same node: judged after SNAT, in postrouting) it is denied, through node-1
    //    answered. far-0 (node-0) refuses node-1's address: the other way round.
    assert.deepEqual(await ext(n0.underlayIp, 30082, 2), ['timeout', 'timeout']);
    assert.deepEqual(await ext(n1.underlayIp, 30082, 2), ['np/own-0', 'np/own-0']);
    assert.deepEqual(await ext(n1.underlayIp, 30083, 2), ['timeout', 'timeout']);
    assert.deepEqual(await ext(n0.underlayIp, 30083, 2), ['np/far-0', 'np/far-0']);
    //    nodes-0 (node-0) admits only node addresses: the external client's own address is never
    //    judged at the backend, on either node (on its own node the ingress waits for the SNAT).
    assert.deepEqual(await ext(n0.underlayIp, 30084, 2), ['np/nodes-0', 'np/nodes-0']);
    assert.deepEqual(await ext(n1.underlayIp, 30084, 2), ['np/nodes-0', 'np/nodes-0']);

    // 4. Hairpin: web-0 through its own ClusterIP lands on itself and is answered (masqueraded).
    const services = labServices(labCluster(desired, state));
    const clusterIp = (key: string) => (services.find((s) => s.key === key)?.address as { ip: string }).ip;
    const web0 = state.pods.find((p) => p.key === 'np/web-0');
    assert.deepEqual(await from(web0?.netns as string, clusterIp('np/web'), 80, 2), ['np/web-0', 'np/web-0']);

    // 5. `lab probe`: every NodePort on every node from the external host, and the analyzer's
    //    expectation (the node's address for Cluster, the client for Local) agrees with each.
    const targets = serviceTargets(state, services);
    assert.deepEqual(targets.filter((x) => x.frontend === 'node-port').map((x) => x.id).sort(), ['np/far', 'np/keep', 'np/nodes', 'np/own', 'np/web'].flatMap((s) => [`svc/${s}@node-0`, `svc/${s}@node-1`]));
    const result = await probeServices(state, targets, { timeoutMs: 1500 });
    const cmp = compareServiceProbe(new PolicyEngine(labCluster(desired, state)), state, services, targets, result);
    assert.deepEqual(cmp.disagreements, [], formatServiceComparison(cmp));
    const cell = (to: string) => cmp.cells.find((c) => c.from === 'external' && c.to === to);
    assert.deepEqual([cell('svc/np/own@node-0')?.expected, cell('svc/np/own@node-1')?.expected], ['Denied', 'Allowed']);
    assert.deepEqual([cell('svc/np/far@node-0')?.expected, cell('svc/np/far@node-1')?.expected], ['Allowed', 'Denied']);
    assert.deepEqual([cell('svc/np/keep@node-0')?.expected, cell('svc/np/keep@node-1')?.expected], ['Denied', 'Allowed']);
    assert.equal(cell('svc/np/web@node-1')?.observed, 'Allowed');
    // Hairpin cells are compared now.
    assert.ok(cmp.cells.some((c) => c.from === 'np/web-0' && c.to === 'svc/np/web' && !c.skipped && c.observed === 'Allowed'));
  });
});
