// suite: integration (a real HTTP server and the weir CLI; no root)
// Services at run time without the kernel: the balancing loop's conntrack reading and health
// thresholds, the drain file, `weir lb status|drain|undrain` on an agent's status file, and
// `/api/services` (+ OpenAPI) and the per-endpoint gauges on `/metrics` of a real server.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { countBackends, HealthTracker, parseBackends } from '../src/agent/lb-loop.js';
import { readDrains, readLbStatuses, setDrain, writeLbStatus } from '../src/agent/lb-files.js';
import { LB_DRAIN_FILE, serviceViews, type LbNodeStatus } from '../src/agent/lb-status.js';
import { createServer } from '../src/api/server.js';
import { FlowMetrics } from '../src/flows/metrics.js';
import { FlowPipeline } from '../src/flows/pipeline.js';
import { SqliteFlowStore } from '../src/flows/sqlite-store.js';
import { ConntrackFlowParser } from '../src/flows/conntrack.js';
import { Enricher } from '../src/flows/enrich.js';
import { weir } from './helpers/cli.js';
import { clusterPort, lbNodeStatus } from './helpers/lb-status.js';

const line = (sport: number, state: string, ep = '10.244.1.3'): string =>
  `tcp      6 117 ${state} src=10.244.0.5 dst=10.96.0.80 sport=${sport} dport=80 src=${ep} dst=10.244.0.5 sport=8080 dport=${sport} [ASSURED] mark=0 use=1`;

function nodeStatus(node: string, weights: [number, number], healthy = true): LbNodeStatus {
  return lbNodeStatus(node, [
    clusterPort(
      'shop/web',
      { clusterIP: '10.96.0.80', port: 80, mode: 'adaptive' },
      [
        { key: '10.244.0.3:8080', pod: 'shop/web-0', node: 'node-0', location: 'eu', weight: weights[0], healthy, drained: false, latencyMs: 12.5, errorRate: 0.01, inFlight: 3, connections: 40, recentShare: 0.7, adaptiveShare: 0.7 },
        { key: '10.244.1.3:8080', pod: 'shop/web-1', node: 'node-1', location: 'us', weight: weights[1], healthy: true, drained: false, latencyMs: 80, errorRate: 0.2, inFlight: 9, connections: 20, recentShare: 0.3 },
      ],
      [
        { t: 1, weights: { '10.244.0.3:8080': 500, '10.244.1.3:8080': 500 } },
        { t: 2, weights: { '10.244.0.3:8080': weights[0], '10.244.1.3:8080': weights[1] } },
      ],
    ),
  ]);
}

describe('conntrack reading and health thresholds', () => {
  test('entries count for the endpoint of their reply tuple; new, finished and reset connections per tick', () => {
    const first = parseBackends([line(1, 'ESTABLISHED'), line(2, 'TIME_WAIT'), 'udp      17 29 src=172.31.255.11 dst=172.31.255.10 sport=43624 dport=4789 [UNREPLIED] src=172.31.255.10 dst=172.31.255.11 sport=4789 dport=43624 mark=0 use=1'].join('\n'));
    assert.equal(first.length, 2, 'an untranslated flow (reply from the original destination) is not a backend');
    const a = countBackends(first, undefined);
    assert.deepEqual(a.counts.get('10.244.1.3:8080'), { inFlight: 1, connections: 2, opened: 0, completed: 0, resets: 0 });
    // Next tick: 1 finished normally, 3 new (one reset at once, one open, one on another endpoint).
    const second = parseBackends([line(1, 'TIME_WAIT'), line(2, 'TIME_WAIT'), line(3, 'CLOSE'), line(4, 'SYN_SENT'), line(5, 'ESTABLISHED', '10.244.2.9')].join('\n'));
    const b = countBackends(second, a.seen);
    assert.deepEqual(b.counts.get('10.244.1.3:8080'), { inFlight: 1, connections: 4, opened: 2, completed: 2, resets: 1 });
    assert.deepEqual(b.counts.get('10.244.2.9:8080'), { inFlight: 1, connections: 1, opened: 1, completed: 0, resets: 0 });
  });

  test('an endpoint leaves after `fall` failures in a row and returns after `rise` successes', () => {
    const h = new HealthTracker(2, 2);
    assert.equal(h.record('a', false), true, 'one failure is not enough');
    assert.equal(h.record('a', true), true);
    assert.equal(h.record('a', false), true);
    assert.equal(h.record('a', false), false);
    assert.equal(h.record('a', true), false, 'one success is not enough');
    assert.equal(h.record('a', true), true);
    h.keep(new Set());
    assert.deepEqual([...h.map()], []);
  });
});

