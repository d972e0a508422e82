// Parser for `conntrack -E -e NEW,DESTROY -o timestamp,extended,id` with nf_conntrack_acct=1.
//
// Real lines (conntrack-tools 1.4.7):
//   [1795471246.830960]	    [NEW] ipv4     2 tcp      6 120 SYN_SENT src=10.99.0.1 dst=10.99.0.2 sport=37538 dport=80 [UNREPLIED] src=10.99.0.2 dst=10.99.0.1 sport=80 dport=37538 id=1754701641
//   [1795471248.060929]	[DESTROY] ipv4     2 tcp      6 118 TIME_WAIT src=10.99.0.1 dst=10.99.0.2 sport=37538 dport=80 packets=6 bytes=433 src=10.99.0.2 dst=10.99.0.1 sport=80 dport=37538 packets=6 bytes=1594 [ASSURED] id=1754701641
// The first tuple is the original direction (who opened the connection), the second the reply.
// ICMP tuples carry their own `id=` (echo id); the conntrack id is the last `id=` on the line.
import type { FlowRecord } from './record.js';
import { protocolFrom } from './record.js';
import { attributeAllowed, type ReasonsTable } from './reasons.js';

export interface ConntrackTuple {
  src: string;
  dst: string;
  sport: number;
  dport: number;
  packets: number;
  bytes: number;
}

export interface ConntrackEvent {
  type: 'NEW' | 'UPDATE' | 'DESTROY';
  /** Epoch ms, from the `[sec.usec]` timestamp (or the caller's clock when absent). */
  time: number;
  family: 'ipv4' | 'ipv6';
  protocol: string;
  orig: ConntrackTuple;
  reply: ConntrackTuple;
  mark: number;
  id: number | undefined;
}

const NO_REASONS: ReasonsTable = new Map();

const HEAD = /^\s*(?:\[(\d+)\.(\d+)\]\s+)?\[(NEW|UPDATE|DESTROY)\]\s+(ipv4|ipv6)\s+\d+\s+(\S+)\s+\d+\s/;

function emptyTuple(): ConntrackTuple {
  return { src: '', dst: '', sport: 0, dport: 0, packets: 0, bytes: 0 };
}

/** One event line → event, or undefined for lines that are not events (summary, blank, garbage). */
export function parseConntrackLine(line: string, now: () => number = Date.now): ConntrackEvent | undefined {
  const m = HEAD.exec(line);
  if (!m) return undefined;
  const [, sec, frac, type, family, proto] = m as unknown as [string, string | undefined, string | undefined, ConntrackEvent['type'], ConntrackEvent['family'], string];
  const time = sec !== undefined ? Number(sec) * 1000 + Math.floor(Number(`0.${frac ?? '0'}`) * 1000) : now();
  const tuples: ConntrackTuple[] = [];
  let cur: ConntrackTuple | undefined;
  let mark = 0;
  let id: number | undefined;
  for (const tok of line.slice(m[0].length).split(' ')) {
    const eq = tok.indexOf('=');
    if (eq <= 0) continue;
    const k = tok.slice(0, eq);
    const v = tok.slice(eq + 1);
    switch (k) {
      case 'src':
        cur = emptyTuple();
        tuples.push(cur);
        cur.src = v;
        break;
      case 'dst':
        if (cur) cur.dst = v;
        break;
      case 'sport':
        if (cur) cur.sport = Number(v);
        break;
      case 'dport':
        if (cur) cur.dport = Number(v);
        break;
      case 'packets':
        if (cur) cur.packets = Number(v);
        break;
      case 'bytes':
        if (cur) cur.bytes = Number(v);
        break;
      case 'mark':
        mark = Number(v);
        break;
      case 'id':
        id = Number(v);
        break;
    }
  }
  const [orig, reply] = tuples;
  if (!orig || !orig.dst) return undefined;
  return { type, time, family, protocol: proto, orig, reply: reply ?? emptyTuple(), mark, id };
}

export interface ConntrackParserOptions {
  node: string;
  reasons?: () => ReasonsTable;
  /** Bound on connections remembered between NEW and DESTROY. */
  maxOpen?: number;
  now?: () => number;
}

/**
 * Turns the event stream into allowed-flow records: NEW → `start` (counts the flow), DESTROY →
 * `end` with per-connection totals and duration; a DESTROY whose NEW we never saw (the watcher
 * started mid-connection) becomes a `sample`, so the connection is still counted once.
 */
export class ConntrackFlowParser {
  private readonly open = new Map<number, number>();
  private readonly maxOpen: number;
  constructor(private readonly opts: ConntrackParserOptions) {
    this.maxOpen = opts.maxOpen ?? 200_000;
  }

  push(line: string): FlowRecord | undefined {
    const ev = parseConntrackLine(line, this.opts.now);
    if (!ev || ev.type === 'UPDATE') return undefined;
    const reasons = this.opts.reasons?.() ?? NO_REASONS;
    const a = attributeAllowed(reasons, ev.mark);
    let bytes = 0;
    let packets = 0;
    let durationMs = 0;
    let event: FlowRecord['event'] = 'start';
    if (ev.type === 'NEW') {
      if (ev.id !== undefined) {
        if (this.open.size >= this.maxOpen) {
          // Oldest first: Map iteration order is insertion order.
          const first = this.open.keys().next();
          if (!first.done) this.open.delete(first.value);
        }
        this.open.set(ev.id, ev.time);
      }
    } else {
      const started = ev.id !== undefined ? this.open.get(ev.id) : undefined;
      if (ev.id !== undefined) this.open.delete(ev.id);
      bytes = ev.orig.bytes + ev.reply.bytes;
      packets = ev.orig.packets + ev.reply.packets;
      durationMs = started !== undefined ? Math.max(0, ev.time - started) : 0;
      event = started !== undefined ? 'end' : 'sample';
    }
    // One object literal with a fixed shape: this runs for every conntrack event.
    const r: FlowRecord = {
      time: ev.time,
      node: this.opts.node,
      src: { ip: ev.orig.src },
      dst: { ip: ev.orig.dst },
      srcPort: ev.orig.sport,
      dstPort: ev.orig.dport,
      protocol: protocolFrom(ev.protocol),
      verdict: a.verdict,
      policy: a.policy,
      rule: a.rule,
      tier: a.tier,
      bytes,
      packets,
      durationMs,
      event,
    };
    if (a.direction) r.direction = a.direction;
    // DNAT (a Service): the reply comes from the endpoint the kernel chose. The flow is between
    // the client and that endpoint (policy is enforced there, after translation); the Service
    // the client addressed is kept beside it.
    if (ev.reply.src && (ev.reply.src !== ev.orig.dst || ev.reply.sport !== ev.orig.dport) && (r.protocol === 'TCP' || r.protocol === 'UDP')) {
      r.service = { ip: ev.orig.dst, port: ev.orig.dport };
      r.dst = { ip: ev.reply.src };
      r.dstPort = ev.reply.sport;
    }
    return r;
  }

  get openConnections(): number {
    return this.open.size;
  }
}
