// The renderer: PolicyEngine + one node's local pods → the desired `inet weir` table.
// Pure: no I/O, no clock, no randomness; equal inputs give equal rulesets.
//
// Shape (after kube-proxy's nftables proxier — membership in sets and maps, rules per
// policy and per identity, never per pod or per pair):
//
//   chain egress  (hook forward, priority filter)       chain ingress (hook forward, priority filter + 10)
//     ct state established,related accept                ct state established,related accept
//     ct state invalid drop                               ct state invalid drop
//     ip saddr vmap @eg_ep  → goto eg_<identity>          ip daddr vmap @in_ep → goto in_<identity>
//
// Two base chains on the same hook compose egress and ingress verdicts: `accept` only ends
// the current base chain (the next base chain on the hook still sees the packet) while
// `drop` is final. The egress chain decides for the source pod on the source's node, the
// ingress chain for the destination pod on the destination's node; when both pods share a
// node both chains run there. Pods are routed through the node netns, hence hook forward.
//
// Per identity (in tier order, ANP → NP → BANP, as src/policy/pipeline.ts):
//
//   eg_<identity>:
//     jump au_…               only when audit-mode policies apply (see below)
//     jump adm_<dir>_<hash>   ANP rules in priority order: Allow → accept, Deny → goto d_<id>,
//                             Pass → return (back here, i.e. on to the NetworkPolicy tier)
//     jump np_<policy>_<dir>  if isolated: one shared chain per NetworkPolicy and direction,
//     …                       its rules `ip daddr @g_X tcp dport { 80, 81 } accept`
//     goto d_<id>             if isolated: default deny
//     jump ban_<dir>_<hash>   if not isolated: BANP rules, Allow → accept, Deny → goto d_<id>
//                             (falling off the end: the base chain's policy, accept)
//
// ANP and BANP rules sit in chains named by the hash of their text, shared by every identity
// with the same admin policies; NetworkPolicy chains are shared by every identity a policy
// selects. The rule count therefore grows with policies + identities, and a pod add or
// remove changes set/map elements only.
//
// Deny points: set the mark to the reason id, count it in `hits`, record the flow in `denied`,
// drop. Audit: where the `full` program (audit policies included) differs from `enforce`, a
// chain evaluates the full program first, turning each deny caused by an audit policy into an
// audit point (count, record with the audit reason as a constant, return) and every other
// outcome into `return`; then the enforced program runs as usual. A packet that passes keeps
// its mark: only deny points, whose packets are dropped, set it.

import type { ContainerPort, Pod, Protocol } from '../model/cluster.js';
import type { Identity } from '../policy/cache.js';
import type { PolicyEngine } from '../policy/engine.js';
import { V4_BASE, intervalsContain, parseIp, type IpInterval } from '../policy/ip.js';
import type { CompiledRule, Direction, DirectionProgram, PortSpec } from '../policy/rules.js';
import { matchesSelector } from '../policy/selector.js';
import { TABLE, nftName, shortHash } from './names.js';
import { IPV6_REASON, NOT_READY_REASON, SPOOF_REASON, collectReasons, defaultDenyReason, ruleReason, type ReasonRegistry } from './reasons.js';
import type { NftChain, NftSet, Ruleset } from './ruleset.js';

export interface LocalPod {
  /** `namespace/name`. */
  readonly key: string;
  /** Overrides the engine's pod IP (the lab's IPAM is authoritative). */
  readonly ip?: string;
  /** Node-side veth, for documentation and anti-spoofing; not needed for verdicts. */
  readonly hostVeth?: string;
}

export interface RenderInput {
  readonly engine: PolicyEngine;
  /** Pods running on this node: only they get entries in the endpoint maps. */
  readonly localPods: readonly LocalPod[];
  /** Pod IPs cluster-wide (`ns/name` → IP); default: the engine's `pod.ip`. */
  readonly podIps?: ReadonlyMap<string, string>;
  /** A reasons registry computed once for the whole cluster (saves recomputing per node). */
  readonly reasons?: ReasonRegistry;
  /**
   * nft wildcard of the node's pod interfaces (the lab's `wp*`). When set, the node fails
   * closed: traffic from or to a pod interface the ruleset does not know yet (a pod attached
   * before the agent's sync) is dropped and counted, instead of passing unfiltered.
   */
  readonly podInterfaces?: string;
}

