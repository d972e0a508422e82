import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { parseFlowFilter } from '../src/flows/filter.js';
import { FlowPipeline } from '../src/flows/pipeline.js';
import { SqliteFlowStore } from '../src/flows/sqlite-store.js';
import { podRecord, syntheticCluster } from '../src/flows/synthetic.js';

const dir = mkdtempSync(join(tmpdir(), 'weir-store-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const c = syntheticCluster(3, 3, 2);
const P = (i: number) => c.pods[i % c.pods.length] ?? c.pods[0]!;

test('sqlite store: insert, filtered queries, edges, policy counters; survives restart', () => {
  const path = join(dir, 'a.db');
  const now = Date.now();
  let s = new SqliteFlowStore(path);
  assert.equal(s.db.pragma('journal_mode', { simple: true }), 'wal');
  const recs = [
    podRecord(P(0), P(6), { time: now - 1000 }),
    podRecord(P(0), P(8), { time: now - 900, verdict: 'DROPPED', dstPort: 81 }),
    podRecord(P(12), P(8), { time: now - 800, verdict: 'AUDIT', policy: 'NetworkPolicy y/audit', rule: 'default-deny' }),
    { ...podRecord(P(0), P(6), { time: now - 700 }), dst: { ip: '8.8.8.8', external: true, cidr: '8.8.8.0/24' } },
  ];
  s.insert(recs);
  assert.equal(s.queryFlows(parseFlowFilter({})).length, 4);
  assert.equal(s.queryFlows(parseFlowFilter({}))[0]?.time, now - 700, 'newest first');
  const dropped = s.queryFlows(parseFlowFilter({ verdict: 'DROPPED' }));
  assert.equal(dropped.length, 1);
  assert.deepEqual({ ...dropped[0], id: 0 }, { ...recs[1], id: 0 });
  assert.equal(s.queryFlows(parseFlowFilter({ from_namespace: 'z' })).length, 1);
  assert.equal(s.queryFlows(parseFlowFilter({ to_pod: `y/${P(8).name}` })).length, 2);
  assert.equal(s.queryFlows(parseFlowFilter({ port: '81', protocol: 'TCP' })).length, 1);
  assert.equal(s.queryFlows(parseFlowFilter({ to_workload: 'external:8.8.8.0/24' })).length, 1);
  assert.equal(s.queryFlows(parseFlowFilter({ since: '850ms' }, now)).length, 2);
  assert.equal(s.queryFlows(parseFlowFilter({ limit: '2' })).length, 2);
  s.close();

  s = new SqliteFlowStore(path);
  assert.equal(s.stats().flows, 4);
  const ns = s.edges('namespace', now - 3_600_000);
  assert.deepEqual(ns.map((e) => `${e.src}>${e.dst}:${e.flows}/${e.dropped}/${e.audit}`).sort(), ['x>external:8.8.8.0/24:1/0/0', 'x>y:2/1/0', 'z>y:1/0/1']);
  const pol = s.policyCounters();
  assert.equal(pol.find((p) => p.policy === 'NetworkPolicy y/audit')?.audit, 1);
  assert.deepEqual(pol.find((p) => p.policy === 'default')?.rules, { 'default-allow': 2 });
  // Edge minutes seed the live aggregator after a restart.
  const pipe = new FlowPipeline({ store: s });
  assert.equal(pipe.aggregator.edges('namespace', 3_600_000).length, 3);
  s.close();
});

test('sqlite store: retention by age and rows keeps minute aggregates (downsampling)', () => {
  const s = new SqliteFlowStore(join(dir, 'b.db'));
  const now = Date.now();
  const old = Array.from({ length: 50 }, (_, i) => podRecord(P(i), P(i + 7), { time: now - 2 * 3_600_000 + i }));
  const fresh = Array.from({ length: 50 }, (_, i) => podRecord(P(i), P(i + 7), { time: now - 1000 + i }));
  s.insert(old);
  s.insert(fresh);
  const before = s.edges('namespace', now - 3 * 3_600_000).reduce((a, e) => a + e.flows, 0);
  const r = s.retention(now, { rawMaxAgeMs: 3_600_000, rawMaxRows: 30 });
  assert.equal(r.rawDeleted, 70);
  assert.equal(s.stats().flows, 30);
  assert.equal(s.queryFlows(parseFlowFilter({ limit: '1000' })).at(-1)?.time, now - 1000 + 20, 'oldest rows went first');
  const afterSum = s.edges('namespace', now - 3 * 3_600_000).reduce((a, e) => a + e.flows, 0);
  assert.equal(afterSum, before, 'aggregates survive raw retention');
  assert.equal(s.retention(now, { aggregateMaxAgeMs: 3_600_000 }).aggregatesDeleted > 0, true);
  s.close();
});

test('sqlite store: alerts, webhook queue and state persist', () => {
  const path = join(dir, 'c.db');
  let s = new SqliteFlowStore(path);
  const a = s.insertAlert({ rule: 'r1', kind: 'denied-rate', state: 'firing', firedAt: 1000, message: 'm', value: 11, threshold: 10, labels: { namespace: 'x' } });
  s.enqueueWebhook(a.id, 'http://127.0.0.1:1/hook', '{"x":1}', 1000);
  s.setState('k', 'v');
  s.close();
  s = new SqliteFlowStore(path);
  assert.equal(s.listAlerts()[0]?.labels.namespace, 'x');
  const due = s.dueWebhooks(1000, 10);
  assert.equal(due.length, 1);
  s.webhookFailed(due[0]!.id, 5000, 'ECONNREFUSED', false);
  assert.equal(s.dueWebhooks(1000, 10).length, 0);
  assert.equal(s.nextWebhookAt(), 5000);
  s.webhookDelivered(due[0]!.id, 5000);
  assert.equal(s.stats().webhookPending, 0);
  s.resolveAlert(a.id, 2000);
  assert.equal(s.listAlerts({ state: 'resolved' })[0]?.resolvedAt, 2000);
  assert.equal(s.getState('k'), 'v');
  s.close();
});

/** `n` rows a millisecond apart from `t0`, inserted in batches as the pipeline does. */
function fill(s: SqliteFlowStore, n: number, t0: number): void {
  for (let i = 0; i < n; i += 5000) s.insert(Array.from({ length: Math.min(5000, n - i) }, (_, k) => podRecord(P(i + k), P(i + k + 7), { time: t0 + i + k, verdict: (i + k) % 9 === 0 ? 'DROPPED' : 'FORWARDED' })));
}

test('sqlite store: a row that age retention took out of order makes the cap keep one row fewer, never more', () => {
  const s = new SqliteFlowStore(join(dir, 'cap-hole.db'));
  const now = Date.now();
  fill(s, 100, now - 10_000);
  // An agent's late batch: older than rawMaxAgeMs, between newer rows.
  s.insert([podRecord(P(0), P(1), { time: now - 2 * 3_600_000 })]);
  fill(s, 10, now - 1000);
  const r = s.retention(now, { rawMaxAgeMs: 3_600_000, rawMaxRows: 50 });
  assert.equal(r.rawDeleted, 62, 'the late row (id 101) by age, then ids 1–61: max(id) 111 − 50');
  assert.equal(s.stats().flows, 49, 'ids 62–111 but the hole at 101');
  s.close();
});
