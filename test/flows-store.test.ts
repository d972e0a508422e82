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

// ---- retention in event-loop turns (what the server's pipeline runs) ---------------------------

/** `n` rows a millisecond apart from `t0`, inserted in batches as the pipeline does. */
function fill(s: SqliteFlowStore, n: number, t0: number): void {
  for (let i = 0; i < n; i += 5000) s.insert(Array.from({ length: Math.min(5000, n - i) }, (_, k) => podRecord(P(i + k), P(i + k + 7), { time: t0 + i + k, verdict: (i + k) % 9 === 0 ? 'DROPPED' : 'FORWARDED' })));
}
const flowSum = (s: SqliteFlowStore): number => s.edges('namespace', 0).reduce((a, e) => a + e.flows, 0);
const hitSum = (s: SqliteFlowStore): number => s.policyCounters().reduce((a, p) => a + p.hits, 0);
const rowTimes = (s: SqliteFlowStore): number[] => (s.db.prepare('SELECT time FROM flows ORDER BY id').all() as { time: number }[]).map((r) => r.time);

test('sqlite store: retention in turns gives the one-go results (by age and rows, aggregates kept)', async () => {
  const s = new SqliteFlowStore(join(dir, 'turns-same.db'));
  const now = Date.now();
  s.insert(Array.from({ length: 50 }, (_, i) => podRecord(P(i), P(i + 7), { time: now - 2 * 3_600_000 + i })));
  s.insert(Array.from({ length: 50 }, (_, i) => podRecord(P(i), P(i + 7), { time: now - 1000 + i })));
  s.insert([podRecord(P(1), P(2), { time: now - 9 * 86_400_000 })]);
  const before = flowSum(s);
  const minutes = s.edgeMinutes(0).length;
  const r = await s.retentionInTurns(now, { rawMaxAgeMs: 3_600_000, rawMaxRows: 30 });
  assert.deepEqual(r, { rawDeleted: 71, aggregatesDeleted: 1, alertsDeleted: 0 }, 'the 51 old rows by age, 20 more by the cap; the 9-day-old minute');
  assert.deepEqual(rowTimes(s), Array.from({ length: 30 }, (_, i) => now - 1000 + 20 + i), 'the newest 30 rows are kept, oldest went first');
  assert.equal(s.edgeMinutes(0).length, minutes - 1);
  assert.equal(flowSum(s), before - 1, 'aggregates survive raw retention (only the 9-day-old minute went)');
  s.close();
});

test('sqlite store: a pass in turns holds the row cap exactly and keeps the newest rows, also after a restart', async () => {
  const path = join(dir, 'turns-cap.db');
  let s = new SqliteFlowStore(path, { retention: { rawMaxRows: 5000 } });
  const now = Date.now();
  fill(s, 23_456, now - 600_000);
  const flows = flowSum(s);
  const hits = hitSum(s);
  const r = await s.retentionInTurns(now, {}, 2);
  assert.equal(r.rawDeleted, 18_456);
  assert.equal(s.stats().flows, 5000, 'exactly the cap');
  const times = rowTimes(s);
  assert.deepEqual([times[0], times.at(-1)], [now - 600_000 + 18_456, now - 600_000 + 23_455], 'the newest 5,000 rows');
  assert.equal(flowSum(s), flows, 'per-minute edges count every flow still');
  assert.equal(hitSum(s), hits, 'policy counters count every flow still');
  s.close();
  // Ids go on from the highest after a restart: the next cut is exact again.
  s = new SqliteFlowStore(path, { retention: { rawMaxRows: 5000 } });
  fill(s, 3000, now - 1000);
  assert.equal((await s.retentionInTurns(now)).rawDeleted, 3000);
  assert.equal(s.stats().flows, 5000);
  assert.deepEqual(rowTimes(s).slice(-3000), Array.from({ length: 3000 }, (_, i) => now - 1000 + i), 'the rows inserted after the restart are kept');
  assert.equal(flowSum(s), flows + 3000);
  s.close();
});

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