export const DENIED_SET = 'denied';
export const EGRESS_MAP = 'eg_ep';
export const INGRESS_MAP = 'in_ep';
export const EGRESS_CHAIN = 'egress';
export const INGRESS_CHAIN = 'ingress';
export const DENY_CHAIN = 'deny';
/**
 * Per-reason hit counters: a dynamic set keyed by the reason id whose elements carry counters,
 * filled from the packet path: `update @hits { <id> counter }` where a rule decides (allows
 * leave the packet untouched: its mark may belong to kube-proxy or a CNI), `update @hits
 * { meta mark counter }` in the shared deny and audit chains (the mark is set just before the
 * `goto`). One set instead of thousands of named counter objects: nft fetches every object of
 * the table before any change, so 8k named counters alone cost ~25 ms of each pod add (10k
 * pods / 5k policies).
 */
export const HITS_SET = 'hits';
/** Host-side interfaces of local pods, and `interface . address` of each local pod (anti-spoofing). */
export const POD_IFS_SET = 'pod_ifs';
export const POD_SRC_SET = 'pod_src';
const PORT_PROTOCOLS = '{ tcp, udp, sctp }';
const FULL_RANGE: readonly [number, number] = [1, 65535];

/** Counts one hit of the reason `key` (a constant id, or `meta mark` in the shared deny chain). */
const countHit = (key: string | number): string => `update @${HITS_SET} { ${key} counter }`;
/** Records the flow in `denied` under the reason `key`; `port` is `th dport`, or 0 for protocols without ports. */
const recordDenied = (port: string, key: string | number): string => `update @${DENIED_SET} { ip saddr . ip daddr . meta l4proto . ${port} . ${key} }`;
const short = (d: Direction): string => (d === 'ingress' ? 'in' : 'eg');

/** How a rule's match ends, per context. */
type Verdict = { readonly text: string; readonly counter?: number; readonly alternatives?: readonly string[] };

function isV4(ip: string | undefined): ip is string {
  return ip !== undefined && /^\d+\.\d+\.\d+\.\d+$/.test(ip);
}

