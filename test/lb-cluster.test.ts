// suite: integration (a real weir server over HTTP, real balancing loops, the weir CLI; no root)
// Services at run time in cluster mode: agents push their balancing status to the server over
// the authenticated channel and get back the drains and the other nodes' probes; `weir lb
// drain|undrain --server` set drains on the server, which keeps them across a restart; an agent
// whose server is gone keeps its last view and its own probes.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createTcpServer, type Server as TcpServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { LbLoop, type LbTarget, type ServiceRuntime } from '../src/agent/lb-loop.js';
import { LbRemote } from '../src/agent/lb-remote.js';
import { LB_DRAINS_PATH, LB_STATUS_PATH } from '../src/agent/lb-protocol.js';
import { createServer } from '../src/api/server.js';
import { FlowMetrics } from '../src/flows/metrics.js';
import { FlowPipeline } from '../src/flows/pipeline.js';
import { SqliteFlowStore } from '../src/flows/sqlite-store.js';
import { emptyCluster, type Cluster } from '../src/model/cluster.js';
import { planServices, type ServicesInput } from '../src/render/services.js';
import { weir } from './helpers/cli.js';
import { clusterPort, lbNodeStatus } from './helpers/lb-status.js';

const TOKEN = 'lb-cluster-test-token-0123456789';

interface Running {
  app: FastifyInstance;
  store: SqliteFlowStore;
  pipeline: FlowPipeline;
  url: string;
}

async function startServer(dbFile: string, port = 0): Promise<Running> {
  const store = new SqliteFlowStore(dbFile);
  const metrics = new FlowMetrics();
  const pipeline = new FlowPipeline({ store, metrics, flushMs: 50 }).start();
  const app = createServer({ store, pipeline, metrics, access: { token: TOKEN, loopbackOnly: true } });
  await app.listen({ host: '127.0.0.1', port });
  const addr = app.server.address();
  if (addr === null || typeof addr === 'string') throw new Error('no address');
  return { app, store, pipeline, url: `http://127.0.0.1:${addr.port}` };
}

async function stopServer(r: Running): Promise<void> {
  await r.app.close();
  r.pipeline.stop();
  r.store.close();
}

const auth = { authorization: `Bearer ${TOKEN}` };

function until(what: string, check: () => boolean, ms = 15_000): Promise<void> {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const poll = (): void => {
      if (check()) resolve();
      else if (Date.now() - t0 > ms) reject(new Error(`timed out waiting for ${what}`));
      else setTimeout(poll, 50);
    };
    poll();
  });
}

