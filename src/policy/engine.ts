// The policy engine: one compiled, incrementally updated view of a cluster's policies that the
// analyzer, the explainer, the nftables renderer and the flow enricher all ask.

import type {
  AdminNetworkPolicy,
  BaselineAdminNetworkPolicy,
  Cluster,
  Namespace,
  NetworkPolicy,
  Node,
  Pod,
} from '../model/cluster.js';
import { SelectorCache, type Group, type Identity } from './cache.js';
import { compilePolicy, policyKey, type AnyPolicy, type CompiledPolicy } from './compile.js';
import { EMPTY_PROGRAM, makeProgram, type CompiledRule, type Direction, type DirectionProgram } from './rules.js';

export type ProgramMode = 'enforce' | 'full';

interface ProgramCache {
  enforce?: { ingress: DirectionProgram; egress: DirectionProgram };
  full?: { ingress: DirectionProgram; egress: DirectionProgram };
}

export class PolicyEngine {
  readonly cache = new SelectorCache();
  readonly pods = new Map<string, Pod>();
  private readonly podIdentity = new Map<string, Identity>();
  readonly policies = new Map<string, CompiledPolicy>();
  private readonly sourcePolicies = new Map<string, AnyPolicy>();
  private readonly subjectUsers = new Map<number, Set<string>>();
  private readonly identityPolicies = new Map<number, Set<string>>();
  private readonly programs = new Map<number, ProgramCache>();
  private ruleSeq = 1;
  /** Bumped on every change; analysis results remember the version they were computed at. */
  version = 0;

  constructor(cluster?: Cluster) {
    this.cache.onMembership = (g, identity, member) => this.membershipChanged(g, identity, member);
    if (cluster) this.load(cluster);
  }

  load(cluster: Cluster): void {
    for (const ns of cluster.namespaces) this.upsertNamespace(ns);
    for (const n of cluster.nodes) this.upsertNode(n);
    for (const p of cluster.pods) this.upsertPod(p);
    for (const np of cluster.networkPolicies) this.upsertNetworkPolicy(np);
    for (const anp of cluster.adminNetworkPolicies) this.upsertAdminNetworkPolicy(anp);
    if (cluster.baselineAdminNetworkPolicy) this.setBaselineAdminNetworkPolicy(cluster.baselineAdminNetworkPolicy);
  }

  // ------------------------------------------------------------------ updates

  upsertNamespace(ns: Namespace): void {
    this.cache.setNamespace(ns);
    this.version++;
  }

  removeNamespace(name: string): void {
    this.cache.removeNamespace(name);
    this.version++;
  }

  upsertNode(node: Node): void {
    this.cache.nodes.set(node.name, node);
    this.version++;
  }

  removeNode(name: string): void {
    this.cache.nodes.delete(name);
    this.version++;
  }

  upsertPod(pod: Pod): void {
    const key = `${pod.namespace}/${pod.name}`;
    const old = this.podIdentity.get(key);
    this.pods.set(key, pod);
    const id = this.cache.acquireIdentity(pod);
    this.podIdentity.set(key, id);
    if (old && old !== id) this.cache.releaseIdentity(old, key);
    if (!this.cache.namespaces.has(pod.namespace)) {
      // "kubernetes.io/metadata.name" is set on every namespace by the API server.
      this.cache.setNamespace({ name: pod.namespace, labels: { 'kubernetes.io/metadata.name': pod.namespace }, implicit: true });
    }
    this.version++;
  }

  removePod(namespace: string, name: string): void {
    const key = `${namespace}/${name}`;
    const id = this.podIdentity.get(key);
    if (!id) return;
    this.pods.delete(key);
    this.podIdentity.delete(key);
    this.cache.releaseIdentity(id, key);
    if (!this.cache.identities.has(id.id)) {
      this.identityPolicies.delete(id.id);
      this.programs.delete(id.id);
    }
    this.version++;
  }

  upsertNetworkPolicy(np: NetworkPolicy): void {
    this.upsertPolicy({ tier: 'NetworkPolicy', policy: np });
  }

  upsertAdminNetworkPolicy(anp: AdminNetworkPolicy): void {
    this.upsertPolicy({ tier: 'AdminNetworkPolicy', policy: anp });
  }

  setBaselineAdminNetworkPolicy(banp: BaselineAdminNetworkPolicy | undefined): void {
    for (const k of [...this.policies.keys()]) if (k.startsWith('BaselineAdminNetworkPolicy ')) this.removePolicy(k);
    if (banp) this.upsertPolicy({ tier: 'BaselineAdminNetworkPolicy', policy: banp });
  }

  upsertPolicy(p: AnyPolicy): void {
    const key = policyKey(p);
    this.removePolicy(key);
    const compiled = compilePolicy(this.cache, p, () => this.ruleSeq++);
    this.policies.set(key, compiled);
    this.sourcePolicies.set(key, p);
    let users = this.subjectUsers.get(compiled.subject);
    if (!users) this.subjectUsers.set(compiled.subject, (users = new Set()));
    users.add(key);
    const subject = this.cache.groups.get(compiled.subject) as Group;
    for (const iid of subject.identities) this.attach(iid, key, true);
    this.version++;
  }

