// Invalid policies are never dropped whole: dropping a NetworkPolicy removes the isolation it
// declares, dropping an ANP Deny rule lets its traffic through — both fail open. Instead the
// part whose meaning is in doubt is widened to everything it might mean and marked (see
// `Doubt` in src/model/cluster.ts); what is certain is kept as written. The diagnostics of the
// original object are reported as before: the object stays an input error.

import type { z } from 'zod';
import type { AdminPolicySpec, AdminRule, Doubt, NetworkPolicy, NetworkPolicyRule, RuleDoubt } from '../model/cluster.js';
import { isPlainObject } from './documents.js';
import { formatPath } from './issues.js';

export type PolicyKind = 'NetworkPolicy' | 'AdminNetworkPolicy' | 'BaselineAdminNetworkPolicy';

export interface Salvaged<T> {
  readonly raw: T;
  /** Whether the policy applies (or where it stands) is in doubt. */
  readonly policy?: Doubt;
  /** ANP: the priority is in doubt (the policy then stands before every other). */
  readonly priority: boolean;
  /** Per `ingress:0`, `egress:3`: the rules in doubt. */
  readonly rules: ReadonlyMap<string, RuleDoubt>;
}

type Path = readonly PropertyKey[];

function issuePaths(issues: readonly z.core.$ZodIssue[]): Path[] {
  return issues.flatMap((i) => (i.code === 'unrecognized_keys' ? i.keys.map((k) => [...i.path, k]) : [i.path]));
}

// Widened stand-ins that the schema accepts. ANP peers must name something; a rule whose
// peers are in doubt is marked `anyPeer` and matches every peer once normalized.
const ANY_ADMIN_PEERS = [{ namespaces: {} }];

/**
 * Widens the doubtful part of peer `rest[0]` in place: a selector in doubt selects everything,
 * an `except` in doubt excepts nothing, `networks` in doubt are every address. False when the
 * doubt is the peer itself (then any peer).
 */
function widenPeer(peers: unknown, rest: Path, admin: boolean): boolean {
  const [j, part, sub] = rest;
  if (!Array.isArray(peers) || typeof j !== 'number' || !isPlainObject(peers[j])) return false;
  const peer = peers[j] as Record<string, unknown>;
  if (!admin) {
    if ((part === 'podSelector' || part === 'namespaceSelector') && sub !== undefined) peer[part] = {};
    else if (part === 'ipBlock' && sub === 'except' && isPlainObject(peer.ipBlock)) delete (peer.ipBlock as Record<string, unknown>).except;
    else return false;
    return true;
  }
  if (part === 'pods' && (sub === 'podSelector' || sub === 'namespaceSelector') && isPlainObject(peer.pods)) (peer.pods as Record<string, unknown>)[sub] = {};
  else if ((part === 'namespaces' || part === 'nodes') && sub !== undefined) peer[part] = {};
  else if (part === 'networks' && sub !== undefined) peer.networks = ['0.0.0.0/0', '::/0'];
  else return false;
  return true;
}

function clone(v: unknown): unknown {
  return JSON.parse(JSON.stringify(v)) as unknown;
}

/**
 * Returns the widened, valid form of an invalid policy and what is in doubt, or undefined when
 * it cannot be made valid (the caller then keeps the policy out and reports it, as before).
 */
