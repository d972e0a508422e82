// suite: lab (needs root: real network namespaces and nftables; `npm run test:lab`)
// Services in the kernel with real packets: a two-node lab whose agents render the policy
// filter and the service NAT sections into one table per node; a client pod connects to ClusterIPs. Checks the
// spread over endpoints (chi-square), a 90/10 split, ClientIP affinity until its timeout, an
// immediate reject without endpoints, a weight change through the element fast path that
// keeps an established connection, and NetworkPolicy (ingress and egress) judged after DNAT.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { loadManifestText } from '../src/load/index.js';
import type { Cluster } from '../src/model/cluster.js';
import { labUp, labExec, runInNetns, type LabState } from '../src/lab/index.js';
import { labEnforcer } from '../src/lab/agent.js';
import { labCluster } from '../src/lab/cluster.js';
import type { Ruleset } from '../src/render/index.js';
import { clearBehaviour, setBehaviour } from '../src/lab/behaviour.js';
import { planServices, serviceWeightPatch, type ServicesInput } from '../src/render/services.js';
import { patchScript } from '../src/render/script.js';
import { netnsSkipReason } from './helpers/netns.js';
import { scratchLab } from './helpers/lab.js';

const skip = await netnsSkipReason();

const MANIFESTS = `apiVersion: v1
kind: Namespace
metadata: { name: shop }
---
${['web-0', 'web-1', 'web-2', 'guard-0']
  .map(
    (name) => `apiVersion: v1
kind: Pod
metadata: { name: ${name}, namespace: shop, labels: { app: ${name.startsWith('web') ? 'web' : 'guarded'}, pod: ${name}${name === 'web-1' || name === 'web-2' ? ', sticky: "yes"' : ''} } }
spec: { containers: [{ name: c, ports: [{ name: http, containerPort: 8080 }] }] }
---
`,
  )
  .join('')}apiVersion: v1
kind: Pod
metadata: { name: client, namespace: shop, labels: { app: client } }
spec: { containers: [{ name: c, ports: [{ containerPort: 9 }] }] }
---
apiVersion: v1
kind: Pod
metadata: { name: jailed, namespace: shop, labels: { app: jailed } }
spec: { containers: [{ name: c, ports: [{ containerPort: 9 }] }] }
---
# jailed may only talk to web-0: through the \`web\` Service, only the connections sent there pass.
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: jailed-to-web-0, namespace: shop }
spec:
  podSelector: { matchLabels: { app: jailed } }
  policyTypes: [Egress]
  egress: [{ to: [{ podSelector: { matchLabels: { pod: web-0 } } }] }]
---
apiVersion: v1
kind: Service
metadata: { name: web, namespace: shop }
spec: { clusterIP: 10.96.0.80, selector: { app: web }, ports: [{ port: 80, targetPort: http }] }
---
apiVersion: v1
kind: Service
metadata: { name: split, namespace: shop, annotations: { weir.dev/weights: "pod/web-0: 9, pod/web-1: 1" } }
spec: { clusterIP: 10.96.0.90, selector: { app: web }, ports: [{ port: 80, targetPort: http }] }
---
apiVersion: v1
kind: Service
metadata: { name: sticky, namespace: shop }
spec:
  clusterIP: 10.96.0.91
  selector: { sticky: "yes" }
  ports: [{ port: 80, targetPort: http }]
  sessionAffinity: ClientIP
  sessionAffinityConfig: { clientIP: { timeoutSeconds: 1 } }
---
apiVersion: v1
kind: Service
metadata: { name: empty, namespace: shop }
spec: { clusterIP: 10.96.0.99, selector: { app: nothing }, ports: [{ port: 80 }, { name: dns, port: 53, protocol: UDP }] }
---
apiVersion: v1
kind: Service
metadata: { name: guarded, namespace: shop }
spec: { clusterIP: 10.96.0.70, selector: { app: guarded }, ports: [{ port: 80, targetPort: http }] }
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: guard-from-nobody, namespace: shop }
spec: { podSelector: { matchLabels: { app: guarded } }, policyTypes: [Ingress] }
`;

