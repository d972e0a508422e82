// The reasons table: the contract between the data plane and the visibility engine.
//
// Every point in the ruleset that decides a flow gets a numeric id. Deny points set
// `meta mark set <id>` before recording the flow in the `denied` set, and every decision is
// counted under its id in the `hits` set, so a mark or a counter read from the kernel names
// the policy and rule that decided. `reasons.json` maps id → reason.
//
// Ids are a hash of the reason (not a sequence number) so that adding a policy does not
// renumber every other reason: marks already recorded in `denied` and counts in `hits` keep
// their meaning, which is what lets a partial sync leave untouched chains alone.
// Reasons are collected from the whole engine, never from one node's share, so every node
// derives the same table.

import { createHash } from 'node:crypto';
import { z } from 'zod';
import type { CompiledRule, Direction, Tier } from '../policy/rules.js';
import type { PolicyEngine } from '../policy/engine.js';

// reasons.json is read by another process (src/flows/reasons.ts): the schema below is the one
// definition of its shape, for the writer (this module, through the agent) and the reader.

export const REASON_VERDICTS = ['deny', 'allow', 'audit'] as const;
/** `default`: a verdict of the data plane itself (not of any policy), as src/flows reads it. */
export const REASON_TIERS = ['AdminNetworkPolicy', 'NetworkPolicy', 'BaselineAdminNetworkPolicy', 'default'] as const satisfies readonly (Tier | 'default')[];

export const reasonSchema = z.object({
  policy: z.string(),
  rule: z.string(),
  tier: z.enum(REASON_TIERS),
  direction: z.enum(['ingress', 'egress']),
  verdict: z.enum(REASON_VERDICTS),
});

export type ReasonVerdict = (typeof REASON_VERDICTS)[number];
export type ReasonTier = (typeof REASON_TIERS)[number];
export type Reason = Readonly<z.infer<typeof reasonSchema>>;

/** reasons.json: id (decimal string) → reason. */
export const reasonsFileSchema = z.record(z.string().regex(/^\d+$/, 'reason ids are non-negative integers'), reasonSchema);
export type ReasonsTable = Readonly<Record<string, Reason>>;

/** Rule label of the NetworkPolicy default deny of an isolated pod. */
export const DEFAULT_DENY_RULE = 'default deny (isolated)';

/** Ids live in [1, 2^31): positive as a mark and as a JSON number. */
export const ID_SPACE = 0x7fffffff;

export function reasonKey(r: Reason): string {
  return `${r.verdict}\u0000${r.tier}\u0000${r.policy}\u0000${r.direction}\u0000${r.rule}`;
}

/** A reason's preferred id (ReasonRegistry moves it up on a collision). */
export function hashId(key: string): number {
  const v = createHash('sha256').update(key).digest().readUInt32BE(0) & ID_SPACE;
  return v === 0 ? 1 : v;
}

export function ruleReason(rule: CompiledRule): Reason | undefined {
  if (rule.action === 'Pass') return undefined; // a Pass decides nothing; it has no reason
  const verdict: ReasonVerdict = rule.action === 'Allow' ? 'allow' : rule.ref.audit ? 'audit' : 'deny';
  return { policy: rule.ref.policy, rule: rule.ref.rule, tier: rule.ref.tier, direction: rule.ref.direction, verdict };
}

export function defaultDenyReason(isolatingPolicies: readonly string[], direction: Direction, audit: boolean): Reason {
  return {
    policy: [...isolatingPolicies].sort().join(', '),
    rule: DEFAULT_DENY_RULE,
    tier: 'NetworkPolicy',
    direction,
    verdict: audit ? 'audit' : 'deny',
  };
}

/** The policy name of the data plane's own drops (not caused by any policy). */
export const DATAPLANE_POLICY = 'weir data plane';

/**
 * Drops the data plane makes on its own: forwarded IPv6 (the table filters IPv4 only, so
 * IPv6 must never pass unfiltered), and a packet from a local pod's interface whose source
 * address is not that pod's (anti-spoofing).
 */
export const IPV6_REASON: Reason = { policy: DATAPLANE_POLICY, rule: 'IPv6 not filtered: dropped', tier: 'default', direction: 'egress', verdict: 'deny' };
export const SPOOF_REASON: Reason = { policy: DATAPLANE_POLICY, rule: 'spoofed source address', tier: 'default', direction: 'egress', verdict: 'deny' };
/** A pod interface the agent has not enforced yet (a pod attached before the agent's sync): fail closed. */
export const NOT_READY_REASON: Reason = { policy: DATAPLANE_POLICY, rule: 'endpoint not yet enforced', tier: 'default', direction: 'egress', verdict: 'deny' };

/** What the renderer asks of a reasons registry (ReasonRegistry, or the agent's ReasonLedger). */
export interface ReasonIds {
  id(r: Reason): number;
  readonly table: ReasonsTable;
}

export class ReasonRegistry implements ReasonIds {
  private readonly ids = new Map<string, number>();
  readonly table: Record<string, Reason> = {};

  /** Assigns ids to all reasons at once, in sorted key order, so collisions resolve the same way everywhere. */
  constructor(reasons: Iterable<Reason>) {
    const byKey = new Map<string, Reason>();
    for (const r of reasons) byKey.set(reasonKey(r), r);
    const used = new Set<number>();
    for (const key of [...byKey.keys()].sort()) {
      let id = hashId(key);
      while (used.has(id)) id = id >= ID_SPACE ? 1 : id + 1;
      used.add(id);
      this.ids.set(key, id);
      this.table[String(id)] = byKey.get(key) as Reason;
    }
  }

  id(r: Reason): number {
    const id = this.ids.get(reasonKey(r));
    if (id === undefined) throw new Error(`reason not registered: ${r.policy} ${r.rule} (${r.verdict})`);
    return id;
  }
}

/** The default-deny reasons one identity's programs bring (none when nothing isolates it). */
export function identityReasons(engine: PolicyEngine, identity: number): Reason[] {
  const out: Reason[] = [];
  for (const direction of ['ingress', 'egress'] as const) {
    const enforce = engine.program(identity, direction, 'enforce');
    if (enforce.isolated) out.push(defaultDenyReason(enforce.isolatingPolicies, direction, false));
    const full = engine.program(identity, direction, 'full');
    if (full.isolated && full.isolatingPolicies.some((k) => engine.policy(k)?.mode === 'audit')) {
      out.push(defaultDenyReason(full.isolatingPolicies, direction, true));
    }
  }
  return out;
}

/** The reasons of the data plane and of every rule (what does not depend on identities). */
export function baseReasons(engine: PolicyEngine): Reason[] {
  const reasons: Reason[] = [IPV6_REASON, SPOOF_REASON, NOT_READY_REASON];
  for (const rule of engine.allRules()) {
    const r = ruleReason(rule);
    if (r) reasons.push(r);
  }
  return reasons;
}

/** Every reason the engine can produce: each Allow/Deny rule, and each NetworkPolicy default deny. */
export function collectReasons(engine: PolicyEngine): ReasonRegistry {
  const reasons = baseReasons(engine);
  for (const id of engine.identities()) reasons.push(...identityReasons(engine, id.id));
  return new ReasonRegistry(reasons);
}
