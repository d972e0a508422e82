// Policies → compiled rules over selector-cache groups.

import type {
  AdminNetworkPolicy,
  AdminPolicySpec,
  AdminPeer,
  AdminPort,
  AdminRule,
  AdminSubject,
  BaselineAdminNetworkPolicy,
  NetworkPolicy,
  NetworkPolicyPeer,
  NetworkPolicyPort,
  PolicyMode,
  SourceRef,
} from '../model/cluster.js';
import { MAX_PORT, MIN_PORT } from './connections.js';
import { cidrGroupSpec, type GroupSpec, type SelectorCache } from './cache.js';
import type { CompiledRule, Direction, PortSpec, RuleAction, Tier } from './rules.js';

export interface CompiledPolicy {
  /** `NetworkPolicy ns/name`, `AdminNetworkPolicy name`, `BaselineAdminNetworkPolicy default`. */
  readonly key: string;
  readonly tier: Tier;
  readonly mode: PolicyMode;
  readonly priority: number;
  readonly subject: number;
  /** NetworkPolicy: policyTypes; admin policies affect a direction only through their rules. */
  readonly isolates: { readonly ingress: boolean; readonly egress: boolean };
  /** What the data plane enforces: without NetworkPolicy rules in doubt, admin rules in doubt as Deny. */
  readonly ingress: readonly CompiledRule[];
  readonly egress: readonly CompiledRule[];
  /** Present when part of the policy is in doubt: every rule, doubtful ones marked, for the analyzer. */
  readonly doubtful?: { readonly ingress: readonly CompiledRule[]; readonly egress: readonly CompiledRule[] };
  /** Whether the policy applies at all is in doubt (its subject, policyTypes or mode are invalid). */
  readonly doubt?: string;
  readonly groups: readonly number[];
  readonly source?: SourceRef;
}

export type AnyPolicy =
  | { readonly tier: 'NetworkPolicy'; readonly policy: NetworkPolicy }
  | { readonly tier: 'AdminNetworkPolicy'; readonly policy: AdminNetworkPolicy }
  | { readonly tier: 'BaselineAdminNetworkPolicy'; readonly policy: BaselineAdminNetworkPolicy };

export function policyKey(p: AnyPolicy): string {
  return p.tier === 'NetworkPolicy' ? `NetworkPolicy ${p.policy.namespace}/${p.policy.name}` : `${p.tier} ${p.policy.name}`;
}

class Compiler {
  private readonly groups: number[] = [];
  constructor(
    private readonly cache: SelectorCache,
    private readonly nextRuleId: () => number,
  ) {}

  group(spec: GroupSpec): number {
    const g = this.cache.acquireGroup(spec);
    this.groups.push(g.id);
    return g.id;
  }

  taken(): number[] {
    return this.groups;
  }

  rule(
    tier: Tier,
    policy: string,
    direction: Direction,
    label: string,
    action: RuleAction,
    peers: number[] | 'all',
    ports: PortSpec[] | 'all',
    mode: PolicyMode,
    priority?: number,
    doubt?: CompiledRule['doubt'],
  ): CompiledRule {
    return {
      id: this.nextRuleId(),
      ref: { tier, policy, rule: label, direction, priority, audit: mode === 'audit' },
      action,
      peers,
      ports,
      hasNamedPorts: ports !== 'all' && ports.some((p) => p.kind === 'named'),
      ...(doubt ? { doubt } : {}),
    };
  }
}

function npPeerGroup(c: Compiler, namespace: string, peer: NetworkPolicyPeer): number {
  if (peer.kind === 'ipBlock') return c.group(cidrGroupSpec([peer.ipBlock.cidr], peer.ipBlock.except));
  // "If namespaceSelector is also set, then the NetworkPolicyPeer as a whole selects the pods
  // matching podSelector in the Namespaces selected by NamespaceSelector. Otherwise it selects
  // the pods matching podSelector in the policy's own namespace." An absent podSelector with a
  // namespaceSelector selects all pods in those namespaces.
  const podSelector = peer.podSelector ?? {};
  return peer.namespaceSelector !== undefined
    ? c.group({ kind: 'pods', namespaceSelector: peer.namespaceSelector, podSelector })
    : c.group({ kind: 'pods', namespace, podSelector });
}

function npPorts(ports: readonly NetworkPolicyPort[]): PortSpec[] | 'all' {
  // "If this field is empty or missing, this rule matches all ports."
  if (ports.length === 0) return 'all';
  return ports.map((p): PortSpec => {
    if (p.port === undefined) return { kind: 'range', protocol: p.protocol, start: MIN_PORT, end: MAX_PORT };
    if (typeof p.port === 'string') return { kind: 'named', name: p.port, protocol: p.protocol };
    return { kind: 'range', protocol: p.protocol, start: p.port, end: p.endPort ?? p.port };
  });
}

