// The engine's identity id travels with a flow record: enricher → store → query, and an old
// flows.db (written before the column existed; `lab down` keeps it) is migrated on open.

import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { Enricher } from '../src/flows/enrich.js';
import { parseFlowFilter } from '../src/flows/filter.js';
import { SqliteFlowStore } from '../src/flows/sqlite-store.js';
import { decodeBatch, encodeBatch } from '../bench/store-worker.js';
import type { FlowRecord } from '../src/flows/record.js';

const dir = mkdtempSync(join(tmpdir(), 'weir-flow-id-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function record(enricher: Enricher): FlowRecord {
  return {
    time: Date.now(),
    node: 'node-0',
    src: enricher.endpoint('10.0.0.1'),
    dst: enricher.endpoint('10.0.0.2'),
    srcPort: 40000,
    dstPort: 80,
    protocol: 'TCP',
    verdict: 'FORWARDED',
    policy: 'default',
    rule: 'default-allow',
    tier: 'default',
    bytes: 0,
    packets: 0,
    durationMs: 0,
  };
}

test('identity ids: enriched, stored, queried, through the worker encoding', () => {
  const enricher = new Enricher({
    lookup: (ip) => (ip === '10.0.0.1' ? { ip, namespace: 'x', name: 'a', labels: { pod: 'a' }, identityId: 123456 } : ip === '10.0.0.2' ? { ip, namespace: 'x', name: 'b' } : undefined),
  });
  const r = record(enricher);
  assert.equal(r.src.identityId, 123456);
  assert.equal(r.dst.identityId, undefined);
  const store = new SqliteFlowStore(join(dir, 'a.db'));
  store.insert([r]);
  const [got] = store.queryFlows(parseFlowFilter({}));
  assert.equal(got?.src.identityId, 123456);
  assert.equal(got?.dst.identityId, undefined);
  store.close();
  const [decoded] = decodeBatch(encodeBatch([r]));
  assert.deepEqual(decoded, r);
});

test('a flows.db without the identity id columns is migrated on open', () => {
  const path = join(dir, 'old.db');
  const db = new Database(path);
  db.exec(`CREATE TABLE flows (
    id INTEGER PRIMARY KEY, time INTEGER NOT NULL, node TEXT NOT NULL,
    src_ip TEXT NOT NULL, src_ns TEXT, src_pod TEXT, src_workload TEXT, src_identity TEXT, src_ext INTEGER NOT NULL, src_cidr TEXT,
    dst_ip TEXT NOT NULL, dst_ns TEXT, dst_pod TEXT, dst_workload TEXT, dst_identity TEXT, dst_ext INTEGER NOT NULL, dst_cidr TEXT,
    src_port INTEGER NOT NULL, dst_port INTEGER NOT NULL, protocol TEXT NOT NULL,
    verdict TEXT NOT NULL, policy TEXT NOT NULL, rule TEXT NOT NULL, tier TEXT NOT NULL, direction TEXT,
    bytes INTEGER NOT NULL, packets INTEGER NOT NULL, duration_ms REAL NOT NULL, event TEXT)`);
  db.prepare(`INSERT INTO flows (time, node, src_ip, src_ext, dst_ip, dst_ext, src_port, dst_port, protocol, verdict, policy, rule, tier, bytes, packets, duration_ms)
    VALUES (1, 'n', '10.0.0.9', 0, '10.0.0.8', 0, 1, 2, 'TCP', 'FORWARDED', 'default', 'default-allow', 'default', 0, 0, 0)`).run();
  db.close();
  const store = new SqliteFlowStore(path);
  const enricher = new Enricher({ lookup: (ip) => ({ ip, namespace: 'x', name: ip, identityId: 777 }) });
  store.insert([record(enricher)]);
  const flows = store.queryFlows(parseFlowFilter({}));
  assert.equal(flows.length, 2);
  assert.deepEqual(
    flows.map((f) => f.src.identityId),
    [777, undefined],
  );
  store.close();
});