test('sqlite store: a pass in turns yields to the event loop between its statements', async () => {
  const s = new SqliteFlowStore(join(dir, 'turns-yield.db'), { retention: { rawMaxRows: 2000 } });
  const now = Date.now();
  fill(s, 30_000, now - 600_000);
  let timerFired = false;
  setTimeout(() => {
    timerFired = true;
  }, 0);
  let ticks = 0;
  const tick = setInterval(() => ticks++, 1);
  const r = await s.retentionInTurns(now, {}, 2).then((x) => ({ ...x, timerFired, ticks }));
  clearInterval(tick);
  assert.equal(r.rawDeleted, 28_000);
  assert.equal(r.timerFired, true, 'a timer set before the pass ran before the pass was done');
  assert.ok(r.ticks >= 2, `a 1-ms interval ticked during the pass (${r.ticks} times)`);
  assert.equal(s.stats().flows, 2000);
  s.close();
});

test('sqlite store: passes in turns never overlap; the one-go pass refuses to run inside one', async () => {
  const s = new SqliteFlowStore(join(dir, 'turns-overlap.db'));
  const now = Date.now();
  fill(s, 20_000, now - 600_000);
  const order: string[] = [];
  const a = s.retentionInTurns(now, { rawMaxRows: 12_000 }, 1).then((r) => (order.push('a'), r));
  const b = s.retentionInTurns(now, { rawMaxRows: 5_000 }, 1).then((r) => (order.push('b'), r));
  assert.throws(() => s.retention(now), /a retention pass is running/);
  const [ra, rb] = await Promise.all([a, b]);
  // Had they interleaved, each would have deleted some of the other's rows.
  assert.equal(ra.rawDeleted, 8000, 'the first pass deleted down to its cap alone');
  assert.equal(rb.rawDeleted, 7000, 'the second ran after it, from 12,000 rows');
  assert.deepEqual(order, ['a', 'b']);
  assert.equal(s.stats().flows, 5000);
  assert.equal(s.retention(now).rawDeleted, 0, 'the one-go pass runs again once none is running');
  s.close();
});

test('sqlite store: close() during a pass in turns stops it at its next turn', async () => {
  const path = join(dir, 'turns-close.db');
  let s = new SqliteFlowStore(path, { retention: { rawMaxRows: 1000 } });
  const now = Date.now();
  fill(s, 20_000, now - 600_000);
  const flows = flowSum(s);
  const pass = s.retentionInTurns(now, {}, 1);
  await new Promise((r) => setImmediate(r));
  s.close();
  const r = await pass;
  assert.equal(r.interrupted, true);
  assert.ok(r.rawDeleted > 0 && r.rawDeleted < 19_000, `stopped part way (${r.rawDeleted} deleted)`);
  await assert.rejects(s.retentionInTurns(now), /not open/, 'a closed store starts no pass');
  s = new SqliteFlowStore(path, { retention: { rawMaxRows: 1000 } });
  assert.equal(s.stats().flows, 20_000 - r.rawDeleted, 'what it deleted is committed, nothing else');
  assert.equal(flowSum(s), flows, 'aggregates untouched');
  assert.equal((await s.retentionInTurns(now)).rawDeleted, 19_000 - r.rawDeleted, 'the next pass finishes the job');
  assert.equal(s.stats().flows, 1000);
  s.close();
});

test('pipeline: retention runs in turns; a tick while a pass runs is skipped, not stacked', async () => {
  const s = new SqliteFlowStore(join(dir, 'turns-pipeline.db'), { retention: { rawMaxRows: 3000 } });
  const now = Date.now();
  fill(s, 20_000, now - 600_000);
  const errors: unknown[] = [];
  const pipe = new FlowPipeline({ store: s, now: () => now, onError: (e) => errors.push(e) });
  const first = pipe.runRetention();
  const second = pipe.runRetention();
  assert.equal(second, first, 'the second call gets the running pass');
  // The pipeline keeps ingesting and flushing while the pass runs.
  pipe.ingest(podRecord(P(0), P(1), { time: now }));
  pipe.flush();
  await first;
  assert.deepEqual(errors, []);
  assert.equal(pipe.stats.retentionPasses, 1);
  assert.equal(pipe.stats.retentionSkipped, 1);
  assert.equal(pipe.stats.stored, 1);
  assert.ok(s.stats().flows <= 3001 && s.stats().flows >= 3000, `the cap held (${s.stats().flows} rows)`);
  await pipe.runRetention();
  assert.equal(s.stats().flows, 3000, 'the next pass takes the rest');
  assert.equal(pipe.stats.retentionPasses, 2);
  s.close();
});
