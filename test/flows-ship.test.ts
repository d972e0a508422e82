// suite: integration (no root; real processes, sockets or a browser: `npm run test:integration`)
// Flows from agents to one server, over real HTTP on loopback: the shipper's on-disk buffer
// across a server outage and an agent restart, buffer overflow counted and visible on the
// server, the ingest token (401, counted), retries of committed batches not counted twice, and
// `/api/flows` fanned out to the agents with a marker when one does not answer.
//
// The outage lasts WEIR_TEST_OUTAGE_MS (default 6000 ms; the "a minute" is
// WEIR_TEST_OUTAGE_MS=60000): what matters is that the agent keeps observing, retries with
// backoff and the buffer holds everything until the server is back.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { startAgentQueryServer } from '../src/api/agent-query.js';
import { createServer } from '../src/api/server.js';
import { Aggregator } from '../src/flows/aggregate.js';
import { runFlowsCommand } from '../src/flows/cli.js';
import { FlowMetrics } from '../src/flows/metrics.js';
import { FlowPipeline } from '../src/flows/pipeline.js';
import { RawFlowRing } from '../src/flows/raw-ring.js';
import { readSse } from '../src/flows/sse-client.js';
import { flowCount, type FlowRecord } from '../src/flows/record.js';
import { AGENTS_PATH, INGEST_PATH, type AgentsReply, type ShipBatch } from '../src/flows/ship-protocol.js';
import { FlowShipper, type ShipperOptions } from '../src/flows/shipper.js';
import { registerShipperMetrics } from '../src/flows/shipper-metrics.js';
import { Registry } from 'prom-client';
import { FlowWindow } from '../src/flows/ship-window.js';
import { SqliteFlowStore } from '../src/flows/sqlite-store.js';
import { podRecord, syntheticCluster } from '../src/flows/synthetic.js';
import { weir } from './helpers/cli.js';
import { until } from './helpers/wait.js';