  removePolicy(key: string): void {
    const old = this.policies.get(key);
    if (!old) return;
    const subject = this.cache.groups.get(old.subject) as Group;
    for (const iid of subject.identities) this.attach(iid, key, false);
    this.subjectUsers.get(old.subject)?.delete(key);
    for (const g of old.groups) this.cache.releaseGroup(g);
    this.policies.delete(key);
    this.sourcePolicies.delete(key);
    this.version++;
  }

  private attach(identity: number, policy: string, member: boolean): void {
    let set = this.identityPolicies.get(identity);
    if (!set) this.identityPolicies.set(identity, (set = new Set()));
    if (member) set.add(policy);
    else set.delete(policy);
    this.programs.delete(identity);
  }

  private membershipChanged(g: Group, identity: number, member: boolean): void {
    for (const key of this.subjectUsers.get(g.id) ?? []) this.attach(identity, key, member);
  }

  // ------------------------------------------------------------------ queries

  identityOfPod(key: string): Identity | undefined {
    return this.podIdentity.get(key);
  }

  identities(): Identity[] {
    return [...this.cache.identities.values()];
  }

  group(id: number): Group | undefined {
    return this.cache.groups.get(id);
  }

  policy(key: string): CompiledPolicy | undefined {
    return this.policies.get(key);
  }

  sourcePolicy(key: string): AnyPolicy | undefined {
    return this.sourcePolicies.get(key);
  }

  /** Policy keys selecting an identity (as NetworkPolicy podSelector or admin subject). */
  policiesOf(identity: number): string[] {
    return [...(this.identityPolicies.get(identity) ?? [])].sort();
  }

  /**
   * The tiers that apply to an identity in one direction. `enforce` leaves out policies in
   * audit mode (`weir.dev/mode: audit`); `full` includes them, which is what the policies would
   * do if they were all enforced.
   */
  program(identity: number, direction: Direction, mode: ProgramMode = 'enforce'): DirectionProgram {
    const id = this.cache.identities.get(identity);
    // Host-network pods are the node as far as policy goes: no NetworkPolicy or admin policy
    // isolates them ("NetworkPolicy behavior for hostNetwork pods is undefined"; weir follows
    // the common choice of treating them as node traffic).
    if (!id || id.hostNetwork) return EMPTY_PROGRAM;
    let cached = this.programs.get(identity);
    if (!cached) this.programs.set(identity, (cached = {}));
    let entry = cached[mode];
    if (!entry) {
      entry = { ingress: this.buildProgram(identity, 'ingress', mode), egress: this.buildProgram(identity, 'egress', mode) };
      cached[mode] = entry;
    }
    return entry[direction];
  }

  private buildProgram(identity: number, direction: Direction, mode: ProgramMode): DirectionProgram {
    const admins: CompiledPolicy[] = [];
    const nps: CompiledPolicy[] = [];
    const baselines: CompiledPolicy[] = [];
    for (const key of this.identityPolicies.get(identity) ?? []) {
      const p = this.policies.get(key) as CompiledPolicy;
      if (mode === 'enforce' && p.mode === 'audit') continue;
      if (p.tier === 'AdminNetworkPolicy') admins.push(p);
      else if (p.tier === 'NetworkPolicy') {
        if (p.isolates[direction]) nps.push(p);
      } else baselines.push(p);
    }
    // Lower priority value first; equal priorities are undefined upstream (lint reports
    // them); weir breaks the tie by name so that the result is at least deterministic.
    admins.sort((a, b) => a.priority - b.priority || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    nps.sort((a, b) => (a.key < b.key ? -1 : 1));
    const rules = (ps: CompiledPolicy[]): CompiledRule[] => ps.flatMap((p) => p[direction]);
    const all = [...admins, ...nps, ...baselines];
    // The analyzer's view, only where a policy in doubt applies (see DirectionProgram.doubtful).
    const withDoubts = (ps: CompiledPolicy[]): CompiledRule[] => ps.flatMap((p) => (p.doubtful ?? p)[direction]);
    const doubtful = all.some((p) => p.doubtful !== undefined || p.doubt !== undefined)
      ? {
          admin: withDoubts(admins),
          isolatingPolicies: nps.filter((p) => p.doubt === undefined).map((p) => p.key),
          maybeIsolating: nps.flatMap((p) => (p.doubt !== undefined ? [{ policy: p.key, reason: p.doubt }] : [])),
          networkPolicy: withDoubts(nps),
          baseline: withDoubts(baselines),
        }
      : undefined;
    return makeProgram(
      rules(admins),
      nps.map((p) => p.key),
      rules(nps),
      rules(baselines),
      doubtful,
    );
  }

  /** Every rule of every policy, for renderers and lint. */
  allRules(): CompiledRule[] {
    return [...this.policies.values()].flatMap((p) => [...p.ingress, ...p.egress]);
  }
}