function formatV4(v: bigint): string {
  const n = Number(v - V4_BASE);
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

/** An IPv4 interval as a CIDR when it is one, else `a-b` (both forms are accepted in interval sets). */
function formatInterval(iv: IpInterval): string {
  const size = iv.end - iv.start + 1n;
  const offset = iv.start - V4_BASE;
  if ((size & (size - 1n)) === 0n && offset % size === 0n) {
    const prefix = 32 - (size.toString(2).length - 1);
    return prefix === 32 ? formatV4(iv.start) : `${formatV4(iv.start)}/${prefix}`;
  }
  return `${formatV4(iv.start)}-${formatV4(iv.end)}`;
}

function portText(protocol: Protocol, ranges: readonly (readonly [number, number])[]): string {
  const p = protocol.toLowerCase();
  const sorted = [...ranges].sort((a, b) => a[0] - b[0]);
  const merged: [number, number][] = [];
  for (const [s, e] of sorted) {
    const last = merged[merged.length - 1];
    if (last && s <= last[1] + 1) last[1] = Math.max(last[1], e);
    else merged.push([s, e]);
  }
  if (merged.length === 1 && merged[0][0] <= FULL_RANGE[0] && merged[0][1] >= FULL_RANGE[1]) return `meta l4proto ${p}`;
  const items = merged.map(([s, e]) => (s === e ? `${s}` : `${s}-${e}`));
  return items.length === 1 ? `${p} dport ${items[0]}` : `${p} dport { ${items.join(', ')} }`;
}

function namedMatches(spec: Extract<PortSpec, { kind: 'named' }>, cp: ContainerPort): boolean {
  return cp.name === spec.name && (spec.protocol === undefined || spec.protocol === cp.protocol);
}

type NamedSpec = Extract<PortSpec, { kind: 'named' }>;

function namedSpecs(rule: CompiledRule): NamedSpec[] {
  return rule.ports === 'all' ? [] : rule.ports.filter((p): p is NamedSpec => p.kind === 'named');
}

function namedPortSetName(rule: CompiledRule, specs: readonly NamedSpec[]): string {
  const sig = specs.map((s) => `${s.name}/${s.protocol ?? ''}`).join(',');
  return nftName('nport', `${rule.ref.policy.replace(/^NetworkPolicy /, '')}_${rule.ref.rule}`, `${rule.ref.policy}\u0000${rule.ref.rule}\u0000${sig}`);
}

/**
 * Egress named ports resolve per destination pod: one element `ip . proto . port` per pod of
 * the rule's peers that has a matching container port (per pod, never per pair).
 */
function namedPortElements(engine: PolicyEngine, rule: CompiledRule, specs: readonly NamedSpec[], pod: Pod, ip: string | undefined): string[] {
  if (pod.hostNetwork || !isV4(ip)) return [];
  const id = engine.identityOfPod(`${pod.namespace}/${pod.name}`);
  if (!id) return [];
  if (rule.peers !== 'all') {
    const inPeers = rule.peers.some((gid) => {
      const g = engine.group(gid);
      if (!g) return false;
      if (g.spec.kind === 'pods') return g.identities.has(id.id);
      if (g.spec.kind === 'cidr') return intervalsContain(g.spec.intervals, parseIp(ip) as bigint);
      return false;
    });
    if (!inPeers) return [];
  }
  return id.ports.filter((cp) => specs.some((s) => namedMatches(s, cp))).map((cp) => `${ip} . ${cp.protocol.toLowerCase()} . ${cp.port}`);
}

function identityChainName(identity: Identity, direction: Direction): string {
  return nftName(short(direction), `${identity.namespace}_${Object.values(identity.labels).join('_')}`, identity.key);
}

/** Nothing to render: no admin rules, not isolated, no baseline rules (the chain would be empty). */
function programEmpty(p: DirectionProgram): boolean {
  return p.admin.length === 0 && !p.isolated && p.baseline.length === 0;
}

function groupSetName(key: string): string {
  return nftName('g', '', key);
}

class Renderer {
  private readonly sets = new Map<string, NftSet>();
  private readonly chains = new Map<string, NftChain>();
  private readonly counters = new Set<number>();
  private readonly groupSetNames = new Map<number, string>();
  private readonly identityChains = new Map<string, string | undefined>();
  /** NetworkPolicy chain name → the identity chains (direction + identity) that use it. */
  private readonly npUsers = new Map<string, Set<string>>();
  private readonly podIp: (key: string) => string | undefined;

  constructor(
    private readonly engine: PolicyEngine,
    private readonly reasons: ReasonRegistry,
    podIps: ReadonlyMap<string, string> | undefined,
  ) {
    this.podIp = (key) => podIps?.get(key) ?? engine.pods.get(key)?.ip;
  }

  // ---------------------------------------------------------------- objects

  private addChain(name: string, rules: readonly string[]): string {
    if (!this.chains.has(name)) this.chains.set(name, { name, rules });
    return name;
  }

  private counter(id: number): string {
    this.counters.add(id);
    return countHit(id);
  }

  /**
   * A deny point: `meta mark set <id> goto deny`, one shared chain that counts the mark in
   * `hits`, records the flow and drops (the mark dies with the packet): thousands of
   * per-reason chains made the kernel's jump-graph validation the bottleneck of a full apply
   * (8.5 s vs 1.3 s for 10k pods / 5k policies).
   */
  private denyPoint(id: number): string {
    this.counter(id);
    return `meta mark set ${id} goto ${DENY_CHAIN}`;
  }

  /**
   * An audit point (what an audit-mode policy would deny): count, record and return to the
   * enforced program, with the reason id as a constant so the packet, which goes on, keeps
   * its own mark (kube-proxy's masquerade bit, a CNI's bits). Two alternative endings: with
   * the destination port for protocols that have one, with port 0 for the others.
   */
  private auditPoint(id: number): readonly string[] {
    const count = this.counter(id);
    return [`meta l4proto ${PORT_PROTOCOLS} ${count} ${recordDenied('th dport', id)} return`, `${count} ${recordDenied('0', id)} return`];
  }

  /** One named set per selector-cache group; elements cluster-wide. */
  private groupSet(gid: number): string {
    const cached = this.groupSetNames.get(gid);
    if (cached) return cached;
    const g = this.engine.group(gid);
    if (!g) throw new Error(`unknown selector-cache group ${gid}`);
    const name = groupSetName(g.key);
    const elements = new Set<string>();
    let interval = false;
    switch (g.spec.kind) {
      case 'pods':
        for (const iid of g.identities) {
          const id = this.engine.cache.identities.get(iid);
          if (!id || id.hostNetwork) continue;
          for (const pod of id.pods) {
            const ip = this.podIp(pod);
            if (isV4(ip)) elements.add(ip);
          }
        }
        break;
      case 'cidr':
        // IPv6 intervals are left out: the table matches `ip` (IPv4) only; see README of src/nft.
        interval = true;
        for (const iv of g.spec.intervals) if (iv.start >= V4_BASE) elements.add(formatInterval(iv));
        break;
      case 'nodes':
        for (const node of this.engine.cache.nodes.values()) {
          if (isV4(node.ip) && matchesSelector(g.spec.nodeSelector, node.labels)) elements.add(node.ip);
        }
        break;
    }
    this.sets.set(name, {
      name,
      kind: 'set',
      type: 'ipv4_addr',
      flags: interval ? ['interval'] : [],
      extra: [],
      dynamic: false,
      elements: [...elements].sort(),
    });
    this.groupSetNames.set(gid, name);
    return name;
  }

  /**
   * Egress named ports resolve per destination pod: one element `ip . proto . port` per pod of
   * the rule's peers that has a matching container port (per pod, never per pair).
   */
  private namedPortSet(rule: CompiledRule, specs: readonly Extract<PortSpec, { kind: 'named' }>[]): string {
    const name = namedPortSetName(rule, specs);
    if (this.sets.has(name)) return name;
    const elements = new Set<string>();
    for (const [key, pod] of this.engine.pods) {
      for (const e of namedPortElements(this.engine, rule, specs, pod, this.podIp(key))) elements.add(e);
    }
    this.sets.set(name, {
      name,
      kind: 'set',
      type: 'ipv4_addr . inet_proto . inet_service',
      flags: [],
      extra: [],
      dynamic: false,
      elements: [...elements].sort(),
    });
    return name;
  }

  // ---------------------------------------------------------------- rules

  /**
   * The nft rules of one compiled rule. `subject` is the identity the chain is for; on ingress
   * it is the destination, so named ports resolve against its container ports.
   */
  private ruleLines(rule: CompiledRule, direction: Direction, subject: Identity, verdict: Verdict): string[] {
    const ends = verdict.alternatives ?? [verdict.counter !== undefined ? `${this.counter(verdict.counter)} ${verdict.text}` : verdict.text];
    const addr = direction === 'ingress' ? 'ip saddr' : 'ip daddr';
    const peers = rule.peers === 'all' ? [''] : rule.peers.map((g) => `${addr} @${this.groupSet(g)} `);
    // "If this field is empty or missing, this rule matches all ports" — and all protocols.
    if (rule.ports === 'all') return peers.flatMap((p) => ends.map((end) => `${p}${end}`));
    const ranges = new Map<Protocol, [number, number][]>();
    const add = (p: Protocol, s: number, e: number) => {
      let list = ranges.get(p);
      if (!list) ranges.set(p, (list = []));
      list.push([s, e]);
    };
    const egressNamed: Extract<PortSpec, { kind: 'named' }>[] = [];
    for (const spec of rule.ports) {
      if (spec.kind === 'range') add(spec.protocol, spec.start, spec.end);
      else if (direction === 'ingress') {
        for (const cp of subject.ports) if (namedMatches(spec, cp)) add(cp.protocol, cp.port, cp.port);
      } else egressNamed.push(spec);
    }
    const ports = [...ranges.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1)).map(([p, r]) => portText(p, r));
    const out: string[] = [];
    for (const p of peers) for (const q of ports) for (const end of ends) out.push(`${p}${q} ${end}`);
    if (egressNamed.length > 0) for (const end of ends) out.push(`ip daddr . meta l4proto . th dport @${this.namedPortSet(rule, egressNamed)} ${end}`);
    // A rule whose ports resolve to nothing (a named port the pod lacks) matches nothing.
    return out;
  }

  private enforceVerdict(rule: CompiledRule): Verdict {
    const reason = ruleReason(rule);
    if (rule.action === 'Pass' || !reason) return { text: 'return' };
    const id = this.reasons.id(reason);
    if (rule.action === 'Allow') return { text: 'accept', counter: id };
    return { text: this.denyPoint(id) };
  }

  /** In the audit pass nothing is enforced: only audit policies count and record. */
  private auditVerdict(rule: CompiledRule, tail: string | undefined): Verdict {
    if (rule.action === 'Pass') return { text: tail ? `goto ${tail}` : 'return' };
    const reason = ruleReason(rule);
    if (!rule.ref.audit || !reason) return { text: 'return' };
    const id = this.reasons.id(reason);
    if (rule.action === 'Allow') return { text: 'return', counter: id };
    return { text: 'return', alternatives: this.auditPoint(id) };
  }

  private sharedChain(prefix: string, lines: readonly string[]): string | undefined {
    if (lines.length === 0) return undefined;
    return this.addChain(nftName(prefix, '', lines.join('\n')), lines);
  }

  /**
   * The NetworkPolicy chain's name and rules, not yet added: a chain only one identity chain
   * of this node uses is inlined there instead (see `npUsers`).
   */
  private npChain(policyKey: string, direction: Direction, subject: Identity): { name: string; lines: string[] } | undefined {
    const policy = this.engine.policy(policyKey);
    if (!policy) return undefined;
    const rules = policy[direction];
    const lines = rules.flatMap((r) => this.ruleLines(r, direction, subject, this.enforceVerdict(r)));
    if (lines.length === 0) return undefined;
    return { name: this.npChainName(policyKey, direction, subject, rules), lines };
  }

  private programLines(program: DirectionProgram, direction: Direction, subject: Identity): string[] {
    const out: string[] = [];
    const admin = this.sharedChain(
      `adm_${short(direction)}`,
      program.admin.flatMap((r) => this.ruleLines(r, direction, subject, this.enforceVerdict(r))),
    );
    if (admin) out.push(`jump ${admin}`);
    if (program.isolated) {
      for (const key of program.isolatingPolicies) {
        const np = this.npChain(key, direction, subject);
        if (!np) continue;
        // NetworkPolicy rules only allow (accept) or fall through, so inlining a chain that a
        // single identity chain uses is the same program with one chain and one jump fewer:
        // fewer chains is less for the kernel to validate and for `nft` to fetch before
        // every command (its cache cost is what a pod add pays).
        if ((this.npUsers.get(np.name)?.size ?? 0) <= 1) out.push(...np.lines);
        else out.push(`jump ${this.addChain(np.name, np.lines)}`);
      }
      const id = this.reasons.id(defaultDenyReason(program.isolatingPolicies, direction, false));
      out.push(this.denyPoint(id));
    } else {
      const banp = this.sharedChain(
        `ban_${short(direction)}`,
        program.baseline.flatMap((r) => this.ruleLines(r, direction, subject, this.enforceVerdict(r))),
      );
      if (banp) out.push(`jump ${banp}`);
    }
    return out;
  }

  private auditChain(full: DirectionProgram, direction: Direction, subject: Identity): string | undefined {
    const tailLines: string[] = [];
    if (full.isolated) {
      for (const r of full.networkPolicy) {
        const reason = ruleReason(r);
        const counter = r.ref.audit && reason ? this.reasons.id(reason) : undefined;
        tailLines.push(...this.ruleLines(r, direction, subject, { text: 'return', counter }));
      }
      const auditIsolated = full.isolatingPolicies.some((k) => this.engine.policy(k)?.mode === 'audit');
      if (auditIsolated) {
        const id = this.reasons.id(defaultDenyReason(full.isolatingPolicies, direction, true));
        tailLines.push(...this.auditPoint(id));
      }
    } else {
      for (const r of full.baseline) tailLines.push(...this.ruleLines(r, direction, subject, this.auditVerdict(r, undefined)));
    }
    // Trailing `return`s that neither count nor record are no-ops; an empty tail is "nothing to audit".
    while (tailLines.length > 0 && tailLines[tailLines.length - 1].endsWith(' return') && !/@(hits|denied) /.test(tailLines[tailLines.length - 1])) {
      tailLines.pop();
    }
    const tail = tailLines.length > 0 ? this.sharedChain(`aut_${short(direction)}`, tailLines) : undefined;
    if (full.admin.length === 0) return tail;
    const headLines = full.admin.flatMap((r) => this.ruleLines(r, direction, subject, this.auditVerdict(r, tail)));
    if (tail) headLines.push(`goto ${tail}`);
    return this.sharedChain(`au_${short(direction)}`, headLines);
  }

  /** Counts, before rendering, which identity chains use each NetworkPolicy chain. */
  planNetworkPolicyChains(identity: Identity, direction: Direction): void {
    if (identity.hostNetwork) return;
    const enforce = this.engine.program(identity.id, direction, 'enforce');
    if (!enforce.isolated) return;
    for (const key of enforce.isolatingPolicies) {
      const policy = this.engine.policy(key);
      if (!policy || policy[direction].length === 0) continue;
      const name = this.npChainName(key, direction, identity, policy[direction]);
      let users = this.npUsers.get(name);
      if (!users) this.npUsers.set(name, (users = new Set()));
      users.add(`${direction}\u0000${identity.id}`);
    }
  }

  /**
   * Ingress named ports resolve against the selected pod, so such a policy gets one chain per
   * distinct resolution (the pod's port signature), not one per identity. The signature, not
   * the rule text, goes into the name: editing the policy then refills the same chain.
   */
  private npChainName(policyKey: string, direction: Direction, subject: Identity, rules: readonly CompiledRule[]): string {
    let perSubject = '';
    if (direction === 'ingress' && rules.some((r) => r.hasNamedPorts)) {
      const names = new Set(rules.flatMap((r) => (r.ports === 'all' ? [] : r.ports.flatMap((p) => (p.kind === 'named' ? [p.name] : [])))));
      const sig = subject.ports.filter((cp) => cp.name !== undefined && names.has(cp.name)).map((cp) => `${cp.name}=${cp.protocol}/${cp.port}`);
      perSubject = `\u0000${sig.sort().join(',')}`;
    }
    const readable = `${policyKey.replace(/^NetworkPolicy /, '')}_${short(direction)}`;
    return nftName('np', readable, `${policyKey}\u0000${direction}${perSubject}`);
  }

  /** eg_/in_<identity>, or undefined when nothing applies (policy accept). */
  identityChain(identity: Identity, direction: Direction): string | undefined {
    const memo = `${direction}\u0000${identity.id}`;
    if (this.identityChains.has(memo)) return this.identityChains.get(memo);
    let result: string | undefined;
    if (!identity.hostNetwork) {
      const enforce = this.engine.program(identity.id, direction, 'enforce');
      const full = this.engine.program(identity.id, direction, 'full');
      const lines: string[] = [];
      if (full.key !== enforce.key) {
        const audit = this.auditChain(full, direction, identity);
        if (audit) lines.push(`jump ${audit}`);
      }
      lines.push(...this.programLines(enforce, direction, identity));
      if (lines.length > 0) {
        result = this.addChain(identityChainName(identity, direction), lines);
      }
    }
    this.identityChains.set(memo, result);
    return result;
  }

  finish(eg: string[], ing: string[], podIfs: string[], podSrc: string[], podInterfaces?: string): Ruleset {
    const vmap = (name: string, elements: string[]): NftSet => ({
      name,
      kind: 'map',
      type: 'ipv4_addr : verdict',
      flags: [],
      extra: [],
      dynamic: false,
      elements: [...new Set(elements)].sort(),
    });
    this.sets.set(EGRESS_MAP, vmap(EGRESS_MAP, eg));
    this.sets.set(INGRESS_MAP, vmap(INGRESS_MAP, ing));
    const plain = (name: string, type: string, elements: string[]): NftSet => ({ name, kind: 'set', type, flags: [], extra: [], dynamic: false, elements: [...new Set(elements)].sort() });
    this.sets.set(POD_IFS_SET, plain(POD_IFS_SET, 'ifname', podIfs));
    this.sets.set(POD_SRC_SET, plain(POD_SRC_SET, 'ifname . ipv4_addr', podSrc));
    this.sets.set(DENIED_SET, {
      name: DENIED_SET,
      kind: 'set',
      type: 'ipv4_addr . ipv4_addr . inet_proto . inet_service . mark',
      flags: ['dynamic', 'timeout'],
      extra: ['timeout 60s', 'counter', 'size 65536'],
      dynamic: true,
      elements: [],
    });
    const v6 = this.reasons.id(IPV6_REASON);
    this.counter(v6);
    const spoof = this.denyPoint(this.reasons.id(SPOOF_REASON));
    const notReady = podInterfaces !== undefined ? this.denyPoint(this.reasons.id(NOT_READY_REASON)) : undefined;
    this.sets.set(HITS_SET, {
      name: HITS_SET,
      kind: 'set',
      type: 'mark',
      flags: ['dynamic'],
      // Room for every reason id of a large cluster (one element per reason that was hit).
      extra: ['counter', 'size 1048576'],
      dynamic: true,
      elements: [],
    });
    // ICMP and other protocols have no ports: recorded with port 0.
    this.chains.set(DENY_CHAIN, {
      name: DENY_CHAIN,
      rules: [countHit('meta mark'), `meta l4proto ${PORT_PROTOCOLS} ${recordDenied('th dport', 'meta mark')} drop`, `${recordDenied('0', 'meta mark')} drop`],
    });
    const base = (name: string, priority: string, map: string, key: string, guards: readonly string[]): NftChain => ({
      name,
      hook: `type filter hook forward priority ${priority}; policy accept;`,
      rules: [...guards, 'ct state established,related accept', 'ct state invalid drop', `ip ${key} vmap @${map}`],
    });
    // Guards before the conntrack shortcut, so that no packet skips them:
    // - IPv6: every rule below matches IPv4 (`ip saddr`, ipv4_addr sets), so IPv6 would pass
    //   unfiltered; it is dropped and counted instead (and not recorded: `denied` is IPv4).
    // - Anti-spoofing: a packet from a local pod's interface must carry that pod's address
    //   (checked on every packet, or a forged source could ride another pod's connection).
    // - Not ready (fail closed, with `podInterfaces`): a pod interface missing from `pod_ifs`
    //   belongs to a pod the agent has not synced; nothing from or to it passes until it has.
    const guards = [`meta nfproto ipv6 ${countHit(v6)} drop`, `iifname @${POD_IFS_SET} iifname . ip saddr != @${POD_SRC_SET} ${spoof}`];
    const ingressGuards: string[] = [];
    if (podInterfaces !== undefined && notReady !== undefined) {
      guards.push(`iifname "${podInterfaces}" iifname != @${POD_IFS_SET} ${notReady}`);
      ingressGuards.push(`oifname "${podInterfaces}" oifname != @${POD_IFS_SET} ${notReady}`);
    }
    this.chains.set(EGRESS_CHAIN, base(EGRESS_CHAIN, 'filter', EGRESS_MAP, 'saddr', guards));
    this.chains.set(INGRESS_CHAIN, base(INGRESS_CHAIN, 'filter + 10', INGRESS_MAP, 'daddr', ingressGuards));
    const sortedMap = <T>(m: Map<string, T>): Map<string, T> => new Map([...m.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1)));
    return {
      sets: sortedMap(this.sets),
      chains: sortedMap(this.chains),
      counted: [...this.counters].sort((a, b) => a - b),
      reasons: this.reasons.table,
    };
  }
}

