// suite: integration (no root; real HTTP on loopback and a real SQLite file)
// The ingest route's exactly-once bookkeeping lives in the records' own transaction: an agent's
// highest committed sequence is written with its flows or not at all, so a server that fails
// (or dies) mid-commit neither loses a batch nor counts its retry twice. Also: a new edge
// reaches an open live stream as soon as its batch is committed, not on a later timer tick.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { seqStateKey } from '../src/api/ingest.js';
import { createServer } from '../src/api/server.js';
import { FlowMetrics } from '../src/flows/metrics.js';
import { FlowPipeline } from '../src/flows/pipeline.js';
import { flowCount, type FlowRecord } from '../src/flows/record.js';
import { INGEST_PATH } from '../src/flows/ship-protocol.js';
import { readSse } from '../src/flows/sse-client.js';
import { SqliteFlowStore } from '../src/flows/sqlite-store.js';
import { podRecord, syntheticCluster } from '../src/flows/synthetic.js';

const TOKEN = 'test-token-0123456789abcdef';
const dir = mkdtempSync(join(tmpdir(), 'weir-ingest-commit-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const pods = syntheticCluster(2, 2, 1).pods;
const report = {
  node: 'n1',
  version: 'test',
  ship: { bufferedBatches: 0, bufferedBytes: 0, bufferLimitBytes: 1, lostBatches: 0, lostFlows: 0, sentBatches: 0, failedAttempts: 0, observedFlows: 0, sampledRecords: 0 },
};
const records = (n: number): FlowRecord[] => Array.from({ length: n }, (_, i) => ({ ...podRecord(pods[i % pods.length]!, pods[(i + 1) % pods.length]!), node: 'n1', count: 3 }));
const flowsOf = (rs: readonly FlowRecord[]): number => rs.reduce((a, r) => a + flowCount(r), 0);
const storedFlows = (s: SqliteFlowStore): number => s.edges('workload', 0).reduce((a, e) => a + e.flows, 0);

/** A real SQLite store whose next commit can be made to fail (as a full disk would). */
class FailingStore extends SqliteFlowStore {
  failNext = false;
  override insert(rs: readonly FlowRecord[], state?: ReadonlyMap<string, string>): void {
    if (this.failNext) {
      this.failNext = false;
      // Fail inside a real transaction, after rows were written: it must roll back whole.
      this.db.transaction(() => {
        super.insert(rs, state);
        throw new Error('disk full (test)');
      })();
    }
    super.insert(rs, state);
  }
}

test('the store writes state with its records in one transaction, or neither', () => {
  const store = new SqliteFlowStore(join(dir, 'unit.db'));
  try {
    const rs = records(4);
    store.insert(rs, new Map([['k', '1']]));
    assert.equal(store.getState('k'), '1');
    assert.equal(storedFlows(store), flowsOf(rs));
    // A record the table refuses (NOT NULL node) rolls the whole insert back, state included.
    const bad = [...records(2), { ...records(1)[0]!, node: null as unknown as string }];
    assert.throws(() => store.insert(bad, new Map([['k', '2']])));
    assert.equal(store.getState('k'), '1');
    assert.equal(storedFlows(store), flowsOf(rs));
    // State alone (no records) is written too.
    store.insert([], new Map([['k', '3']]));
    assert.equal(store.getState('k'), '3');
  } finally {
    store.close();
  }
});

test('a failed commit is answered 500 and leaves no sequence behind; the retry is counted once; a reopened store agrees', async () => {
  const db = join(dir, 'server.db');
  const store = new FailingStore(db);
  const pipeline = new FlowPipeline({ store, metrics: new FlowMetrics(), onError: () => undefined }).start();
  const app = createServer({ store, pipeline, uiDir: join(dir, 'no-ui'), access: { token: TOKEN } });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const addr = app.server.address();
  const url = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
  const post = async (body: unknown): Promise<{ status: number; body: Record<string, unknown> }> => {
    const res = await fetch(`${url}${INGEST_PATH}`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  try {
    const rs = records(10);
    const batch = { agentId: 'agent-commit-1', seq: 1, flows: flowsOf(rs), records: rs, report };
    store.failNext = true;
    const failed = await post(batch);
    assert.equal(failed.status, 500, JSON.stringify(failed.body));
    assert.equal(store.getState(seqStateKey('agent-commit-1')), undefined);
    assert.equal(storedFlows(store), 0);
    const ok = await post(batch);
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.deepEqual(ok.body, { accepted: 10, duplicate: false });
    const again = await post(batch);
    assert.deepEqual(again.body, { accepted: 0, duplicate: true });
    // Two batches of one agent in one request run (firstSeq..seq), then the state is the highest.
    const rs2 = records(5);
    assert.equal((await post({ agentId: 'agent-commit-1', firstSeq: 2, seq: 4, flows: flowsOf(rs2), records: rs2, report })).status, 200);
    assert.equal(store.getState(seqStateKey('agent-commit-1')), '4');
    assert.equal(storedFlows(store), flowsOf(rs) + flowsOf(rs2));
  } finally {
    await app.close();
    pipeline.stop();
    store.close();
  }
  const reopened = new SqliteFlowStore(db);
  try {
    assert.equal(reopened.getState(seqStateKey('agent-commit-1')), '4');
    assert.equal(storedFlows(reopened), flowsOf(records(10)) + flowsOf(records(5)));
  } finally {
    reopened.close();
  }
});

test('a new edge is on the live stream when its batch is answered, not a timer tick later', async () => {
  const store = new SqliteFlowStore(join(dir, 'stream.db'));
  // A pipeline timer of a minute: anything waiting for it would miss the 5 s bound below.
  const pipeline = new FlowPipeline({ store, flushMs: 60_000 }).start();
  const app = createServer({ store, pipeline, uiDir: join(dir, 'no-ui'), access: { token: TOKEN } });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const addr = app.server.address();
  const url = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
  const ac = new AbortController();
  try {
    const events = readSse(`${url}/api/stream`, ac.signal, { authorization: `Bearer ${TOKEN}` })[Symbol.asyncIterator]();
    assert.equal((await events.next()).value?.event, 'snapshot');
    const rs = records(3);
    const t0 = Date.now();
    const res = await fetch(`${url}${INGEST_PATH}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ agentId: 'agent-stream-1', seq: 1, flows: flowsOf(rs), records: rs, report }),
    });
    assert.equal(res.status, 200);
    const ev = await Promise.race([events.next(), new Promise<never>((_, reject) => setTimeout(() => reject(new Error('no batch on the stream within 5 s')), 5_000))]);
    assert.equal(ev.value?.event, 'batch');
    const b = JSON.parse(ev.value?.data ?? '{}') as { edges: { flows: number }[] };
    assert.equal(b.edges.reduce((a, e) => a + e.flows, 0), flowsOf(rs));
    assert.ok(Date.now() - t0 < 5_000);
  } finally {
    ac.abort();
    await app.close();
    pipeline.stop();
    store.close();
  }
});
