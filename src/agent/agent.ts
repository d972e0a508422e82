// The per-node agent: desired state → engine → renderer → applier, and the status it publishes
// (src/agent/status.ts). `NodeAgent` is the in-process core; the lab runs one per emulated node
// (src/lab/agent.ts: in-process hooks, and the `weir agent` process).
//
// The engine is updated incrementally from the difference between the previous and the new
// desired cluster, so a pod add costs a pod upsert, a render and an element-only transaction.
//
// Restart: the agent keeps no state on disk besides its status; a new agent does an atomic
// full replace from the sources, so nothing is lost and nothing is left half-applied.

import { join } from 'node:path';
import { emptyCluster, type Cluster, type Namespace, type Node, type Pod } from '../model/cluster.js';
import { formatDiagnostic, type Diagnostic } from '../model/diagnostics.js';
import { PolicyEngine } from '../policy/engine.js';
import type { Identity } from '../policy/cache.js';
import type { CompiledRule } from '../policy/rules.js';
import { Applier, nftRunner, type NftRunner } from '../nft/apply.js';
import { collectReasons } from '../render/reasons.js';
import { namedEgress, patchPods, renderRuleset, type LocalPod } from '../render/render.js';
import { planServices, type ServicesInput } from '../render/services.js';
import type { Ruleset } from '../render/ruleset.js';
import { sweepConntrack } from './conntrack.js';
import { REASONS_FILE, writeAgentStatus, writeJsonAtomic, type AgentStatus } from './status.js';

export type { AgentStatus };

export interface NodeAgentOptions {
  readonly node: string;
  /** Namespace where `nft` and `conntrack` run; undefined: the current one. */
  readonly netns?: string;
  readonly runner?: NftRunner;
  /** Flush conntrack entries of connections that are no longer allowed. */
  readonly strict?: boolean;
  /** Where agent-<node>.json and reasons.json go; nothing is written when absent. */
  readonly statusDir?: string;
  readonly log?: (line: string) => void;
  /** nft wildcard of the node's pod interfaces: fail closed for pods not synced yet (see RenderInput). */
  readonly podInterfaces?: string;
}

function same<T>(a: T, b: T): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

function sameLabels(a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>): boolean {
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  return ka.every((k) => a[k] === b[k]);
}

/**
 * Pod equality without serialising: a full sync compares every pod of the cluster, and
 * JSON.stringify of 2×10k pods alone cost tens of milliseconds per sync.
 */
export function samePod(a: Pod, b: Pod): boolean {
  return (
    a.namespace === b.namespace &&
    a.name === b.name &&
    a.ip === b.ip &&
    a.node === b.node &&
    a.hostNetwork === b.hostNetwork &&
    a.workload === b.workload &&
    sameLabels(a.labels, b.labels) &&
    a.ports.length === b.ports.length &&
    a.ports.every((p, i) => p.name === b.ports[i].name && p.port === b.ports[i].port && p.protocol === b.ports[i].protocol) &&
    (a.source === b.source || same(a.source, b.source))
  );
}

export interface EngineChanges {
  /** Anything besides pods being added or removed (policies, namespaces, nodes, changed pods). */
  readonly other: boolean;
  readonly added: Pod[];
  readonly removed: Pod[];
  /** Identity each removed pod had, captured before removal. */
  readonly removedIdentities: Map<string, Identity>;
}

/** Brings `engine` from `prev` to `next` with incremental calls only; reports what changed. */
export function reconcileEngine(engine: PolicyEngine, prev: Cluster, next: Cluster): EngineChanges {
  let other = false;
  const diff = <T>(a: readonly T[], b: readonly T[], key: (x: T) => string, upsert: (x: T) => void, remove: (x: T) => void, isPods = false, eq: (x: T, y: T) => boolean = same) => {
    if (a === b) return;
    const old = new Map(a.map((x) => [key(x), x]));
    const now = new Map(b.map((x) => [key(x), x]));
    for (const [k, x] of now) {
      const o = old.get(k);
      if (o === x || (o && eq(o, x))) continue;
      if (o || !isPods) other = true;
      upsert(x);
      if (!o && isPods) added.push(x as Pod);
    }
    for (const [k, x] of old) {
      if (now.has(k)) continue;
      if (!isPods) other = true;
      remove(x);
    }
  };
  const added: Pod[] = [];
  const removed: Pod[] = [];
  const removedIdentities = new Map<string, Identity>();
  diff<Namespace>(prev.namespaces, next.namespaces, (n) => n.name, (n) => engine.upsertNamespace(n), (n) => engine.removeNamespace(n.name));
  diff<Node>(prev.nodes, next.nodes, (n) => n.name, (n) => engine.upsertNode(n), (n) => engine.removeNode(n.name));
  diff<Pod>(
    prev.pods,
    next.pods,
    (p) => `${p.namespace}/${p.name}`,
    (p) => engine.upsertPod(p),
    (p) => {
      const key = `${p.namespace}/${p.name}`;
      const id = engine.identityOfPod(key);
      if (id) removedIdentities.set(key, id);
      removed.push(p);
      engine.removePod(p.namespace, p.name);
    },
    true,
    samePod,
  );
  diff(prev.networkPolicies, next.networkPolicies, (p) => `${p.namespace}/${p.name}`, (p) => engine.upsertNetworkPolicy(p), (p) => engine.removePolicy(`NetworkPolicy ${p.namespace}/${p.name}`));
  diff(prev.adminNetworkPolicies, next.adminNetworkPolicies, (p) => p.name, (p) => engine.upsertAdminNetworkPolicy(p), (p) => engine.removePolicy(`AdminNetworkPolicy ${p.name}`));
  if (prev.baselineAdminNetworkPolicy !== next.baselineAdminNetworkPolicy && !same(prev.baselineAdminNetworkPolicy, next.baselineAdminNetworkPolicy)) {
    engine.setBaselineAdminNetworkPolicy(next.baselineAdminNetworkPolicy);
    other = true;
  }
  return { other, added, removed, removedIdentities };
}

