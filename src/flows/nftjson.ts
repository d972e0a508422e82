// Parsers for the nftables JSON the agent's tables expose (libnftables JSON schema v1):
//
// `nft -j list set inet weir denied` — a dynamic set filled from the packet path with
//   `update @denied { ip saddr . ip daddr . meta l4proto . th dport . meta mark counter }`:
//   {"nftables": [{"metainfo": {...}}, {"set": {"family": "inet", "name": "denied", "table": "weir",
//     "type": ["ipv4_addr", "ipv4_addr", "inet_proto", "inet_service", "mark"], ...,
//     "elem": [{"elem": {"val": {"concat": ["10.99.0.1", "10.99.0.2", "tcp", 81, 3]},
//                        "expires": 293, "counter": {"packets": 1, "bytes": 60}}}]}}]}
// `nft -j list set inet weir hits` — per-reason hit counters, a dynamic set keyed by the reason
//   id, filled with `update @hits { <id> counter }` (or `{ meta mark counter }` where a deny
//   point set the mark):
//   {"nftables": [{"metainfo": {...}}, {"set": {"family": "inet", "name": "hits", "table": "weir",
//     "type": "mark", ..., "elem": [{"elem": {"val": 3, "counter": {"packets": 1, "bytes": 60}}}]}}]}
import type { FlowRecord } from './record.js';
import { protocolFrom } from './record.js';
import { attributeDenied, type ReasonsTable } from './reasons.js';

export interface DeniedElement {
  set: string;
  saddr: string;
  daddr: string;
  proto: string;
  dport: number;
  mark: number;
  packets: number;
  bytes: number;
}

export interface ReasonCounter {
  reasonId: number;
  packets: number;
  bytes: number;
}

export class NftJsonError extends Error {
  constructor(message: string) {
    super(`nft JSON: ${message}`);
    this.name = 'NftJsonError';
  }
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

function isObj(v: unknown): v is Record<string, Json> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function items(text: string | unknown): Json[] {
  const doc: unknown = typeof text === 'string' ? parseJson(text) : text;
  if (!isObj(doc) || !Array.isArray(doc.nftables)) throw new NftJsonError('missing top-level "nftables" array');
  return doc.nftables;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new NftJsonError(`invalid JSON: ${(e as Error).message}`);
  }
}

function num(v: Json | undefined): number {
  return typeof v === 'number' ? v : typeof v === 'string' && v !== '' && !Number.isNaN(Number(v)) ? Number(v) : 0;
}

/** A concat member may be a plain value or, for prefixes/ranges, an object; we only key on plain values. */
function scalar(v: Json | undefined): string | number | undefined {
  return typeof v === 'string' || typeof v === 'number' ? v : undefined;
}

/** Every element of every set in the document: its set's name, its key, its counter (zeros without one). */
function* setElements(text: string | unknown): Generator<{ set: string; key: Json | undefined; packets: number; bytes: number }> {
  for (const it of items(text)) {
    if (!isObj(it) || !isObj(it.set) || !Array.isArray(it.set.elem)) continue;
    const set = typeof it.set.name === 'string' ? it.set.name : '';
    for (const raw of it.set.elem) {
      // With per-element state (counter, expires) nft wraps the key: {"elem": {"val": key, ...}}.
      const wrapped = isObj(raw) && isObj(raw.elem) ? raw.elem : undefined;
      const counter = wrapped && isObj(wrapped.counter) ? wrapped.counter : undefined;
      yield { set, key: wrapped ? wrapped.val : raw, packets: counter ? num(counter.packets) : 0, bytes: counter ? num(counter.bytes) : 0 };
    }
  }
}

/**
 * Elements of every set in the document whose key is `saddr . daddr . l4proto . dport . mark`.
 * Elements without a counter (set declared without `counter`) count as zero.
 */
export function parseDeniedSet(text: string | unknown): DeniedElement[] {
  const out: DeniedElement[] = [];
  for (const { set, key, packets, bytes } of setElements(text)) {
    if (!isObj(key) || !Array.isArray(key.concat) || key.concat.length < 5) continue;
    const [sa, da, pr, dp, mk] = key.concat.map(scalar);
    if (sa === undefined || da === undefined || pr === undefined) continue;
    out.push({ set, saddr: String(sa), daddr: String(da), proto: String(pr), dport: num(dp), mark: num(mk), packets, bytes });
  }
  return out;
}

