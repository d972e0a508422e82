import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { createServer } from '../src/api/server.js';
import { FlowMetrics } from '../src/flows/metrics.js';
import { FlowPipeline } from '../src/flows/pipeline.js';
import type { FlowRecord } from '../src/flows/record.js';
import { readSse } from '../src/flows/sse-client.js';
import { SqliteFlowStore } from '../src/flows/sqlite-store.js';
import { podRecord, syntheticCluster } from '../src/flows/synthetic.js';

const dir = mkdtempSync(join(tmpdir(), 'weir-api-'));
const c = syntheticCluster(3, 3, 2);
const P = (i: number) => c.pods[i % c.pods.length]!;
let store: SqliteFlowStore;
let pipeline: FlowPipeline;
let metrics: FlowMetrics;
let app: FastifyInstance;
let base: string;

before(async () => {
  store = new SqliteFlowStore(join(dir, 'flows.db'));
  metrics = new FlowMetrics();
  pipeline = new FlowPipeline({ store, metrics, flushMs: 50 }).start();
  app = createServer({ store, pipeline, uiDir: join(dir, 'no-ui'), knownPolicies: () => [{ policy: 'NetworkPolicy x/never-hit', tier: 'NetworkPolicy' }] });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const addr = app.server.address();
  assert.ok(addr && typeof addr === 'object');
  base = `http://127.0.0.1:${addr.port}`;
  const now = Date.now();
  pipeline.ingest([
    podRecord(P(0), P(6), { time: now - 3000 }),
    podRecord(P(0), P(8), { time: now - 2000, verdict: 'DROPPED', dstPort: 81 }),
    podRecord(P(12), P(8), { time: now - 1000, verdict: 'AUDIT', policy: 'NetworkPolicy y/audit', rule: 'default-deny' }),
  ]);
  pipeline.flush();
});