export class NodeAgent {
  readonly engine = new PolicyEngine();
  readonly applier: Applier;
  private current: Cluster = emptyCluster();
  private generation = 0;
  private lastReasons = '';
  last: AgentStatus | undefined;
  lastRuleset: Ruleset | undefined;
  private lastLocal: Set<string> | undefined;
  private lastLocalPods = new Map<string, LocalPod>();
  private lastDiagnostics: readonly Diagnostic[] = [];
  private desiredGeneration: number | undefined;
  private policyVersion = 0;
  private namedCache: { policies: number; version: number; rules: CompiledRule[] } | undefined;

  constructor(private readonly opts: NodeAgentOptions) {
    this.applier = new Applier(opts.runner ?? nftRunner(opts.netns));
  }

  /** Renders `cluster` for this node's `localPods` and applies it in one transaction. */
  async sync(cluster: Cluster, localPods: readonly LocalPod[], diagnostics: readonly Diagnostic[] = [], desiredGeneration?: number): Promise<AgentStatus> {
    const t0 = performance.now();
    const identitiesBefore = new Set(this.engine.cache.identities.keys());
    const changes = reconcileEngine(this.engine, this.current, cluster);
    if (changes.other) this.policyVersion++;
    this.current = cluster;
    const localKeys = new Set(localPods.map((p) => p.key));
    const locals = new Map(localPods.map((p) => [p.key, p]));
    // Replicas coming and going: patch elements instead of re-rendering (same result, see
    // patchPods). Only when the local pods changed by exactly those pods (none moved nodes).
    const applied = this.applier.applied;
    let patched: Ruleset | undefined;
    if (applied && !changes.other && this.lastLocal) {
      const expectedLocal = new Set(this.lastLocal);
      for (const p of changes.removed) expectedLocal.delete(`${p.namespace}/${p.name}`);
      for (const p of changes.added) if (localKeys.has(`${p.namespace}/${p.name}`)) expectedLocal.add(`${p.namespace}/${p.name}`);
      if (expectedLocal.size === localKeys.size && [...localKeys].every((k) => expectedLocal.has(k))) {
        patched = patchPods(applied, this.engine, changes, { removedIdentities: changes.removedIdentities, locals, localsBefore: this.lastLocalPods, identitiesBefore });
      }
    }
    const services = this.services();
    // With Services, a pod change can move endpoints too: render (the applier still sends
    // only the difference) instead of the policy-only pod patch.
    const ruleset = (services ? undefined : patched) ?? renderRuleset({ engine: this.engine, localPods, reasons: collectReasons(this.engine), podInterfaces: this.opts.podInterfaces, ...(services ? { services } : {}) });
    this.lastLocal = localKeys;
    this.lastLocalPods = locals;
    this.lastDiagnostics = diagnostics;
    if (desiredGeneration !== undefined) this.desiredGeneration = desiredGeneration;
    return this.applyRuleset(ruleset, performance.now() - t0);
  }

  /**
   * Event path for one pod that appeared (`local` when it runs on this node): an engine
   * upsert and the element changes its identity's group memberships imply — no cluster diff,
   * no render — in one small `nft -f` of element commands. Falls back to a full render when
   * the pod brings a new identity (new chains) or replaces a pod of the same name.
   */
  async podAdded(pod: Pod, local?: LocalPod): Promise<AgentStatus> {
    const t0 = performance.now();
    const key = `${pod.namespace}/${pod.name}`;
    if (this.engine.pods.has(key)) return this.sync({ ...this.current, pods: this.current.pods.map((p) => (`${p.namespace}/${p.name}` === key ? pod : p)) }, this.localList(key, local));
    this.engine.upsertPod(pod);
    this.current = { ...this.current, pods: [...this.current.pods, pod] };
    const localsBefore = this.lastLocalPods;
    if (local) this.lastLocalPods = new Map(this.lastLocalPods).set(key, local);
    const identity = this.engine.identityOfPod(key);
    const applied = this.applier.applied;
    // The identity existed before when the pod is not its only one.
    const known = identity && identity.pods.size > 1 ? new Set([identity.id]) : new Set<number>();
    const patched = applied && !this.services() ? patchPods(applied, this.engine, { added: [pod], removed: [] }, { removedIdentities: new Map(), locals: this.lastLocalPods, localsBefore, identitiesBefore: known, namedEgressRules: this.namedEgress() }) : undefined;
    return this.afterEvent(patched, t0);
  }

