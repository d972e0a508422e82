// suite: lab (needs root: real network namespaces, nftables and conntrack; `npm run test:lab`)
// Services at run time with real packets: the agents' balancing loop (src/agent/lb-loop.ts)
// on a two-node lab with one location per node. A killed endpoint leaves the rotation (active
// probes) and returns when its server is back; `weir lb drain` moves every new connection off a
// location while connections established before finish on the drained endpoint; an adaptive
// Service moves weight off an endpoint the lab's server makes slow; `weir lb status` shows it.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { loadManifestText } from '../src/load/index.js';
import { labUp, labExec, readState } from '../src/lab/index.js';
import { labEnforcer } from '../src/lab/agent.js';
import { clearBehaviour, controlDir, setBehaviour } from '../src/lab/behaviour.js';
import { startServer, stopServer } from '../src/lab/processes.js';
import { LbLoop } from '../src/agent/lb-loop.js';
import type { LbNodeStatus, ServiceView } from '../src/agent/lb-status.js';
import { netnsSkipReason } from './helpers/netns.js';
import { scratchLab } from './helpers/lab.js';

const skip = await netnsSkipReason();
const WEIR = fileURLToPath(new URL('../bin/weir.js', import.meta.url));

const MANIFESTS = `apiVersion: v1
kind: Namespace
metadata: { name: shop }
---
apiVersion: v1
kind: Node
metadata: { name: node-0, labels: { weir.dev/location: eu } }
---
apiVersion: v1
kind: Node
metadata: { name: node-1, labels: { weir.dev/location: us } }
---
${[
  ['web-0', 'node-0'],
  ['web-1', 'node-0'],
  ['web-2', 'node-1'],
]
  .map(
    ([name, node]) => `apiVersion: v1
kind: Pod
metadata: { name: ${name}, namespace: shop, labels: { app: web, pod: ${name} } }
spec: { nodeName: ${node}, containers: [{ name: c, ports: [{ name: http, containerPort: 8080 }] }] }
---
`,
  )
  .join('')}apiVersion: v1
kind: Pod
metadata: { name: client, namespace: shop, labels: { app: client } }
spec: { nodeName: node-0, containers: [{ name: c, ports: [{ containerPort: 9 }] }] }
---
apiVersion: v1
kind: Service
metadata: { name: web, namespace: shop }
spec: { clusterIP: 10.96.0.80, selector: { app: web }, ports: [{ port: 80, targetPort: http }] }
---
apiVersion: v1
kind: Service
metadata: { name: smart, namespace: shop, annotations: { weir.dev/balancing: adaptive } }
spec: { clusterIP: 10.96.0.81, selector: { app: web }, ports: [{ port: 80, targetPort: http }] }
`;

/** `n` connections, `concurrency` at a time; replies counted by identity. */
const CLIENT = `
const net = require('node:net');
const [ip, port, n, concurrency, timeoutMs] = process.argv.slice(1).map((x, i) => (i === 0 ? x : Number(x)));
const counts = {}; const errors = {}; let next = 0;
function one() {
  return new Promise((resolve) => {
    let data = ''; let done = false;
    const s = net.connect({ host: ip, port });
    const finish = (err) => { if (done) return; done = true; s.destroy();
      if (err) errors[err] = (errors[err] ?? 0) + 1; else { const id = data.trim(); counts[id] = (counts[id] ?? 0) + 1; }
      resolve(); };
    s.setTimeout(timeoutMs, () => finish('timeout'));
    s.setEncoding('utf8'); s.on('data', (d) => (data += d));
    s.on('error', (e) => finish(e.code)); s.on('end', () => finish(data ? undefined : 'empty'));
  });
}
async function worker() { while (next < n) { next++; await one(); } }
Promise.all(Array.from({ length: concurrency }, worker)).then(() => process.stdout.write(JSON.stringify({ counts, errors })));
`;

interface ClientResult {
  counts: Record<string, number>;
  errors: Record<string, number>;
}

async function connect(dir: string, ip: string, n: number, concurrency = 8, timeoutMs = 4000): Promise<ClientResult> {
  const r = await labExec(dir, 'shop/client', [process.execPath, '-e', CLIENT, ip, '80', String(n), String(concurrency), String(timeoutMs)]);
  return JSON.parse(r.stdout) as ClientResult;
}

function weir(args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [WEIR, ...args], { encoding: 'utf8', timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
    });
  });
}

