import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { parseFlowFilter } from '../src/flows/filter.js';
import { FlowPipeline } from '../src/flows/pipeline.js';
import type { FlowRecord } from '../src/flows/record.js';
import { SqliteFlowStore } from '../src/flows/sqlite-store.js';
import { WorkerFlowStore, decodeBatch, encodeBatch } from '../bench/store-worker.js';
import type { WriteReport } from '../src/flows/store.js';
import { podRecord, syntheticCluster } from '../src/flows/synthetic.js';

const dir = mkdtempSync(join(tmpdir(), 'weir-store-worker-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const c = syntheticCluster(3, 3, 2);
const P = (i: number) => c.pods[i % c.pods.length]!;
const recs = (n: number, t0 = Date.now()): FlowRecord[] => Array.from({ length: n }, (_, i) => podRecord(P(i), P(i * 7 + 3), { time: t0 + i, verdict: i % 5 === 0 ? 'DROPPED' : 'FORWARDED' }));

test('worker store: the batch encoding round-trips every field (optional ones stay absent)', () => {
  const ext = { ip: '8.8.8.8', external: true, cidr: '8.8.8.0/24' };
  const input: FlowRecord[] = [
    { ...podRecord(P(0), P(6)), direction: 'ingress' },
    { ...podRecord(P(1), P(7), { verdict: 'DROPPED' }), dst: ext },
    (({ event: _e, ...r }) => r)(podRecord(P(2), P(8))),
  ];
  const out = decodeBatch(encodeBatch(input));
  assert.deepEqual(out, input, 'decoded records equal the originals');
  assert.ok(!('event' in (out[2] as object)), 'an absent event stays absent');
});

test('worker store: rows survive a restart; queries, edges and policy counters see them', () => {
  const path = join(dir, 'restart.db');
  const now = Date.now();
  let s = new WorkerFlowStore(path);
  s.insert(recs(2500, now - 10_000));
  s.insert(recs(2500, now - 5_000));
  s.sync();
  assert.equal(s.queued, 0, 'nothing queued after sync');
  assert.equal(s.stats().flows, 5000, 'the caller connection sees committed rows after sync');
  s.close();

  s = new WorkerFlowStore(path);
  assert.equal(s.stats().flows, 5000, 'rows survive a restart');
  assert.equal(s.queryFlows(parseFlowFilter({ verdict: 'DROPPED', limit: '10000' })).length, 1000, 'verdict query');
  const flows = s.edges('namespace', now - 60_000).reduce((a, e) => a + e.flows, 0);
  assert.equal(flows, 5000, 'per-minute aggregates committed with the rows');
  assert.equal(s.policyCounters().reduce((a, p) => a + p.hits, 0), 5000, 'policy counters committed with the rows');
  // The writer runs retention (in order after inserts), sync() returns its result.
  s.insert(recs(10, now - 7_200_000));
  const r = s.retention(now, { rawMaxAgeMs: 3_600_000 });
  assert.equal(r.rawDeleted, 10, 'retention on the writer deletes the old rows');
  s.close();
});

test('worker store: pipeline.stop() makes every batch durable; stats count committed rows', () => {
  const path = join(dir, 'stop.db');
  const store = new WorkerFlowStore(path, { commitEveryMs: 60_000 });
  const reports: WriteReport[] = [];
  store.onReport((r) => reports.push(r));
  const pipeline = new FlowPipeline({ store, flushMs: 20, maxBatch: 1000 }).start();
  for (let i = 0; i < 12; i++) pipeline.ingest(recs(500));
  // Timer flushes hand batches to the writer, which holds them for its (long) group commit.
  pipeline.stop();
  const st = pipeline.stats;
  assert.equal(st.stored, 6000, `stop() waits for the commit (stats ${JSON.stringify(st)})`);
  assert.equal(st.storeQueued, 0, 'nothing left queued');
  assert.equal(st.storeErrors + st.storeFailed + st.storeShed + st.overflowDropped, 0, 'no losses');
  assert.equal(reports.reduce((a, r) => a + r.committed, 0), 6000, 'reports account for every record');
  store.close();
  const reader = new SqliteFlowStore(path);
  assert.equal(reader.stats().flows, 6000, 'all rows on disk after stop + close');
  reader.close();
});

test('worker store: over maxQueued, batches are shed to aggregates and counted, never silently', () => {
  const store = new WorkerFlowStore(join(dir, 'shed.db'), { maxQueued: 1000, commitEveryMs: 60_000 });
  const reports: WriteReport[] = [];
  store.onReport((r) => reports.push(r));
  store.insert(recs(1000));
  // The writer holds the first 1000 for its group commit: the queue is full.
  store.insert(recs(300));
  store.sync();
  assert.equal(reports.reduce((a, r) => a + r.committed, 0), 1000, 'the batch within the bound is stored as rows');
  assert.equal(reports.reduce((a, r) => a + r.shed, 0), 300, 'the batch beyond the bound is shed and counted');
  assert.equal(store.stats().flows, 1000, 'shed records have no raw rows');
  const flows = store.edges('namespace', Date.now() - 60_000).reduce((a, e) => a + e.flows, 0);
  assert.equal(flows, 1300, 'shed records keep their counts in the per-minute aggregates');
  store.close();
});

test('worker store: a failed transaction is surfaced (pipeline stats + onError), not swallowed', () => {
  const store = new WorkerFlowStore(join(dir, 'err.db'));
  const errors: unknown[] = [];
  const pipeline = new FlowPipeline({ store, onError: (e) => errors.push(e) });
  // node is NOT NULL in the schema: the writer's transaction fails and rolls back.
  const bad = { ...podRecord(P(0), P(1)), node: undefined } as unknown as FlowRecord;
  pipeline.ingest([...recs(10), bad]);
  pipeline.flush();
  const st = pipeline.stats;
  assert.equal(st.storeErrors, 1, `one store error counted (stats ${JSON.stringify(st)})`);
  assert.equal(st.storeFailed, 11, 'the whole rolled-back batch is counted as failed');
  assert.equal(st.stored, 0, 'nothing counted as stored');
  assert.equal(errors.length, 1, 'onError called once');
  assert.match(String(errors[0]), /NOT NULL/, 'the SQLite error reaches the caller');
  // The writer keeps working after a failed batch.
  pipeline.ingest(recs(5));
  pipeline.flush();
  assert.equal(pipeline.stats.stored, 5, 'later batches are stored');
  store.close();
});

test('worker store: with no report listener, a writer error is thrown by the next sync()', () => {
  const store = new WorkerFlowStore(join(dir, 'unclaimed.db'));
  store.insert([{ ...podRecord(P(0), P(1)), node: undefined } as unknown as FlowRecord]);
  assert.throws(() => store.sync(), /NOT NULL/, 'sync() throws the writer error nobody listened to');
  store.sync();
  store.close();
});

test('worker store: a writer that dies is reported, and later writes fail loudly', async () => {
  const store = new WorkerFlowStore(join(dir, 'dies.db'));
  const errors: unknown[] = [];
  const pipeline = new FlowPipeline({ store, onError: (e) => errors.push(e) });
  pipeline.ingest(recs(10));
  pipeline.flush();
  assert.equal(pipeline.stats.stored, 10, 'stored before the writer dies');
  const w = (store as unknown as { worker: { terminate(): Promise<number> } }).worker;
  await w.terminate();
  await new Promise((r) => setImmediate(r));
  pipeline.ingest(recs(10));
  pipeline.flush();
  assert.ok(errors.length >= 1, `the dead writer is reported (errors: ${errors.map(String).join('; ')})`);
  assert.match(String(errors.at(-1)), /writer exited/, 'the error says the writer exited');
  assert.equal(pipeline.stats.storeFailed, 10, 'the records that could not be handed over are counted');
  assert.throws(() => store.insert(recs(1)), /writer exited/, 'direct inserts fail loudly too');
  store.close();
});
