// The policy filter section of the table (see render.ts, table.ts): PolicyEngine + one node's
// local pods → chains, sets and maps that filter forwarded traffic. Rules are built as typed
// objects (nft.ts); pod changes become element changes (elements.ts).
// Pure: no I/O, no clock, no randomness; equal inputs give equal rulesets.
//
// Shape (after kube-proxy's nftables proxier — membership in sets and maps, rules per
// policy and per identity, never per pod or per pair):
//
//   chain forward (hook forward, priority filter)       chain ingress (regular: the ingress stage;
//     [anti-spoofing, not-ready guards]                   egress allows `goto` it)
//     ct state established,related accept                ct mark set ip daddr map @in_pod
//     ct state invalid drop                                 ct mark vmap @in_id → jump in_<identity>
//     meta nfproto ipv6 drop (counted)                    accept
//     [anti-spoofing of new connections]
//     ct mark set ip saddr map @eg_pod                  chain untracked
//       ct mark vmap @eg_id → jump eg_<identity>          ip saddr @eg_pod drop
//     ct mark set ip daddr map @in_pod                    ip daddr @in_pod drop
//       ct mark vmap @in_id → jump in_<identity>   (the ingress stage, inline)
//     ct state untracked goto untracked
//     accept
//
//   table inet weir_src (source chains, without a pod-interface wildcard; see SOURCE_PRIORITY):
//   chain src_<veth> (hook ingress device "<veth>")   chain spoofed
//     ip saddr != <pod address> goto spoofed            count, record (src_hits, src_denied), drop
//   (a chained veth is not in pod_ifs/pod_src: the forward chain's anti-spoofing of new
//   connections is there only for veths without a chain)
//
// A local pod is a *data* element (`eg_pod`/`in_pod`: address → its identity's mark, in each
// direction its identity has a program for), and each identity one verdict element
// (`eg_id`/`in_id`: mark → its chain). A pod add or remove of a known identity therefore
// changes data elements only: adding a `goto` element makes nf_tables re-validate every chain
// reachable from the base chains at commit (measured on kernel 6.18: 48 ms at 100k pods
// against 2.4 ms for a data element; 1.4 ms / 100 ms at 10k / 100k pods on an earlier host).
// nft 1.0.6 cannot write a map lookup as the key of a vmap (`ip saddr map @m vmap @v` is a
// syntax error, in JSON too), so the identity passes through the connection's ct mark: only new
// connections get here (after the established shortcut), and the mark, in IDENTITY_MARK_BASE's
// range, collides with no reason id (src/flows attributes accepted connections by ct mark;
// unknown marks read as "no policy", as 0 did). One pod map per direction keeps the commonest
// case cheap: a pod with no egress policy (most pods) costs its new connections one lookup
// (a miss) on the egress side, not a lookup, a ct mark and a second lookup. Untracked packets
// have no ct mark: those of a local pod with a program are dropped (fail closed) instead of
// passing unfiltered.
//
// One base chain composes the egress and ingress verdicts, so that a packet of an established
// connection pays one chain and one conntrack test after the guards (two base chains, one per
// direction, cost every packet a second chain: ~1.5 µs of nf_tables CPU per connection of
// bench/dataplane.ts, measured with perf). The egress program decides for a local source pod;
// where it allows, it goes on to the ingress stage (`goto ingress`) instead of accepting, and
// the ingress program decides for a local destination pod; `drop` is final everywhere. When
// both pods share a node both programs run there. Pods are routed through the node netns,
// hence hook forward.
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
//                             (falling off the end: back to the dispatching chain, and on)
//
// ("accept" is an allow: `accept` in ingress chains, `goto ingress` in egress chains.)
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
import type { Group, Identity } from '../policy/cache.js';
import type { PolicyEngine } from '../policy/engine.js';
import { V4_BASE, intervalsContain, parseIp, type IpInterval } from '../policy/ip.js';
import type { CompiledRule, Direction, DirectionProgram, PortSpec } from '../policy/rules.js';
import { matchesSelector } from '../policy/selector.js';
import { hasElement, patchElements, type ElementChange } from './elements.js';
import type { ChainRecord, IdentityChainCache } from './identity-chains.js';
import { DENIED_SET, HITS_SET, MASQUERADE_MARK, SOURCE_DENIED_SET, SOURCE_HITS_SET, SPOOFED_CHAIN, TABLE, nftName, shortHash } from './names.js';
import {
  accept,
  bits,
  drop,
  elementText,
  end,
  flags,
  goto,
  inSet,
  is,
  jump,
  quoted,
  records,
  ret,
  rule as nftRule,
  ruleText,
  setMark,
  ctMarkFromMap,
  markLiteral,
  update,
  vmap,
  type Element,
  type Field,
  type Literal,
  type Match,
  type Rule,
  type RuleEnd,
  type Statement,
} from './nft.js';
import { IPV6_REASON, NOT_READY_REASON, SPOOF_REASON, collectReasons, defaultDenyReason, ruleReason, type Reason, type ReasonIds } from './reasons.js';
import { LOCAL_IPS_SET, policyOnlyBaseChains, type PolicyOnlyOptions } from './policy-only.js';
import { SOURCE_HOOK_PREFIX, type NftChain, type NftSet, type Ruleset } from './ruleset.js';
import type { Section, TableBuilder } from './table.js';

export { DENIED_SET, HITS_SET };

export interface LocalPod {
  /** `namespace/name`. */
  readonly key: string;
  /** Overrides the engine's pod IP (the lab's IPAM is authoritative). */
  readonly ip?: string;
  /** Node-side veth, for documentation and anti-spoofing; not needed for verdicts. */
  readonly hostVeth?: string;
  /**
   * `hostVeth`'s interface index in the node's namespace, resolved by the agent (I/O the
   * renderer does not do). Anti-spoofing matches interfaces by index: a 4-byte key hashes in
   * a fraction of a 16-byte name's time, on every packet of a pod. Without it (the interface
   * does not exist yet) the pod has no anti-spoofing elements: with a pod-interface wildcard
   * its interface is not ready (fail closed) until a render with the index.
   */
  readonly hostVethIndex?: number;
  /**
   * The kernel's strict reverse-path filter is on for `hostVeth` (`rp_filter` 1, effective:
   * `all` is not 2), set by the agent when it resolved the index. A packet from the veth whose
   * source is not routed back through it is then dropped by the kernel on every packet, so
   * weir's own anti-spoofing rule need only see new connections (where it counts and records
   * them): when every local pod's veth is so checked, the rule moves behind the conntrack
   * shortcut and established packets pay no lookup for it.
   */
  readonly hostVethSourceChecked?: boolean;
}

/**
 * Source chains (RenderInput.sourceChains): each local pod's veth gets a base chain on its
 * ingress hook, `ip saddr != <pod address> goto spoofed`, one compare per packet and no route
 * lookup; `spoofed` counts and records the packet under the spoofing reason, as weir's deny
 * chain does, and drops it. All in the source chains' table (names.ts, SOURCE_TABLE). The
 * priority puts the check before anything else on the veth.
 */