/** Elements of the `hits` set (mark → counter): one counter per reason id that was hit; of the set named `only`, if given. */
export function parseHitCounters(text: string | unknown, only?: string): ReasonCounter[] {
  const out: ReasonCounter[] = [];
  for (const { set, key, packets, bytes } of setElements(text)) {
    if (only !== undefined && set !== only) continue;
    // A mark prints as a number (or a hex string with some nft versions).
    const id = typeof key === 'number' ? key : typeof key === 'string' && /^(0x[0-9a-f]+|\d+)$/i.test(key) ? Number(key) : undefined;
    if (id === undefined || !Number.isInteger(id) || id <= 0) continue;
    out.push({ reasonId: id, packets, bytes });
  }
  return out;
}

interface Seen {
  packets: number;
  bytes: number;
  gen: number;
}

/**
 * Turns successive snapshots of the denied set into DROPPED / AUDIT records: each element whose
 * counters grew since the previous poll yields one `sample` with the delta. An element whose
 * counters went down expired and was re-added by the packet path, so its whole value is new.
 */
export class DeniedSetTracker {
  private readonly seen = new Map<string, Seen>();
  private gen = 0;
  constructor(
    private readonly node: string,
    private readonly reasons: () => ReasonsTable,
  ) {}

  update(elements: readonly DeniedElement[], time: number, intervalMs = 0): FlowRecord[] {
    const gen = ++this.gen;
    const out: FlowRecord[] = [];
    const reasons = this.reasons();
    for (const e of elements) {
      const key = `${e.set}|${e.saddr}|${e.daddr}|${e.proto}|${e.dport}|${e.mark}`;
      const prev = this.seen.get(key);
      let dp = e.packets;
      let db = e.bytes;
      if (prev && e.packets >= prev.packets && e.bytes >= prev.bytes) {
        dp = e.packets - prev.packets;
        db = e.bytes - prev.bytes;
      }
      this.seen.set(key, { packets: e.packets, bytes: e.bytes, gen });
      // The first snapshot is a baseline: those drops happened before we watched (and were
      // reported by a previous run), so reporting them again would double count.
      if (gen === 1) continue;
      // A new element with no counter still means one denied attempt was seen.
      if (dp === 0 && (prev || e.packets !== 0)) continue;
      out.push({
        time,
        node: this.node,
        src: { ip: e.saddr },
        dst: { ip: e.daddr },
        srcPort: 0,
        dstPort: e.dport,
        protocol: protocolFrom(e.proto),
        ...attributeDenied(reasons, e.mark),
        bytes: db,
        packets: dp,
        durationMs: intervalMs,
        event: 'sample',
      });
    }
    // Forget elements that expired from the set, so memory follows the set's own bound.
    for (const [k, v] of this.seen) if (v.gen !== gen) this.seen.delete(k);
    return out;
  }

  get size(): number {
    return this.seen.size;
  }
}

export interface CounterDelta {
  reasonId: number;
  packets: number;
  bytes: number;
}

/** Deltas of the per-reason hit counters between polls (first poll is the baseline; a reset counter counts from zero). */
export class CounterTracker {
  private readonly prev = new Map<number, ReasonCounter>();
  private first = true;
  update(counters: readonly ReasonCounter[]): CounterDelta[] {
    const out: CounterDelta[] = [];
    const ids = new Set<number>();
    for (const c of counters) {
      ids.add(c.reasonId);
      const p = this.prev.get(c.reasonId);
      this.prev.set(c.reasonId, c);
      // Elements are created by the first hit: an id unseen after the baseline is all new.
      if (this.first) continue;
      const reset = !p || c.packets < p.packets || c.bytes < p.bytes;
      const packets = reset ? c.packets : c.packets - p.packets;
      const bytes = reset ? c.bytes : c.bytes - p.bytes;
      if (packets > 0 || bytes > 0) out.push({ reasonId: c.reasonId, packets, bytes });
    }
    for (const k of this.prev.keys()) if (!ids.has(k)) this.prev.delete(k);
    this.first = false;
    return out;
  }
}
