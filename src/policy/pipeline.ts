// The order of tiers, written once: AdminNetworkPolicy → NetworkPolicy → BaselineAdminNetworkPolicy.

import { ALL_CONNS, union, type ConnSet } from './connections.js';
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

export type { Decision, TierInput } from './tiers/outcome.js';