describe('balancing status and drains through the server', () => {
  let dir: string;
  let server: Running;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'weir-lb-cluster-'));
    writeFileSync(join(dir, 'token'), `${TOKEN}\n`);
    server = await startServer(join(dir, 'flows.db'));
  });
  after(async () => {
    await stopServer(server).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  });

  test('a push needs the token; with it the status is served in /api/services and its probes reach the other nodes', async () => {
    const status = lbNodeStatus('node-a', [clusterPort('shop/web', { clusterIP: '10.96.0.80', port: 80, mode: 'adaptive' }, [{ key: '10.244.0.3:8080', node: 'node-a', weight: 1000, healthy: false, drained: false, errorRate: 1, inFlight: 0, connections: 0 }], [])]);
    const push = await fetch(`${server.url}${LB_STATUS_PATH}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(status) });
    assert.equal(push.status, 401, 'no token, no push');
    const bad = await fetch(`${server.url}${LB_STATUS_PATH}`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ ...status, services: 'x' }) });
    assert.equal(bad.status, 400);
    assert.match(((await bad.json()) as { message: string }).message, /field services/);

    const a = new LbRemote({ server: server.url, token: TOKEN, node: 'node-a' });
    const b = new LbRemote({ server: server.url, token: TOKEN, node: 'node-b' });
    try {
      await a.publish({ ...status, probes: { '10.244.0.3:8080': { healthy: false, ok: false, ms: 400, seq: 7 } } });
      assert.deepEqual(a.problems(), []);
      await b.publish(lbNodeStatus('node-b', []));
      const peers = await b.peers();
      assert.deepEqual(peers.map((p) => p.node), ['node-a'], 'a node does not get its own entry back');
      assert.deepEqual(peers[0].probes['10.244.0.3:8080'], { healthy: false, ok: false, ms: 400, seq: 7 });
      assert.ok(Date.now() - peers[0].measuredAt < 3000, 'measured recently, on the server clock');
      const views = (await (await fetch(`${server.url}/api/services`, { headers: auth })).json()) as { services: { service: string; nodes: { node: string; endpoints: { healthy: boolean }[] }[] }[] };
      const web = views.services.find((v) => v.service === 'shop/web');
      assert.deepEqual(web?.nodes.map((n) => [n.node, n.endpoints[0].healthy]), [['node-a', false]]);
      // A wrong token is refused with a sentence, and reported as the agent's problem.
      const wrong = new LbRemote({ server: server.url, token: 'not-the-token-at-all', node: 'node-c' });
      await wrong.publish(lbNodeStatus('node-c', []));
      assert.match(wrong.problems()[0], /unreachable.*401.*wrong token/);
      wrong.close();
    } finally {
      a.close();
      b.close();
    }
  });

  test('weir lb drain/undrain --server: set on the server, seen by agents, kept across a server restart', async () => {
    const drain = await weir(['lb', 'drain', 'eu-west', '--server', server.url, '--token-file', join(dir, 'token')]);
    assert.equal(drain.code, 0, drain.stderr);
    assert.match(drain.stdout, /drained eu-west; drained locations now: eu-west/);
    const noToken = await weir(['lb', 'drain', 'us', '--server', server.url]);
    assert.equal(noToken.code, 2);
    assert.match(noToken.stderr, /--token-file/);
    const badName = await weir(['lb', 'drain', 'not a location', '--server', server.url, '--token-file', join(dir, 'token')]);
    assert.equal(badName.code, 2);
    assert.match(badName.stderr, /not a location name/);
    const anonymous = await fetch(`${server.url}${LB_DRAINS_PATH}/us`, { method: 'PUT' });
    assert.equal(anonymous.status, 401);

    const agent = new LbRemote({ server: server.url, token: TOKEN, node: 'node-a' });
    try {
      assert.deepEqual([...(await agent.drains())], ['eu-west']);
    } finally {
      agent.close();
    }

    // Restart on the same store: the drain is still there.
    const port = Number(new URL(server.url).port);
    await stopServer(server);
    server = await startServer(join(dir, 'flows.db'), port);
    const after = (await (await fetch(`${server.url}${LB_DRAINS_PATH}`, { headers: auth })).json()) as { drained: string[] };
    assert.deepEqual(after.drained, ['eu-west']);
    const undrain = await weir(['lb', 'undrain', 'eu-west', '--server', server.url, '--token-file', join(dir, 'token')]);
    assert.equal(undrain.code, 0, undrain.stderr);
    assert.match(undrain.stdout, /drained locations now: none/);
  });
});

// ---------------------------------------------------------------- two balancing loops

/** Two pods of shop/web on two nodes, at loopback addresses (probes reach them without root). */
function cluster(port: number): Cluster {
  const pod = (name: string, ip: string, node: string) => ({ namespace: 'shop', name, labels: { app: 'web' }, ports: [{ port, protocol: 'TCP' as const }], hostNetwork: false, ip, node, workload: `shop/${name}[Pod]` });
  return {
    ...emptyCluster(),
    namespaces: [{ name: 'shop', labels: { 'kubernetes.io/metadata.name': 'shop' } }],
    nodes: [
      { name: 'node-a', labels: { 'weir.dev/location': 'eu' } },
      { name: 'node-b', labels: { 'weir.dev/location': 'us' } },
    ],
    pods: [pod('web-a', '127.0.0.2', 'node-a'), pod('web-b', '127.0.0.3', 'node-b')],
    services: [{ namespace: 'shop', name: 'web', selector: { app: 'web' }, ports: [{ port: 80, targetPort: port, protocol: 'TCP' }], type: 'ClusterIP', sessionAffinity: 'None', internalTrafficPolicy: 'Cluster', annotations: {} }],
  };
}

class Target implements LbTarget {
  runtime: ServiceRuntime | undefined;
  constructor(private readonly input: ServicesInput) {}
  servicesInput(): ServicesInput {
    return this.input;
  }
  async setServiceRuntime(runtime: ServiceRuntime): Promise<void> {
    this.runtime = runtime;
  }
}

function listen(host: string, port: number): Promise<TcpServer> {
  return new Promise((resolve, reject) => {
    const s = createTcpServer((sock) => sock.end('ok'));
    s.on('error', reject);
    s.listen({ host, port }, () => resolve(s));
  });
}

describe('two agents on two nodes share health and drains only through the server', () => {
  let dir: string;
  let server: Running;
  const pods: TcpServer[] = [];
  const loops: LbLoop[] = [];
  let targetA: Target;
  let targetB: Target;
  const KEY_A = (p: number): string => `127.0.0.2:${p}`;
  let port = 0;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'weir-lb-cluster2-'));
    server = await startServer(join(dir, 'flows.db'));
    const first = await listen('127.0.0.2', 0);
    port = (first.address() as { port: number }).port;
    pods.push(first, await listen('127.0.0.3', port));
    const c = cluster(port);
    targetA = new Target(planServices(c, [], 'node-a'));
    targetB = new Target(planServices(c, [], 'node-b'));
    // Each node's own directory: nothing is shared through files.
    for (const [node, target] of [['node-a', targetA], ['node-b', targetB]] as const) {
      const own = join(dir, node);
      rmSync(own, { recursive: true, force: true });
      const loop = new LbLoop({ node, dir: mkdtempSync(`${own}-`), target, intervalMs: 200, exchange: new LbRemote({ server: server.url, token: TOKEN, node, timeoutMs: 500 }) });
      loops.push(loop);
      loop.start();
    }
  });
  after(async () => {
    for (const l of loops) await l.stop();
    for (const p of pods) p.close();
    await stopServer(server).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  });

  test('an endpoint that dies on node-a leaves node-b\'s rotation; a drain set on the server reaches both; the server going away changes nothing', async () => {
    await until('both endpoints healthy on node-b', () => targetB.runtime?.health.get(KEY_A(port)) === true);
    await new Promise<void>((resolve) => pods[0].close(() => resolve()));
    // node-a's probes fail twice, its status carries the verdict, node-b takes it from the server.
    await until('node-b sees node-a\'s endpoint fail', () => targetB.runtime?.health.get(KEY_A(port)) === false);

    const drain = await fetch(`${server.url}${LB_DRAINS_PATH}/eu`, { method: 'PUT', headers: auth });
    assert.equal(drain.status, 200);
    await until('both agents apply the drain', () => targetA.runtime?.drained.has('eu') === true && targetB.runtime?.drained.has('eu') === true);

    // The server goes away: the agents keep the drain and the last health, say why, and go on probing.
    await stopServer(server);
    const ticks = loops[1].last?.updatedAt;
    await until('node-b ticks on without its server', () => loops[1].last?.updatedAt !== ticks && (loops[1].last?.problems ?? []).some((p) => /unreachable/.test(p)));
    assert.equal(targetB.runtime?.drained.has('eu'), true, 'the drain is kept');
    assert.equal(targetB.runtime?.health.get(KEY_A(port)), false, 'the last health is kept');
    await until('node-a says its server is gone', () => (loops[0].last?.problems ?? []).some((p) => /own probes go on/.test(p)));
  });
});
