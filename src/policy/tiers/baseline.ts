// BaselineAdminNetworkPolicy tier: consulted only for traffic that no ANP decided and that
// NetworkPolicy did not govern (the pod is not isolated). First matching rule wins; what no
// rule matches is allowed, the Kubernetes default.

import { NO_CONNS, intersect, isEmpty, subtract, union, type ConnSet } from '../connections.js';
import { resolvePorts } from '../rules.js';
import { peerMatches, type TierInput, type TierOutcome } from './outcome.js';

export function baselineTier(input: TierInput, pending: ConnSet): TierOutcome {
  let remaining = pending;
  let accept = NO_CONNS;
  let deny = NO_CONNS;
  for (const rule of input.program.baseline) {
    if (isEmpty(remaining)) break;
    if (!peerMatches(rule, input.inGroup)) continue;
    const hit = intersect(resolvePorts(rule, input.dstPorts), remaining);
    if (isEmpty(hit)) continue;
    if (rule.action === 'Deny') deny = union(deny, hit);
    else accept = union(accept, hit);
    input.trace?.push({ rule, reason: 'rule', action: rule.action === 'Deny' ? 'Deny' : 'Allow', conns: hit });
    remaining = subtract(remaining, hit);
  }
  if (input.trace && !isEmpty(remaining)) {
    input.trace.push({ rule: undefined, reason: 'default-allow', action: 'Allow', conns: remaining });
  }
  return { accept: union(accept, remaining), deny, next: NO_CONNS };
}
