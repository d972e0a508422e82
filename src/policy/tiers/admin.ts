// AdminNetworkPolicy tier. "The rules are evaluated in order of priority (lower value first)
// ... and within a policy in the order they are written; the first rule that matches decides."
// Allow and Deny are final; Pass "skips all further AdminNetworkPolicy rules and hands the
// traffic to NetworkPolicy (and then BaselineAdminNetworkPolicy)".

import { NO_CONNS, intersect, isEmpty, subtract, union, type ConnSet } from '../connections.js';
import { resolvePorts } from '../rules.js';
import { peerMatches, type TierInput, type TierOutcome } from './outcome.js';

export function adminTier(input: TierInput, pending: ConnSet): TierOutcome {
  let remaining = pending;
  let accept = NO_CONNS;
  let deny = NO_CONNS;
  let pass = NO_CONNS;
  for (const rule of input.program.admin) {
    if (isEmpty(remaining)) break;
    if (!peerMatches(rule, input.inGroup)) continue;
    const hit = intersect(resolvePorts(rule, input.dstPorts), remaining);
    if (isEmpty(hit)) continue;
    if (rule.action === 'Allow') accept = union(accept, hit);
    else if (rule.action === 'Deny') deny = union(deny, hit);
    else pass = union(pass, hit);
    input.trace?.push({ rule, reason: 'rule', action: rule.action, conns: hit });
    remaining = subtract(remaining, hit);
  }
  return { accept, deny, next: union(remaining, pass) };
}