after(async () => {
  await app.close();
  pipeline.stop();
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

async function get(path: string): Promise<{ status: number; body: unknown; text: string }> {
  const res = await fetch(base + path);
  const text = await res.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  return { status: res.status, body, text };
}

test('GET /api/flows with filters', async () => {
  const all = (await get('/api/flows')).body as { count: number; flows: FlowRecord[] };
  assert.equal(all.count, 3);
  const dropped = (await get('/api/flows?verdict=DROPPED&from_namespace=x&port=81&protocol=TCP&since=5m')).body as { flows: FlowRecord[] };
  assert.equal(dropped.flows.length, 1);
  assert.equal(dropped.flows[0]?.dst.namespace, 'y');
  const toPod = (await get(`/api/flows?to_pod=y/${P(8).name}&limit=1`)).body as { flows: FlowRecord[] };
  assert.equal(toPod.flows.length, 1);
  assert.equal(toPod.flows[0]?.verdict, 'AUDIT', 'newest first');
  const byPolicy = (await get(`/api/flows?policy=${encodeURIComponent('NetworkPolicy y/audit')}`)).body as { flows: FlowRecord[] };
  assert.equal(byPolicy.flows.length, 1);
});

test('bad filters → 400 naming the field', async () => {
  for (const [q, field] of [
    ['verdict=NOPE', 'verdict'],
    ['port=99999', 'port'],
    ['since=tomorrow', 'since'],
    ['limit=-1', 'limit'],
    ['bogus=1', 'bogus'],
  ] as const) {
    const r = await get(`/api/flows?${q}`);
    assert.equal(r.status, 400, q);
    const b = r.body as { field: string; message: string };
    assert.equal(b.field, field);
    assert.match(b.message, new RegExp(`^${field}:`));
  }
  const e = await get('/api/edges?group=pods');
  assert.equal(e.status, 400);
  assert.equal((e.body as { field: string }).field, 'group');
  const w = await get('/api/edges?window=soon');
  assert.equal((w.body as { field: string }).field, 'window');
});

test('GET /api/edges groups by workload and namespace', async () => {
  const wl = (await get('/api/edges?group=workload&window=5m')).body as { edges: { src: string; dst: string; dropped: number }[]; groups: string[]; topDenied: unknown[] };
  assert.equal(wl.edges.length, 3);
  assert.ok(wl.groups.includes('x/a[Deployment]'));
  assert.equal(wl.topDenied.length, 1);
  const ns = (await get('/api/edges?group=namespace&window=1h')).body as { edges: { src: string; dst: string; flows: number }[] };
  assert.deepEqual(ns.edges.map((e) => `${e.src}>${e.dst}:${e.flows}`).sort(), ['x>y:2', 'z>y:1']);
  const long = (await get('/api/edges?group=namespace&window=24h')).body as { edges: unknown[] };
  assert.equal(long.edges.length, 2, 'long windows answered from minute aggregates');
});

test('GET /api/policies lists counters and known-but-unused policies', async () => {
  const p = (await get('/api/policies')).body as { policies: { policy: string; hits: number; dropped: number }[] };
  assert.equal(p.policies.find((x) => x.policy === 'NetworkPolicy y/default-deny')?.dropped, 1);
  assert.equal(p.policies.find((x) => x.policy === 'NetworkPolicy x/never-hit')?.hits, 0);
});

test('GET /metrics exposes flow counters and agent setters', async () => {
  metrics.observeApplyDuration(0.012, 'node-1');
  metrics.setNftRules(42, 'node-1');
  metrics.setNftSetElements('denied', 7, 'node-1');
  const m = await get('/metrics');
  assert.equal(m.status, 200);
  assert.match(m.text, /weir_flows_total\{verdict="DROPPED",src_namespace="x",dst_namespace="y",policy="NetworkPolicy y\/default-deny"\} 1/);
  assert.match(m.text, /weir_drops_total\{src_namespace="x",dst_namespace="y",policy="NetworkPolicy y\/default-deny"\} 1/);
  assert.match(m.text, /weir_flow_bytes_total\{verdict="FORWARDED",src_namespace="x",dst_namespace="y"\} 1500/);
  assert.match(m.text, /weir_apply_duration_seconds_count\{node="node-1"\} 1/);
  assert.match(m.text, /weir_nft_rules\{node="node-1"\} 42/);
  assert.match(m.text, /weir_nft_set_elements\{node="node-1",set="denied"\} 7/);
});

test('GET /api/stream: snapshot, then batched flows and edge deltas, filtered', async () => {
  const ac = new AbortController();
  const events: { event: string; data: { flows?: FlowRecord[]; edges: { src: string; dst: string; flows: number }[] } }[] = [];
  const done = (async () => {
    for await (const ev of readSse(`${base}/api/stream?group=namespace&verdict=DROPPED`, ac.signal)) {
      events.push({ event: ev.event, data: JSON.parse(ev.data) });
      if (ev.event === 'batch') break;
    }
  })();
  // Wait for the snapshot so the subscription exists before ingesting.
  for (let i = 0; i < 100 && events.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
  assert.equal(events[0]?.event, 'snapshot');
  assert.equal(events[0]?.data.edges.length, 2);
  pipeline.ingest([podRecord(P(1), P(7)), podRecord(P(13), P(2), { verdict: 'DROPPED' })]);
  await Promise.race([done, new Promise((_, rej) => setTimeout(() => rej(new Error('no batch within 3s')), 3000))]);
  ac.abort();
  const batch = events[1];
  assert.equal(batch?.event, 'batch');
  assert.equal(batch?.data.flows?.length, 1);
  assert.equal(batch?.data.flows?.[0]?.verdict, 'DROPPED');
  assert.deepEqual(batch?.data.edges.map((e) => `${e.src}>${e.dst}:${e.flows}`), ['z>x:1']);
});

test('/docs serves the OpenAPI UI and spec; / without a build says how to build', async () => {
  const spec = (await get('/docs/json')).body as { paths: Record<string, unknown> };
  for (const p of ['/api/flows', '/api/edges', '/api/policies', '/api/alerts', '/api/stream', '/metrics']) assert.ok(p in spec.paths, p);
  assert.equal((await get('/docs')).status < 400 || (await get('/docs/')).status === 200, true);
  const ui = await get('/');
  assert.equal(ui.status, 503);
  assert.match(ui.text, /build:ui/);
});