/** `"veth" . ip`: the anti-spoofing element of a local pod. */
export function podSourceElement(veth: string, ip: string): string {
  return `"${veth}" . ${ip}`;
}

/** Renders one node's table. */
export function renderRuleset(input: RenderInput): Ruleset {
  const { engine } = input;
  const r = new Renderer(engine, input.reasons ?? collectReasons(engine), input.podIps);
  const eg: string[] = [];
  const ing: string[] = [];
  const locals: { ip: string; identity: Identity; veth?: string }[] = [];
  for (const local of [...input.localPods].sort((a, b) => (a.key < b.key ? -1 : 1))) {
    const ip = local.ip ?? engine.pods.get(local.key)?.ip;
    const identity = engine.identityOfPod(local.key);
    if (!isV4(ip) || !identity) continue;
    locals.push({ ip, identity, veth: local.hostVeth });
  }
  // Only identities with pods on this node get chains, and only the chains, sets and counters
  // those reach are rendered (per-node pruning; set elements stay cluster-wide).
  const seen = new Set<number>();
  for (const { identity } of locals) {
    if (seen.has(identity.id)) continue;
    seen.add(identity.id);
    r.planNetworkPolicyChains(identity, 'egress');
    r.planNetworkPolicyChains(identity, 'ingress');
  }
  const ifs: string[] = [];
  const src: string[] = [];
  for (const { ip, identity, veth } of locals) {
    const e = r.identityChain(identity, 'egress');
    if (e) eg.push(`${ip} : goto ${e}`);
    const i = r.identityChain(identity, 'ingress');
    if (i) ing.push(`${ip} : goto ${i}`);
    if (veth) {
      ifs.push(`"${veth}"`);
      src.push(podSourceElement(veth, ip));
    }
  }
  return r.finish(eg, ing, ifs, src, input.podInterfaces);
}