const OUTAGE_MS = Number(process.env.WEIR_TEST_OUTAGE_MS ?? 6_000);
const TOKEN = 'test-token-0123456789abcdef';
const dir = mkdtempSync(join(tmpdir(), 'weir-ship-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const cluster = syntheticCluster(3, 3, 2);
const pods = cluster.pods;

/** Deterministic traffic: `n` records spread over pairs, verdicts and ports. */
function traffic(node: string, n: number, salt = 0): FlowRecord[] {
  const out: FlowRecord[] = [];
  for (let i = 0; i < n; i++) {
    const k = i + salt;
    const src = pods[k % pods.length]!;
    const dst = pods[(k * 7 + 3) % pods.length]!;
    out.push({ ...podRecord(src, dst, { verdict: k % 5 === 0 ? 'DROPPED' : 'FORWARDED', dstPort: 80 + (k % 3), bytes: 100 + (k % 17) }), node });
  }
  return out;
}

const sumFlows = (rs: readonly FlowRecord[]): number => rs.reduce((a, r) => a + flowCount(r), 0);
const sumBytes = (rs: readonly FlowRecord[]): number => rs.reduce((a, r) => a + r.bytes, 0);

interface Server {
  app: FastifyInstance;
  store: SqliteFlowStore;
  pipeline: FlowPipeline;
  url: string;
  port: number;
  stop(): Promise<void>;
}

async function startServer(db: string, opts: { port?: number; token?: string | null } = {}): Promise<Server> {
  const store = new SqliteFlowStore(db);
  const metrics = new FlowMetrics();
  const pipeline = new FlowPipeline({ store, metrics }).start();
  const token = opts.token === null ? undefined : (opts.token ?? TOKEN);
  const app = createServer({ store, pipeline, metrics, uiDir: join(dir, 'no-ui'), access: token !== undefined ? { token } : {} });
  await app.listen({ host: '127.0.0.1', port: opts.port ?? 0 });
  const addr = app.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  return {
    app,
    store,
    pipeline,
    port,
    url: `http://127.0.0.1:${port}`,
    async stop() {
      await app.close();
      pipeline.stop();
      store.close();
    },
  };
}

function shipper(server: string, name: string, o: Partial<ShipperOptions> = {}): FlowShipper {
  return new FlowShipper({ server, token: TOKEN, node: name, version: 'test', bufferDir: join(dir, `buf-${name}`), windowMs: 200, heartbeatMs: 500, backoffBaseMs: 100, backoffMaxMs: 800, maxSamples: 5, log: () => undefined, ...o }).start();
}

/** Flows and bytes the server's per-minute aggregates hold for one node's traffic. */
function storedTotals(store: SqliteFlowStore): { flows: number; bytes: number } {
  const edges = store.edges('workload', 0);
  return { flows: edges.reduce((a, e) => a + e.flows, 0), bytes: edges.reduce((a, e) => a + e.bytes, 0) };
}

async function agents(s: Server, token = TOKEN): Promise<AgentsReply> {
  const res = await fetch(`${s.url}${AGENTS_PATH}`, { headers: { authorization: `Bearer ${token}` } });
  assert.equal(res.status, 200);
  return (await res.json()) as AgentsReply;
}

async function metricsText(s: Server): Promise<string> {
  return (await fetch(`${s.url}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })).text();
}

test('a window folds flows into edges plus samples, and every flow and byte is counted exactly once', () => {
  const w = new FlowWindow({ maxSamples: 7, maxEdges: 4 });
  const rs = traffic('n1', 1_000);
  // Byte-only `end` records (the flow was counted by its start) must not add flows.
  rs.push({ ...rs[10]!, event: 'end', bytes: 999 });
  for (const r of rs) w.add(r);
  const sealed = w.seal();
  assert.equal(sealed.samples, 7);
  assert.ok(sealed.records.length < 20, `${sealed.records.length} records for 1001 observations`);
  assert.equal(sumFlows(sealed.records), sumFlows(rs));
  assert.equal(sealed.flows, sumFlows(rs));
  assert.equal(sumBytes(sealed.records), sumBytes(rs));
  assert.ok(sealed.records.some((r) => r.src.cidr === 'other'), 'edges beyond the cap fold into the overflow edge');
  assert.equal(w.seal().records.length, 0);
});

test('a window keeps flows through a Service apart from direct ones, and its aggregates name the Service', () => {
  const w = new FlowWindow({ maxSamples: 0 });
  const base = traffic('n1', 1)[0]!;
  const service = { ip: '10.96.0.10', port: 80, name: 'shop/cart' };
  for (let i = 0; i < 5; i++) w.add({ ...base, service });
  for (let i = 0; i < 3; i++) w.add({ ...base });
  const sealed = w.seal();
  assert.equal(sealed.edges, 2);
  const through = sealed.records.find((r) => r.service !== undefined);
  const direct = sealed.records.find((r) => r.service === undefined);
  assert.deepEqual(through?.service, service);
  assert.equal(through?.count, 5);
  assert.equal(direct?.count, 3);
});

test(`server down for ${OUTAGE_MS} ms and an agent restart: no flow lost within the buffer, counts exact`, async () => {
  const db = join(dir, 'outage.db');
  let server = await startServer(db);
  const port = server.port;
  let a = shipper(server.url, 'outage-1');
  const sent: FlowRecord[] = [];
  const feed = (n: number, salt: number): void => {
    const rs = traffic('outage-1', n, salt);
    sent.push(...rs);
    a.add(rs);
  };
  feed(500, 0);
  await until('the first batches', () => storedTotals(server.store).flows === sumFlows(sent));

  await server.stop();
  const downUntil = Date.now() + OUTAGE_MS;
  let salt = 1_000;
  let restarted = false;
  while (Date.now() < downUntil) {
    feed(200, salt);
    salt += 200;
    // Halfway: the agent restarts (its open window is sealed to disk; the new one resumes the buffer).
    if (!restarted && Date.now() > downUntil - OUTAGE_MS / 2) {
      const id = a.agentId;
      await a.stop();
      a = shipper(`http://127.0.0.1:${port}`, 'outage-1');
      assert.equal(a.agentId, id, 'the buffer keeps the agent id');
      restarted = true;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  await new Promise((r) => setTimeout(r, 300));
  assert.ok(a.stats.bufferedBatches > 0, 'batches wait on disk while the server is down');
  assert.ok(a.stats.failedAttempts > 0, 'the agent kept trying');

  server = await startServer(db, { port });
  feed(300, salt);
  const total = sumFlows(sent);
  await until('every flow on the server', () => storedTotals(server.store).flows === total, 60_000);
  await new Promise((r) => setTimeout(r, 500));
  assert.deepEqual(storedTotals(server.store), { flows: total, bytes: sumBytes(sent) });
  const dropped = sent.filter((r) => r.verdict === 'DROPPED').length;
  const deny = server.store.policyCounters().filter((p) => p.dropped > 0).reduce((n, p) => n + p.dropped, 0);
  assert.equal(deny, dropped, 'policy counters exact too');
  assert.equal(a.stats.lostFlows, 0);
  const info = await until('a report', async () => (await agents(server)).agents.find((x) => x.node === 'outage-1' && x.report.ship.bufferedBatches === 0));
  assert.equal(info.report.ship.lostFlows, 0);
  await a.stop();
  await server.stop();
});

test('a full buffer drops the oldest batches, counts them, and the server shows the loss', async () => {
  const db = join(dir, 'overflow.db');
  let server = await startServer(db);
  const port = server.port;
  await server.stop();
  const a = shipper(`http://127.0.0.1:${port}`, 'overflow-1', { maxBufferBytes: 12_000, maxSamples: 20 });
  const sent: FlowRecord[] = [];
  for (let i = 0; i < 20; i++) {
    const rs = traffic('overflow-1', 100, i * 100);
    sent.push(...rs);
    a.add(rs);
    a.seal();
  }
  assert.ok(a.stats.lostBatches > 0 && a.stats.lostFlows > 0, `lost ${a.stats.lostBatches} batches`);
  assert.ok(a.stats.bufferedBytes <= 12_000);
  server = await startServer(db, { port });
  const total = sumFlows(sent);
  // Stored + lost = sent: the loss is counted to the flow.
  await until('stored and lost add up', () => storedTotals(server.store).flows + a.stats.lostFlows === total && a.stats.bufferedBatches === 0);
  const info = await until('the loss reported', async () => (await agents(server)).agents.find((x) => x.node === 'overflow-1' && x.report.ship.lostFlows === a.stats.lostFlows));
  assert.equal(info.report.ship.lostBatches, a.stats.lostBatches);
  assert.match(await metricsText(server), new RegExp(`weir_agent_lost_flows\\{node="overflow-1"\\} ${a.stats.lostFlows}\\b`));
  // The agent's own /metrics says the same.
  const agentRegistry = new Registry();
  registerShipperMetrics(agentRegistry, () => a.stats);
  assert.match(await agentRegistry.metrics(), new RegExp(`^weir_ship_lost_flows ${a.stats.lostFlows}$`, 'm'));
  await a.stop();
  await server.stop();
});

test('a bad token is refused (401) and counted; the batches wait on the agent', async () => {
  const server = await startServer(join(dir, 'token.db'));
  const a = shipper(server.url, 'token-1', { token: 'wrong-token-0123456789abcdef' });
  a.add(traffic('token-1', 50));
  await until('a refused attempt', () => a.stats.failedAttempts > 0);
  assert.match(a.stats.lastError ?? '', /^HTTP 401/);
  assert.ok(a.stats.bufferedBatches > 0);
  const none = await fetch(`${server.url}${INGEST_PATH}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
  assert.equal(none.status, 401);
  assert.equal(storedTotals(server.store).flows, 0);
  const m = /weir_ingest_unauthorized_total (\d+)/.exec(await metricsText(server));
  assert.ok(m && Number(m[1]) >= 2, `counter: ${m?.[0] ?? 'absent'}`);
  await a.stop();
  await server.stop();

  // A server without a token takes no flows at all, even on loopback.
  const open = await startServer(join(dir, 'open.db'), { token: null });
  const b = shipper(open.url, 'token-2');
  b.add(traffic('token-2', 10));
  await until('a refused attempt', () => b.stats.failedAttempts > 0);
  assert.match(b.stats.lastError ?? '', /401.*--token-file/);
  await b.stop();
  await open.stop();
});

test('a retried batch is not counted twice, also after a server restart', async () => {
  const db = join(dir, 'dup.db');
  let server = await startServer(db);
  const records = traffic('dup-1', 40);
  const batch: ShipBatch = {
    agentId: 'dupagent0001',
    seq: 1,
    flows: sumFlows(records),
    records,
    report: { node: 'dup-1', version: 'test', sync: {}, ship: { bufferedBatches: 1, bufferedBytes: 1, bufferLimitBytes: 1, lostBatches: 0, lostFlows: 0, sentBatches: 0, failedAttempts: 0, observedFlows: 40, sampledRecords: 40 } },
  };
  const post = async (s: Server, b: ShipBatch): Promise<{ status: number; body: { accepted?: number; duplicate?: boolean; message?: string } }> => {
    const res = await fetch(`${s.url}${INGEST_PATH}`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` }, body: JSON.stringify(b) });
    return { status: res.status, body: (await res.json()) as { accepted?: number; duplicate?: boolean } };
  };
  assert.deepEqual(await post(server, batch), { status: 200, body: { accepted: 40, duplicate: false } });
  assert.deepEqual(await post(server, batch), { status: 200, body: { accepted: 0, duplicate: true } });
  assert.equal(storedTotals(server.store).flows, 40);
  await server.stop();
  server = await startServer(db);
  assert.deepEqual(await post(server, batch), { status: 200, body: { accepted: 0, duplicate: true } });
  assert.equal(storedTotals(server.store).flows, 40);
  // A batch whose count does not match its records is refused, naming the field.
  const bad = await post(server, { ...batch, seq: 2, flows: 41 });
  assert.equal(bad.status, 400);
  assert.match(bad.body.message ?? '', /field flows/);
  assert.equal((await post(server, { ...batch, seq: 2 })).body.accepted, 40);
  assert.equal(storedTotals(server.store).flows, 80);
  const info = (await agents(server)).agents.find((x) => x.agentId === 'dupagent0001');
  assert.equal(info?.lastSeq, 2);
  await server.stop();
});

