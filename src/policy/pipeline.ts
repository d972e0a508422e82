// The order of tiers, written once: AdminNetworkPolicy → NetworkPolicy → BaselineAdminNetworkPolicy.

import { ALL_CONNS, NO_CONNS, intersect, isEmpty, subtract, union, type ConnSet } from './connections.js';
import { adminTierUncertain, baselineTierUncertain, networkPolicyTierUncertain, type Outcomes } from './tiers/uncertain.js';
import { adminTier } from './tiers/admin.js';
import { baselineTier } from './tiers/baseline.js';
import { networkPolicyTier } from './tiers/networkpolicy.js';
import type { TierInput, TierOutcome } from './tiers/outcome.js';

const TIERS: readonly ((input: TierInput, pending: ConnSet) => TierOutcome)[] = [
  adminTier,
  networkPolicyTier,
  baselineTier,
];

/** The connections allowed in one direction, out of `pending` (default: all). */
export function evaluateDirection(input: TierInput, pending: ConnSet = ALL_CONNS): ConnSet {
  let accepted: ConnSet | undefined;
  let next = pending;
  for (const tier of TIERS) {
    const out = tier(input, next);
    accepted = accepted ? union(accepted, out.accept) : out.accept;
    next = out.next;
  }
  // The baseline tier accepts everything left, so nothing is pending here.
  return accepted ?? pending;
}

// The same order for a program with policies in doubt: each tier narrows what might still be
// pending and adds to what might be allowed or denied.
const UNCERTAIN_TIERS = [adminTierUncertain, networkPolicyTierUncertain, baselineTierUncertain] as const;

export interface DirectionVerdicts {
  /** Certainly allowed. */
  readonly allowed: ConnSet;
  /** Might be allowed, might be denied: UNKNOWN. */
  readonly unknown: ConnSet;
  /** The doubts behind `unknown`, each with the connections it may change (when asked). */
  readonly doubts?: readonly { reason: string; conns: ConnSet }[];
}

/**
 * The allowed and the unknown connections of one direction. Without doubts this is
 * evaluateDirection with nothing unknown; with them, the three-valued tiers above.
 */
export function evaluateVerdicts(input: TierInput, pending: ConnSet = ALL_CONNS, withReasons = false): DirectionVerdicts {
  const doubtful = input.program.doubtful;
  if (!doubtful) return { allowed: evaluateDirection(input, pending), unknown: NO_CONNS };
  const out: Outcomes = { allow: NO_CONNS, deny: NO_CONNS, ...(withReasons ? { doubts: [] } : {}) };
  let next = pending;
  for (const tier of UNCERTAIN_TIERS) next = tier(input, doubtful, next, out);
  const unknown = intersect(out.allow, out.deny);
  return {
    allowed: subtract(out.allow, out.deny),
    unknown,
    ...(out.doubts ? { doubts: out.doubts.filter((d) => !isEmpty(intersect(d.conns, unknown))) } : {}),
  };
}

export type { Decision, TierInput } from './tiers/outcome.js';