/** `n` connections, `concurrency` at a time, to ip:port from inside the pod; replies counted by identity. */
const CLIENT = `
const net = require('node:net');
const [ip, port, n, concurrency, timeoutMs] = process.argv.slice(1).map((x, i) => (i === 0 ? x : Number(x)));
const counts = {}; const errors = {}; const errorMs = []; let next = 0;
function one() {
  return new Promise((resolve) => {
    const t0 = performance.now(); let data = ''; let done = false;
    const s = net.connect({ host: ip, port });
    const finish = (err) => { if (done) return; done = true; s.destroy();
      if (err) { errors[err] = (errors[err] ?? 0) + 1; errorMs.push(performance.now() - t0); }
      else { const id = data.trim(); counts[id] = (counts[id] ?? 0) + 1; }
      resolve(); };
    s.setTimeout(timeoutMs, () => finish('timeout'));
    s.setEncoding('utf8'); s.on('data', (d) => (data += d));
    s.on('error', (e) => finish(e.code)); s.on('end', () => finish(data ? undefined : 'empty'));
  });
}
async function worker() { while (next < n) { next++; await one(); } }
Promise.all(Array.from({ length: concurrency }, worker)).then(() => process.stdout.write(JSON.stringify({ counts, errors, errorMs })));
`;

interface ClientResult {
  counts: Record<string, number>;
  errors: Record<string, number>;
  errorMs: number[];
}

async function connect(dir: string, ip: string, n: number, concurrency = 16, timeoutMs = 1000, from = 'shop/client'): Promise<ClientResult> {
  const r = await labExec(dir, from, [process.execPath, '-e', CLIENT, ip, '80', String(n), String(concurrency), String(timeoutMs)]);
  return JSON.parse(r.stdout) as ClientResult;
}

/** Pearson's chi-square statistic of counts against equal expectation. */
function chiSquare(counts: readonly number[]): number {
  const total = counts.reduce((a, b) => a + b, 0);
  const expected = total / counts.length;
  return counts.reduce((s, c) => s + (c - expected) ** 2 / expected, 0);
}