/** Polls the loop's last status until `pred` holds; returns the time it took. */
async function until(what: string, loop: LbLoop, pred: (s: LbNodeStatus) => boolean, timeoutMs = 15_000): Promise<number> {
  const t0 = Date.now();
  for (;;) {
    if (loop.last && pred(loop.last)) return Date.now() - t0;
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(loop.last?.services.map((s) => [s.service, s.endpoints.map((e) => [e.pod, e.weight, e.healthy])]))}`);
    await sleep(50);
  }
}

const weightOf = (s: LbNodeStatus, service: string, pod: string): number | undefined =>
  s.services.find((p) => p.service === service && p.frontend === 'cluster')?.endpoints.find((e) => e.pod === pod)?.weight;

describe('services at run time (lab, root)', { skip }, () => {
  test('health removes a killed endpoint and returns it; drain moves new connections only; adaptive moves weight off a slow endpoint', async (t) => {
    const { prefix, dir } = await scratchLab(t);
    const loaded = loadManifestText(MANIFESTS, 'lb-runtime.yaml');
    assert.deepEqual(loaded.diagnostics.filter((d) => d.severity === 'error'), []);
    const desired = loaded.cluster;
    const enforcer = labEnforcer(() => desired);
    const state = await labUp(desired, { prefix, dir, nodes: 2, ...enforcer });
    await enforcer.syncAll(state);
    const podOf = (key: string) => state.pods.find((p) => p.key === key);
    assert.equal(podOf('shop/web-2')?.node, 'node-1');
    assert.equal(podOf('shop/client')?.node, 'node-0');

    // One balancing loop per node, as `weir agent` runs them.
    const loops = state.nodes.map((n) => {
      const agent = enforcer.agents.get(n.name);
      assert.ok(agent);
      return new LbLoop({ node: n.name, netns: n.netns, dir, target: agent });
    });
    t.after(() => Promise.all(loops.map((l) => l.stop())));
    for (const l of loops) l.start();
    const loop = loops[0]; // the client's node: its kernel balances the client's connections
    await until('first status', loop, (s) => s.services.length > 0);

    // 1. Everything healthy: all three endpoints answer through the ClusterIP.
    const spread = await connect(dir, '10.96.0.80', 150);
    assert.deepEqual(spread.errors, {});
    assert.deepEqual(Object.keys(spread.counts).sort(), ['shop/web-0', 'shop/web-1', 'shop/web-2']);

    // 2. A killed endpoint leaves the rotation (goal: within 2 s; the bound here is generous,
    //    the measured time is printed), for every Service.
    const web2 = podOf('shop/web-2');
    assert.ok(web2?.serverPid);
    await stopServer(web2.serverPid);
    const removedMs = await until('web-2 out of the rotation', loop, (s) => weightOf(s, 'shop/web', 'shop/web-2') === 0 && weightOf(s, 'shop/smart', 'shop/web-2') === 0, 10_000);
    t.diagnostic(`killed endpoint removed after ${removedMs} ms`);
    const without = await connect(dir, '10.96.0.80', 150);
    assert.deepEqual(without.errors, {}, 'no connection reaches the dead endpoint');
    assert.equal(without.counts['shop/web-2'], undefined);
    // Back: the server restarts, two good probes later it is in again.
    const pid = await startServer({ netns: web2.netns, identity: web2.key, ports: web2.served, logDir: join(dir, 'logs'), controlDir: controlDir(dir) });
    t.after(() => stopServer(pid));
    const backMs = await until('web-2 back', loop, (s) => (weightOf(s, 'shop/web', 'shop/web-2') ?? 0) > 0, 10_000);
    t.diagnostic(`endpoint back after ${backMs} ms`);
    const back = await connect(dir, '10.96.0.80', 150);
    assert.ok((back.counts['shop/web-2'] ?? 0) > 0, JSON.stringify(back));

    // 3. Drain "us" (web-2's location) while 24 connections are held open by a 2.5 s reply delay:
    //    the ones on web-2 finish there, every new one goes to "eu".
    for (const k of ['shop/web-0', 'shop/web-1', 'shop/web-2']) await setBehaviour(dir, podOf(k)?.netns as string, { delayMs: 2500 });
    await sleep(300);
    const held = connect(dir, '10.96.0.80', 24, 24, 8000);
    await sleep(600);
    const drained = await weir(['lb', 'drain', 'us', '--lab-dir', dir]);
    assert.equal(drained.code, 0, drained.stderr);
    assert.match(drained.stdout, /drained us/);
    await until('us drained', loop, (s) => weightOf(s, 'shop/web', 'shop/web-2') === 0 && s.drained.includes('us'));
    const heldResult = await held;
    assert.deepEqual(heldResult.errors, {}, 'established connections survive the drain');
    assert.ok((heldResult.counts['shop/web-2'] ?? 0) > 0, `some held connection was on web-2 (1 - (2/3)^24): ${JSON.stringify(heldResult)}`);
    for (const k of ['shop/web-0', 'shop/web-1', 'shop/web-2']) await clearBehaviour(dir, podOf(k)?.netns as string);
    await sleep(300);
    const afterDrain = await connect(dir, '10.96.0.80', 150);
    assert.deepEqual(afterDrain.errors, {});
    assert.equal(afterDrain.counts['shop/web-2'], undefined, JSON.stringify(afterDrain));

    // `weir lb status` (table and JSON) from the agents' files.
    const json = await weir(['lb', 'status', '--lab-dir', dir, '--json']);
    const table = await weir(['lb', 'status', 'shop/web', '--lab-dir', dir]);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /shop\/web 10\.96\.0\.80:80\/TCP \(equal\)/);
    assert.match(table.stdout, /node-0\s+\S+:8080\s+shop\/web-2\s+us\s+0\s+drained/);
    const views = (JSON.parse(json.stdout) as { services: ServiceView[] }).services;
    assert.deepEqual(views.map((v) => v.service).sort(), ['shop/smart', 'shop/web']);
    const web = views.find((v) => v.service === 'shop/web') as ServiceView;
    assert.deepEqual(web.nodes.map((n) => n.node), ['node-0', 'node-1']);
    const onClientNode = web.nodes[0].endpoints;
    assert.ok(onClientNode.every((e) => typeof e.errorRate === 'number' && typeof e.inFlight === 'number' && e.location !== undefined));
    assert.ok(onClientNode.some((e) => (e.recentShare ?? 0) > 0), 'recent connections were counted from conntrack');
    assert.ok(web.nodes[0].history.length > 3, 'weights over time');

    const undrained = await weir(['lb', 'undrain', 'us', '--lab-dir', dir]);
    assert.equal(undrained.code, 0, undrained.stderr);
    await until('us undrained', loop, (s) => (weightOf(s, 'shop/web', 'shop/web-2') ?? 0) > 0);
    const again = await connect(dir, '10.96.0.80', 150);
    assert.ok((again.counts['shop/web-2'] ?? 0) > 0, JSON.stringify(again));

    // 4. Adaptive: web-0 becomes slow (200 ms per reply): the controller moves weight off it,
    //    to its lower bound at most (no endpoint starved); the equal Service is not touched.
    await setBehaviour(dir, podOf('shop/web-0')?.netns as string, { delayMs: 200 });
    await until('weight off the slow endpoint', loop, (s) => {
      const slow = weightOf(s, 'shop/smart', 'shop/web-0') ?? 1000;
      const fast = weightOf(s, 'shop/smart', 'shop/web-1') ?? 0;
      return slow > 0 && slow * 3 < fast;
    }, 20_000);
    const equalNow = loop.last?.services.find((p) => p.service === 'shop/web')?.endpoints.map((e) => e.weight);
    assert.ok(equalNow?.every((w) => w >= 333 && w <= 334), `equal weights untouched: ${JSON.stringify(equalNow)}`);
    const smart = await connect(dir, '10.96.0.81', 300, 8);
    assert.deepEqual(smart.errors, {});
    assert.ok((smart.counts['shop/web-0'] ?? 0) > 0, 'the slow endpoint still gets a trickle (not starved)');
    assert.ok((smart.counts['shop/web-0'] ?? 0) < (smart.counts['shop/web-1'] ?? 0), JSON.stringify(smart));
    const after = await weir(['lb', 'status', 'shop/smart', '--lab-dir', dir]);
    assert.equal(after.code, 0, after.stderr);
    t.diagnostic(`weir lb status shop/smart:\n${after.stdout}`);
    await clearBehaviour(dir, podOf('shop/web-0')?.netns as string);

    // The lab is intact (the loops and the agents wrote nothing into the state).
    assert.equal((await readState(dir))?.pods.length, 4);
  });
});
