// The agent's side of "aggregate per edge and window locally": one window of records becomes a
// bounded sample of raw records plus one record per edge for everything else. Pure over plain
// data; the shipper (shipper.ts) owns the timer.
//
// Exactness: every flow of the window is counted exactly once — either in a sampled raw record
// (as it was observed) or in its edge's aggregate, whose `count` says how many connections it
// folds (record.ts). Summed bytes and packets ride along the same way. So the server's counts
// (edges, policy hits, metrics, alerts) equal what the agent observed, whatever the sample size.
//
// Why these keys: an edge is what the dashboard and the alerts reason about — source group →
// destination group, port, protocol, verdict and the policy and rule that decided (Hubble's
// metrics use the same dimensions), and the Service the client addressed, if any. Pod names and addresses are not in the key (they would
// bring back pairs); they stay queryable in the agent's raw records.
import { emptyCounters, type EdgeCounters } from './aggregate.js';
import { flowCount, type Endpoint, type FlowRecord } from './record.js';

export interface WindowOptions {
  /** Raw records kept per window (the first ones, so a new edge's first flow is always shown). */
  maxSamples?: number;
  /** Distinct edges per window; beyond it flows fold into one `other` edge per verdict (still counted). */
  maxEdges?: number;
}

export interface SealedWindow {
  records: FlowRecord[];
  /** Flows the records stand for. */
  flows: number;
  samples: number;
  edges: number;
}

const SEP = '\u0000';

/** The group-level endpoint an aggregate carries: no pod, no address of one pod. */
export function groupEndpoint(ep: Endpoint): Endpoint {
  if (ep.external || !ep.namespace) return { ip: ep.cidr ?? '0.0.0.0/0', external: true, ...(ep.cidr ? { cidr: ep.cidr } : {}) };
  const out: Endpoint = { ip: '*', namespace: ep.namespace };
  if (ep.workload !== undefined) out.workload = ep.workload;
  if (ep.identity !== undefined) out.identity = ep.identity;
  if (ep.identityId !== undefined) out.identityId = ep.identityId;
  return out;
}

function endpointKey(ep: Endpoint): string {
  return ep.external || !ep.namespace ? `x${SEP}${ep.cidr ?? ''}` : `${ep.namespace}${SEP}${ep.workload ?? ''}${SEP}${ep.identity ?? ''}`;
}

/** The edge a record belongs to (also used to notice edges the server has not seen yet). */
export function edgeKey(r: FlowRecord): string {
  // The Service a client addressed (when it did) splits an edge: the map draws flows through a
  // Service apart from direct ones.
  const svc = r.service ? `${r.service.ip}:${r.service.port}` : '';
  return [r.node, endpointKey(r.src), endpointKey(r.dst), r.dstPort, r.protocol, r.verdict, r.policy, r.rule, r.tier, r.direction ?? '', svc].join(SEP);
}

interface Pending {
  proto: FlowRecord;
  c: EdgeCounters;
  durationMs: number;
}

export class FlowWindow {
  private readonly maxSamples: number;
  private readonly maxEdges: number;
  private samples: FlowRecord[] = [];
  private edges = new Map<string, Pending>();
  private flows = 0;

  constructor(opts: WindowOptions = {}) {
    this.maxSamples = opts.maxSamples ?? 20;
    this.maxEdges = opts.maxEdges ?? 5_000;
  }

  get size(): number {
    return this.samples.length + this.edges.size;
  }

  get flowCount(): number {
    return this.flows;
  }

  /** `key`: the record's edgeKey, when the caller has computed it already. */
  add(r: FlowRecord, key = edgeKey(r)): void {
    this.flows += flowCount(r);
    if (this.samples.length < this.maxSamples) {
      // A copy: the caller may reuse its objects, and a sample is sent as it was observed.
      this.samples.push({ ...r });
      return;
    }
    let e = this.edges.get(key);
    if (!e && this.edges.size >= this.maxEdges) {
      // Counted, at coarser resolution: the per-verdict overflow edge of this node.
      key = `other${SEP}${r.node}${SEP}${r.verdict}`;
      e = this.edges.get(key);
      if (!e) {
        const other: Endpoint = { ip: 'other', external: true, cidr: 'other' };
        const proto: FlowRecord = { ...r, src: other, dst: other, srcPort: 0, dstPort: 0, protocol: 'OTHER', policy: 'other', rule: 'other', tier: 'default' };
        this.edges.set(key, (e = { proto, c: emptyCounters(), durationMs: 0 }));
      }
    }
    if (!e) this.edges.set(key, (e = { proto: r, c: emptyCounters(), durationMs: 0 }));
    const n = flowCount(r);
    e.c.flows += n;
    e.c.bytes += r.bytes;
    e.c.packets += r.packets;
    e.durationMs += r.durationMs;
    if (r.time > e.c.lastSeen) e.c.lastSeen = r.time;
  }

  /** The window's records (samples first), and a fresh empty window. */
  seal(): SealedWindow {
    const samples = this.samples.length;
    const records: FlowRecord[] = this.samples;
    for (const { proto, c, durationMs } of this.edges.values()) {
      const r: FlowRecord = {
        time: c.lastSeen,
        node: proto.node,
        src: groupEndpoint(proto.src),
        dst: groupEndpoint(proto.dst),
        srcPort: 0,
        dstPort: proto.dstPort,
        protocol: proto.protocol,
        verdict: proto.verdict,
        policy: proto.policy,
        rule: proto.rule,
        tier: proto.tier,
        bytes: c.bytes,
        packets: c.packets,
        durationMs,
        // Only byte totals of connections counted earlier: an `end` carries no flow.
        ...(c.flows > 0 ? { event: 'sample' as const, count: c.flows } : { event: 'end' as const }),
      };
      if (proto.direction !== undefined) r.direction = proto.direction;
      if (proto.service) r.service = { ...proto.service };
      records.push(r);
    }
    const out = { records, flows: this.flows, samples, edges: this.edges.size };
    this.samples = [];
    this.edges = new Map();
    this.flows = 0;
    return out;
  }
}
