// SQLite FlowStore (better-sqlite3): WAL, prepared statements, one transaction per batch.
// Raw flows are short-lived (retention by age and by row count); every batch is also rolled
// up at insert time into per-minute edge aggregates, so deleting old raw rows *is* the
// downsampling step: history beyond the raw horizon lives on at minute resolution.
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { aggregatePolicies, emptyCounters, groupOf, type Edge, type EdgeCounters, type GroupBy, type PolicyCounter } from './aggregate.js';
import { externalCidrOf, type FlowFilter } from './filter.js';
import { VERDICTS, flowCount, type Endpoint, type FlowRecord, type FlowEvent, type FlowProtocol, type Tier, type Verdict } from './record.js';
import {
  DEFAULT_RETENTION,
  type AlertRecord,
  type AlertState,
  type EdgeMinute,
  type FlowStore,
  type NewAlert,
  type RetentionOptions,
  type RetentionResult,
  type StoreStats,
  type StoredFlow,
  type WebhookJob,
} from './store.js';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS flows (
  id INTEGER PRIMARY KEY,
  time INTEGER NOT NULL,
  node TEXT NOT NULL,
  src_ip TEXT NOT NULL, src_ns TEXT, src_pod TEXT, src_workload TEXT, src_identity TEXT, src_ext INTEGER NOT NULL, src_cidr TEXT,
  dst_ip TEXT NOT NULL, dst_ns TEXT, dst_pod TEXT, dst_workload TEXT, dst_identity TEXT, dst_ext INTEGER NOT NULL, dst_cidr TEXT,
  src_port INTEGER NOT NULL, dst_port INTEGER NOT NULL, protocol TEXT NOT NULL,
  verdict TEXT NOT NULL, policy TEXT NOT NULL, rule TEXT NOT NULL, tier TEXT NOT NULL, direction TEXT,
  bytes INTEGER NOT NULL, packets INTEGER NOT NULL, duration_ms REAL NOT NULL, event TEXT,
  src_identity_id INTEGER, dst_identity_id INTEGER,
  svc_ip TEXT, svc_port INTEGER, svc_name TEXT
);
CREATE INDEX IF NOT EXISTS flows_time ON flows(time);
-- Denied and audited flows are the rare, interesting ones: a partial index keeps them fast to
-- find without paying an index update for every forwarded flow.
CREATE INDEX IF NOT EXISTS flows_notfwd_time ON flows(verdict, time) WHERE verdict != 'FORWARDED';
-- One namespace index, (from, time): it serves from_namespace, and namespace-to-namespace
-- queries filter dst_ns within it; to_namespace alone scans the time index newest-first.
-- Every raw row pays for it: (src_ns, dst_ns, time) spread inserts over one B-tree segment per
-- namespace pair and cost ~12 µs CPU per row against ~8.5 µs for (src_ns, time) and ~6 µs
-- with no namespace index (25k-row transactions, 400 pods in 20 namespaces).
DROP INDEX IF EXISTS flows_ns_time;
CREATE INDEX IF NOT EXISTS flows_src_ns_time ON flows(src_ns, time);
CREATE TABLE IF NOT EXISTS edge_minutes (
  minute INTEGER NOT NULL,
  src_ns TEXT NOT NULL, src_workload TEXT NOT NULL, src_identity TEXT NOT NULL,
  dst_ns TEXT NOT NULL, dst_workload TEXT NOT NULL, dst_identity TEXT NOT NULL,
  flows INTEGER NOT NULL, bytes INTEGER NOT NULL, packets INTEGER NOT NULL,
  forwarded INTEGER NOT NULL, dropped INTEGER NOT NULL, audit INTEGER NOT NULL, last_seen INTEGER NOT NULL,
  PRIMARY KEY (minute, src_ns, src_workload, src_identity, dst_ns, dst_workload, dst_identity)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS policy_hits (
  policy TEXT PRIMARY KEY, tier TEXT NOT NULL,
  hits INTEGER NOT NULL, forwarded INTEGER NOT NULL, dropped INTEGER NOT NULL, audit INTEGER NOT NULL,
  packets INTEGER NOT NULL, bytes INTEGER NOT NULL, last_seen INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS policy_rule_hits (
  policy TEXT NOT NULL, rule TEXT NOT NULL, hits INTEGER NOT NULL, PRIMARY KEY (policy, rule)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS alerts (
  id INTEGER PRIMARY KEY, rule TEXT NOT NULL, kind TEXT NOT NULL, state TEXT NOT NULL,
  fired_at INTEGER NOT NULL, resolved_at INTEGER, message TEXT NOT NULL,
  value REAL NOT NULL, threshold REAL NOT NULL, labels TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS alerts_fired ON alerts(fired_at);
CREATE TABLE IF NOT EXISTS webhook_queue (
  id INTEGER PRIMARY KEY, alert_id INTEGER NOT NULL, url TEXT NOT NULL, payload TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0, next_at INTEGER NOT NULL, created_at INTEGER NOT NULL,
  delivered_at INTEGER, dead INTEGER NOT NULL DEFAULT 0, last_error TEXT
);
CREATE INDEX IF NOT EXISTS webhook_due ON webhook_queue(delivered_at, dead, next_at);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
`;

interface FlowRow {
  id: number;
  time: number;
  node: string;
  src_ip: string;
  src_ns: string | null;
  src_pod: string | null;
  src_workload: string | null;
  src_identity: string | null;
  src_ext: number;
  src_cidr: string | null;
  dst_ip: string;
  dst_ns: string | null;
  dst_pod: string | null;
  dst_workload: string | null;
  dst_identity: string | null;
  dst_ext: number;
  dst_cidr: string | null;
  src_port: number;
  dst_port: number;
  protocol: string;
  verdict: string;
  policy: string;
  rule: string;
  tier: string;
  direction: string | null;
  bytes: number;
  packets: number;
  duration_ms: number;
  event: string | null;
  src_identity_id: number | null;
  dst_identity_id: number | null;
  svc_ip: string | null;
  svc_port: number | null;
  svc_name: string | null;
}

interface EdgeRow {
  minute: number;
  src_ns: string;
  src_workload: string;
  src_identity: string;
  dst_ns: string;
  dst_workload: string;
  dst_identity: string;
  flows: number;
  bytes: number;
  packets: number;
  forwarded: number;
  dropped: number;
  audit: number;
  last_seen: number;
}

interface AlertRow {
  id: number;
  rule: string;
  kind: string;
  state: string;
  fired_at: number;
  resolved_at: number | null;
  message: string;
  value: number;
  threshold: number;
  labels: string;
}

function endpointFrom(ip: string, ns: string | null, pod: string | null, wl: string | null, id: string | null, ext: number, cidr: string | null, idNum: number | null): Endpoint {
  const e: Endpoint = { ip };
  if (ns !== null) e.namespace = ns;
  if (pod !== null) e.pod = pod;
  if (wl !== null) e.workload = wl;
  if (id !== null) e.identity = id;
  if (idNum !== null && idNum !== undefined) e.identityId = idNum;
  if (ext) e.external = true;
  if (cidr !== null) e.cidr = cidr;
  return e;
}

function rowToFlow(r: FlowRow): StoredFlow {
  const f: StoredFlow = {
    id: r.id,
    time: r.time,
    node: r.node,
    src: endpointFrom(r.src_ip, r.src_ns, r.src_pod, r.src_workload, r.src_identity, r.src_ext, r.src_cidr, r.src_identity_id),
    dst: endpointFrom(r.dst_ip, r.dst_ns, r.dst_pod, r.dst_workload, r.dst_identity, r.dst_ext, r.dst_cidr, r.dst_identity_id),
    srcPort: r.src_port,
    dstPort: r.dst_port,
    protocol: r.protocol as FlowProtocol,
    verdict: r.verdict as Verdict,
    policy: r.policy,
    rule: r.rule,
    tier: r.tier as Tier,
    bytes: r.bytes,
    packets: r.packets,
    durationMs: r.duration_ms,
  };
  if (r.direction === 'ingress' || r.direction === 'egress') f.direction = r.direction;
  if (r.event !== null) f.event = r.event as FlowEvent;
  if (r.svc_ip !== null && r.svc_ip !== undefined && r.svc_port !== null) f.service = { ip: r.svc_ip, port: r.svc_port, ...(r.svc_name !== null ? { name: r.svc_name } : {}) };
  return f;
}

/** Minute-aggregate endpoint columns: external endpoints keep only their group name. */
function aggCols(ep: Endpoint): [string, string, string] {
  if (ep.external || !ep.namespace) {
    const g = groupOf(ep, 'namespace');
    return ['', g, g];
  }
  return [ep.namespace, groupOf(ep, 'workload'), groupOf(ep, 'identity')];
}

function aggEndpoint(ns: string, wl: string, id: string): Endpoint {
  const ext = ns === '' ? externalCidrOf(wl) : undefined;
  if (ext !== undefined) return ext === 'world' ? { ip: '', external: true } : { ip: '', external: true, cidr: ext };
  return { ip: '', namespace: ns, workload: wl, identity: id };
}

const ROWS_PER_INSERT = 32;
/** Rows per retention DELETE at most (and always, in a one-go pass). */
const RETENTION_CHUNK = 20_000;
/** A pass in turns: what one turn may hold the event loop for, and its first and smallest statements. */
const RETENTION_TURN_MS = 10;
const RETENTION_FIRST_ROWS = 1_000;
const RETENTION_MIN_ROWS = 200;
const FLOW_COLS = 33;

/** Appends the 33 column values of one flow row (no per-row array: this runs for every record). */
function pushFlowParams(out: unknown[], r: FlowRecord): void {
  const s = r.src;
  const d = r.dst;
  out.push(
    r.time, r.node,
    s.ip, s.namespace ?? null, s.pod ?? null, s.workload ?? null, s.identity ?? null, s.external ? 1 : 0, s.cidr ?? null,
    d.ip, d.namespace ?? null, d.pod ?? null, d.workload ?? null, d.identity ?? null, d.external ? 1 : 0, d.cidr ?? null,
    r.srcPort, r.dstPort, r.protocol, r.verdict, r.policy, r.rule, r.tier, r.direction ?? null, r.bytes, r.packets, r.durationMs, r.event ?? null,
    s.identityId ?? null, d.identityId ?? null,
    r.service?.ip ?? null, r.service?.port ?? null, r.service?.name ?? null,
  );
}

type EdgeMinuteCols = [number, string, string, string, string, string, string];

/**
 * What a batch adds to the per-minute edge aggregates and the policy counters. Plain data, so it
 * can be computed on one thread and committed on another (the shed path of WorkerFlowStore).
 */
export interface Rollup {
  edges: { cols: EdgeMinuteCols; c: EdgeCounters }[];
  policies: PolicyCounter[];
}

export function rollUpRecords(records: readonly FlowRecord[]): Rollup {
  const minutes = new Map<string, { cols: EdgeMinuteCols; c: EdgeCounters }>();
  for (const r of records) {
    const minute = r.time - (r.time % 60_000);
    const cols: EdgeMinuteCols = [minute, ...aggCols(r.src), ...aggCols(r.dst)];
    const k = cols.join('\u0000');
    let m = minutes.get(k);
    if (!m) minutes.set(k, (m = { cols, c: emptyCounters() }));
    const n = flowCount(r);
    m.c.flows += n;
    m.c.bytes += r.bytes;
    m.c.packets += r.packets;
    if (r.verdict === 'DROPPED') m.c.dropped += n;
    else if (r.verdict === 'AUDIT') m.c.audit += n;
    else m.c.forwarded += n;
    if (r.time > m.c.lastSeen) m.c.lastSeen = r.time;
  }
  return { edges: [...minutes.values()], policies: [...aggregatePolicies(records).values()] };
}

export interface SqliteFlowStoreOptions {
  retention?: Partial<RetentionOptions>;
  /** SQLite page cache bound, in KiB. */
  cacheKiB?: number;
}

export class SqliteFlowStore implements FlowStore {
  readonly db: Database.Database;
  private readonly retentionOpts: RetentionOptions;
  private readonly stmtCache = new Map<string, Database.Statement>();
  private readonly insertFlow: Database.Statement;
  private readonly insertFlowMany: Database.Statement;
  private readonly upsertEdge: Database.Statement;
  private readonly upsertPolicy: Database.Statement;
  private readonly upsertRule: Database.Statement;
  private readonly insertTx: (records: readonly FlowRecord[], state: ReadonlyMap<string, string> | undefined) => void;
  private readonly putState: Database.Statement;
  private readonly rollupTx: (r: Rollup) => void;
  /** The retention pass running in turns, if any. */
  private retaining: Promise<RetentionResult> | undefined;

  constructor(
    readonly path: string,
    opts: SqliteFlowStoreOptions = {},
  ) {
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    // WAL + NORMAL: a crash can lose the last transaction but never corrupts the file.
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma(`cache_size = -${opts.cacheKiB ?? 16_384}`);
    this.db.pragma('busy_timeout = 5000');
    this.db.exec(SCHEMA);
    // A database written before the identity id columns existed (`lab down` keeps flows.db).
    const columns = new Set((this.db.prepare('PRAGMA table_info(flows)').all() as { name: string }[]).map((c) => c.name));
    for (const c of ['src_identity_id', 'dst_identity_id']) if (!columns.has(c)) this.db.exec(`ALTER TABLE flows ADD COLUMN ${c} INTEGER`);
    // … and before the Service columns.
    for (const [c, type] of [['svc_ip', 'TEXT'], ['svc_port', 'INTEGER'], ['svc_name', 'TEXT']] as const) if (!columns.has(c)) this.db.exec(`ALTER TABLE flows ADD COLUMN ${c} ${type}`);
    this.retentionOpts = { ...DEFAULT_RETENTION, ...opts.retention };
    const cols = `INSERT INTO flows (time, node,
      src_ip, src_ns, src_pod, src_workload, src_identity, src_ext, src_cidr,
      dst_ip, dst_ns, dst_pod, dst_workload, dst_identity, dst_ext, dst_cidr,
      src_port, dst_port, protocol, verdict, policy, rule, tier, direction, bytes, packets, duration_ms, event,
      src_identity_id, dst_identity_id, svc_ip, svc_port, svc_name) VALUES `;
    const row = `(${Array(FLOW_COLS).fill('?').join(', ')})`;
    this.insertFlow = this.db.prepare(cols + row);
    // Many rows per statement: the per-statement overhead dominates single-row inserts.
    this.insertFlowMany = this.db.prepare(cols + Array(ROWS_PER_INSERT).fill(row).join(', '));
    this.upsertEdge = this.db.prepare(`INSERT INTO edge_minutes VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
      ON CONFLICT DO UPDATE SET flows = flows + excluded.flows, bytes = bytes + excluded.bytes, packets = packets + excluded.packets,
        forwarded = forwarded + excluded.forwarded, dropped = dropped + excluded.dropped, audit = audit + excluded.audit,
        last_seen = max(last_seen, excluded.last_seen)`);
    this.upsertPolicy = this.db.prepare(`INSERT INTO policy_hits VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
      ON CONFLICT DO UPDATE SET tier = excluded.tier, hits = hits + excluded.hits, forwarded = forwarded + excluded.forwarded,
        dropped = dropped + excluded.dropped, audit = audit + excluded.audit, packets = packets + excluded.packets,
        bytes = bytes + excluded.bytes, last_seen = max(last_seen, excluded.last_seen)`);
    this.upsertRule = this.db.prepare(`INSERT INTO policy_rule_hits VALUES (?, ?, ?) ON CONFLICT DO UPDATE SET hits = hits + excluded.hits`);
    this.putState = this.db.prepare('INSERT INTO state VALUES (?, ?) ON CONFLICT DO UPDATE SET value = excluded.value');
    this.insertTx = this.db.transaction((records: readonly FlowRecord[], state: ReadonlyMap<string, string> | undefined) => {
      if (records.length > 0) this.insertRows(records);
      if (state) for (const [k, v] of state) this.putState.run(k, v);
    });
    this.rollupTx = this.db.transaction((r: Rollup) => this.applyRollup(r));
  }

  private stmt(sql: string): Database.Statement {
    let s = this.stmtCache.get(sql);
    if (!s) {
      s = this.db.prepare(sql);
      this.stmtCache.set(sql, s);
    }
    return s;
  }

  insert(records: readonly FlowRecord[], state?: ReadonlyMap<string, string>): void {
    if (records.length > 0 || (state !== undefined && state.size > 0)) this.insertTx(records, state);
  }

  /** Aggregates only (no raw rows), one transaction: how shed batches keep their counts. */
  insertRollup(r: Rollup): void {
    if (r.edges.length > 0 || r.policies.length > 0) this.rollupTx(r);
  }

  private insertRows(records: readonly FlowRecord[]): void {
    const full = records.length - (records.length % ROWS_PER_INSERT);
    const args: unknown[] = [];
    for (let i = 0; i < full; i++) {
      pushFlowParams(args, records[i] as FlowRecord);
      if (args.length === ROWS_PER_INSERT * FLOW_COLS) {
        this.insertFlowMany.run(args);
        args.length = 0;
      }
    }
    for (let i = full; i < records.length; i++) {
      args.length = 0;
      pushFlowParams(args, records[i] as FlowRecord);
      this.insertFlow.run(args);
    }
    this.applyRollup(rollUpRecords(records));
  }

  private applyRollup(r: Rollup): void {
    for (const { cols, c } of r.edges) {
      this.upsertEdge.run(...cols, c.flows, c.bytes, c.packets, c.forwarded, c.dropped, c.audit, c.lastSeen);
    }
    for (const p of r.policies) {
      this.upsertPolicy.run(p.policy, p.tier, p.hits, p.forwarded, p.dropped, p.audit, p.packets, p.bytes, p.lastSeen);
      for (const [rule, hits] of Object.entries(p.rules)) this.upsertRule.run(p.policy, rule, hits);
    }
  }

  queryFlows(f: FlowFilter): StoredFlow[] {
    const where: string[] = [];
    const args: (string | number)[] = [];
    const group = (side: 'src' | 'dst', col: 'ns' | 'workload' | 'identity', v: string | undefined): void => {
      if (v === undefined) return;
      const ext = externalCidrOf(v);
      if (ext !== undefined) {
        where.push(`${side}_ext = 1 AND coalesce(${side}_cidr, 'world') = ?`);
        args.push(ext);
      } else {
        where.push(`${side}_${col} = ?`);
        args.push(v);
      }
    };
    const eq = (col: string, v: string | number | undefined): void => {
      if (v === undefined) return;
      where.push(`${col} = ?`);
      args.push(v);
    };
    group('src', 'ns', f.fromNamespace);
    eq('src_pod', f.fromPod);
    group('src', 'workload', f.fromWorkload);
    group('src', 'identity', f.fromIdentity);
    group('dst', 'ns', f.toNamespace);
    eq('dst_pod', f.toPod);
    group('dst', 'workload', f.toWorkload);
    group('dst', 'identity', f.toIdentity);
    if (f.namespace !== undefined) {
      where.push('(src_ns = ? OR dst_ns = ?)');
      args.push(f.namespace, f.namespace);
    }
    // Inlined (the value is a validated enum) so the planner can use the partial index.
    if (f.verdict !== undefined && (VERDICTS as readonly string[]).includes(f.verdict)) where.push(`verdict = '${f.verdict}'${f.verdict === 'FORWARDED' ? '' : " AND verdict != 'FORWARDED'"}`);
    eq('dst_port', f.port);
    eq('protocol', f.protocol);
    eq('policy', f.policy);
    eq('node', f.node);
    if (f.since !== undefined) {
      where.push('time >= ?');
      args.push(f.since);
    }
    if (f.until !== undefined) {
      where.push('time <= ?');
      args.push(f.until);
    }
    const sql = `SELECT * FROM flows ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY time DESC, id DESC LIMIT ?`;
    return (this.stmt(sql).all(...args, f.limit) as FlowRow[]).map(rowToFlow);
  }

  edgeMinutes(since: number): EdgeMinute[] {
    const rows = this.stmt('SELECT * FROM edge_minutes WHERE minute >= ?').all(since - (since % 60_000)) as EdgeRow[];
    return rows.map((r) => ({
      time: r.minute,
      src: aggEndpoint(r.src_ns, r.src_workload, r.src_identity),
      dst: aggEndpoint(r.dst_ns, r.dst_workload, r.dst_identity),
      counters: { flows: r.flows, bytes: r.bytes, packets: r.packets, forwarded: r.forwarded, dropped: r.dropped, audit: r.audit, lastSeen: r.last_seen },
    }));
  }

  edges(by: GroupBy, since: number, until = Number.MAX_SAFE_INTEGER): Edge[] {
    const col = by === 'namespace' ? 'CASE WHEN X_ns = \'\' THEN X_workload ELSE X_ns END' : by === 'workload' ? 'X_workload' : 'X_identity';
    const sql = `SELECT ${col.replaceAll('X', 'src')} AS src, ${col.replaceAll('X', 'dst')} AS dst,
      sum(flows) AS flows, sum(bytes) AS bytes, sum(packets) AS packets, sum(forwarded) AS forwarded,
      sum(dropped) AS dropped, sum(audit) AS audit, max(last_seen) AS lastSeen
      FROM edge_minutes WHERE minute >= ? AND minute <= ? GROUP BY 1, 2`;
    return this.stmt(sql).all(since - (since % 60_000), until) as Edge[];
  }

  policyCounters(): PolicyCounter[] {
    const rows = this.stmt('SELECT * FROM policy_hits ORDER BY hits DESC').all() as (Omit<PolicyCounter, 'rules' | 'lastSeen'> & { last_seen: number })[];
    const rules = this.stmt('SELECT * FROM policy_rule_hits').all() as { policy: string; rule: string; hits: number }[];
    const byPolicy = new Map<string, Record<string, number>>();
    for (const r of rules) {
      let m = byPolicy.get(r.policy);
      if (!m) byPolicy.set(r.policy, (m = {}));
      m[r.rule] = r.hits;
    }
    return rows.map(({ last_seen, ...p }) => ({ ...p, lastSeen: last_seen, rules: byPolicy.get(p.policy) ?? {} }));
  }

  insertAlert(a: NewAlert): AlertRecord {
    const info = this.stmt(`INSERT INTO alerts (rule, kind, state, fired_at, resolved_at, message, value, threshold, labels)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`).run(a.rule, a.kind, a.state, a.firedAt, a.resolvedAt ?? null, a.message, a.value, a.threshold, JSON.stringify(a.labels));
    return { ...a, id: Number(info.lastInsertRowid) };
  }

  resolveAlert(id: number, at: number): void {
    this.stmt(`UPDATE alerts SET state = 'resolved', resolved_at = ? WHERE id = ? AND state = 'firing'`).run(at, id);
  }

  listAlerts(opts: { limit?: number; state?: AlertState; since?: number } = {}): AlertRecord[] {
    const where: string[] = [];
    const args: (string | number)[] = [];
    if (opts.state) {
      where.push('state = ?');
      args.push(opts.state);
    }
    if (opts.since !== undefined) {
      where.push('fired_at >= ?');
      args.push(opts.since);
    }
    const sql = `SELECT * FROM alerts ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY fired_at DESC, id DESC LIMIT ?`;
    return (this.stmt(sql).all(...args, opts.limit ?? 100) as AlertRow[]).map((r) => {
      const a: AlertRecord = {
        id: r.id,
        rule: r.rule,
        kind: r.kind,
        state: r.state as AlertState,
        firedAt: r.fired_at,
        message: r.message,
        value: r.value,
        threshold: r.threshold,
        labels: JSON.parse(r.labels) as Record<string, string>,
      };
      if (r.resolved_at !== null) a.resolvedAt = r.resolved_at;
      return a;
    });
  }

  enqueueWebhook(alertId: number, url: string, payload: string, now: number): number {
    const info = this.stmt('INSERT INTO webhook_queue (alert_id, url, payload, next_at, created_at) VALUES (?, ?, ?, ?, ?)').run(alertId, url, payload, now, now);
    return Number(info.lastInsertRowid);
  }

  dueWebhooks(now: number, limit: number): WebhookJob[] {
    const rows = this.stmt(`SELECT id, alert_id, url, payload, attempts, next_at FROM webhook_queue
      WHERE delivered_at IS NULL AND dead = 0 AND next_at <= ? ORDER BY next_at, id LIMIT ?`).all(now, limit) as {
      id: number;
      alert_id: number;
      url: string;
      payload: string;
      attempts: number;
      next_at: number;
    }[];
    return rows.map((r) => ({ id: r.id, alertId: r.alert_id, url: r.url, payload: r.payload, attempts: r.attempts, nextAt: r.next_at }));
  }

  nextWebhookAt(): number | undefined {
    const r = this.stmt('SELECT min(next_at) AS t FROM webhook_queue WHERE delivered_at IS NULL AND dead = 0').get() as { t: number | null };
    return r.t ?? undefined;
  }

  webhookDelivered(id: number, at: number): void {
    this.stmt('UPDATE webhook_queue SET delivered_at = ?, attempts = attempts + 1 WHERE id = ?').run(at, id);
  }

  webhookFailed(id: number, nextAt: number, error: string, dead: boolean): void {
    this.stmt('UPDATE webhook_queue SET attempts = attempts + 1, next_at = ?, last_error = ?, dead = ? WHERE id = ?').run(nextAt, error, dead ? 1 : 0, id);
  }

  getState(key: string): string | undefined {
    const r = this.stmt('SELECT value FROM state WHERE key = ?').get(key) as { value: string } | undefined;
    return r?.value;
  }

  setState(key: string, value: string): void {
    this.putState.run(key, value);
  }

  /**
   * One pass in one go, on the caller's thread: for tests, tools and the bench's writer thread.
   * The server's pipeline runs `retentionInTurns`, which does the same statements in the same
   * order between event-loop turns.
   */
  retention(now: number, opts: Partial<RetentionOptions> = {}): RetentionResult {
    if (this.retaining) throw new Error('flow store: a retention pass is running (retentionInTurns); wait for it');
    const steps = this.retentionSteps(now, { ...this.retentionOpts, ...opts }, () => RETENTION_CHUNK);
    for (;;) {
      const s = steps.next();
      if (s.done) return s.value;
    }
  }

  /**
   * The same pass spread over event-loop turns, so that the ingest path and the live stream
   * run between its statements: each turn runs one statement sized to about `turnMs`
   * (measured as it goes), then yields (setImmediate). Passes never overlap: a call while one
   * runs waits for it. `close()` during a pass is safe: the pass stops at its next turn and
   * resolves with what it did, marked `interrupted`.
   */
  retentionInTurns(now: number, opts: Partial<RetentionOptions> = {}, turnMs = RETENTION_TURN_MS): Promise<RetentionResult> {
    if (!this.db.open) return Promise.reject(new TypeError('The database connection is not open'));
    const o = { ...this.retentionOpts, ...opts };
    const previous = this.retaining;
    const pass = (async (): Promise<RetentionResult> => {
      if (previous) await previous.catch(() => undefined);
      // One statement per turn. The first ones are small; then rows per statement follow the
      // measured cost (~5 µs per row with the three indexes on this machine: a 20k-row chunk
      // held the loop ~100 ms).
      let rows = RETENTION_FIRST_ROWS;
      let last: { rows: number; t0: number } | undefined;
      const steps = this.retentionSteps(now, o, () => {
        last = { rows, t0: performance.now() };
        return rows;
      });
      let partial: RetentionResult = { rawDeleted: 0, aggregatesDeleted: 0, alertsDeleted: 0 };
      for (;;) {
        if (!this.db.open) return { ...partial, interrupted: true };
        last = undefined;
        const s = steps.next();
        if (s.done) return s.value;
        const { lastChanges: done, ...counts } = s.value;
        partial = counts;
        if (last !== undefined) {
          const { rows: asked, t0 } = last;
          const ms = performance.now() - t0;
          // Only a statement that found its fill says what a row costs.
          if (done >= RETENTION_MIN_ROWS && done >= asked / 2 && ms > 0) rows = Math.max(RETENTION_MIN_ROWS, Math.min(RETENTION_CHUNK, Math.floor((done / ms) * turnMs)));
        }
        await new Promise<void>((r) => setImmediate(r));
      }
    })();
    const mine = pass.finally(() => {
      if (this.retaining === mine) this.retaining = undefined;
    });
    this.retaining = mine;
    return mine;
  }

  /**
   * The statements of a pass; the generator yields between them (with the counts so far and the
   * rows the last statement deleted). `chunk()` is asked once per DELETE for its row bound.
   *
   * In chunks, each its own transaction: at 25k flows/s one retention pass deletes hundreds of
   * thousands of rows, and one big DELETE would hold the write lock (and stall every other
   * writer of the file, e.g. alert bookkeeping) for seconds.
   */
  private *retentionSteps(now: number, o: RetentionOptions, chunk: () => number): Generator<RetentionResult & { lastChanges: number }, RetentionResult, void> {
    const r: RetentionResult = { rawDeleted: 0, aggregatesDeleted: 0, alertsDeleted: 0 };
    const progress = (lastChanges: number): RetentionResult & { lastChanges: number } => ({ ...r, lastChanges });
    const byAge = this.stmt('DELETE FROM flows WHERE id IN (SELECT id FROM flows WHERE time < ? ORDER BY time LIMIT ?)');
    for (;;) {
      const n = chunk();
      const c = byAge.run(now - o.rawMaxAgeMs, n).changes;
      r.rawDeleted += c;
      yield progress(c);
      if (c < n) break;
    }
    // The row cap from the newest id, not by counting: `ORDER BY id DESC LIMIT 1 OFFSET
    // rawMaxRows` walked two million rows of the table's B-tree (150–425 ms, bench/flows-retention.ts)
    // where max(id) is one step down its right edge. `id` is the rowid (INTEGER PRIMARY KEY, no
    // AUTOINCREMENT): every insert gets max(id) + 1, after a restart too, and no path inserts an
    // explicit id, so the newest rawMaxRows rows are those above max(id) − rawMaxRows. Exact as
    // long as those ids have no holes; the only holes are rows age retention took out of order
    // (flows that arrived older than rawMaxAgeMs), and then fewer rows are kept, never more.
    const top = this.stmt('SELECT max(id) AS m FROM flows').get() as { m: number | null };
    if (top.m !== null && top.m > o.rawMaxRows) {
      const cut = top.m - o.rawMaxRows;
      // By id range from the oldest row, both bounds given: each statement walks only the rows
      // it deletes. (`id <= cut AND id < (SELECT min(id) FROM flows) + n` was searched on
      // `id <= cut` alone: every chunk walked all the rows left up to the cut, a pass over 3M
      // rows of overflow took 57 s in chunks of 20k.)
      const oldest = this.stmt('SELECT min(id) AS m FROM flows');
      const byId = this.stmt('DELETE FROM flows WHERE id >= ? AND id < ?');
      for (;;) {
        const lo = (oldest.get() as { m: number | null }).m;
        if (lo === null || lo > cut) break;
        const c = byId.run(lo, Math.min(lo + chunk(), cut + 1)).changes;
        r.rawDeleted += c;
        yield progress(c);
      }
    }
    // One minute per statement: after a long stop the first pass may find many.
    const oneMinute = this.stmt('DELETE FROM edge_minutes WHERE minute = (SELECT min(minute) FROM edge_minutes) AND minute < ?');
    for (;;) {
      const c = oneMinute.run(now - o.aggregateMaxAgeMs).changes;
      r.aggregatesDeleted += c;
      if (c === 0) break;
      yield progress(c);
    }
    r.alertsDeleted = this.stmt(`DELETE FROM alerts WHERE state != 'firing' AND fired_at < ?`).run(now - o.alertMaxAgeMs).changes;
    this.stmt('DELETE FROM webhook_queue WHERE (delivered_at IS NOT NULL OR dead = 1) AND created_at < ?').run(now - o.alertMaxAgeMs);
    return r;
  }

  stats(): StoreStats {
    const one = (sql: string): number => (this.stmt(sql).get() as { n: number }).n;
    return {
      flows: one('SELECT count(*) AS n FROM flows'),
      edgeMinutes: one('SELECT count(*) AS n FROM edge_minutes'),
      alerts: one('SELECT count(*) AS n FROM alerts'),
      webhookPending: this.webhookPending(),
    };
  }

  webhookPending(): number {
    return (this.stmt('SELECT count(*) AS n FROM webhook_queue WHERE delivered_at IS NULL AND dead = 0').get() as { n: number }).n;
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
