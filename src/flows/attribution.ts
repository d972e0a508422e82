// Attribution of kernel flow records: "one engine, many faces". The kernel names the policy of
// a denied or audited flow (the mark → reasons.json); for an accepted connection it says
// nothing (no ct mark on accept), so the same engine the agents compiled the ruleset from is
// asked which policy and rule allowed it. Kernel-named verdicts are checked against the
// engine too, and disagreements are counted.
//
// Dedup across nodes: a connection between pods on two nodes crosses the forward hook of both
// nodes, so both conntrack tables see it. Every connection is kept on exactly one node: the
// node of its source pod, or of its destination pod when the source is not a pod (external).
// Conntrack records with no pod on either side are the nodes' own traffic (the VXLAN
// encapsulation between nodes) and are not reported. Denied flows come from the `denied` set of the node that dropped them, which is one node
// by construction (a drop is final). A connection whose egress passed on the source node and
// whose ingress was dropped on the destination node leaves a conntrack entry on the source
// node only; the engine says it is denied there, so that half is discarded, and the drop is
// reported once, by the destination node.
//
// Pure apart from the memo: engine + pod table in, records out.

import { isEmpty, portsConn, NO_CONNS, type ConnSet } from '../policy/connections.js';
import { evaluateSide, externalEndpoint, podEndpoint, type Endpoint } from '../policy/endpoint.js';
import type { PolicyEngine, ProgramMode } from '../policy/engine.js';
import { parseIp } from '../policy/ip.js';
import type { Decision } from '../policy/pipeline.js';
import type { Direction } from '../policy/rules.js';
import type { FlowProtocol, FlowRecord, Tier } from './record.js';

/** Rule label of the NetworkPolicy default deny, as the renderer names it (src/render/reasons.ts). */
export const ISOLATED_RULE = 'default deny (isolated)';

export interface SideAttribution {
  readonly policy: string;
  readonly rule: string;
  readonly tier: Tier;
  readonly direction: Direction;
}

/** The engine's view of one (source class, destination class, protocol, port). */
export interface EngineDecision {
  /** Enforced verdict. */
  readonly allowed: boolean;
  /** Allowed: the rule that allowed (ingress first, then egress, else default). Denied: the deny point the packet hits first (egress before ingress). */
  readonly attribution: SideAttribution | undefined;
  /** Side that denied (enforce mode). */
  readonly deniedAt?: Direction;
  /** Set when audit-mode policies would deny an allowed flow: the audit deny point. */
  readonly audit?: SideAttribution;
  /** The deny point with audit-mode policies enforced too (the `full` program), whatever the enforced verdict. */
  readonly fullDeny?: SideAttribution;
}

export interface AttributedPod {
  readonly key: string;
  readonly ip: string;
  readonly node: string;
}

export interface AttributionStats {
  /** Accepted connections attributed by the engine. */
  attributed: number;
  /** Engine answers computed (memo misses). */
  evaluations: number;
  /** Conntrack records of a connection owned by another node (counted there). */
  otherNode: number;
  /** Conntrack records with no pod on either side: the nodes' own traffic (VXLAN on the underlay). */
  nodeTraffic: number;
  /** Conntrack halves of connections dropped on another node (reported by that node's denied set). */
  droppedElsewhere: number;
  /** Starts of audited connections (the kernel's audit record counts them). */
  auditStarts: number;
  /** Audit records of attempts that were dropped anyway (the DROPPED record counts them). */
  auditOfDropped: number;
  /** Records where the kernel and the engine disagree (verdict or deciding policy/rule). */
  mismatches: number;
  lastMismatch?: string;
}

/** What a record source asks before it hands a record on (see NodeFlowSource). */
export interface RecordAttributor {
  /** A conntrack record seen on `node`: the record to keep (attributed), or undefined to discard it. */
  conntrack(r: FlowRecord, node: string): FlowRecord | undefined;
  /**
   * A denied-set record (DROPPED/AUDIT) from `node`: checked against the engine and kept as
   * the kernel named it, or undefined for an audit record of an attempt that was dropped anyway.
   */
  denied(r: FlowRecord, node: string): FlowRecord | undefined;
}

/** The connection as a set: one port of a port protocol, or "other protocols" (ICMP, …). */
function connOf(protocol: FlowProtocol, port: number): ConnSet {
  if (protocol === 'TCP' || protocol === 'UDP' || protocol === 'SCTP') return portsConn(protocol, port, port);
  return { ...NO_CONNS, other: true };
}