export function compileNetworkPolicy(cache: SelectorCache, np: NetworkPolicy, nextRuleId: () => number): CompiledPolicy {
  const c = new Compiler(cache, nextRuleId);
  const key = `NetworkPolicy ${np.namespace}/${np.name}`;
  const subject = c.group({ kind: 'pods', namespace: np.namespace, podSelector: np.podSelector });
  const isolates = { ingress: np.policyTypes.includes('Ingress'), egress: np.policyTypes.includes('Egress') };
  const compileRules = (direction: Direction) =>
    // Rules of a direction the policy does not declare in policyTypes have no effect.
    !isolates[direction]
      ? []
      : (direction === 'ingress' ? np.ingress : np.egress).map((r, i) => {
          const doubt = r.doubt ?? np.doubt;
          return c.rule(
            'NetworkPolicy',
            key,
            direction,
            `${direction}[${i}]`,
            'Allow',
            // "If this field is empty or missing, this rule matches all sources/destinations."
            r.peers.length === 0 ? 'all' : r.peers.map((p) => npPeerGroup(c, np.namespace, p)),
            npPorts(r.ports),
            np.mode,
            undefined,
            doubt ? { reason: doubt.reason } : undefined,
          );
        });
  const ingress = compileRules('ingress');
  const egress = compileRules('egress');
  // The data plane never enforces a rule in doubt: it allows nothing for sure, so dropping it
  // keeps the isolation and denies what it might allow (a policy whose subject is in doubt
  // isolates every pod it might select, allowing nothing).
  const doubtful = ingress.some((r) => r.doubt) || egress.some((r) => r.doubt) || np.doubt !== undefined;
  return {
    key,
    tier: 'NetworkPolicy',
    mode: np.mode,
    priority: 0,
    subject,
    isolates,
    ingress: doubtful ? ingress.filter((r) => !r.doubt) : ingress,
    egress: doubtful ? egress.filter((r) => !r.doubt) : egress,
    ...(doubtful ? { doubtful: { ingress, egress } } : {}),
    ...(np.doubt ? { doubt: np.doubt.reason } : {}),
    groups: c.taken(),
    source: np.source,
  };
}

function subjectGroup(c: Compiler, s: AdminSubject): number {
  return s.namespaces !== undefined
    ? c.group({ kind: 'pods', namespaceSelector: s.namespaces, podSelector: {} })
    : c.group({ kind: 'pods', namespaceSelector: s.pods.namespaceSelector, podSelector: s.pods.podSelector });
}

function adminPeerGroup(c: Compiler, p: AdminPeer): number {
  switch (p.kind) {
    case 'namespaces':
      return c.group({ kind: 'pods', namespaceSelector: p.namespaces, podSelector: {} });
    case 'pods':
      return c.group({ kind: 'pods', namespaceSelector: p.pods.namespaceSelector, podSelector: p.pods.podSelector });
    case 'nodes':
      return c.group({ kind: 'nodes', nodeSelector: p.nodes });
    case 'networks':
      return c.group(cidrGroupSpec(p.networks, []));
  }
}

function adminPorts(ports: readonly AdminPort[] | undefined): PortSpec[] | 'all' {
  // "If Ports is not set then the rule does not filter traffic via port."
  if (ports === undefined) return 'all';
  return ports.map((p): PortSpec => {
    switch (p.kind) {
      case 'portNumber':
        return { kind: 'range', protocol: p.protocol, start: p.port, end: p.port };
      case 'portRange':
        return { kind: 'range', protocol: p.protocol, start: p.start, end: p.end };
      case 'namedPort':
        return { kind: 'named', name: p.name };
    }
  });
}

function compileAdmin(
  cache: SelectorCache,
  tier: 'AdminNetworkPolicy' | 'BaselineAdminNetworkPolicy',
  p: AdminPolicySpec,
  priority: number,
  nextRuleId: () => number,
): CompiledPolicy {
  const c = new Compiler(cache, nextRuleId);
  const key = `${tier} ${p.name}`;
  const subject = subjectGroup(c, p.subject);
  const rules = (direction: Direction, list: readonly AdminRule[]) =>
    list.map((r, i) => {
      const doubt = r.doubt ?? p.doubt;
      return c.rule(
        tier,
        key,
        direction,
        r.name ? `${direction}[${i}] "${r.name}"` : `${direction}[${i}]`,
        r.action,
        // A rule whose peers are in doubt may match any peer.
        r.doubt?.anyPeer ? 'all' : r.peers.map((peer) => adminPeerGroup(c, peer)),
        adminPorts(r.ports),
        p.mode,
        tier === 'AdminNetworkPolicy' ? priority : undefined,
        doubt ? { reason: doubt.reason, ...(r.doubt?.anyAction ? { anyAction: true } : {}) } : undefined,
      );
    });
  const ingress = rules('ingress', p.ingress);
  const egress = rules('egress', p.egress);
  // What the data plane enforces of a rule in doubt: whatever it might decide, a Deny over all
  // it might match is never more open; except that an Allow in doubt is simply left out (the
  // traffic then meets the rules below it, which is one of the outcomes it could have had).
  const enforced = (list: CompiledRule[]) =>
    list.flatMap((r): CompiledRule[] => (!r.doubt ? [r] : r.action === 'Allow' && !r.doubt.anyAction ? [] : [{ ...r, action: 'Deny' }]));
  const doubtful = ingress.some((r) => r.doubt) || egress.some((r) => r.doubt);
  return {
    key,
    tier,
    mode: p.mode,
    priority,
    subject,
    isolates: { ingress: false, egress: false },
    ingress: doubtful ? enforced(ingress) : ingress,
    egress: doubtful ? enforced(egress) : egress,
    ...(doubtful ? { doubtful: { ingress, egress } } : {}),
    ...(p.doubt ? { doubt: p.doubt.reason } : {}),
    groups: c.taken(),
    source: p.source,
  };
}

export function compilePolicy(cache: SelectorCache, p: AnyPolicy, nextRuleId: () => number): CompiledPolicy {
  switch (p.tier) {
    case 'NetworkPolicy':
      return compileNetworkPolicy(cache, p.policy, nextRuleId);
    case 'AdminNetworkPolicy':
      return compileAdmin(cache, 'AdminNetworkPolicy', p.policy, p.policy.priority, nextRuleId);
    case 'BaselineAdminNetworkPolicy':
      return compileAdmin(cache, 'BaselineAdminNetworkPolicy', p.policy, 0, nextRuleId);
  }
}