export { TABLE, shortHash };

export interface PodDelta {
  readonly added: readonly Pod[];
  readonly removed: readonly Pod[];
}

function mapsIp(prev: Ruleset, ip: string): boolean {
  return [EGRESS_MAP, INGRESS_MAP].some((m) => (prev.sets.get(m)?.elements ?? []).some((e) => e.startsWith(`${ip} : `)));
}

function hasLocalSibling(locals: ReadonlyMap<string, LocalPod>, identity: Identity): boolean {
  for (const key of identity.pods) if (locals.has(key)) return true;
  return false;
}

/** Egress rules with named ports: their sets hold per-pod elements. */
export function namedEgress(engine: PolicyEngine): CompiledRule[] {
  return engine.allRules().filter((r) => r.hasNamedPorts && r.ref.direction === 'egress');
}

/**
 * The chain a local pod of `identity` maps to in `prev`: found through a sibling pod's map
 * element (chains are named per identity, and NetworkPolicy chains may be inlined, so the
 * sibling's element is the ground truth), `''` when the identity needs no chain, undefined
 * when it needs one `prev` does not have (a full render is needed).
 */
function identityChain(prev: Ruleset, engine: PolicyEngine, identity: Identity, direction: Direction): string | undefined {
  const name = identityChainName(identity, direction);
  if (prev.chains.has(name)) return name;
  const empty = programEmpty(engine.program(identity.id, direction, 'full')) && programEmpty(engine.program(identity.id, direction, 'enforce'));
  return empty ? '' : undefined;
}

