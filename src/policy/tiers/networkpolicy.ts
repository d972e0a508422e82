// NetworkPolicy tier.
// "By default, a pod is non-isolated for ingress/egress ... A pod is isolated for ingress if
// there is any NetworkPolicy that both selects the pod and has 'Ingress' in its policyTypes"
// (likewise egress). Policies are additive: "the allowed connections are the union of what
// each applicable policy allows". A non-isolated pod leaves the decision to the baseline.

import { NO_CONNS, intersect, isEmpty, subtract, union, type ConnSet } from '../connections.js';
import { resolvePorts } from '../rules.js';
import { peerMatches, type TierInput, type TierOutcome } from './outcome.js';

export function networkPolicyTier(input: TierInput, pending: ConnSet): TierOutcome {
  if (!input.program.isolated) return { accept: NO_CONNS, deny: NO_CONNS, next: pending };
  let allowed = NO_CONNS;
  for (const rule of input.program.networkPolicy) {
    if (!peerMatches(rule, input.inGroup)) continue;
    const hit = intersect(resolvePorts(rule, input.dstPorts), pending);
    if (isEmpty(hit)) continue;
    input.trace?.push({ rule, reason: 'rule', action: 'Allow', conns: hit });
    allowed = union(allowed, hit);
  }
  const deny = subtract(pending, allowed);
  if (input.trace && !isEmpty(deny)) input.trace.push({ rule: undefined, reason: 'isolated', action: 'Deny', conns: deny });
  return { accept: allowed, deny, next: NO_CONNS };
}