  /** Event path for a pod that went away (see podAdded). */
  async podRemoved(namespace: string, name: string): Promise<AgentStatus> {
    const t0 = performance.now();
    const key = `${namespace}/${name}`;
    const pod = this.engine.pods.get(key);
    const identity = this.engine.identityOfPod(key);
    if (!pod || !identity) return this.applyRuleset(this.applier.applied ?? this.renderNow(), performance.now() - t0);
    this.engine.removePod(namespace, name);
    this.current = { ...this.current, pods: this.current.pods.filter((p) => p.namespace !== namespace || p.name !== name) };
    const localsBefore = this.lastLocalPods;
    if (this.lastLocalPods.has(key)) {
      this.lastLocalPods = new Map(this.lastLocalPods);
      this.lastLocalPods.delete(key);
    }
    const applied = this.applier.applied;
    const patched =
      applied && this.engine.cache.identities.has(identity.id) && !this.services()
        ? patchPods(applied, this.engine, { added: [], removed: [pod] }, { removedIdentities: new Map([[key, identity]]), locals: this.lastLocalPods, localsBefore, identitiesBefore: new Set([identity.id]), namedEgressRules: this.namedEgress() })
        : undefined;
    return this.afterEvent(patched, t0);
  }

  private localList(replace: string, local: LocalPod | undefined): LocalPod[] {
    const out = [...this.lastLocalPods.values()].filter((p) => p.key !== replace);
    if (local) out.push(local);
    return out;
  }

  private renderNow(): Ruleset {
    const services = this.services();
    return renderRuleset({ engine: this.engine, localPods: [...this.lastLocalPods.values()], reasons: collectReasons(this.engine), podInterfaces: this.opts.podInterfaces, ...(services ? { services } : {}) });
  }

  /** The service NAT section's input for this node, when the cluster has Services. */
  private services(): ServicesInput | undefined {
    return this.current.services.length > 0 ? planServices(this.current, [], this.opts.node) : undefined;
  }

  /** Named-port egress rules change only with policies; cached per policy set. */
  private namedEgress(): CompiledRule[] {
    if (this.namedCache?.policies !== this.engine.policies.size || this.namedCache.version !== this.policyVersion) {
      this.namedCache = { policies: this.engine.policies.size, version: this.policyVersion, rules: namedEgress(this.engine) };
    }
    return this.namedCache.rules;
  }

  private async afterEvent(patched: Ruleset | undefined, t0: number): Promise<AgentStatus> {
    this.lastLocal = new Set(this.lastLocalPods.keys());
    return this.applyRuleset(patched ?? this.renderNow(), performance.now() - t0);
  }

  private async applyRuleset(ruleset: Ruleset, renderMs: number): Promise<AgentStatus> {
    const diagnostics = this.lastDiagnostics;
    const localPods = [...this.lastLocalPods.values()];
    const desiredGeneration = this.desiredGeneration;
    const result = await this.applier.apply(ruleset);
    let conntrackDeleted = 0;
    if (result.ok && this.opts.strict && result.narrowed) {
      const local = new Set(localPods.map((p) => p.ip ?? this.engine.pods.get(p.key)?.ip).filter((ip): ip is string => ip !== undefined));
      conntrackDeleted = await sweepConntrack(this.engine, this.opts.netns, local);
    }
    if (result.ok) this.lastRuleset = this.applier.applied;
    this.generation++;
    const errors = diagnostics.filter((d) => d.severity === 'error').map(formatDiagnostic);
    const status: AgentStatus = {
      node: this.opts.node,
      pid: process.pid,
      generation: this.generation,
      ...(desiredGeneration !== undefined ? { desiredGeneration } : {}),
      lastApplyOk: result.ok,
      error: result.error,
      updatedAt: new Date().toISOString(),
      mode: result.mode,
      renderMs: Math.round(renderMs * 10) / 10,
      applyMs: Math.round(result.applyMs * 10) / 10,
      rules: result.stats.rules,
      chains: result.stats.chains,
      sets: result.stats.sets,
      setElements: result.stats.elements,
      counters: result.stats.counters,
      localPods: localPods.length,
      diagnostics: diagnostics.length,
      diagnosticErrors: errors.slice(0, 20),
      conntrackDeleted,
    };
    this.last = status;
    if (!result.ok) this.opts.log?.(`weir agent ${this.opts.node}: apply failed, previous ruleset kept: ${result.error ?? ''}`);
    if (this.opts.statusDir) {
      await writeAgentStatus(this.opts.statusDir, status);
      const reasons = JSON.stringify(ruleset.reasons);
      if (result.ok && reasons !== this.lastReasons) {
        await writeJsonAtomic(join(this.opts.statusDir, REASONS_FILE), ruleset.reasons);
        this.lastReasons = reasons;
      }
    }
    return status;
  }
}
