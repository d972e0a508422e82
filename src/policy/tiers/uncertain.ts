// The tiers over a program with policies in doubt (DirectionProgram.doubtful): each connection
// gets the *set of outcomes* it might have. A rule in doubt may match what its widened peers and
// ports match, or nothing; a NetworkPolicy whose application is in doubt may isolate the pod, or
// not. A connection that might be allowed and might be denied is UNKNOWN; the rest is certain.
// Sound by construction: every world the doubtful parts could describe is covered.

import { NO_CONNS, intersect, isEmpty, subtract, union, type ConnSet } from '../connections.js';
import { resolvePorts, type CompiledRule, type DoubtfulProgram } from '../rules.js';
import { peerMatches, type TierInput } from './outcome.js';

/** What a direction might do with each connection. */
export interface Outcomes {
  /** Connections that might be allowed. */
  allow: ConnSet;
  /** Connections that might be denied. */
  deny: ConnSet;
  /** The doubts met, each with the connections it touched (explanations only). */
  readonly doubts?: { reason: string; conns: ConnSet }[];
}

function noteDoubt(out: Outcomes, reason: string, conns: ConnSet): void {
  if (!out.doubts || isEmpty(conns)) return;
  out.doubts.push({ reason, conns });
}

/** First-match tiers (ANP, BANP): returns the connections that might go on to the next tier. */
function firstMatch(input: TierInput, rules: readonly CompiledRule[], pending: ConnSet, out: Outcomes, banp: boolean): ConnSet {
  let remaining = pending;
  let passed = NO_CONNS;
  for (const rule of rules) {
    if (isEmpty(remaining)) break;
    if (!peerMatches(rule, input.inGroup)) continue;
    const hit = intersect(resolvePorts(rule, input.dstPorts), remaining);
    if (isEmpty(hit)) continue;
    const actions = rule.doubt?.anyAction ? (banp ? ['Allow', 'Deny'] : ['Allow', 'Deny', 'Pass']) : [rule.action];
    for (const a of actions) {
      if (a === 'Allow') out.allow = union(out.allow, hit);
      else if (a === 'Deny') out.deny = union(out.deny, hit);
      else passed = union(passed, hit);
    }
    input.trace?.push({ rule, reason: 'rule', action: rule.doubt?.anyAction ? 'Deny' : rule.action, conns: hit, ...(rule.doubt ? { doubt: rule.doubt.reason } : {}) });
    if (rule.doubt) noteDoubt(out, rule.doubt.reason, hit);
    // A rule in doubt may also not match: its connections stay pending below it.
    else remaining = subtract(remaining, hit);
  }
  return union(remaining, passed);
}

export function adminTierUncertain(input: TierInput, p: DoubtfulProgram, pending: ConnSet, out: Outcomes): ConnSet {
  return firstMatch(input, p.admin, pending, out, false);
}

export function networkPolicyTierUncertain(input: TierInput, p: DoubtfulProgram, pending: ConnSet, out: Outcomes): ConnSet {
  if (p.isolatingPolicies.length === 0 && p.maybeIsolating.length === 0) return pending;
  let certain = NO_CONNS;
  let maybe = NO_CONNS;
  for (const rule of p.networkPolicy) {
    if (!peerMatches(rule, input.inGroup)) continue;
    const hit = intersect(resolvePorts(rule, input.dstPorts), pending);
    if (isEmpty(hit)) continue;
    input.trace?.push({ rule, reason: 'rule', action: 'Allow', conns: hit, ...(rule.doubt ? { doubt: rule.doubt.reason } : {}) });
    if (rule.doubt) {
      maybe = union(maybe, hit);
      noteDoubt(out, rule.doubt.reason, hit);
    } else certain = union(certain, hit);
  }
  out.allow = union(out.allow, union(certain, maybe));
  const denied = subtract(pending, certain);
  out.deny = union(out.deny, denied);
  if (input.trace && !isEmpty(denied)) {
    const maybeOnly = p.isolatingPolicies.length === 0;
    input.trace.push({
      rule: undefined,
      reason: 'isolated',
      action: 'Deny',
      conns: denied,
      ...(maybeOnly ? { doubt: p.maybeIsolating.map((m) => m.reason).join('; ') } : {}),
    });
  }
  if (p.isolatingPolicies.length > 0) return NO_CONNS;
  // Only maybe isolated: the pod may also not be isolated, and the baseline decides.
  for (const m of p.maybeIsolating) noteDoubt(out, m.reason, denied);
  return pending;
}

export function baselineTierUncertain(input: TierInput, p: DoubtfulProgram, pending: ConnSet, out: Outcomes): ConnSet {
  const remaining = firstMatch(input, p.baseline, pending, out, true);
  if (input.trace && !isEmpty(remaining)) input.trace.push({ rule: undefined, reason: 'default-allow', action: 'Allow', conns: remaining });
  out.allow = union(out.allow, remaining);
  return NO_CONNS;
}