test('a flow through a Service carries the Service and the endpoint the kernel chose (conntrack reply tuple), through the store', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'weir-lb-flows-'));
  try {
    const parser = new ConntrackFlowParser({ node: 'node-0' });
    const enricher = new Enricher({
      lookup: (ip) => (ip === '10.244.1.3' ? { ip, namespace: 'shop', name: 'web-1' } : ip === '10.244.0.5' ? { ip, namespace: 'shop', name: 'client' } : undefined),
      serviceLookup: (ip, port) => (ip === '10.96.0.80' && port === 80 ? 'shop/web' : undefined),
    });
    const viaService = parser.push('[1795471246.830960]\t    [NEW] ipv4     2 tcp      6 120 SYN_SENT src=10.244.0.5 dst=10.96.0.80 sport=37538 dport=80 [UNREPLIED] src=10.244.1.3 dst=10.244.0.5 sport=8080 dport=37538 id=11');
    const direct = parser.push('[1795471246.830960]\t    [NEW] ipv4     2 tcp      6 120 SYN_SENT src=10.244.0.5 dst=10.244.1.3 sport=37539 dport=8080 [UNREPLIED] src=10.244.1.3 dst=10.244.0.5 sport=8080 dport=37539 id=12');
    assert.ok(viaService && direct);
    enricher.enrich(viaService);
    enricher.enrich(direct);
    assert.deepEqual(viaService.service, { ip: '10.96.0.80', port: 80, name: 'shop/web' });
    assert.equal(viaService.dst.pod, 'web-1', 'the destination is the chosen endpoint');
    assert.equal(viaService.dstPort, 8080);
    assert.equal(direct.service, undefined, 'no translation, no Service');
    const store = new SqliteFlowStore(join(dir, 'flows.db'));
    try {
      store.insert([viaService, direct]);
      const stored = store.queryFlows({ limit: 10 });
      assert.deepEqual(stored.find((f) => f.srcPort === 37538)?.service, { ip: '10.96.0.80', port: 80, name: 'shop/web' });
      assert.equal(stored.find((f) => f.srcPort === 37539)?.service, undefined);
    } finally {
      store.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

describe('drains and status files', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'weir-lb-runtime-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('the drain file: set, unset, bad input named', async () => {
    assert.deepEqual([...(await readDrains(dir))], []);
    assert.deepEqual(await setDrain(dir, 'us', true), ['us']);
    assert.deepEqual(await setDrain(dir, 'eu', true), ['eu', 'us']);
    assert.deepEqual(await setDrain(dir, 'us', false), ['eu']);
    await assert.rejects(setDrain(dir, 'not a location', true), /"not a location" is not a location name/);
    writeFileSync(join(dir, LB_DRAIN_FILE), '{"drained": ["ok", "bad name"]}');
    await assert.rejects(readDrains(dir), (e: Error) => e.message.includes(LB_DRAIN_FILE) && e.message.includes('drained.1'));
    writeFileSync(join(dir, LB_DRAIN_FILE), '{"drained": []}');
  });

  test('weir lb drain/undrain/status on a lab directory', async () => {
    await writeLbStatus(dir, nodeStatus('node-0', [900, 100]));
    await writeLbStatus(dir, nodeStatus('node-1', [600, 400], false));
    writeFileSync(join(dir, 'lb-broken.json'), '{"node": 1}');
    const { statuses, errors } = await readLbStatuses(dir);
    assert.equal(statuses.length, 2);
    assert.match(errors.join('\n'), /lb-broken\.json: node: /);
    const views = serviceViews(statuses, 'web');
    assert.deepEqual(views.map((v) => [v.service, v.nodes.map((n) => n.node)]), [['shop/web', ['node-0', 'node-1']]]);

    const table = await weir(['lb', 'status', '--lab-dir', dir]);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stderr, /lb-broken\.json/);
    assert.match(table.stdout, /^shop\/web 10\.96\.0\.80:80\/TCP \(adaptive\)$/m);
    assert.match(table.stdout, /NODE\s+ENDPOINT\s+POD\s+LOCATION\s+WEIGHT\s+HEALTH\s+LATENCY\s+ERRORS\s+IN-FLIGHT\s+CONNS\s+SHARE/);
    assert.match(table.stdout, /node-0\s+10\.244\.0\.3:8080\s+shop\/web-0\s+eu\s+900\s+ok\s+12\.5 ms\s+1\.0%\s+3\s+40\s+70\.0%/);
    assert.match(table.stdout, /node-1\s+10\.244\.0\.3:8080\s+shop\/web-0\s+eu\s+600\s+FAILING/);
    const json = await weir(['lb', 'status', 'shop/web', '--json', '--lab-dir', dir]);
    assert.equal(json.code, 0, json.stderr);
    assert.equal((JSON.parse(json.stdout) as { services: unknown[] }).services.length, 1);
    const missing = await weir(['lb', 'status', 'shop/nothing', '--lab-dir', dir]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /no Service "shop\/nothing"/);

    const drain = await weir(['lb', 'drain', 'eu', '--lab-dir', dir]);
    assert.equal(drain.code, 0, drain.stderr);
    assert.equal(drain.stdout, 'drained eu; drained locations now: eu\n');
    assert.deepEqual([...(await readDrains(dir))], ['eu']);
    const bad = await weir(['lb', 'drain', 'eu west', '--lab-dir', dir]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /"eu west" is not a location name/);
    const undrain = await weir(['lb', 'undrain', 'eu', '--lab-dir', dir]);
    assert.equal(undrain.code, 0);
    assert.deepEqual([...(await readDrains(dir))], []);
  });

  describe('API', () => {
    let app: FastifyInstance;
    let store: SqliteFlowStore;
    let pipeline: FlowPipeline;
    let url: string;
    before(async () => {
      store = new SqliteFlowStore(join(dir, 'flows.db'));
      const metrics = new FlowMetrics();
      pipeline = new FlowPipeline({ store, metrics, flushMs: 50 }).start();
      app = createServer({
        store,
        pipeline,
        metrics,
        uiDir: join(dir, 'no-ui'),
        services: { views: async () => readLbStatuses(dir).then(({ statuses, errors }) => ({ services: serviceViews(statuses), errors })) },
      });
      await app.listen({ host: '127.0.0.1', port: 0 });
      const addr = app.server.address();
      url = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
    });
    after(async () => {
      await app.close();
      pipeline.stop();
      store.close();
    });

    test('/api/services, /api/services/:ns/:name, OpenAPI and per-endpoint gauges', async () => {
      const all = (await (await fetch(`${url}/api/services`)).json()) as { services: { service: string; nodes: { endpoints: { weight: number; latencyMs: number }[] }[] }[]; errors: string[] };
      assert.deepEqual(all.services.map((s) => s.service), ['shop/web']);
      assert.deepEqual(all.services[0].nodes[0].endpoints.map((e) => [e.weight, e.latencyMs]), [[900, 12.5], [100, 80]]);
      const first = all.services[0] as unknown as { clusterIP: string; nodes: { endpoints: { pod: string; location: string }[] }[] };
      assert.equal(first.clusterIP, '10.96.0.80');
      assert.deepEqual(first.nodes[0].endpoints.map((e) => [e.pod, e.location]), [['shop/web-0', 'eu'], ['shop/web-1', 'us']]);
      assert.match(all.errors.join('\n'), /lb-broken/);
      const one = await fetch(`${url}/api/services/shop/web`);
      assert.equal(one.status, 200);
      assert.equal(((await one.json()) as { ports: unknown[] }).ports.length, 1);
      const none = await fetch(`${url}/api/services/shop/nothing`);
      assert.equal(none.status, 404);
      assert.match(((await none.json()) as { message: string }).message, /no Service shop\/nothing/);

      const spec = (await (await fetch(`${url}/docs/json`)).json()) as { paths: Record<string, { get: { responses: Record<string, { content: Record<string, { schema: { properties: Record<string, unknown> } }> }> } }> };
      const listed = spec.paths['/api/services'].get.responses['200'].content['application/json'].schema;
      assert.ok(listed.properties.services, 'the response schema is in the OpenAPI document');
      assert.ok(spec.paths['/api/services/{ns}/{name}']);

      // `weir lb status --server` reads the same through the API.
      const cli = await weir(['lb', 'status', 'web', '--server', url]);
      assert.equal(cli.code, 0, cli.stderr);
      assert.match(cli.stdout, /node-0\s+10\.244\.0\.3:8080\s+shop\/web-0\s+eu\s+900\s+ok/);
      const offline = await weir(['lb', 'status', '--server', 'http://127.0.0.1:9']);
      assert.equal(offline.code, 2);
      assert.match(offline.stderr, /cannot reach weir server at http:\/\/127\.0\.0\.1:9/);

      const text = await (await fetch(`${url}/metrics`)).text();
      assert.match(text, /weir_service_endpoint_weight\{service="shop\/web",port="80",frontend="cluster",node="node-0",endpoint="10\.244\.0\.3:8080",pod="shop\/web-0",location="eu"\} 900/);
      assert.match(text, /weir_service_endpoint_latency_seconds\{[^}]*node="node-1",endpoint="10\.244\.1\.3:8080"[^}]*\} 0\.08/);
      assert.match(text, /weir_service_endpoint_healthy\{[^}]*node="node-1",endpoint="10\.244\.0\.3:8080"[^}]*\} 0/);
      // A change in the agents' files shows on the next scrape.
      await writeLbStatus(dir, nodeStatus('node-0', [300, 700]));
      assert.match(await (await fetch(`${url}/metrics`)).text(), /weir_service_endpoint_weight\{[^}]*node="node-0",endpoint="10\.244\.0\.3:8080"[^}]*\} 300/);
    });
  });
});