describe('services in the kernel (lab, root)', { skip }, () => {
  test('ClusterIP spread, 90/10, affinity, no-endpoint reject, live weights, policy after DNAT', async (t) => {
    const { prefix, dir } = await scratchLab(t);
    const loaded = loadManifestText(MANIFESTS, 'services.yaml');
    assert.deepEqual(loaded.diagnostics.filter((d) => d.severity === 'error'), []);
    const desired: Cluster = loaded.cluster;
    // The real agents (src/agent via the lab's enforcer): policy filter and service NAT in one
    // table per node, applied before any pod is attached.
    const enforcer = labEnforcer(() => desired);
    const state = await labUp(desired, { prefix, dir, nodes: 2, ...enforcer });
    await enforcer.syncAll(state);
    const servicesOf = (st: LabState, node: string, extra: Partial<ServicesInput> = {}): ServicesInput => ({
      ...planServices(labCluster(desired, st), [], node),
      ...extra,
    });
    const clientNode = state.pods.find((p) => p.key === 'shop/client')?.node as string;
    const web = ['shop/web-0', 'shop/web-1', 'shop/web-2'];

    // 1. Equal spread over the three endpoints (both nodes), 1,200 connections.
    const spread = await connect(dir, '10.96.0.80', 1200);
    assert.deepEqual(spread.errors, {});
    const counts = web.map((k) => spread.counts[k] ?? 0);
    assert.equal(counts.reduce((a, b) => a + b, 0), 1200);
    // χ² with 2 degrees of freedom: 13.8 is the 0.1 % critical value.
    assert.ok(chiSquare(counts) < 13.8, `uneven spread ${JSON.stringify(spread.counts)}`);

    // 2. 90/10 by annotation. A weighted Service takes 100 interleaved slots in turn in the
    //    kernel (`numgen inc`, one counter per rule): 1,000 connections are ten whole cycles, so
    //    exactly 900/100 (weighted random would land there with a chance of about 4 %).
    const split = await connect(dir, '10.96.0.90', 1000);
    assert.deepEqual(split.errors, {});
    assert.deepEqual({ 'shop/web-0': split.counts['shop/web-0'], 'shop/web-1': split.counts['shop/web-1'] }, { 'shop/web-0': 900, 'shop/web-1': 100 }, JSON.stringify(split));

    // 3. Affinity: one client sticks to one endpoint (of two) until 1 s without connections passes.
    const stuck = await connect(dir, '10.96.0.91', 40, 1);
    assert.equal(Object.keys(stuck.counts).length, 1, JSON.stringify(stuck));
    const first = Object.keys(stuck.counts)[0];
    let moved = false;
    for (let round = 0; round < 12 && !moved; round++) {
      await sleep(1600);
      const again = await connect(dir, '10.96.0.91', 20, 1);
      assert.equal(Object.keys(again.counts).length, 1, `not sticky within a round: ${JSON.stringify(again)}`);
      moved = Object.keys(again.counts)[0] !== first;
    }
    assert.ok(moved, 'after the timeout a new choice is made (1/2 chance per round, 12 rounds)');

    // 4. No endpoint: refused at once (TCP reset), never a hang (a drop would wait out the
    //    1 s timeout). The median allows for a client process on a loaded machine.
    const empty = await connect(dir, '10.96.0.99', 20, 1);
    assert.deepEqual(empty.counts, {});
    assert.deepEqual(empty.errors, { ECONNREFUSED: 20 });
    const median = [...empty.errorMs].sort((a, b) => a - b)[10];
    assert.ok(median < 100, `reject took ${median} ms (median)`);
    //    UDP too: an ICMP port unreachable, which the client sees as ECONNREFUSED, not a silence.
    const udp = await labExec(dir, 'shop/client', [
      process.execPath,
      '-e',
      `const s=require('node:dgram').createSocket('udp4');const t0=performance.now();s.on('error',e=>{console.log(e.code, Math.round(performance.now()-t0));s.close()});s.connect(53,'10.96.0.99',()=>s.send('x'));setTimeout(()=>{console.log('timeout');process.exit(0)},2000)`,
    ]);
    assert.match(udp.stdout, /^ECONNREFUSED \d+$/m, `UDP to a Service without endpoints: ${udp.stdout}`);

    // 5. Policy after DNAT: guard-0 admits nobody, so its Service times out (dropped by the
    //    ingress filter on the real pod and port), while the other Services answered above.
    const guarded = await connect(dir, '10.96.0.70', 4, 4, 500);
    assert.deepEqual(guarded.counts, {});
    assert.deepEqual(guarded.errors, { timeout: 4 });
    //    Egress too: jailed may reach only web-0, so through \`web\` (three endpoints) exactly the
    //    connections sent to web-0 pass — judged on the real destination, not the ClusterIP.
    const jailed = await connect(dir, '10.96.0.80', 30, 10, 500, 'shop/jailed');
    assert.deepEqual(Object.keys(jailed.counts), ['shop/web-0'], JSON.stringify(jailed));
    assert.ok((jailed.errors.timeout ?? 0) > 0 && (jailed.counts['shop/web-0'] ?? 0) > 0, JSON.stringify(jailed));
    assert.equal((jailed.errors.timeout ?? 0) + (jailed.counts['shop/web-0'] ?? 0), 30, JSON.stringify(jailed));

    // 6. Weights change by elements only; a connection established before keeps its endpoint.
    //    Both split endpoints answer after 1.5 s, so the connection is open across the change.
    const netnsOf = (key: string): string => state.pods.find((p) => p.key === key)?.netns as string;
    for (const k of ['shop/web-0', 'shop/web-1']) await setBehaviour(dir, netnsOf(k), { delayMs: 1500 });
    await sleep(300);
    const hold = labExec(dir, 'shop/client', [
      process.execPath,
      '-e',
      `const s=require('node:net').connect({host:'10.96.0.90',port:80});let d='';s.on('data',x=>d+=x);s.on('error',e=>console.log(e.code));s.on('end',()=>console.log(d.trim()))`,
    ]);
    await sleep(300);
    const nodeNs = state.nodes.find((n) => n.name === clientNode)?.netns as string;
    const web0 = state.pods.find((p) => p.key === 'shop/web-0');
    // web-0 fails its health check: every new connection of \`split\` goes to web-1.
    const patched = serviceWeightPatch(enforcer.agents.get(clientNode)?.applier.applied as Ruleset, servicesOf(state, clientNode, { health: new Map([[`${web0?.ip}:8080`, false]]) }));
    assert.ok(patched?.patch, 'a weight change is an element patch');
    const script = patchScript(patched, patched.patch);
    assert.match(script.script, /^(delete|add) element inet weir lb_split_80_/m);
    assert.doesNotMatch(script.script, /chain|flush|table inet weir \{/, script.script);
    await runInNetns(nodeNs, ['nft', '-f', '-'], script.script);
    assert.match((await hold).stdout, /^shop\/web-[01]$/m, 'the connection made before the change completed');
    for (const k of ['shop/web-0', 'shop/web-1']) await clearBehaviour(dir, netnsOf(k));
    await sleep(300);
    const after = await connect(dir, '10.96.0.90', 200);
    assert.deepEqual(after.counts, { 'shop/web-1': 200 });
  });
});