test('flow queries fan out to the agents and mark an agent that did not answer', async () => {
  const server = await startServer(join(dir, 'fanout.db'));
  const ringA = new RawFlowRing(1_000);
  const ringB = new RawFlowRing(1_000);
  ringA.add(traffic('fan-a', 30));
  ringB.add(traffic('fan-b', 30, 7));
  const qa = await startAgentQueryServer({ ring: ringA, host: '127.0.0.1', port: 0, token: TOKEN });
  const qb = await startAgentQueryServer({ ring: ringB, host: '127.0.0.1', port: 0, token: TOKEN });
  const a = shipper(server.url, 'fan-a', { queryUrl: qa.url });
  const b = shipper(server.url, 'fan-b', { queryUrl: qb.url });
  await until('both agents known', async () => (await agents(server)).agents.filter((x) => x.report.queryUrl).length === 2);

  const ask = async (): Promise<{ flows: FlowRecord[]; partial: boolean; sources: { node: string; ok: boolean }[] }> =>
    (await (await fetch(`${server.url}/api/flows?limit=1000`, { headers: { authorization: `Bearer ${TOKEN}` } })).json()) as never;
  const whole = await ask();
  assert.equal(whole.partial, false);
  assert.equal(whole.flows.filter((f) => f.node === 'fan-a').length, 30);
  assert.equal(whole.flows.filter((f) => f.node === 'fan-b').length, 30);

  await qb.close();
  const part = await ask();
  assert.equal(part.partial, true);
  assert.deepEqual(part.sources.map((s) => [s.node, s.ok]).sort(), [['fan-a', true], ['fan-b', false]]);
  assert.equal(part.flows.filter((f) => f.node === 'fan-b').length, 0);

  // The CLI says so, and its exit status is not 0.
  let out = '';
  let err = '';
  const code = await runFlowsCommand({ server: server.url, token: TOKEN, output: 'json' }, { out: (s) => (out += s), err: (s) => (err += s) });
  assert.equal(code, 1);
  assert.match(err, /partial result: the agent of node fan-b/);
  assert.equal(out.trim().split('\n').length, 30);
  await a.stop();
  await b.stop();
  await qa.close();
  await server.stop();
});

