// Aggregation: flows between *groups* (workload, namespace or identity), never between pairs of
// addresses — the dashboard and alerts reason about groups. Pure over plain data; the only state
// is a ring of time buckets, bounded by the horizon and a per-bucket key cap.
import { flowCount, type Endpoint, type FlowRecord, type Tier, type Verdict } from './record.js';

export const GROUP_BYS = ['workload', 'namespace', 'identity'] as const;
export type GroupBy = (typeof GROUP_BYS)[number];

export interface EdgeCounters {
  flows: number;
  bytes: number;
  packets: number;
  forwarded: number;
  dropped: number;
  audit: number;
  /** Epoch ms of the newest record. */
  lastSeen: number;
  /**
   * The part of these flows that a client addressed to a Service (record.ts `service`), by
   * Service address: the dashboard draws them client → Service → endpoint group. Absent when
   * no flow of the edge went through a Service.
   */
  via?: Record<string, ViaCounters>;
}

/** Flows of an edge through one Service address (`name` when the enricher knew it). */
export interface ViaCounters {
  ip: string;
  port: number;
  name?: string;
  flows: number;
  bytes: number;
  forwarded: number;
  dropped: number;
  audit: number;
}

export interface Edge extends EdgeCounters {
  src: string;
  dst: string;
}

export interface PolicyCounter {
  policy: string;
  tier: Tier;
  hits: number;
  forwarded: number;
  dropped: number;
  audit: number;
  packets: number;
  bytes: number;
  lastSeen: number;
  rules: Record<string, number>;
}

/** Group of an external endpoint: its named CIDR, else the whole world. */
export function externalGroup(ep: Endpoint): string {
  return `external:${ep.cidr ?? 'world'}`;
}

export function groupOf(ep: Endpoint, by: GroupBy): string {
  if (ep.external || !ep.namespace) return externalGroup(ep);
  switch (by) {
    case 'namespace':
      return ep.namespace;
    case 'workload':
      return ep.workload ?? `${ep.namespace}/${ep.pod ?? ep.ip}`;
    case 'identity':
      return ep.identity ?? `${ep.namespace}:`;
  }
}

export function emptyCounters(): EdgeCounters {
  return { flows: 0, bytes: 0, packets: 0, forwarded: 0, dropped: 0, audit: 0, lastSeen: 0 };
}

export function addRecord(c: EdgeCounters, r: FlowRecord): void {
  const n = flowCount(r);
  c.flows += n;
  c.bytes += r.bytes;
  c.packets += r.packets;
  countVerdict(c, r.verdict, n);
  if (r.time > c.lastSeen) c.lastSeen = r.time;
  if (r.service) {
    const s = r.service;
    const v = viaOf(c, `${s.name ?? ''}|${s.ip}|${s.port}`, s);
    v.flows += n;
    v.bytes += r.bytes;
    countVerdict(v, r.verdict, n);
  }
}

function viaOf(c: EdgeCounters, key: string, s: { ip: string; port: number; name?: string }): ViaCounters {
  c.via ??= {};
  let v = c.via[key];
  if (!v) c.via[key] = v = { ip: s.ip, port: s.port, ...(s.name !== undefined ? { name: s.name } : {}), flows: 0, bytes: 0, forwarded: 0, dropped: 0, audit: 0 };
  return v;
}

function countVerdict(c: { forwarded: number; dropped: number; audit: number }, v: Verdict, n: number): void {
  if (v === 'DROPPED') c.dropped += n;
  else if (v === 'AUDIT') c.audit += n;
  else c.forwarded += n;
}

export function mergeCounters(into: EdgeCounters, from: EdgeCounters): void {
  into.flows += from.flows;
  into.bytes += from.bytes;
  into.packets += from.packets;
  into.forwarded += from.forwarded;
  into.dropped += from.dropped;
  into.audit += from.audit;
  if (from.lastSeen > into.lastSeen) into.lastSeen = from.lastSeen;
  // Copied, never shared: `into` is often a fresh sum over buckets that must stay untouched.
  for (const [k, f] of Object.entries(from.via ?? {})) {
    const v = viaOf(into, k, f);
    v.flows += f.flows;
    v.bytes += f.bytes;
    v.forwarded += f.forwarded;
    v.dropped += f.dropped;
    v.audit += f.audit;
  }
}

const SEP = '\u0000';

/** Edges of a batch of records under one grouping (used for live deltas). */
export function aggregateEdges(records: readonly FlowRecord[], by: GroupBy): Edge[] {
  const m = new Map<string, Edge>();
  for (const r of records) {
    const src = groupOf(r.src, by);
    const dst = groupOf(r.dst, by);
    const k = src + SEP + dst;
    let e = m.get(k);
    if (!e) m.set(k, (e = { src, dst, ...emptyCounters() }));
    addRecord(e, r);
  }
  return [...m.values()];
}

/** Per-policy hit counters of a batch. */
export function aggregatePolicies(records: readonly FlowRecord[], into = new Map<string, PolicyCounter>()): Map<string, PolicyCounter> {
  for (const r of records) {
    let p = into.get(r.policy);
    if (!p) {
      p = { policy: r.policy, tier: r.tier, hits: 0, forwarded: 0, dropped: 0, audit: 0, packets: 0, bytes: 0, lastSeen: 0, rules: {} };
      into.set(r.policy, p);
    }
    const n = flowCount(r);
    p.hits += n;
    countVerdict(p, r.verdict, n);
    p.packets += r.packets;
    p.bytes += r.bytes;
    if (r.time > p.lastSeen) p.lastSeen = r.time;
    p.rules[r.rule] = (p.rules[r.rule] ?? 0) + n;
  }
  return into;
}

