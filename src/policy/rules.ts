// Compiled rules: what every tier evaluates. A rule refers to peer *groups* (entries of the
// selector cache), never to pods, so its size does not depend on how many pods match.

import type { ContainerPort, Protocol } from '../model/cluster.js';
import { ALL_CONNS, NO_CONNS, portsConn, union, type ConnSet } from './connections.js';

export type Tier = 'AdminNetworkPolicy' | 'NetworkPolicy' | 'BaselineAdminNetworkPolicy';
export type Direction = 'ingress' | 'egress';
export type RuleAction = 'Allow' | 'Deny' | 'Pass';

export type PortSpec =
  | { readonly kind: 'range'; readonly protocol: Protocol; readonly start: number; readonly end: number }
  /** NetworkPolicy named port: name and protocol must both match a container port. */
  | { readonly kind: 'named'; readonly name: string; readonly protocol?: Protocol };

export interface RuleRef {
  readonly tier: Tier;
  /** `NetworkPolicy ns/name`, `AdminNetworkPolicy name`, `BaselineAdminNetworkPolicy default`. */
  readonly policy: string;
  /** `ingress[0]` or, for admin policies, `ingress[0] "rule-name"`. */
  readonly rule: string;
  readonly direction: Direction;
  readonly priority?: number;
  readonly audit: boolean;
}

export interface CompiledRule {
  /** Stable id, unique in one engine; used to intern programs and name counters. */
  readonly id: number;
  readonly ref: RuleRef;
  readonly action: RuleAction;
  /** Group ids of the selector cache; 'all' when the rule has no peers (matches everyone). */
  readonly peers: readonly number[] | 'all';
  /** 'all' when the rule does not filter by port. */
  readonly ports: readonly PortSpec[] | 'all';
  readonly hasNamedPorts: boolean;
  /**
   * The rule's meaning is in doubt (an invalid field, or a policy whose application is in
   * doubt): the analyzer treats it as "may match what `peers`/`ports` match, or nothing", with
   * `action` — or any action when `anyAction`. It only ever reaches the data plane as a Deny.
   */
  readonly doubt?: { readonly reason: string; readonly anyAction?: boolean };
}

/**
 * Resolves a rule's ports against the destination's container ports. Named ports resolve
 * per destination pod: "port ... can either be a numerical or named port on a pod".
 * A named port on a destination that has no such port (e.g. an external address) matches nothing.
 */
export function resolvePorts(rule: CompiledRule, dstPorts: readonly ContainerPort[] | undefined): ConnSet {
  if (rule.ports === 'all') return ALL_CONNS;
  let out = NO_CONNS;
  for (const p of rule.ports) {
    if (p.kind === 'range') {
      out = union(out, portsConn(p.protocol, p.start, p.end));
      continue;
    }
    for (const cp of dstPorts ?? []) {
      if (cp.name === p.name && (p.protocol === undefined || cp.protocol === p.protocol)) {
        out = union(out, portsConn(cp.protocol, cp.port, cp.port));
      }
    }
  }
  return out;
}

/** What applies to one identity in one direction, tiers in evaluation order. */
export interface DirectionProgram {
  /** ANP rules, by ascending priority then rule order. */
  readonly admin: readonly CompiledRule[];
  /** True when at least one NetworkPolicy selects the pod for this direction. */
  readonly isolated: boolean;
  /** NetworkPolicies that isolate the pod (names), for explanations. */
  readonly isolatingPolicies: readonly string[];
  /** Allow rules of every NetworkPolicy selecting the pod for this direction. */
  readonly networkPolicy: readonly CompiledRule[];
  /** BANP rules, in rule order. */
  readonly baseline: readonly CompiledRule[];
  /** Interning key: equal programs have equal keys. */
  readonly key: string;
  readonly groups: readonly number[];
  readonly hasNamedPorts: boolean;
  /**
   * Present only when a policy in doubt applies: the program as the analyzer reads it. The
   * fields above are what the data plane enforces (the certain part, and a deny for what is
   * in doubt); this view keeps every doubtful rule with its real action, for UNKNOWN verdicts.
   */
  readonly doubtful?: DoubtfulProgram;
}

export interface DoubtfulProgram {
  /** ANP rules in evaluation order; `doubt` marks the maybe-rules. */
  readonly admin: readonly CompiledRule[];
  /** NetworkPolicies that certainly isolate the pod. */
  readonly isolatingPolicies: readonly string[];
  /** NetworkPolicies that may isolate it (their application is in doubt), with why. */
  readonly maybeIsolating: readonly { readonly policy: string; readonly reason: string }[];
  /** Allow rules of every NetworkPolicy that may select the pod; `doubt` marks maybe-rules. */
  readonly networkPolicy: readonly CompiledRule[];
  readonly baseline: readonly CompiledRule[];
}

export const EMPTY_PROGRAM: DirectionProgram = {
  admin: [],
  isolated: false,
  isolatingPolicies: [],
  networkPolicy: [],
  baseline: [],
  key: '',
  groups: [],
  hasNamedPorts: false,
};

export function makeProgram(
  admin: CompiledRule[],
  isolatingPolicies: string[],
  networkPolicy: CompiledRule[],
  baseline: CompiledRule[],
  doubtful?: DoubtfulProgram,
): DirectionProgram {
  const isolated = isolatingPolicies.length > 0;
  const all = [...admin, ...networkPolicy, ...baseline];
  if (doubtful) all.push(...doubtful.admin, ...doubtful.networkPolicy, ...doubtful.baseline);
  const groups = new Set<number>();
  for (const r of all) if (r.peers !== 'all') for (const g of r.peers) groups.add(g);
  const ids = (rs: CompiledRule[]) => rs.map((r) => r.id).join(',');
  return {
    admin,
    isolated,
    isolatingPolicies,
    networkPolicy,
    baseline,
    key:
      `${ids(admin)}|${isolated ? 'I' : ''}${ids(networkPolicy)}|${ids(baseline)}` +
      (doubtful
        ? `|?${ids([...doubtful.admin])}|${doubtful.isolatingPolicies.join(',')}|${doubtful.maybeIsolating.map((m) => m.policy).join(',')}|${ids([...doubtful.networkPolicy])}|${ids([...doubtful.baseline])}`
        : ''),
    groups: [...groups].sort((a, b) => a - b),
    hasNamedPorts: all.some((r) => r.hasNamedPorts),
    ...(doubtful ? { doubtful } : {}),
  };
}