test('`weir serve --cluster` takes batches from an agent and `weir status` summarises it', async () => {
  const tokenFile = join(dir, 'token');
  writeFileSync(tokenFile, `${TOKEN}\n`);
  const refused = await weir(['serve', '--cluster', '--store', join(dir, 'cli.db'), '--port', '0']);
  assert.equal(refused.code, 2);
  assert.match(refused.stderr, /--cluster needs --token-file/);
  // The agent's shipping flags are checked before anything starts.
  for (const [args, message] of [
    [['--server', 'http://127.0.0.1:1'], /--server needs --token-file/],
    [['--server', 'ftp://x', '--token-file', tokenFile], /--server: must be an http/],
    [['--token-file', tokenFile], /give --server URL too/],
    [['--server', 'http://127.0.0.1:1', '--token-file', tokenFile, '--client-cert', tokenFile], /--client-cert and --client-key go together/],
    [['--server', 'http://127.0.0.1:1', '--token-file', tokenFile, '--buffer-size', 'lots'], /--buffer-size: expected a size in MiB/],
  ] as const) {
    const r = await weir(['agent', '--lab-dir', join(dir, 'no-lab'), '--node', 'n', ...args]);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message);
  }

  const child = spawn(process.execPath, ['bin/weir.js', 'serve', '--cluster', '--store', join(dir, 'cli.db'), '--port', '0', '--token-file', tokenFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    const url = await until('the listening line', () => /listening on (\S+)/.exec(stdout)?.[1]);
    assert.match(stdout, /cluster: flows from agents/);
    const a = shipper(url, 'cli-1');
    a.add(traffic('cli-1', 25));
    await until('the batch committed', () => a.stats.sentBatches > 0);
    const table = await weir(['status', '--server', url, '--token-file', tokenFile]);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /^NODE\s+VERSION\s+STATE/m);
    assert.match(table.stdout, /^cli-1\s+test\s+ok\s/m);
    const json = await weir(['status', '--server', url, '--token-file', tokenFile, '--json']);
    const reply = JSON.parse(json.stdout) as AgentsReply;
    assert.equal(reply.agents[0]?.flows, 25);
    const wrong = await weir(['status', '--server', url], { WEIR_TOKEN_FILE: '' });
    assert.equal(wrong.code, 2);
    assert.match(wrong.stderr, /refused/);
    await a.stop();
  } finally {
    child.kill('SIGTERM');
    await once(child, 'close');
  }
});

