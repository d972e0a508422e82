// The outcome of one tier for a set of connections, in the style of kube-network-policies'
// pipeline: every connection a tier sees is accepted, denied, or passed to the next tier.

import type { ConnSet } from '../connections.js';
import type { CompiledRule, DirectionProgram } from '../rules.js';
import type { ContainerPort } from '../../model/cluster.js';

export interface TierOutcome {
  readonly accept: ConnSet;
  readonly deny: ConnSet;
  readonly next: ConnSet;
}

/** A rule that decided some of the connections, for explanations. */
export interface Decision {
  readonly rule: CompiledRule | undefined;
  /** Tier-level defaults: `isolated` (NetworkPolicy default deny), `default-allow`. */
  readonly reason: 'rule' | 'isolated' | 'default-allow';
  readonly action: 'Allow' | 'Deny' | 'Pass';
  readonly conns: ConnSet;
  /** Set when the decision is in doubt: `Kind ns/name field` of the invalid part. */
  readonly doubt?: string;
}

export interface TierInput {
  readonly program: DirectionProgram;
  /** Does the peer on the other side belong to this selector-cache group? */
  readonly inGroup: (group: number) => boolean;
  /** Container ports of the destination, for named ports. */
  readonly dstPorts: readonly ContainerPort[] | undefined;
  /** Collects decisions when an explanation is wanted. */
  readonly trace?: Decision[];
}

export function peerMatches(rule: CompiledRule, inGroup: (group: number) => boolean): boolean {
  if (rule.peers === 'all') return true;
  for (const g of rule.peers) if (inGroup(g)) return true;
  return false;
}