export interface FlowAttributionOptions {
  /** Pods by IP with their node (the lab state). */
  readonly pods: ReadonlyMap<string, AttributedPod>;
  /** Bound on memoized decisions. */
  readonly cacheSize?: number;
  readonly onMismatch?: (message: string) => void;
}

/**
 * Answers "who decided this flow" for kernel records, memoized by (source class, destination
 * class, protocol, port). A class is what the engine can tell apart: the pod's identity plus
 * the CIDR groups its address falls into (ipBlocks match pod IPs too), or for an address
 * outside the cluster only the CIDR groups. Build a new instance when the engine changes.
 */
export class FlowAttribution implements RecordAttributor {
  readonly stats: AttributionStats = { attributed: 0, evaluations: 0, otherNode: 0, nodeTraffic: 0, droppedElsewhere: 0, auditStarts: 0, auditOfDropped: 0, mismatches: 0 };
  private readonly memo = new Map<string, EngineDecision>();
  private readonly classes = new Map<string, { key: string; endpoint: Endpoint }>();
  private readonly cidrGroups: number[];
  private readonly cacheSize: number;

  constructor(
    readonly engine: PolicyEngine,
    private readonly opts: FlowAttributionOptions,
  ) {
    this.cidrGroups = [...engine.cache.groups.values()].filter((g) => g.spec.kind === 'cidr').map((g) => g.id);
    this.cacheSize = opts.cacheSize ?? 100_000;
  }

  private classOf(ip: string): { key: string; endpoint: Endpoint } {
    const hit = this.classes.get(ip);
    if (hit) return hit;
    const pod = this.opts.pods.get(ip);
    const model = pod ? this.engine.pods.get(pod.key) : undefined;
    const value = parseIp(ip);
    const endpoint: Endpoint = model ? podEndpoint(this.engine, model) : externalEndpoint(value ?? 0n);
    const inCidrs: number[] = [];
    if (value !== undefined) {
      for (const gid of this.cidrGroups) {
        const g = this.engine.group(gid);
        if (g?.spec.kind === 'cidr' && g.spec.intervals.some((iv) => value >= iv.start && value <= iv.end)) inCidrs.push(gid);
      }
    }
    const cls = { key: `${endpoint.identity ? `i${endpoint.identity.id}` : 'x'}|${inCidrs.join(',')}`, endpoint };
    if (this.classes.size >= this.cacheSize) this.classes.clear();
    this.classes.set(ip, cls);
    return cls;
  }

  /** The engine's decision for one flow (memoized per class pair, protocol and port). */
  decide(srcIp: string, dstIp: string, protocol: FlowProtocol, port: number): EngineDecision {
    const src = this.classOf(srcIp);
    const dst = this.classOf(dstIp);
    const key = `${src.key}>${dst.key}>${protocol}>${port}`;
    const hit = this.memo.get(key);
    if (hit) return hit;
    this.stats.evaluations++;
    const d = this.evaluate(src.endpoint, dst.endpoint, protocol, port);
    if (this.memo.size >= this.cacheSize) this.memo.clear();
    this.memo.set(key, d);
    return d;
  }

  private side(direction: Direction, src: Endpoint, dst: Endpoint, conns: ConnSet, mode: ProgramMode): { allowed: boolean; by: SideAttribution | undefined } {
    const trace: Decision[] = [];
    const allowed = !isEmpty(evaluateSide(this.engine, direction, src, dst, mode, conns, trace));
    const subject = direction === 'egress' ? src : dst;
    const decisive = [...trace].reverse().find((d) => d.action !== 'Pass' && !isEmpty(d.conns));
    if (!decisive) return { allowed, by: undefined };
    if (decisive.rule) {
      const r = decisive.rule.ref;
      return { allowed, by: { policy: r.policy, rule: r.rule, tier: r.tier, direction } };
    }
    if (decisive.reason === 'isolated' && subject.identity) {
      // Named exactly as the kernel's default-deny reason: every isolating policy, sorted.
      const program = this.engine.program(subject.identity.id, direction, mode);
      return { allowed, by: { policy: [...program.isolatingPolicies].sort().join(', '), rule: ISOLATED_RULE, tier: 'NetworkPolicy', direction } };
    }
    return { allowed, by: undefined };
  }