test('mutual TLS: an agent with a client certificate from the server’s CA ships; one without is refused (401)', async () => {
  const t = join(dir, 'mtls');
  execFileSync('mkdir', ['-p', t]);
  const ssl = (...args: string[]): void => void execFileSync('openssl', args, { stdio: 'ignore' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  ssl('req', '-x509', ...ec, '-keyout', join(t, 'ca.key'), '-out', join(t, 'ca.pem'), '-days', '1', '-subj', '/CN=weir test CA');
  for (const [name, subj, ext] of [['server', '/CN=127.0.0.1', 'subjectAltName=IP:127.0.0.1'], ['agent', '/CN=node-mtls', 'extendedKeyUsage=clientAuth']] as const) {
    ssl('req', ...ec, '-keyout', join(t, `${name}.key`), '-out', join(t, `${name}.csr`), '-subj', subj);
    writeFileSync(join(t, `${name}.ext`), `${ext}\n`);
    ssl('x509', '-req', '-in', join(t, `${name}.csr`), '-CA', join(t, 'ca.pem'), '-CAkey', join(t, 'ca.key'), '-CAcreateserial', '-out', join(t, `${name}.pem`), '-days', '1', '-extfile', join(t, `${name}.ext`));
  }
  const pem = (f: string): Buffer => readFileSync(join(t, f));
  const store = new SqliteFlowStore(join(dir, 'mtls.db'));
  const metrics = new FlowMetrics();
  const pipeline = new FlowPipeline({ store, metrics }).start();
  const app = createServer({ store, pipeline, metrics, uiDir: join(dir, 'no-ui'), access: { token: TOKEN }, tls: { cert: pem('server.pem'), key: pem('server.key'), clientCa: pem('ca.pem') } });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const addr = app.server.address();
  const url = `https://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
  try {
    const good = shipper(url, 'mtls-1', { tls: { ca: pem('ca.pem'), cert: pem('agent.pem'), key: pem('agent.key') } });
    const bare = shipper(url, 'mtls-2', { tls: { ca: pem('ca.pem') } });
    good.add(traffic('mtls-1', 30));
    bare.add(traffic('mtls-2', 30));
    await until('the certified agent delivered', () => good.stats.sentBatches > 0);
    await until('the bare agent refused', () => bare.stats.failedAttempts > 0);
    assert.match(bare.stats.lastError ?? '', /^HTTP 401.*client certificate/);
    assert.equal(storedTotals(store).flows, 30);
    await good.stop();
    await bare.stop();
  } finally {
    await app.close();
    pipeline.stop();
    store.close();
  }
});

test('a cluster server with a short live horizon answers longer windows from the store (edges and stream snapshot)', async () => {
  const store = new SqliteFlowStore(join(dir, 'horizon.db'));
  const metrics = new FlowMetrics();
  const pipeline = new FlowPipeline({ store, metrics, aggregator: new Aggregator({ horizonMs: 60_000 }) }).start();
  const app = createServer({ store, pipeline, metrics, uiDir: join(dir, 'no-ui'), access: { token: TOKEN } });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const addr = app.server.address();
  const url = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
  try {
    // Half an hour old: past the live horizon, in the per-minute aggregates only.
    store.insert(traffic('old-1', 10).map((r) => ({ ...r, time: Date.now() - 30 * 60_000 })));
    const edges = async (window: string): Promise<number> => {
      const body = (await (await fetch(`${url}/api/edges?window=${window}`, { headers: { authorization: `Bearer ${TOKEN}` } })).json()) as { edges: { flows: number }[] };
      return body.edges.reduce((a, e) => a + e.flows, 0);
    };
    assert.equal(await edges('1m'), 0);
    assert.equal(await edges('1h'), 10);
    const ac = new AbortController();
    let snapshot = -1;
    for await (const ev of readSse(`${url}/api/stream?window=1h`, ac.signal, { authorization: `Bearer ${TOKEN}` })) {
      if (ev.event !== 'snapshot') continue;
      snapshot = (JSON.parse(ev.data) as { edges: { flows: number }[] }).edges.reduce((a, e) => a + e.flows, 0);
      ac.abort();
    }
    assert.equal(snapshot, 10);
  } finally {
    await app.close();
    pipeline.stop();
    store.close();
  }
});

test('a backlog goes out in one request per run; a resent run whose head was committed counts once', async () => {
  const db = join(dir, 'run.db');
  let server = await startServer(db);
  const port = server.port;
  // The agent piles up a backlog while the server is down, then catches up in few requests.
  await server.stop();
  const a = shipper(`http://127.0.0.1:${port}`, 'run-1', { maxRun: 8 });
  const sent: FlowRecord[] = [];
  for (let i = 0; i < 12; i++) {
    const rs = traffic('run-1', 50, i * 50);
    sent.push(...rs);
    a.add(rs);
    a.seal();
  }
  assert.equal(a.stats.bufferedBatches, 12);
  server = await startServer(db, { port });
  await until('the backlog on the server', () => storedTotals(server.store).flows === sumFlows(sent), 30_000);
  const accepted = Number(/weir_ingest_batches_total\{result="accepted"\} (\d+)/.exec(await metricsText(server))?.[1] ?? 0);
  assert.ok(accepted >= 2 && accepted <= 4, `12 segments in runs of at most 8: 2 requests (a heartbeat-timed seal may add one), got ${accepted}`);
  assert.equal(a.stats.sentBatches, 12, 'every segment counted as sent');
  await a.stop();

  // The protocol: a run firstSeq..seq commits together; a resent run whose head was committed
  // is answered 409 with committedSeq, and the rest is counted once.
  const report = { node: 'run-2', version: 'test', sync: {}, ship: { bufferedBatches: 0, bufferedBytes: 0, bufferLimitBytes: 1, lostBatches: 0, lostFlows: 0, sentBatches: 0, failedAttempts: 0, observedFlows: 0, sampledRecords: 0 } };
  const post = async (b: Omit<ShipBatch, 'report' | 'agentId'>): Promise<{ status: number; body: { accepted?: number; duplicate?: boolean; committedSeq?: number; message?: string } }> => {
    const res = await fetch(`${server.url}${INGEST_PATH}`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` }, body: JSON.stringify({ ...b, agentId: 'runagent0001', report }) });
    return { status: res.status, body: (await res.json()) as { accepted?: number } };
  };
  const rs = (n: number, salt: number): FlowRecord[] => traffic('run-2', n, salt);
  const before = storedTotals(server.store).flows;
  const r1 = rs(30, 0);
  assert.equal((await post({ seq: 5, firstSeq: 1, flows: sumFlows(r1), records: r1 })).status, 200);
  const r2 = rs(30, 100);
  const overlap = await post({ seq: 8, firstSeq: 3, flows: sumFlows(r2), records: r2 });
  assert.equal(overlap.status, 409);
  assert.equal(overlap.body.committedSeq, 5);
  assert.deepEqual((await post({ seq: 5, firstSeq: 2, flows: sumFlows(r2), records: r2 })).body, { accepted: 0, duplicate: true });
  const r3 = rs(20, 200);
  assert.equal((await post({ seq: 8, firstSeq: 6, flows: sumFlows(r3), records: r3 })).status, 200);
  assert.equal(storedTotals(server.store).flows - before, sumFlows(r1) + sumFlows(r3));
  const bad = await post({ seq: 9, firstSeq: 10, flows: 0, records: [] });
  assert.equal(bad.status, 400);
  assert.match(bad.body.message ?? '', /field firstSeq/);
  await server.stop();
});

test('an agent whose resent backlog overlaps what the server committed drops the head and sends the rest, counted once', async () => {
  const db = join(dir, 'overlap.db');
  let server = await startServer(db);
  const port = server.port;
  await server.stop();
  // A long backoff: the agent's first attempts fail, then it waits while we commit its head.
  const a = shipper(`http://127.0.0.1:${port}`, 'overlap-1', { backoffBaseMs: 6_000, backoffMaxMs: 6_000, heartbeatMs: 60_000 });
  const sent: FlowRecord[] = [];
  for (let i = 0; i < 3; i++) {
    const rs = traffic('overlap-1', 40, i * 40);
    sent.push(...rs);
    a.add(rs);
    a.seal();
  }
  await until('a failed attempt', () => a.stats.failedAttempts > 0);
  server = await startServer(db, { port });
  // What an earlier attempt whose answer was lost would have committed: segments 1..2.
  const head = a.buffer.peekRun(2, 1_000_000);
  assert.deepEqual(
    head.map((g) => g.seq),
    [1, 2],
  );
  const records = head.flatMap((g) => g.records);
  const res = await fetch(`${server.url}${INGEST_PATH}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
    body: JSON.stringify({ agentId: a.agentId, firstSeq: 1, seq: 2, flows: sumFlows(records), records, report: a.report() } satisfies ShipBatch),
  });
  assert.equal(res.status, 200);
  await until('the rest on the server', () => a.stats.bufferedBatches === 0 && storedTotals(server.store).flows === sumFlows(sent), 30_000);
  await new Promise((r) => setTimeout(r, 300));
  assert.deepEqual(storedTotals(server.store), { flows: sumFlows(sent), bytes: sumBytes(sent) });
  await a.stop();
  await server.stop();
});