/**
 * The fast path for the commonest change — replicas coming and going: when every added or
 * removed pod belongs to an identity that exists both before and after (and nothing else
 * changed), the new ruleset differs from `prev` in set and map elements only, so it is
 * patched instead of re-rendered. `engine` is already updated; `removedIdentities` maps each
 * removed pod key to the identity it had. Returns undefined when the fast path does not apply
 * (the caller renders in full).
 */
export function patchPods(
  prev: Ruleset,
  engine: PolicyEngine,
  delta: PodDelta,
  removedIdentities: ReadonlyMap<string, Identity>,
  /** This node's pods after the change, by key (veth and address overrides). */
  locals: ReadonlyMap<string, LocalPod>,
  /** Identity ids that existed before the change: a pod of a new identity needs a full render. */
  identitiesBefore: ReadonlySet<number>,
  /** Egress rules with named ports (default: found in the engine; callers may cache them). */
  namedEgressRules: readonly CompiledRule[] = namedEgress(engine),
): Ruleset | undefined {
  const edits = new Map<string, { add: Set<string>; del: Set<string> }>();
  const edit = (set: string, element: string, add: boolean) => {
    if (!prev.sets.has(set)) return;
    let e = edits.get(set);
    if (!e) edits.set(set, (e = { add: new Set(), del: new Set() }));
    (add ? e.add : e.del).add(element);
  };
  const named = namedEgressRules.map((r) => ({ rule: r, specs: namedSpecs(r) }));
  const apply = (pod: Pod, identity: Identity, add: boolean): boolean => {
    const key = `${pod.namespace}/${pod.name}`;
    const local = locals.get(key);
    const ip = (add ? local?.ip : undefined) ?? pod.ip;
    if (pod.hostNetwork || identity.hostNetwork || !isV4(ip)) return true;
    for (const g of engine.cache.groups.values()) {
      if (g.spec.kind === 'pods' && g.identities.has(identity.id)) edit(groupSetName(g.key), ip, add);
    }
    for (const { rule, specs } of named) {
      const name = namedPortSetName(rule, specs);
      // On removal the pod is gone from the engine: its elements are found from the old set.
      const elements = add ? namedPortElements(engine, rule, specs, pod, ip) : (prev.sets.get(name)?.elements ?? []).filter((e) => e.startsWith(`${ip} . `));
      for (const e of elements) edit(name, e, add);
    }
    // A removed pod is no longer in `locals`; deleting a map element it never had is a no-op
    // on the model (the diff only emits what differs).
    if (!add && mapsIp(prev, ip) && !hasLocalSibling(locals, identity)) {
      // The identity's last local pod: its chains go, which may change how the remaining
      // ones share NetworkPolicy chains. A full render keeps the table minimal.
      return false;
    }
    if (local || !add) {
      for (const [dir, map] of [['egress', EGRESS_MAP], ['ingress', INGRESS_MAP]] as const) {
        const mapped = (prev.sets.get(map)?.elements ?? []).find((e) => e.startsWith(`${ip} : `));
        if (!add) {
          if (mapped) edit(map, mapped, false);
          continue;
        }
        const chain = identityChain(prev, engine, identity, dir);
        if (chain === undefined) return false;
        if (chain) edit(map, `${ip} : goto ${chain}`, true);
      }
      if (add && local?.hostVeth) {
        edit(POD_IFS_SET, `"${local.hostVeth}"`, true);
        edit(POD_SRC_SET, podSourceElement(local.hostVeth, ip), true);
      }
      if (!add) {
        const src = prev.sets.get(POD_SRC_SET)?.elements ?? [];
        for (const e of src.filter((x) => x.endsWith(`" . ${ip}`))) {
          edit(POD_SRC_SET, e, false);
          const veth = e.slice(0, e.indexOf(' . '));
          if (!src.some((x) => x !== e && x.startsWith(`${veth} . `))) edit(POD_IFS_SET, veth, false);
        }
      }
    }
    return true;
  };
  for (const pod of delta.removed) {
    const identity = removedIdentities.get(`${pod.namespace}/${pod.name}`);
    if (!identity || !engine.cache.identities.has(identity.id)) return undefined;
    if (!apply(pod, identity, false)) return undefined;
  }
  for (const pod of delta.added) {
    const identity = engine.identityOfPod(`${pod.namespace}/${pod.name}`);
    if (!identity || !identitiesBefore.has(identity.id)) return undefined; // a new identity needs chains and reasons
    if (!apply(pod, identity, true)) return undefined;
  }
  const sets = new Map(prev.sets);
  const added = new Map<string, string[]>();
  const removed = new Map<string, string[]>();
  const search = (xs: readonly string[], x: string): number => {
    let lo = 0;
    let hi = xs.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (xs[mid] < x) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
  for (const [name, e] of edits) {
    const old = prev.sets.get(name) as NftSet;
    // Elements stay sorted: binary search, no full re-sort (or diff) of sets with thousands
    // of members for one pod; only real changes are recorded.
    const del = [...e.del].filter((x) => old.elements[search(old.elements, x)] === x);
    const next = del.length > 0 ? old.elements.filter((x) => !e.del.has(x)) : [...old.elements];
    const add: string[] = [];
    for (const x of e.add) {
      const at = search(next, x);
      if (next[at] !== x) {
        next.splice(at, 0, x);
        add.push(x);
      }
    }
    if (add.length === 0 && del.length === 0) continue;
    if (add.length > 0) added.set(name, add);
    if (del.length > 0) removed.set(name, del);
    sets.set(name, { ...old, elements: next });
  }
  return { sets, chains: prev.chains, counted: prev.counted, reasons: prev.reasons, patch: { base: prev, added, removed } };
}