const SOURCE_PRIORITY = -500;
/** A veth name the kernel can hold (IFNAMSIZ) and nft can quote. */
const hookable = (veth: string): boolean => /^[^"\\\s]{1,15}$/.test(veth) && Buffer.byteLength(veth) < 16;

/** The source chain of a veth: named after it (the hook binds by name, not index). */
export function sourceChainName(veth: string): string {
  return nftName('src', veth);
}

function sourceChain(veth: string, ip: string): NftChain {
  return { name: sourceChainName(veth), hook: `${SOURCE_HOOK_PREFIX}"${veth}" priority ${SOURCE_PRIORITY}; policy accept;`, rules: [`ip saddr != ${ip} goto ${SPOOFED_CHAIN}`], table: 'src' };
}

/** The veths (of `pods`, by name) that can have a source chain: hookable, and one local pod's only. */
function sourceChainVeths(pods: Iterable<{ readonly veth?: string }>): Set<string> {
  const count = new Map<string, number>();
  for (const p of pods) if (p.veth !== undefined) count.set(p.veth, (count.get(p.veth) ?? 0) + 1);
  return new Set([...count].flatMap(([veth, n]) => (n === 1 && hookable(veth) ? [veth] : [])));
}

export interface RenderReuse {
  readonly sets: ReadonlyMap<string, NftSet>;
  /**
   * Policies changed since those sets were current: their named-port sets are filled afresh
   * (their elements depend on the rule's peers, which the set's name does not say).
   */
  readonly changedPolicies?: ReadonlySet<string>;
}

export interface RenderInput {
  readonly engine: PolicyEngine;
  /** Pods running on this node: only they get entries in the endpoint maps. */
  readonly localPods: readonly LocalPod[];
  /** Pod IPs cluster-wide (`ns/name` → IP); default: the engine's `pod.ip`. */
  readonly podIps?: ReadonlyMap<string, string>;
  /**
   * Anti-spoofing of established packets by source chains (see SOURCE_PRIORITY), not the
   * kernel's reverse-path filter: set by an agent without a pod-interface wildcard whose kernel
   * keeps netdev hooks by name (Linux 6.16+). Ignored with the wildcard (its guard checks every
   * packet) and in policy-only mode.
   */
  readonly sourceChains?: boolean;
  /** A reasons registry computed once for the whole cluster (saves recomputing per node). */
  readonly reasons?: ReasonIds;
  /**
   * Sets whose cluster-wide elements are current (an agent's last ruleset, kept so by element
   * patches): group and named-port sets are taken from here by name instead of being filled
   * from every pod again — at 100k pods that filling was most of a render. What decides the
   * chains is computed as always, so the result equals a render without `reuse`.
   */
  readonly reuse?: RenderReuse;
  /**
   * Identity chains kept from earlier renders (identity-chains.ts): an identity whose programs,
   * reason ids and NetworkPolicy chain sharing are unchanged is replayed, not rendered again.
   * The result equals a render without it.
   */
  readonly chainCache?: IdentityChainCache;
  /**
   * nft wildcard of the node's pod interfaces (the lab's `wp*`). When set, the node fails
   * closed: traffic from or to a pod interface the ruleset does not know yet (a pod attached
   * before the agent's sync) is dropped and counted, instead of passing unfiltered.
   */
  readonly podInterfaces?: string;
  /**
   * Policy-only mode beside a CNI (policy-only.ts): local pods matched by address on the
   * forward, input and output hooks; no interface names, no anti-spoofing by interface.
   */
  readonly policyOnly?: PolicyOnlyOptions;
  /**
   * The table translates sources itself (weir's Services masquerade: services.ts): the ingress
   * of a masqueraded connection is then judged after SNAT, in a postrouting chain. Without it
   * (no Service on the node, or kube-proxy beside policy-only mode) that chain is left out: a
   * base chain costs every packet that passes its hook.
   */
  readonly snat?: boolean;
}

/** Identity mark → egress / ingress identity chain (`mark : verdict`). */
export const EGRESS_MAP = 'eg_id';
export const INGRESS_MAP = 'in_id';
/**
 * Local pod address → its identity's mark (`ipv4_addr : mark`), one map per direction: a pod is
 * in `eg_pod` when its identity has an egress chain and in `in_pod` when it has an ingress
 * chain, so that a new connection of a pod with no program in that direction costs one
 * lookup (a miss) and no ct mark.
 */
export const EGRESS_POD_MAP = 'eg_pod';
export const INGRESS_POD_MAP = 'in_pod';
/** The pod map of each identity map. */
const POD_MAP_OF = { [EGRESS_MAP]: EGRESS_POD_MAP, [INGRESS_MAP]: INGRESS_POD_MAP } as const;
/** Untracked packets of local pods with a program: dropped (they carry no ct mark to dispatch on). */
export const UNTRACKED_CHAIN = 'untracked';
/** Identity marks are this plus the identity id (below 2^31, src/policy/cache.ts): the top bit set, above any reason id. */
export const IDENTITY_MARK_BASE = 0x8000_0000;
/** The one base chain of the filter (hook forward): guards, the conntrack shortcut, the source's egress program. */
export const FORWARD_CHAIN = 'forward';
/** The ingress stage (a regular chain): the destination's ingress program, then accept. Egress allows go here. */
export const INGRESS_CHAIN = 'ingress';
/** Ingress of source-translated (masqueraded) connections, judged after SNAT (hook postrouting). */
export const INGRESS_SNAT_CHAIN = 'ingress_snat';
/** Base chain of INGRESS_SNAT_CHAIN: after the Services' SNAT (srcnat), before the packet leaves. */
const INGRESS_SNAT_HOOK = 'type filter hook postrouting priority srcnat + 10; policy accept;';
/** Lab mode with a pod-interface wildcard: why a packet from a pod interface failed the anti-spoofing lookup. */
export const POD_GUARD_CHAIN = 'pod_guard';
export const DENY_CHAIN = 'deny';
/*
 * HITS_SET — per-reason hit counters: a dynamic set keyed by the reason id whose elements carry counters,
 * filled from the packet path: `update @hits { <id> counter }` where a rule decides (allows
 * leave the packet untouched: its mark may belong to kube-proxy or a CNI), `update @hits
 * { meta mark counter }` in the shared deny and audit chains (the mark is set just before the
 * `goto`). One set instead of thousands of named counter objects: nft fetches every object of
 * the table before any change, so 8k named counters alone cost ~25 ms of each pod add (10k
 * pods / 5k policies).
 */
/** Host-side interfaces of local pods (by index), and `interface index . address` of each local pod (anti-spoofing). */
export const POD_IFS_SET = 'pod_ifs';
export const POD_SRC_SET = 'pod_src';
const PORT_PROTOCOLS = ['tcp', 'udp', 'sctp'] as const;
const FULL_RANGE: readonly [number, number] = [1, 65535];

/** Counts one hit of the reason `key` (a constant id, or `meta mark` in the shared deny chain). */
const countHit = (key: Field | number, set: string = HITS_SET): Statement => update(set, [key], true);
/** Records the flow in `denied` under the reason `key`; `port` is `th dport`, or 0 for protocols without ports. */
const recordDenied = (port: Field | 0, key: Field | number, set: string = DENIED_SET): Statement => update(set, ['ip saddr', 'ip daddr', 'meta l4proto', port, key]);
/** Matches the protocols that have a destination port. */
const hasPorts = is('meta l4proto', ...PORT_PROTOCOLS);
/**
 * A deny chain's rules: count the reason `key` in `hits`, record the flow in `denied` (ICMP and
 * other protocols have no ports: recorded with port 0), drop. weir's deny chain keys on the
 * packet's mark; the source chains' `spoofed` on the spoofing reason, in its own table's sets.
 */
const denyRules = (key: Field | number, hits: string = HITS_SET, denied: string = DENIED_SET): Rule[] => [end(undefined, countHit(key, hits)), nftRule([hasPorts], end(drop, recordDenied('th dport', key, denied))), end(drop, recordDenied(0, key, denied))];
const short = (d: Direction): string => (d === 'ingress' ? 'in' : 'eg');


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

function portMatch(protocol: Protocol, ranges: readonly (readonly [number, number])[]): Match {
  const p = protocol.toLowerCase() as 'tcp' | 'udp' | 'sctp';
  const sorted = [...ranges].sort((a, b) => a[0] - b[0]);
  const merged: [number, number][] = [];
  for (const [s, e] of sorted) {
    const last = merged[merged.length - 1];
    if (last && s <= last[1] + 1) last[1] = Math.max(last[1], e);
    else merged.push([s, e]);
  }
  if (merged.length === 1 && merged[0][0] <= FULL_RANGE[0] && merged[0][1] >= FULL_RANGE[1]) return is('meta l4proto', p);
  return is(`${p} dport`, ...merged.map(([s, e]) => (s === e ? `${s}` : `${s}-${e}`)));
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
function namedPortKeys(engine: PolicyEngine, rule: CompiledRule, specs: readonly NamedSpec[], pod: Pod, id: Identity | undefined, ip: string | undefined): Literal[][] {
  if (pod.hostNetwork || !id || !isV4(ip)) return [];
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
  return id.ports.filter((cp) => specs.some((s) => namedMatches(s, cp))).map((cp) => [ip, cp.protocol.toLowerCase(), cp.port]);
}

function identityChainName(identity: Identity, direction: Direction): string {
  return nftName(short(direction), `${identity.namespace}_${Object.values(identity.labels).join('_')}`, identity.key);
}

/** Nothing to render: no admin rules, not isolated, no baseline rules (the chain would be empty). */
function programEmpty(p: DirectionProgram): boolean {
  return p.admin.length === 0 && !p.isolated && p.baseline.length === 0;
}

/** Group set names by group key: hashed once, not on every render and pod change (sha256 per call). */
const groupSetNames = new Map<string, string>();

function groupSetName(key: string): string {
  let name = groupSetNames.get(key);
  if (name === undefined) {
    name = nftName('g', '', key);
    // Bounded: keys of groups long gone do not pile up in a long-running agent.
    if (groupSetNames.size >= 200_000) groupSetNames.clear();
    groupSetNames.set(key, name);
  }
  return name;
}

class Renderer {
  private readonly groupSetNames = new Map<number, string>();
  private readonly identityChains = new Map<string, string | undefined>();
  /** NetworkPolicy chain name → the identity chains (direction + identity) that use it. */
  private readonly npUsers = new Map<string, Set<string>>();
  private readonly podIp: (key: string) => string | undefined;
  /** The identity chain being rendered into the cache: what it declares is recorded here. */
  private rec: ChainRecord | undefined;

  constructor(
    private readonly table: TableBuilder,
    private readonly engine: PolicyEngine,
    private readonly reasons: ReasonIds,
    podIps: ReadonlyMap<string, string> | undefined,
    private readonly reuse?: RenderReuse,
    private readonly chainCache?: IdentityChainCache,
  ) {
    this.podIp = (key) => podIps?.get(key) ?? engine.pods.get(key)?.ip;
  }

  // ---------------------------------------------------------------- objects

  private counter(id: number): Statement {
    this.table.count(id);
    this.rec?.counted.add(id);
    return countHit(id);
  }

  /** The spoofing reason's id (source chains record their drops under it). */
  spoofReasonId(): number {
    return this.reasons.id(SPOOF_REASON);
  }

  /**
   * A deny point: `meta mark set <id> goto deny`, one shared chain that counts the mark in
   * `hits`, records the flow and drops (the mark dies with the packet): thousands of
   * per-reason chains made the kernel's jump-graph validation the bottleneck of a full apply
   * (8.5 s vs 1.3 s for 10k pods / 5k policies).
   */
  private denyPoint(id: number): RuleEnd {
    this.table.count(id);
    this.rec?.counted.add(id);
    return end(goto(DENY_CHAIN), setMark(id));
  }

  /**
   * An audit point (what an audit-mode policy would deny): count, record and return to the
   * enforced program, with the reason id as a constant so the packet, which goes on, keeps
   * its own mark (kube-proxy's masquerade bit, a CNI's bits). Two alternative endings: with
   * the destination port for protocols that have one, with port 0 for the others.
   */
  private auditPoint(id: number): RuleEnd[] {
    const count = this.counter(id);
    return [nftRule([hasPorts], end(ret, count, recordDenied('th dport', id))), end(ret, count, recordDenied(0, id))];
  }

  /** One named set per selector-cache group; elements cluster-wide. */
  private groupSet(gid: number): string {
    this.rec?.groups.add(gid);
    const cached = this.groupSetNames.get(gid);
    if (cached) return cached;
    const g = this.engine.group(gid);
    if (!g) throw new Error(`unknown selector-cache group ${gid}`);
    const name = groupSetName(g.key);
    // A group's elements depend on its key (the name's hash) and the cluster's pods alone.
    const kept = this.reuse?.sets.get(name);
    if (kept) {
      this.table.set(kept);
      this.groupSetNames.set(gid, name);
      return name;
    }
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
    this.table.set({
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
    this.rec?.named.push({ rule, specs });
    if (this.table.hasSet(name)) return name;
    const kept = this.reuse?.changedPolicies?.has(rule.ref.policy) ? undefined : this.reuse?.sets.get(name);
    if (kept) {
      this.table.set(kept);
      return name;
    }
    const elements = new Set<string>();
    for (const [key, pod] of this.engine.pods) {
      for (const k of namedPortKeys(this.engine, rule, specs, pod, this.engine.identityOfPod(key), this.podIp(key))) elements.add(elementText({ key: k }));
    }
    this.table.set({
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
  private ruleLines(r: CompiledRule, direction: Direction, subject: Identity, ends: readonly RuleEnd[]): Rule[] {
    const rule = r;
    const addr = direction === 'ingress' ? 'ip saddr' : 'ip daddr';
    const peers: Match[][] = rule.peers === 'all' ? [[]] : rule.peers.map((g) => [inSet(addr, this.groupSet(g))]);
    // "If this field is empty or missing, this rule matches all ports" — and all protocols.
    if (rule.ports === 'all') return peers.flatMap((p) => ends.map((e) => nftRule(p, e)));
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
    const ports = [...ranges.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1)).map(([p, rs]) => portMatch(p, rs));
    const out: Rule[] = [];
    for (const p of peers) for (const q of ports) for (const e of ends) out.push(nftRule([...p, q], e));
    if (egressNamed.length > 0) for (const e of ends) out.push(nftRule([inSet(['ip daddr', 'meta l4proto', 'th dport'], this.namedPortSet(rule, egressNamed))], e));
    // A rule whose ports resolve to nothing (a named port the pod lacks) matches nothing.
    return out;
  }

  private enforceVerdict(rule: CompiledRule, direction: Direction): RuleEnd[] {
    const reason = ruleReason(rule);
    if (rule.action === 'Pass' || !reason) return [end(ret)];
    const id = this.reasonId(reason);
    // An egress allow ends the egress program, not the packet's judgement: the destination's
    // ingress program is next (one base chain judges both, see the top of this file).
    if (rule.action === 'Allow') return [end(direction === 'egress' ? goto(INGRESS_CHAIN) : accept, this.counter(id))];
    return [this.denyPoint(id)];
  }

  /** In the audit pass nothing is enforced: only audit policies count and record. */
  private auditVerdict(rule: CompiledRule, tail: string | undefined): RuleEnd[] {
    if (rule.action === 'Pass') return [end(tail ? goto(tail) : ret)];
    const reason = ruleReason(rule);
    if (!rule.ref.audit || !reason) return [end(ret)];
    const id = this.reasonId(reason);
    if (rule.action === 'Allow') return [end(ret, this.counter(id))];
    return this.auditPoint(id);
  }

  /** A reason's id, recorded with the identity chain being rendered (its text holds the id). */
  private reasonId(r: Reason): number {
    const id = this.reasons.id(r);
    this.rec?.ids.set(r, id);
    return id;
  }

  /** Declares a chain (once) and records it with the identity chain being rendered. */
  private declareChain(name: string, rules: readonly Rule[]): string {
    this.table.chain(name, rules);
    if (this.rec) this.rec.chains.push(this.table.chainOf(name) as NftChain);
    return name;
  }

  /** A chain named by the hash of its rules, shared by every identity whose program renders to them. */
  private sharedChain(prefix: string, rules: readonly Rule[]): string | undefined {
    if (rules.length === 0) return undefined;
    const text = rules.map(ruleText);
    return this.declareChain(nftName(prefix, '', text.join('\n')), rules);
  }

  /**
   * The NetworkPolicy chain's name and rules, not yet added: a chain only one identity chain
   * of this node uses is inlined there instead (see `npUsers`).
   */
  private npChain(policyKey: string, direction: Direction, subject: Identity): { name: string; lines: Rule[] } | undefined {
    const policy = this.engine.policy(policyKey);
    if (!policy) return undefined;
    const rules = policy[direction];
    const lines = rules.flatMap((r) => this.ruleLines(r, direction, subject, this.enforceVerdict(r, direction)));
    if (lines.length === 0) return undefined;
    return { name: this.npChainName(policyKey, direction, subject, rules), lines };
  }

  private programLines(program: DirectionProgram, direction: Direction, subject: Identity): Rule[] {
    const out: Rule[] = [];
    const admin = this.sharedChain(
      `adm_${short(direction)}`,
      program.admin.flatMap((r) => this.ruleLines(r, direction, subject, this.enforceVerdict(r, direction))),
    );
    if (admin) out.push(end(jump(admin)));
    if (program.isolated) {
      for (const key of program.isolatingPolicies) {
        const np = this.npChain(key, direction, subject);
        if (!np) continue;
        // NetworkPolicy rules only allow (accept) or fall through, so inlining a chain that a
        // single identity chain uses is the same program with one chain and one jump fewer:
        // fewer chains is less for the kernel to validate and for `nft` to fetch before
        // every command (its cache cost is what a pod add pays).
        const inline = this.inlined(np.name);
        this.rec?.inlined.set(np.name, inline);
        if (inline) out.push(...np.lines);
        else out.push(end(jump(this.declareChain(np.name, np.lines))));
      }
      const id = this.reasonId(defaultDenyReason(program.isolatingPolicies, direction, false));
      out.push(this.denyPoint(id));
    } else {
      const banp = this.sharedChain(
        `ban_${short(direction)}`,
        program.baseline.flatMap((r) => this.ruleLines(r, direction, subject, this.enforceVerdict(r, direction))),
      );
      if (banp) out.push(end(jump(banp)));
    }
    return out;
  }

  private auditChain(full: DirectionProgram, direction: Direction, subject: Identity): string | undefined {
    const tailLines: Rule[] = [];
    if (full.isolated) {
      for (const r of full.networkPolicy) {
        const reason = ruleReason(r);
        const counter = r.ref.audit && reason ? this.reasonId(reason) : undefined;
        tailLines.push(...this.ruleLines(r, direction, subject, [counter === undefined ? end(ret) : end(ret, this.counter(counter))]));
      }
      const auditIsolated = full.isolatingPolicies.some((k) => this.engine.policy(k)?.mode === 'audit');
      if (auditIsolated) {
        const id = this.reasonId(defaultDenyReason(full.isolatingPolicies, direction, true));
        tailLines.push(...this.auditPoint(id));
      }
    } else {
      for (const r of full.baseline) tailLines.push(...this.ruleLines(r, direction, subject, this.auditVerdict(r, undefined)));
    }
    // Trailing `return`s that neither count nor record are no-ops; an empty tail is "nothing to audit".
    // (A bare `return`, which matches everything, is kept: it has always been, and chain names hash the rules.)
    const noop = (r: Rule): boolean => r.verdict?.kind === 'return' && !records(r) && r.matches.length + r.statements.length > 0;
    while (tailLines.length > 0 && noop(tailLines[tailLines.length - 1])) tailLines.pop();
    const tail = tailLines.length > 0 ? this.sharedChain(`aut_${short(direction)}`, tailLines) : undefined;
    if (full.admin.length === 0) return tail;
    const headLines = full.admin.flatMap((r) => this.ruleLines(r, direction, subject, this.auditVerdict(r, tail)));
    if (tail) headLines.push(end(goto(tail)));
    return this.sharedChain(`au_${short(direction)}`, headLines);
  }

  /** Whether a NetworkPolicy chain is inlined into its one user on this node. */
  private inlined(name: string): boolean {
    return (this.npUsers.get(name)?.size ?? 0) <= 1;
  }

  /** Counts, before rendering, which identity chains use each NetworkPolicy chain. */
  planNetworkPolicyChains(identity: Identity, direction: Direction): void {
    if (identity.hostNetwork) return;
    const enforce = this.engine.program(identity.id, direction, 'enforce');
    if (!enforce.isolated) return;
    let names = this.chainCache?.plan(identity, direction, enforce);
    if (!names) {
      const planned: string[] = [];
      for (const key of enforce.isolatingPolicies) {
        const policy = this.engine.policy(key);
        if (policy && policy[direction].length > 0) planned.push(this.npChainName(key, direction, identity, policy[direction]));
      }
      this.chainCache?.rememberPlan(identity, direction, enforce, planned);
      names = planned;
    }
    for (const name of names) {
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
      const cached = this.chainCache?.lookup(identity, direction, enforce, full, this.reasons, (name) => this.inlined(name));
      if (cached) result = this.replay(cached);
      else {
        this.rec = this.chainCache?.start(identity, enforce, full, this.reasons);
        try {
          const lines: Rule[] = [];
          if (full.key !== enforce.key) {
            const audit = this.auditChain(full, direction, identity);
            if (audit) lines.push(end(jump(audit)));
          }
          lines.push(...this.programLines(enforce, direction, identity));
          if (lines.length > 0) {
            result = this.declareChain(identityChainName(identity, direction), lines);
          }
          if (this.rec) this.chainCache?.store(direction, { ...this.rec, result });
        } finally {
          this.rec = undefined;
        }
      }
    }
    this.identityChains.set(memo, result);
    return result;
  }

  /** A cached identity chain, declared as rendering it would: its chains, sets and counted reasons. */
  private replay(rec: ChainRecord): string | undefined {
    for (const c of rec.chains) this.table.declare(c);
    for (const gid of rec.groups) this.groupSet(gid);
    for (const { rule, specs } of rec.named) this.namedPortSet(rule, specs);
    for (const id of rec.counted) this.table.count(id);
    return rec.result;
  }

  /** The maps, sets and base chains that bind the identity chains to this node's pods. */
  finish(eg: readonly Element[], ing: readonly Element[], podIds: { readonly egress: readonly Element[]; readonly ingress: readonly Element[] }, podIfs: readonly Element[], podSrc: readonly Element[], podVeths: readonly string[], snat: boolean, kernelChecked: boolean, spoofRule: boolean, podInterfaces?: string, policyOnly?: { options: PolicyOnlyOptions; localIps: readonly string[] }): void {
    const t = this.table;
    const texts = (elements: readonly Element[]): string[] => [...new Set(elements.map(elementText))].sort();
    const map = (name: string, type: string, elements: readonly Element[]): NftSet => ({ name, kind: 'map', type, flags: [], extra: [], dynamic: false, elements: texts(elements) });
    // Looked up once per new connection and direction, hits and misses alike: fixed-size
    // hashes, as pod_ifs (a node's own pods fit in POD_INTERFACE_SET_SIZE, and so do the
    // identities of its pods). Without a size nf_tables picks its resizable hash, whose lookup
    // costs more.
    const sized = { extra: [`size ${POD_INTERFACE_SET_SIZE}`] };
    t.set({ ...map(EGRESS_MAP, 'mark : verdict', eg), ...sized });
    t.set({ ...map(INGRESS_MAP, 'mark : verdict', ing), ...sized });
    t.set({ ...map(EGRESS_POD_MAP, 'ipv4_addr : mark', podIds.egress), ...sized, hot: true });
    t.set({ ...map(INGRESS_POD_MAP, 'ipv4_addr : mark', podIds.ingress), ...sized, hot: true });
    const plain = (name: string, type: string, elements: readonly Element[]): NftSet => ({ name, kind: 'set', type, flags: [], extra: [`size ${POD_INTERFACE_SET_SIZE}`], dynamic: false, hot: true, elements: texts(elements) });
    if (!policyOnly) {
      t.set(plain(POD_IFS_SET, 'iface_index', podIfs));
      t.set(plain(POD_SRC_SET, 'iface_index . ipv4_addr', podSrc));
    }
    t.set(deniedSet(DENIED_SET));
    const v6 = this.counter(this.reasons.id(IPV6_REASON));
    const spoof = policyOnly ? undefined : this.denyPoint(this.reasons.id(SPOOF_REASON));
    const failClosed = policyOnly ? policyOnly.options.podCidrs.length > 0 : podInterfaces !== undefined;
    const notReady = failClosed ? this.denyPoint(this.reasons.id(NOT_READY_REASON)) : undefined;
    t.set(hitsSet(HITS_SET));
    t.chain(DENY_CHAIN, denyRules('meta mark'));
    // A new connection of a local pod (by `key`) to its identity's chain: address → mark →
    // chain. Untracked packets carry no mark to dispatch on: dropped rather than unfiltered.
    // (by source: a pod with an egress program; by destination: one with an ingress program)
    const untrackedPod = (key: 'ip saddr' | 'ip daddr'): Rule => nftRule([inSet(key, key === 'ip saddr' ? EGRESS_POD_MAP : INGRESS_POD_MAP)], end(drop));
    const untracked = (key: 'ip saddr' | 'ip daddr'): Rule => nftRule([flags('ct state', 'untracked')], untrackedPod(key));
    const dispatch = (key: 'ip saddr' | 'ip daddr', map: typeof EGRESS_MAP | typeof INGRESS_MAP): Rule => end(vmap(['ct mark'], map), ctMarkFromMap(key, POD_MAP_OF[map]));
    // The ingress stage: reached by every egress allow (`goto`) and, when the source has no
    // egress program or its chain falls off its end, from the base chain. Its identity chains
    // are jumped to, so that falling off one (not isolated, no baseline verdict) comes back
    // here, to the explicit accept: after a `goto` out of a nested egress chain, the end of
    // this chain would otherwise return into that egress chain.
    // Lab mode: masqueraded connections (services.ts marks them; SNAT comes after this hook)
    // have their ingress judged after the translation, in postrouting (INGRESS_SNAT_CHAIN), so
    // the destination's policy sees the address the pod sees — the node's. Egress is judged
    // here as usual. (Policy-only mode beside kube-proxy leaves the mark to kube-proxy, whose
    // SNAT it does not see; with weir's own Services, `policyOnly.services`, it is the lab's way.)
    // A node without Services translates nothing: neither the accepts nor the chain are there.
    const ownNat = snat && (!policyOnly || policyOnly.options.services === true);
    const masqueraded = !ownNat ? [] : [nftRule([bits('meta mark', MASQUERADE_MARK, MASQUERADE_MARK)], end(accept)), nftRule([flags('ct status', 'snat')], end(accept))];
    const ingressStage = [...masqueraded, dispatch('ip daddr', INGRESS_MAP)];
    t.chain(INGRESS_CHAIN, [...ingressStage, end(accept)]);
    const toIngress = end(goto(INGRESS_CHAIN));
    const ingressAfterSnat = (): Rule => nftRule([flags('ct state', 'new'), flags('ct status', 'snat')], end(vmap(['ct mark'], INGRESS_MAP), ctMarkFromMap('ip daddr', INGRESS_POD_MAP)));
    if (policyOnly) {
      policyOnlyBaseChains(t, policyOnly.options, { forwardChain: FORWARD_CHAIN, v6, notReady, localIps: policyOnly.localIps, untracked, egressDispatch: dispatch('ip saddr', EGRESS_MAP), toIngress });
      if (ownNat) t.chain(INGRESS_SNAT_CHAIN, [ingressAfterSnat()], INGRESS_SNAT_HOOK);
      return;
    }
    // IPv6: every rule below matches IPv4 (`ip saddr`, ipv4_addr sets), so IPv6 would pass
    // unfiltered; a new IPv6 connection is dropped and counted instead (and not recorded:
    // `denied` is IPv4). The rule sits after the conntrack shortcut, so that the packets of
    // established IPv4 connections (all but the first of each) do not pay for it: an IPv6
    // connection is established only if it was before weir's table was loaded, as an IPv4
    // connection that a later policy denies goes on (see README, Limits).
    // Guards before the conntrack shortcut, so that no packet skips them:
    // - Anti-spoofing: a packet from a local pod's interface must carry that pod's address
    //   (checked on every packet, or a forged source could ride another pod's connection).
    // - Not ready (fail closed, with `podInterfaces`): a pod interface missing from `pod_ifs`
    //   belongs to a pod the agent has not synced; nothing from or to it passes until it has.
    // With the pod-interface wildcard these cost one string compare per packet from or to
    // another interface and one lookup per packet of a pod interface (`iif . ip saddr`
    // answers both questions for a pod's own packets; `pod_guard` says which failed).
    // Without the wildcard, when the kernel's strict reverse-path filter checks every local
    // pod's veth (LocalPod.hostVethSourceChecked), anti-spoofing here sees new connections
    // only (`afterShortcut`): the kernel drops a forged packet of an established flow.
    const guards: Rule[] = [];
    const afterShortcut: Rule[] = [];
    const wildcard = podInterfaces !== undefined && notReady !== undefined ? podInterfaces : undefined;
    if (wildcard !== undefined && notReady !== undefined && spoof !== undefined) {
      t.chain(POD_GUARD_CHAIN, [nftRule([inSet('iif', POD_IFS_SET, true)], notReady), spoof]);
      guards.push(nftRule([is('iifname', quoted(wildcard)), inSet(['iif', 'ip saddr'], POD_SRC_SET, true)], end(goto(POD_GUARD_CHAIN))));
    }
    // Untracked packets: both dispatches miss them (no ct mark), so the check comes after them,
    // where only packets that found no program get; with Services, before the masquerade
    // accepts (which skip the ingress dispatch).
    const untrackedToChain = nftRule([flags('ct state', 'untracked')], end(goto(UNTRACKED_CHAIN)));
    // Without the wildcard, or for a pod interface it does not cover: a lookup per packet.
    if (spoof && spoofRule && (wildcard === undefined || podVeths.some((v) => !interfaceMatches(v, wildcard)))) (wildcard === undefined && kernelChecked ? afterShortcut : guards).push(nftRule([inSet('iif', POD_IFS_SET), inSet(['iif', 'ip saddr'], POD_SRC_SET, true)], spoof));
    if (wildcard !== undefined && notReady !== undefined) guards.push(nftRule([is('oifname', quoted(wildcard)), inSet('oif', POD_IFS_SET, true)], notReady));
    t.chain(
      FORWARD_CHAIN,
      [
        ...guards,
        nftRule([flags('ct state', 'established', 'related')], end(accept)),
        nftRule([flags('ct state', 'invalid')], end(drop)),
        nftRule([is('meta nfproto', 'ipv6')], end(drop, v6)),
        ...afterShortcut,
        ...(ownNat ? [untrackedToChain] : []),
        dispatch('ip saddr', EGRESS_MAP),
        // The ingress stage inline (as `goto ingress` would, one rule and one chain fewer per
        // new connection); egress allows go to the chain.
        ...ingressStage,
        ...(ownNat ? [] : [untrackedToChain]),
        end(accept),
      ],
      'type filter hook forward priority filter; policy accept;',
    );
    // (falling off its end: back to the hook, whose policy accepts, as the dispatch's misses would)
    t.chain(UNTRACKED_CHAIN, [untrackedPod('ip saddr'), untrackedPod('ip daddr')]);
    if (ownNat) t.chain(INGRESS_SNAT_CHAIN, [ingressAfterSnat()], INGRESS_SNAT_HOOK);
  }
}

/**
 * Does `prev`'s forward chain check anti-spoofing on every packet (before the conntrack
 * shortcut), or only on new connections (after it: every local veth under the kernel's strict
 * reverse-path filter)? True when it has no such rule (policy-only mode: nothing to move).
 */
export function spoofCheckedPerPacket(prev: Ruleset): boolean {
  const rules = prev.chains.get(FORWARD_CHAIN)?.rules ?? [];
  const spoof = rules.findIndex((r) => r.startsWith('iif @' + POD_IFS_SET + ' '));
  const shortcut = rules.findIndex((r) => r.startsWith('ct state established,related accept'));
  return spoof < 0 || shortcut < 0 || spoof < shortcut;
}

/** `denied`: flows the ruleset denied (or audited), recorded from the packet path. */
function deniedSet(name: string, table?: 'src'): NftSet {
  return { name, kind: 'set', type: 'ipv4_addr . ipv4_addr . inet_proto . inet_service . mark', flags: ['dynamic', 'timeout'], extra: ['timeout 60s', 'counter', 'size 65536'], dynamic: true, elements: [], ...(table ? { table } : {}) };
}

/** `hits`: one counter per reason id that was hit (room for every reason of a large cluster). */
function hitsSet(name: string, table?: 'src'): NftSet {
  return { name, kind: 'set', type: 'mark', flags: ['dynamic'], extra: ['counter', 'size 1048576'], dynamic: true, elements: [], ...(table ? { table } : {}) };
}

/**
 * What the source chains need besides themselves (see SOURCE_PRIORITY): `spoofed`, which counts
 * and records a forged packet under the spoofing reason and drops it, and the sets it writes.
 * Rendered whenever source chains are on, so that a pod add need only add its chain.
 */
function sourceTableObjects(t: TableBuilder, spoofId: number): void {
  t.set(deniedSet(SOURCE_DENIED_SET, 'src'));
  t.set(hitsSet(SOURCE_HITS_SET, 'src'));
  t.count(spoofId);
  t.declare({ name: SPOOFED_CHAIN, rules: denyRules(spoofId, SOURCE_HITS_SET, SOURCE_DENIED_SET).map(ruleText), table: 'src' });
}

/** The mark that stands for an identity in `eg_pod`/`in_pod` and the identity maps. */
const identityMark = (identity: Identity): string => markLiteral(IDENTITY_MARK_BASE + identity.id);
/** A local pod's entry in `eg_pod`/`in_pod`: its address → its identity's mark. */
const podIdElement = (ip: string, identity: Identity): Element => ({ key: [ip], value: identityMark(identity) });
/**
 * An identity's entry in an identity map: its mark → its chain, jumped to (see the ingress
 * stage in finish(): falling off an identity chain must come back to the dispatching chain).
 */
const identityElement = (identity: Identity, chain: string): Element => ({ key: [identityMark(identity)], value: jump(chain) });
/** Does `name` match an nft interface wildcard (`wp*`: a prefix; without `*`: the name itself)? */
export function interfaceMatches(name: string, wildcard: string): boolean {
  return wildcard.endsWith('*') ? name.startsWith(wildcard.slice(0, -1)) : name === wildcard;
}
/** `7`: a local pod's interface, by index. */
const podInterfaceElement = (index: number): Element => ({ key: [String(index)] });
/** `7 . ip`: the anti-spoofing element of a local pod (its interface by index). */
const podSourceElement = (index: number, ip: string): Element => ({ key: [String(index), ip] });
/**
 * Room in `pod_ifs` and `pod_src`. A set with a size is a fixed hash (`iface_index`, 4 bytes:
 * the kernel's fast hash) instead of a resizable one: measured with perf, the lookups of the
 * anti-spoofing rule cost ~40 % less CPU than as a resizable set keyed by interface name.
 */
const POD_INTERFACE_SET_SIZE = 65536;

/**
 * The policy filter: engine verdicts for this node's pods, as the section of the table that
 * filters forwarded traffic (see the top of this file for its shape).
 */
export function policyFilterSection(input: RenderInput): Section {
  return {
    name: 'policy filter',
    render(table: TableBuilder): void {
      const { engine } = input;
      const r = new Renderer(table, engine, input.reasons ?? collectReasons(engine), input.podIps, input.reuse, input.chainCache);
      input.chainCache?.begin();
      const eg: Element[] = [];
      const ing: Element[] = [];
      const locals: { ip: string; identity: Identity; veth?: string; ifindex?: number; checked?: boolean }[] = [];
      for (const local of [...input.localPods].sort((a, b) => (a.key < b.key ? -1 : 1))) {
        const ip = local.ip ?? engine.pods.get(local.key)?.ip;
        const identity = engine.identityOfPod(local.key);
        if (!isV4(ip) || !identity) continue;
        locals.push({ ip, identity, veth: local.hostVeth, ifindex: local.hostVethIndex, checked: local.hostVethSourceChecked });
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
      // Source chains: one per local veth, each checking every packet of its pod.
      const sourceChains = input.sourceChains === true && input.podInterfaces === undefined && !input.policyOnly;
      if (sourceChains) sourceTableObjects(table, r.spoofReasonId());
      const chained = sourceChains ? sourceChainVeths(locals) : new Set<string>();
      for (const l of locals) if (l.veth !== undefined && chained.has(l.veth)) table.declare(sourceChain(l.veth, l.ip));
      const ifs: Element[] = [];
      const src: Element[] = [];
      const ids = { egress: [] as Element[], ingress: [] as Element[] };
      for (const { ip, identity, ifindex, veth } of locals) {
        const e = r.identityChain(identity, 'egress');
        if (e) eg.push(identityElement(identity, e));
        const i = r.identityChain(identity, 'ingress');
        if (i) ing.push(identityElement(identity, i));
        if (e) ids.egress.push(podIdElement(ip, identity));
        if (i) ids.ingress.push(podIdElement(ip, identity));
        // A veth with a source chain is checked there, new connections included: the forward
        // chain's rule would repeat it (two lookups per new connection on the pod's node).
        if (ifindex !== undefined && !(veth !== undefined && chained.has(veth))) {
          ifs.push(podInterfaceElement(ifindex));
          src.push(podSourceElement(ifindex, ip));
        }
      }
      // Every local pod's interface checked on every packet, by the kernel's source check or a
      // source chain (none known: vacuously).
      const kernelChecked = locals.every((l) => l.ifindex === undefined || l.checked === true || (l.veth !== undefined && chained.has(l.veth)));
      // With source chains the forward chain's anti-spoofing rule is there only for veths
      // without one (shared, or a name the kernel cannot hook): it costs every new connection
      // of the node a lookup even when it has nothing to check.
      const spoofRule = !sourceChains || src.length > 0;
      r.finish(eg, ing, ids, ifs, src, locals.flatMap((l) => (l.veth ? [l.veth] : [])), input.snat === true, kernelChecked, spoofRule, input.podInterfaces, input.policyOnly ? { options: input.policyOnly, localIps: locals.map((l) => l.ip) } : undefined);
      input.chainCache?.end();
    },
  };
}

export { TABLE, shortHash };

export interface PodDelta {
  readonly added: readonly Pod[];
  readonly removed: readonly Pod[];
}

/** Egress rules with named ports: their sets hold per-pod elements. */
export function namedEgress(engine: PolicyEngine): CompiledRule[] {
  return engine.allRules().filter((r) => r.hasNamedPorts && r.ref.direction === 'egress');
}

/**
 * The chain a local pod of `identity` maps to in `prev`: `''` when the identity needs no chain,
 * undefined when it needs one `prev` does not have (a full render is needed). Chains are named
 * per identity (NetworkPolicy chains may be inlined into them, never the other way round).
 */
function identityChain(prev: Ruleset, engine: PolicyEngine, identity: Identity, direction: Direction): string | undefined {
  const name = identityChainName(identity, direction);
  if (prev.chains.has(name)) return name;
  const empty = programEmpty(engine.program(identity.id, direction, 'full')) && programEmpty(engine.program(identity.id, direction, 'enforce'));
  return empty ? '' : undefined;
}

export interface PodPatchContext {
  /** Identity each removed pod had, captured before the engine removed it. */
  readonly removedIdentities: ReadonlyMap<string, Identity>;
  /** The pod groups of a removed pod whose identity went with it (see EngineChanges). */
  readonly removedGroups?: ReadonlyMap<string, readonly Group[]>;
  /** This node's pods after the change, by key (veth and address overrides). */
  readonly locals: ReadonlyMap<string, LocalPod>;
  /** This node's pods before the change: a removed local pod's veth and address. */
  readonly localsBefore: ReadonlyMap<string, LocalPod>;
  /** Identity ids that existed before the change: a pod of a new identity needs a full render. */
  readonly identitiesBefore: ReadonlySet<number>;
  /** Egress rules with named ports (default: found in the engine; callers may cache them). */
  readonly namedEgressRules?: readonly CompiledRule[];
  /** The wildcard the ruleset was rendered with (RenderInput.podInterfaces): an added veth it does not cover needs a render. */
  readonly podInterfaces?: string;
  /** RenderInput.sourceChains, as the ruleset was rendered. */
  readonly sourceChains?: boolean;
}

/**
 * The element changes one pod brings (`add`) or takes away, computed the same way both ways
 * from the pod, its identity and its local entry: group sets it is a member of, named-port
 * elements, and, on its node, its endpoint-map entries and interface. Undefined when elements
 * are not enough (its identity's chains are missing, or it was the identity's last local pod,
 * whose chains must go).
 */
function podElementChanges(
  prev: Ruleset,
  engine: PolicyEngine,
  pod: Pod,
  identity: Identity,
  local: LocalPod | undefined,
  add: boolean,
  ctx: PodPatchContext,
  named: readonly { rule: CompiledRule; specs: NamedSpec[] }[],
  chains: { readonly removed: string[]; readonly added: NftChain[] },
  groups: Iterable<Group> = engine.cache.podGroupsOf(identity),
): ElementChange[] | undefined {
  const ip = local?.ip ?? pod.ip;
  if (pod.hostNetwork || identity.hostNetwork || !isV4(ip)) return [];
  const out: ElementChange[] = [];
  const change = (set: string, element: Element): void => {
    out.push({ set, element, add });
  };
  const memberOf = [...groups];
  for (const g of memberOf) {
    if (g.spec.kind === 'pods') change(groupSetName(g.key), { key: [ip] });
  }
  // Peers by the groups the pod is (was) in: a removed pod's identity may have left them.
  const groupIds = new Set(memberOf.map((g) => g.id));
  for (const { rule, specs } of named) {
    for (const key of namedKeysOf(engine, rule, specs, pod, identity, ip, groupIds)) change(namedPortSetName(rule, specs), { key });
  }
  if (!local) return out;
  // Policy-only mode knows local pods by address (a set the lab's table does not have: ignored there).
  change(LOCAL_IPS_SET, { key: [ip] });
  for (const [dir, map] of [['egress', EGRESS_MAP], ['ingress', INGRESS_MAP]] as const) {
    const chain = identityChain(prev, engine, identity, dir);
    if (chain === undefined) return undefined;
    if (!chain) continue;
    // The identity's verdict element is there whenever its chain is (both come with its
    // first local pod); checked, as a patch must never point a pod at nothing.
    if (!hasElement(prev, map, identityElement(identity, chain))) return undefined;
    change(POD_MAP_OF[map], podIdElement(ip, identity));
  }
  if (!add) {
    // The identity's last local pod: its chains go, which may change how the remaining ones
    // share NetworkPolicy chains. A full render keeps the table minimal.
    const mapped = out.some((c) => (c.set === EGRESS_POD_MAP || c.set === INGRESS_POD_MAP) && hasElement(prev, c.set, c.element));
    if (mapped && ![...identity.pods].some((key) => ctx.locals.has(key))) return undefined;
  }
  if (local.hostVeth) {
    // The wildcard guard checks only the interfaces it covers; another needs the per-packet rule a render adds.
    if (add && prev.chains.has(POD_GUARD_CHAIN) && !(ctx.podInterfaces !== undefined && interfaceMatches(local.hostVeth, ctx.podInterfaces))) return undefined;
    const index = local.hostVethIndex;
    // Source chains: the pod's comes and goes with it. A veth another local pod shares has
    // none (which pods keep theirs is a render's to say).
    let chained = false;
    const sourceChainMode = ctx.sourceChains === true && ctx.podInterfaces === undefined;
    if (sourceChainMode) {
      // The chain the source chains go to comes with a render.
      if (!prev.chains.has(SPOOFED_CHAIN)) return undefined;
      const veth = local.hostVeth;
      // A loop, not a copy: a node may hold tens of thousands of local pods.
      const shared = (m: ReadonlyMap<string, LocalPod>): boolean => {
        for (const l of m.values()) if (l.hostVeth === veth && l.key !== local.key) return true;
        return false;
      };
      if (shared(ctx.locals) || shared(ctx.localsBefore)) return undefined;
      chained = hookable(veth);
      if (chained) {
        if (add) chains.added.push(sourceChain(veth, ip));
        else chains.removed.push(sourceChainName(veth));
      }
    }
    // A veth with a source chain has no anti-spoofing elements in `inet weir` (its chain checks
    // every packet). One without, where source chains are the rule, needs the forward chain's
    // rule, which is there only while some veth needs it: a render's to say.
    if (sourceChainMode && !chained && index !== undefined) return undefined;
    // An interface the kernel does not check, on a node whose anti-spoofing rule sees new connections only: the rule must move (a render).
    if (add && index !== undefined && !chained && local.hostVethSourceChecked !== true && !spoofCheckedPerPacket(prev)) return undefined;
    if (index !== undefined && !chained) {
      change(POD_SRC_SET, podSourceElement(index, ip));
      // An interface goes with the last pod that used it.
      if (add || ![...ctx.locals.values()].some((l) => l.hostVethIndex === index)) change(POD_IFS_SET, podInterfaceElement(index));
    }
  }
  return out;
}

/**
 * The fast path for the commonest change — replicas coming and going: when every added or
 * removed pod belongs to an identity that exists both before and after (and nothing else
 * changed), the new ruleset differs from `prev` in set and map elements only, so it is
 * patched (elements.ts) instead of re-rendered. `engine` is already updated. Returns undefined
 * when the fast path does not apply (the caller renders in full).
 */
export function patchPods(prev: Ruleset, engine: PolicyEngine, delta: PodDelta, ctx: PodPatchContext): Ruleset | undefined {
  const named = (ctx.namedEgressRules ?? namedEgress(engine)).map((r) => ({ rule: r, specs: namedSpecs(r) }));
  const changes: ElementChange[] = [];
  const chains = { removed: [] as string[], added: [] as NftChain[] };
  for (const pod of delta.removed) {
    const key = `${pod.namespace}/${pod.name}`;
    const identity = ctx.removedIdentities.get(key);
    if (!identity) return undefined;
    const local = ctx.localsBefore.get(key);
    let groups: Iterable<Group> | undefined;
    if (!engine.cache.identities.has(identity.id)) {
      // The identity went with its last pod. Elsewhere (no chains here) that is its group
      // elements, from the memberships captured before removal; here its chains go: render.
      groups = ctx.removedGroups?.get(key);
      if (local || !groups || [...identity.pods].some((k) => k !== key)) return undefined;
    }
    const c = podElementChanges(prev, engine, pod, identity, local, false, ctx, named, chains, groups);
    if (!c) return undefined;
    changes.push(...c);
  }
  for (const pod of delta.added) {
    const key = `${pod.namespace}/${pod.name}`;
    const identity = engine.identityOfPod(key);
    const local = ctx.locals.get(key);
    // A new identity here needs chains and reasons; on another node only its group elements.
    if (!identity || (local && !ctx.identitiesBefore.has(identity.id))) return undefined;
    const c = podElementChanges(prev, engine, pod, identity, local, true, ctx, named, chains);
    if (!c) return undefined;
    changes.push(...c);
  }
  return patchElements(prev, changes, chains);
}

/** A pod as a batch found it or left it: what its elements in cluster-wide sets follow from. */
export interface PodMembership {
  readonly pod: Pod;
  readonly identity: Identity;
  /** The pod groups its identity was (or is) a member of. */
  readonly groups: readonly Group[];
}

/** The named-port elements of a pod for one egress rule, from the groups it was a member of. */
function namedKeysOf(engine: PolicyEngine, rule: CompiledRule, specs: readonly NamedSpec[], pod: Pod, identity: Identity, ip: string | undefined, groupIds: ReadonlySet<number>): Literal[][] {
  if (pod.hostNetwork || identity.hostNetwork || !isV4(ip)) return [];
  if (rule.peers !== 'all') {
    const inPeers = rule.peers.some((gid) => {
      if (groupIds.has(gid)) return true;
      const g = engine.group(gid);
      return g?.spec.kind === 'cidr' && intervalsContain(g.spec.intervals, parseIp(ip) as bigint);
    });
    if (!inPeers) return [];
  }
  return identity.ports.filter((cp) => specs.some((s) => namedMatches(s, cp))).map((cp) => [ip, cp.protocol.toLowerCase(), cp.port]);
}

/**
 * The changes of the cluster-wide sets (selector groups, named ports) when pods change from
 * `before` (their elements go) to `after` (theirs come; an element in both stays): what keeps
 * the sets a render may reuse (RenderReuse) current. The node's own entries (identity maps,
 * `eg_pod`/`in_pod`, local addresses) are not here: a render computes them from the local pods.
 */
export function membershipChanges(engine: PolicyEngine, before: Iterable<PodMembership>, after: Iterable<PodMembership>, namedRules: readonly CompiledRule[]): ElementChange[] {
  const named = namedRules.map((r) => ({ rule: r, specs: namedSpecs(r) }));
  const out: ElementChange[] = [];
  for (const [states, add] of [[before, false], [after, true]] as const) {
    for (const m of states) {
      const ip = m.pod.ip;
      if (m.pod.hostNetwork || m.identity.hostNetwork || !isV4(ip)) continue;
      for (const g of m.groups) if (g.spec.kind === 'pods') out.push({ set: groupSetName(g.key), element: { key: [ip] }, add });
      if (named.length === 0) continue;
      const ids = new Set(m.groups.map((g) => g.id));
      for (const { rule, specs } of named) {
        for (const key of namedKeysOf(engine, rule, specs, m.pod, m.identity, ip, ids)) out.push({ set: namedPortSetName(rule, specs), element: { key }, add });
      }
    }
  }
  return out;
}