  private evaluate(src: Endpoint, dst: Endpoint, protocol: FlowProtocol, port: number): EngineDecision {
    const pending = connOf(protocol, port);
    const fullEg = this.side('egress', src, dst, pending, 'full');
    const fullIng = this.side('ingress', src, dst, pending, 'full');
    const fullDeny = !fullEg.allowed ? fullEg.by : !fullIng.allowed ? fullIng.by : undefined;
    const full = fullDeny ? { fullDeny } : {};
    const eg = this.side('egress', src, dst, pending, 'enforce');
    const ing = this.side('ingress', src, dst, pending, 'enforce');
    if (!eg.allowed) return { allowed: false, attribution: eg.by, deniedAt: 'egress', ...full };
    if (!ing.allowed) return { allowed: false, attribution: ing.by, deniedAt: 'ingress', ...full };
    return { allowed: true, attribution: ing.by ?? eg.by, ...(fullDeny ? { audit: fullDeny } : {}), ...full };
  }

  private ownerNode(srcIp: string, dstIp: string): string | undefined {
    return this.opts.pods.get(srcIp)?.node ?? this.opts.pods.get(dstIp)?.node;
  }

  private mismatch(message: string): void {
    this.stats.mismatches++;
    this.stats.lastMismatch = message;
    this.opts.onMismatch?.(message);
  }

  conntrack(r: FlowRecord, node: string): FlowRecord | undefined {
    const owner = this.ownerNode(r.src.ip, r.dst.ip);
    if (owner === undefined) {
      // Workload traffic has a pod on at least one side; the rest is the node's own.
      this.stats.nodeTraffic++;
      return undefined;
    }
    if (owner !== node) {
      this.stats.otherNode++;
      return undefined;
    }
    const d = this.decide(r.src.ip, r.dst.ip, r.protocol, r.dstPort);
    if (!d.allowed) {
      const dst = this.opts.pods.get(r.dst.ip);
      if (d.deniedAt === 'ingress' && dst && dst.node !== node) {
        this.stats.droppedElsewhere++;
        return undefined;
      }
      // The kernel let a connection through that the engine denies: report it as seen.
      this.mismatch(`${node}: ${flowText(r)} was accepted by the kernel but the engine denies it (${d.attribution ? `${d.attribution.policy} ${d.attribution.rule}` : 'default'})`);
      r.policy = 'unknown';
      r.rule = 'engine-denies';
      r.tier = 'default';
      return r;
    }
    if (d.audit) {
      // The audit chain recorded this connection's first packet with its audit reason; that
      // record counts the connection. Its bytes still come from here.
      if (r.event === 'start') {
        this.stats.auditStarts++;
        return undefined;
      }
      r.verdict = 'AUDIT';
      setAttribution(r, d.audit);
      return r;
    }
    this.stats.attributed++;
    r.verdict = 'FORWARDED';
    if (d.attribution) setAttribution(r, d.attribution);
    else {
      r.policy = 'default';
      r.rule = 'default-allow';
      r.tier = 'default';
      delete r.direction;
    }
    return r;
  }

  denied(r: FlowRecord, node: string): FlowRecord | undefined {
    const d = this.decide(r.src.ip, r.dst.ip, r.protocol, r.dstPort);
    // The audit pass runs before the enforced program: an attempt can be audited and then
    // dropped. Its DROPPED record counts it; counting the audit too would count it twice.
    const audit = r.verdict === 'AUDIT';
    const engine = audit ? d.fullDeny : d.allowed ? undefined : d.attribution;
    const agrees = audit ? d.fullDeny !== undefined : !d.allowed;
    if (!agrees || !engine || engine.policy !== r.policy || engine.rule !== r.rule) {
      const says = !agrees ? (audit ? 'would allow it even with audit policies enforced' : 'allows it') : engine ? `names ${engine.policy} ${engine.rule}` : 'names no policy';
      this.mismatch(`${node}: ${flowText(r)} ${r.verdict} by ${r.policy} ${r.rule} in the kernel, the engine ${says}`);
    }
    if (audit && !d.allowed) {
      this.stats.auditOfDropped++;
      return undefined;
    }
    return r;
  }
}

function setAttribution(r: FlowRecord, a: SideAttribution): void {
  r.policy = a.policy;
  r.rule = a.rule;
  r.tier = a.tier;
  r.direction = a.direction;
}

function flowText(r: FlowRecord): string {
  return `${r.src.ip} -> ${r.dst.ip}:${r.dstPort}/${r.protocol}`;
}