export function salvagePolicy<S extends z.ZodType>(
  kind: PolicyKind,
  value: Record<string, unknown>,
  object: string,
  issues: readonly z.core.$ZodIssue[],
  schema: S,
): Salvaged<z.infer<S>> | undefined {
  const raw = clone(value) as Record<string, unknown>;
  let policy: Doubt | undefined;
  let priority = false;
  const rules = new Map<string, RuleDoubt>();
  const reason = (path: Path) => `${object} ${formatPath(path)}`;
  const admin = kind !== 'NetworkPolicy';
  let pending = issuePaths(issues);
  // Each pass fixes what the schema reported; a fix can uncover checks that only run on a
  // valid inner object (zod refines an object after its fields parse), hence a few passes.
  for (let pass = 0; pass < 4; pass++) {
    for (const path of pending) {
      if (!isPlainObject(raw.spec)) raw.spec = {};
      const spec = raw.spec as Record<string, unknown>;
      const [top, field, index, key] = path;
      if (top === 'spec' && (field === 'ingress' || field === 'egress') && typeof index === 'number' && Array.isArray(spec[field])) {
        const list = spec[field] as unknown[];
        const id = `${field}:${index}`;
        const old = rules.get(id);
        const doubt: { reason: string; anyAction?: boolean; anyPeer?: boolean } = { ...(old ?? { reason: reason(path) }) };
        let rule = list[index];
        if (!isPlainObject(rule)) rule = list[index] = {};
        const r = rule as Record<string, unknown>;
        const peerKey = field === 'ingress' ? 'from' : 'to';
        if (key === 'name') {
          delete r.name; // a name does not change what the rule means
          continue;
        }
        if (key === 'ports') delete r.ports;
        else if (key === peerKey && widenPeer(r[peerKey], path.slice(4), admin)) {
          // The one doubtful part of a peer is widened; its other parts still hold.
        } else if (key === peerKey || key === undefined || !(key === 'action')) {
          // Peers in doubt (or the rule itself): any peer.
          if (key !== undefined && key !== peerKey) delete r[key as string];
          if (admin) {
            r[peerKey] = ANY_ADMIN_PEERS;
            doubt.anyPeer = true;
          } else delete r[peerKey];
          if (key === undefined) delete r.ports;
        }
        if (admin && (key === 'action' || key === undefined || !['Allow', 'Deny', 'Pass'].includes(String(r.action)))) {
          r.action = 'Deny';
          doubt.anyAction = true;
        }
        rules.set(id, doubt);
        continue;
      }
      if (top === 'metadata') {
        const meta = isPlainObject(raw.metadata) ? raw.metadata : {};
        if (field === 'labels') {
          delete meta.labels; // a policy's own labels do not change what it means
          continue;
        }
        if (field !== 'annotations') return undefined; // a name the API refuses: the object does not exist
        // The mode annotation: enforced or only audited is in doubt.
        policy ??= { reason: reason(path) };
        if (isPlainObject(meta.annotations) && typeof index === 'string') delete (meta.annotations as Record<string, unknown>)[index];
        else delete meta.annotations;
        continue;
      }
      // Anything else is the policy as a whole: whether (or where) it applies is in doubt.
      policy ??= { reason: reason(path) };
      if (top !== 'spec') {
        if (typeof top === 'string' && top !== 'apiVersion' && top !== 'kind') delete raw[top];
        continue;
      }
      if (kind === 'NetworkPolicy') {
        if (field === 'podSelector') spec.podSelector = {};
        else if (field === 'policyTypes') spec.policyTypes = ['Ingress', 'Egress'];
        else {
          // An unknown or malformed spec field (`ingres:`): its rules may allow anything, in
          // either direction.
          if (typeof field === 'string' && field !== 'ingress' && field !== 'egress') delete spec[field];
          for (const dir of ['ingress', 'egress'] as const) {
            if (field === dir || !Array.isArray(spec[dir])) spec[dir] = [];
            (spec[dir] as unknown[]).push({});
            rules.set(`${dir}:${(spec[dir] as unknown[]).length - 1}`, { reason: reason(path) });
          }
          spec.policyTypes = ['Ingress', 'Egress'];
        }
      } else {
        if (field === 'subject') spec.subject = { namespaces: {} };
        else if (field === 'priority') {
          spec.priority = 0;
          priority = true;
        }
        else {
          if (typeof field === 'string' && field !== 'ingress' && field !== 'egress') delete spec[field];
          for (const dir of ['ingress', 'egress'] as const) {
            if (field === dir || !Array.isArray(spec[dir])) spec[dir] = [];
            const list = spec[dir] as unknown[];
            if (list.length >= 100) list.length = 99;
            list.unshift({ action: 'Deny', [dir === 'ingress' ? 'from' : 'to']: ANY_ADMIN_PEERS });
            // Existing marks shift by one.
            const shifted = [...rules.entries()].filter(([k]) => k.startsWith(`${dir}:`));
            for (const [k] of shifted) rules.delete(k);
            for (const [k, v] of shifted) rules.set(`${dir}:${Number(k.split(':')[1]) + 1}`, v);
            rules.set(`${dir}:0`, { reason: reason(path), anyAction: true, anyPeer: true });
          }
        }
      }
    }
    const r = schema.safeParse(raw);
    if (r.success) return { raw: r.data as z.infer<S>, ...(policy ? { policy } : {}), priority, rules };
    pending = issuePaths(r.error.issues);
  }
  return undefined;
}

function markRules<R extends { readonly doubt?: RuleDoubt }>(dir: 'ingress' | 'egress', rules: readonly R[], s: Salvaged<unknown>, anyPeer: (r: R) => R): R[] {
  return rules.map((r, i) => {
    const doubt = s.rules.get(`${dir}:${i}`);
    if (!doubt) return r;
    return { ...(doubt.anyPeer ? anyPeer(r) : r), doubt };
  });
}

/** The normalized NetworkPolicy of a salvaged one, with its doubts marked. */
export function markNetworkPolicy(np: NetworkPolicy, s: Salvaged<unknown>): NetworkPolicy {
  const same = (r: NetworkPolicyRule) => r;
  return {
    ...np,
    ingress: markRules('ingress', np.ingress, s, same),
    egress: markRules('egress', np.egress, s, same),
    ...(s.policy ? { doubt: s.policy } : {}),
  };
}

/** The normalized admin policy of a salvaged one, with its doubts marked. */
export function markAdminPolicy<P extends AdminPolicySpec & { priority?: number }>(p: P, s: Salvaged<unknown>): P {
  const anyPeer = (r: AdminRule): AdminRule => ({ ...r, peers: [] });
  return {
    ...p,
    ingress: markRules('ingress', p.ingress, s, anyPeer),
    egress: markRules('egress', p.egress, s, anyPeer),
    ...(s.policy ? { doubt: s.policy } : {}),
    // A priority in doubt: its rules may stand anywhere, so they go before every other.
    ...(s.priority ? { priority: -1 } : {}),
  };
}