export const WINDOWS: Record<string, number> = { '1m': 60_000, '5m': 300_000, '1h': 3_600_000 };

/** The finest key a record aggregates under; every grouping is derived from it. */
interface FineKey {
  src: Endpoint;
  dst: Endpoint;
}

interface Bucket {
  start: number;
  edges: Map<string, { key: FineKey; c: EdgeCounters }>;
  overflow: EdgeCounters;
}

export interface AggregatorOptions {
  bucketMs?: number;
  horizonMs?: number;
  /** Distinct fine edges kept per bucket; beyond it counts go to an overflow edge. */
  maxKeysPerBucket?: number;
  now?: () => number;
}

function fineEndpoint(ep: Endpoint): Endpoint {
  if (ep.external || !ep.namespace) return { ip: '', external: true, ...(ep.cidr ? { cidr: ep.cidr } : {}) };
  return { ip: '', namespace: ep.namespace, workload: groupOf(ep, 'workload'), identity: groupOf(ep, 'identity') };
}

function fineKeyString(ep: Endpoint): string {
  return ep.external ? externalGroup(ep) : `${ep.namespace}${SEP}${ep.workload}${SEP}${ep.identity}`;
}

/**
 * Sliding windows over time buckets: a window sums the buckets it covers, so 1m / 5m / 1h are
 * answered from one structure, with bucket-size resolution at the window's old edge.
 */
export class Aggregator {
  readonly bucketMs: number;
  readonly horizonMs: number;
  private readonly maxKeys: number;
  private readonly now: () => number;
  private readonly buckets = new Map<number, Bucket>();
  readonly policies = new Map<string, PolicyCounter>();

  constructor(opts: AggregatorOptions = {}) {
    this.bucketMs = opts.bucketMs ?? 10_000;
    this.horizonMs = opts.horizonMs ?? 3_600_000;
    this.maxKeys = opts.maxKeysPerBucket ?? 20_000;
    this.now = opts.now ?? Date.now;
  }

  add(records: readonly FlowRecord[]): void {
    const now = this.now();
    const oldest = now - this.horizonMs;
    for (const r of records) {
      if (r.time < oldest) continue;
      const t = Math.min(r.time, now);
      const start = t - (t % this.bucketMs);
      let b = this.buckets.get(start);
      if (!b) this.buckets.set(start, (b = { start, edges: new Map(), overflow: emptyCounters() }));
      const src = fineEndpoint(r.src);
      const dst = fineEndpoint(r.dst);
      const k = fineKeyString(src) + SEP + SEP + fineKeyString(dst);
      let e = b.edges.get(k);
      if (!e) {
        if (b.edges.size >= this.maxKeys) {
          addRecord(b.overflow, r);
          continue;
        }
        b.edges.set(k, (e = { key: { src, dst }, c: emptyCounters() }));
      }
      addRecord(e.c, r);
    }
    aggregatePolicies(records, this.policies);
    this.prune(now);
  }

  /** Adds pre-aggregated counters (e.g. per-minute rows from the store after a restart). */
  seed(rows: readonly { time: number; src: Endpoint; dst: Endpoint; counters: EdgeCounters }[]): void {
    const now = this.now();
    for (const row of rows) {
      if (row.time < now - this.horizonMs) continue;
      const start = row.time - (row.time % this.bucketMs);
      let b = this.buckets.get(start);
      if (!b) this.buckets.set(start, (b = { start, edges: new Map(), overflow: emptyCounters() }));
      const src = fineEndpoint(row.src);
      const dst = fineEndpoint(row.dst);
      const k = fineKeyString(src) + SEP + SEP + fineKeyString(dst);
      let e = b.edges.get(k);
      if (!e) b.edges.set(k, (e = { key: { src, dst }, c: emptyCounters() }));
      mergeCounters(e.c, row.counters);
    }
  }

  seedPolicies(counters: readonly PolicyCounter[]): void {
    for (const p of counters) this.policies.set(p.policy, { ...p, rules: { ...p.rules } });
  }

  private prune(now: number): void {
    const oldest = now - this.horizonMs - this.bucketMs;
    for (const s of this.buckets.keys()) if (s < oldest) this.buckets.delete(s);
  }

  edges(by: GroupBy, windowMs: number): Edge[] {
    const now = this.now();
    const from = now - windowMs;
    const m = new Map<string, Edge>();
    for (const b of this.buckets.values()) {
      if (b.start + this.bucketMs <= from) continue;
      for (const { key, c } of b.edges.values()) {
        const src = groupOf(key.src, by);
        const dst = groupOf(key.dst, by);
        const k = src + SEP + dst;
        let e = m.get(k);
        if (!e) m.set(k, (e = { src, dst, ...emptyCounters() }));
        mergeCounters(e, c);
      }
      if (b.overflow.flows > 0 || b.overflow.bytes > 0) {
        const k = `other${SEP}other`;
        let e = m.get(k);
        if (!e) m.set(k, (e = { src: 'other', dst: 'other', ...emptyCounters() }));
        mergeCounters(e, b.overflow);
      }
    }
    return [...m.values()];
  }

  topTalkers(by: GroupBy, windowMs: number, n = 10): Edge[] {
    return this.edges(by, windowMs)
      .sort((a, b) => b.bytes - a.bytes || b.flows - a.flows)
      .slice(0, n);
  }

  topDenied(by: GroupBy, windowMs: number, n = 10): Edge[] {
    return this.edges(by, windowMs)
      .filter((e) => e.dropped > 0)
      .sort((a, b) => b.dropped - a.dropped)
      .slice(0, n);
  }

  policyCounters(): PolicyCounter[] {
    return [...this.policies.values()].sort((a, b) => b.hits - a.hits);
  }

  get bucketCount(): number {
    return this.buckets.size;
  }
}
