// The per-node agent: desired state → engine → renderer → applier, and the status it publishes
// (src/agent/status.ts). `NodeAgent` is the in-process core; the lab runs one per emulated node
// (src/lab/agent.ts: in-process hooks, and the `weir agent` process).
//
// It consumes a cluster source (src/source) batch by batch: the engine's incremental handlers
// take the events (applyEventsToEngine), so a pod add costs a pod upsert and an element-only
// transaction (render/elements.ts), and a policy change a render and a partial sync.
//
// Restart: the agent keeps no state on disk besides its status; a new agent does an atomic
// full replace from the sources, so nothing is lost and nothing is left half-applied.

import { join } from 'node:path';
import type { Cluster, Pod } from '../model/cluster.js';
import { formatDiagnostic, type Diagnostic } from '../model/diagnostics.js';
import { PolicyEngine } from '../policy/engine.js';
import type { CompiledRule } from '../policy/rules.js';
import { Applier, nftRunner, type NftRunner } from '../nft/apply.js';
import { namedHooksSupported, netlinkElementWriter } from '../nft/element-writer.js';
import { interfaceIndexes, sourceCheckInForce, strictSourceCheck } from '../nft/netlink-socket.js';
import { namedEgress, patchPods, renderRuleset, type LocalPod } from '../render/render.js';
import { membershipChanges } from '../render/filter.js';
import { ReasonLedger } from '../render/reason-ledger.js';
import { IdentityChainCache } from '../render/identity-chains.js';
import type { Identity } from '../policy/cache.js';
import { planServices, selectsPod, serviceWeightPatch, type ServicesInput } from '../render/services.js';
import { chainPatches, patchElements } from '../render/elements.js';
import type { Ruleset } from '../render/ruleset.js';
import type { PolicyOnlyOptions } from '../render/policy-only.js';
import { applyEventsToEngine } from '../source/engine.js';
import { diffSnapshots, EMPTY_SNAPSHOT } from '../source/diff.js';
import { snapshotOfCluster } from '../source/files.js';
import type { ClusterEvent, ClusterSnapshot } from '../source/types.js';
import { sweepConntrack } from './conntrack.js';
import type { ServiceRuntime } from './lb-loop.js';
import { LocalIdentities } from './local-identities.js';
import { podsAfter, podsBefore } from './pod-states.js';
import { REASONS_FILE, writeAgentStatus, writeJsonAtomic, type AgentStatus } from './status.js';

export type { AgentStatus };

/** A pod whose veth has no interface index (not looked up, or not found). */
const unresolved = (p: LocalPod): p is LocalPod & { hostVeth: string } => p.hostVeth !== undefined && p.hostVethIndex === undefined;
/** The veths of `pods` that have no interface index. */
const unresolvedVeths = (pods: Iterable<LocalPod>): string[] => [...pods].filter(unresolved).map((p) => p.hostVeth);

export interface NodeAgentOptions {
  readonly node: string;
  /** Namespace where `nft` and `conntrack` run; undefined: the current one. */
  readonly netns?: string;
  readonly runner?: NftRunner;
  /**
   * Element changes (pod add/remove) as one netlink batch instead of `nft -f` (default: on,
   * unless a custom `runner` is given, which then sees every change).
   */
  readonly netlinkElements?: boolean;
  /** Flush conntrack entries of connections that are no longer allowed. */
  readonly strict?: boolean;
  /** Where agent-<node>.json and reasons.json go; nothing is written when absent. */
  readonly statusDir?: string;
  readonly log?: (line: string) => void;
  /** nft wildcard of the node's pod interfaces: fail closed for pods not synced yet (see RenderInput). */
  readonly podInterfaces?: string;
  /** Policy-only mode beside a CNI: pods matched by address on forward, input and output (render/policy-only.ts). */
  readonly policyOnly?: PolicyOnlyOptions;
  /** Where Services with a selector get their endpoints (src/lb/endpoints.ts; a Kubernetes node: `slices`). */
  readonly serviceEndpoints?: 'pods' | 'slices';
  /**
   * Anti-spoofing of established packets (without `podInterfaces`) by a source chain on each
   * pod veth (RenderInput.sourceChains) rather than the kernel's strict reverse-path filter.
   * Default: on when the kernel keeps netdev hooks by name (Linux 6.16+, probed once) and
   * element changes go by netlink; false keeps the reverse-path filter.
   */
  readonly sourceChains?: boolean;
}

/** One batch of a cluster source, with what only the node knows. */
export interface AgentBatch {
  /** Source events, in order (src/source). */
  readonly events: readonly ClusterEvent[];
  /** This node's pods after the batch (veth and address overrides). */
  readonly localPods: readonly LocalPod[];
  /** Diagnostics of the source's input (reported in the status). */
  readonly diagnostics?: readonly Diagnostic[];
  /** The desired generation the batch was computed from (reported in the status). */
  readonly desiredGeneration?: number;
  /** The source's snapshot after the batch, when it has one: lets a later `sync(cluster)` diff from it. */
  readonly snapshot?: ClusterSnapshot;
}

/** A snapshot with other pods (its EndpointSlices are not recomputed: the filter does not read them). */
function withPods(s: ClusterSnapshot, pods: readonly Pod[]): ClusterSnapshot {
  return { cluster: { ...s.cluster, pods }, endpointSlices: s.endpointSlices };
}

export class NodeAgent {
  readonly engine = new PolicyEngine();
  readonly applier: Applier;
  /** The snapshot of the last whole-state sync (or batch that carried one), kept up to date by pod events. */
  private synced: ClusterSnapshot | undefined;
  private generation = 0;
  private lastReasons = '';
  private lastReasonsTable: unknown;
  last: AgentStatus | undefined;
  lastRuleset: Ruleset | undefined;
  private lastLocal: Set<string> | undefined;
  private lastLocalPods = new Map<string, LocalPod>();
  /** Pod events since `synced` was last brought up to date (key → pod, undefined: removed); see snapshot(). */
  private podEdits = new Map<string, Pod | undefined>();
  private readonly localIds = new LocalIdentities();
  private lastDiagnostics: readonly Diagnostic[] = [];
  private desiredGeneration: number | undefined;
  private policyVersion = 0;
  private namedCache: { policies: number; version: number; rules: CompiledRule[] } | undefined;
  /** Health, drains and adaptive factors from the balancing loop (src/agent/lb-loop.ts). */
  private lbRuntime: ServiceRuntime | undefined;
  private applying: Promise<unknown> = Promise.resolve();

  /** How the change being applied was computed (see AgentStatus.change). */
  private change: NonNullable<AgentStatus['change']> = 'full';
  /**
   * Changes applied so far, by how they were computed; `full` is the fallback (every set
   * filled from every pod, every reason collected) and should stay rare.
   */
  readonly changes = { elements: 0, chains: 0, full: 0 };
  /** The reasons, kept per identity between policy changes (render/reason-ledger.ts). */
  private reasons: ReasonLedger | undefined;
  /** The node's identity chains between renders (render/identity-chains.ts); emptied by a full render. */
  readonly chainCache = new IdentityChainCache();

  private readonly netlinkElements: boolean;
  private sourceChainsOn: boolean | undefined;

  constructor(private readonly opts: NodeAgentOptions) {
    this.netlinkElements = opts.netlinkElements ?? opts.runner === undefined;
    this.applier = new Applier(opts.runner ?? nftRunner(opts.netns), this.netlinkElements ? netlinkElementWriter(opts.netns) : undefined);
  }

  /** NodeAgentOptions.sourceChains, decided on first need (the probe is one netlink batch). */
  get sourceChains(): boolean {
    if (this.sourceChainsOn === undefined) {
      const wanted = this.opts.podInterfaces === undefined && !this.opts.policyOnly;
      this.sourceChainsOn = wanted && (this.opts.sourceChains ?? (this.netlinkElements && namedHooksSupported(this.opts.netns)));
      if (wanted) this.logOnce(`anti-spoofing of established packets: ${this.sourceChainsOn ? 'a source chain per pod veth (table inet weir_src)' : `the kernel's strict reverse-path filter per pod veth${this.opts.sourceChains === false ? '' : ' (this kernel does not keep netdev hooks by name, or netlink is off)'}`}`);
    }
    return this.sourceChainsOn;
  }

  /** Releases the applier's netlink socket (it would close itself when idle). */
  close(): void {
    this.applier.close();
  }

  /**
   * Consumes one batch of source events: the engine's incremental handlers take the events
   * (applyEventsToEngine), then the ruleset is patched (pods of known identities coming and
   * going: element changes only) or rendered, and applied in one transaction.
   */
  async apply(batch: AgentBatch): Promise<AgentStatus> {
    const t0 = performance.now();
    const identitiesBefore = new Map(this.engine.cache.identities);
    const podsWere = podsBefore(this.engine, batch.events);
    const changes = applyEventsToEngine(this.engine, batch.events);
    if (changes.other) this.policyVersion++;
    const policies = changedPolicies(batch.events);
    // Namespace labels move identities in and out of namespace-selector groups, node labels
    // change node groups: the sets a render could reuse are no longer current.
    const topology = batch.events.some((e) => e.kind === 'Namespace' || e.kind === 'Node');
    if (policies.size > 0 || topology) this.reasons = undefined;
    else if (this.reasons) this.trackIdentities(identitiesBefore);
    this.synced = batch.snapshot;
    this.podEdits.clear();
    const localPods = this.withInterfaces(batch.localPods);
    const localKeys = new Set(localPods.map((p) => p.key));
    const locals = new Map(localPods.map((p) => [p.key, p]));
    // Replicas coming and going: patch elements instead of re-rendering (same result, see
    // patchPods). Only when the local pods changed by exactly those pods (none moved nodes).
    // Services and EndpointSlices change the service NAT section: rendered (the applier still
    // sends only the difference).
    const applied = this.applier.applied;
    let patched: Ruleset | undefined;
    if (applied && !changes.other && !changes.services && this.lastLocal) {
      const expectedLocal = new Set(this.lastLocal);
      for (const p of changes.removed) expectedLocal.delete(`${p.namespace}/${p.name}`);
      for (const p of changes.added) if (localKeys.has(`${p.namespace}/${p.name}`)) expectedLocal.add(`${p.namespace}/${p.name}`);
      // A pod whose veth's index changed (the interface came, went or was made anew) changes
      // anti-spoofing elements the pod patch does not compute: rendered.
      const sameInterfaces = localPods.every((p) => this.lastLocalPods.get(p.key)?.hostVethIndex === p.hostVethIndex || !this.lastLocalPods.has(p.key));
      if (sameInterfaces && expectedLocal.size === localKeys.size && [...localKeys].every((k) => expectedLocal.has(k))) {
        patched = patchPods(applied, this.engine, changes, { removedIdentities: changes.removedIdentities, removedGroups: changes.removedGroups, locals, localsBefore: this.lastLocalPods, identitiesBefore: new Set(identitiesBefore.keys()), namedEgressRules: this.namedEgress(), podInterfaces: this.opts.podInterfaces, sourceChains: this.sourceChains });
      }
    }
    const services = this.services();
    // With Services, a pod that a Service selects can move endpoints too: render (the applier
    // still sends only the difference) instead of the policy-only pod patch.
    const endpointsMoved = services !== undefined && this.opts.serviceEndpoints !== 'slices' && [...changes.added, ...changes.removed].some((p) => this.selectedByService(p));
    // A patch keeps the reasons of the ruleset it patched; the ledger has those of identities
    // that came or went elsewhere since.
    let ruleset = endpointsMoved || !patched ? undefined : this.reasons && patched.reasons !== this.reasons.table ? { ...patched, reasons: this.reasons.table } : patched;
    this.change = 'elements';
    if (!ruleset && applied && !topology) {
      // A local identity came or went, a pod changed, a policy changed: the pods' elements in
      // the cluster-wide sets are patched, and the chains of this node's identities rendered
      // on top of those sets (RenderReuse). Only what changed reaches the kernel.
      const membership = patchElements(applied, membershipChanges(this.engine, [...podsWere.values()].filter((m) => m !== undefined), podsAfter(this.engine, podsWere.keys()), this.namedEgress()));
      ruleset = renderRuleset({ engine: this.engine, localPods, reasons: this.ledger(), podInterfaces: this.opts.podInterfaces, sourceChains: this.sourceChains, policyOnly: this.opts.policyOnly, reuse: { sets: membership.sets, changedPolicies: policies }, chainCache: this.chainCache, ...(services ? { services } : {}) });
      this.change = 'chains';
    }
    if (!ruleset) {
      this.reasons = new ReasonLedger(this.engine);
      this.chainCache.clear();
      ruleset = renderRuleset({ engine: this.engine, localPods, reasons: this.reasons, chainCache: this.chainCache, podInterfaces: this.opts.podInterfaces, sourceChains: this.sourceChains, policyOnly: this.opts.policyOnly, ...(services ? { services } : {}) });
      this.change = 'full';
    }
    this.lastLocal = localKeys;
    this.lastLocalPods = locals;
    this.localIds.reset(localPods.map((p) => this.engine.identityOfPod(p.key)));
    if (batch.diagnostics) this.lastDiagnostics = batch.diagnostics;
    if (batch.desiredGeneration !== undefined) this.desiredGeneration = batch.desiredGeneration;
    return this.applyRuleset(ruleset, performance.now() - t0);
  }

  /** The reasons ledger, built when policies changed since it was last (as collectReasons would). */
  private ledger(): ReasonLedger {
    return (this.reasons ??= new ReasonLedger(this.engine));
  }

  /** Identities that came or went since `before`: their default-deny reasons with them. */
  private trackIdentities(before: ReadonlyMap<number, Identity>): void {
    const ledger = this.reasons as ReasonLedger;
    const now = this.engine.cache.identities;
    for (const [id, identity] of before) if (now.get(id) !== identity) ledger.identityRemoved(id);
    for (const [id, identity] of now) if (before.get(id) !== identity) ledger.identityAdded(this.engine, id);
  }

  /**
   * Whole-state convenience (tests, benchmarks, in-process hooks): the events that bring the
   * agent from the state it last synced to `cluster` (src/source/diff.ts), applied as a batch.
   */
  async sync(cluster: Cluster, localPods: readonly LocalPod[], diagnostics: readonly Diagnostic[] = [], desiredGeneration?: number): Promise<AgentStatus> {
    if (this.synced === undefined && this.engine.pods.size + this.engine.policies.size + this.engine.cache.nodes.size + this.engine.cache.namespaces.size > 0) {
      throw new Error(`weir agent ${this.opts.node}: sync(cluster) after a batch without a snapshot: the state to diff from is unknown`);
    }
    const next = snapshotOfCluster(cluster);
    const events = diffSnapshots(this.snapshot() ?? EMPTY_SNAPSHOT, next);
    return this.apply({ events, localPods, diagnostics, desiredGeneration, snapshot: next });
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
    const old = this.engine.pods.get(key);
    if (old) {
      // A replacement: an update event (the pod's identity may change), rendered in full.
      if (this.synced) this.podEdits.set(key, pod);
      return this.apply({ events: [{ type: 'updated', kind: 'Pod', object: pod, old }], localPods: this.localList(key, local), snapshot: this.snapshot() });
    }
    // Everything below costs what the pod changes, not what the node holds (no copy of the
    // cluster's pods or of the local pods per event): the pod add goal is 10 ms at 100k pods.
    this.engine.upsertPod(pod);
    if (this.synced) this.podEdits.set(key, pod);
    const localsBefore = new Map<string, LocalPod>();
    const identity = this.engine.identityOfPod(key);
    if (local) {
      local = this.withInterfaces([local])[0];
      this.lastLocalPods.set(key, local);
      this.lastLocal?.add(key);
      if (identity) this.localIds.change(identity, 1);
    }
    const applied = this.applier.applied;
    // The identity existed before when the pod is not its only one.
    const known = identity && identity.pods.size > 1 ? new Set([identity.id]) : new Set<number>();
    const patched = applied ? patchPods(applied, this.engine, { added: [pod], removed: [] }, { removedIdentities: new Map(), locals: this.lastLocalPods, localsBefore, identitiesBefore: known, namedEgressRules: this.namedEgress(), podInterfaces: this.opts.podInterfaces, sourceChains: this.sourceChains }) : undefined;
    return this.afterEvent(this.withEndpoints(patched, pod), t0);
  }

  /** Event path for a pod that went away (see podAdded). */
  async podRemoved(namespace: string, name: string): Promise<AgentStatus> {
    const t0 = performance.now();
    const key = `${namespace}/${name}`;
    const pod = this.engine.pods.get(key);
    const identity = this.engine.identityOfPod(key);
    if (!pod || !identity) return this.applyRuleset(this.applier.applied ?? this.renderNow(), performance.now() - t0);
    this.engine.removePod(namespace, name);
    if (this.synced) this.podEdits.set(key, undefined);
    const localsBefore = new Map<string, LocalPod>();
    const wasLocal = this.lastLocalPods.get(key);
    if (wasLocal) {
      localsBefore.set(key, wasLocal);
      this.lastLocalPods.delete(key);
      this.lastLocal?.delete(key);
      this.localIds.change(identity, -1);
    }
    const applied = this.applier.applied;
    const patched =
      applied && this.engine.cache.identities.has(identity.id)
        ? patchPods(applied, this.engine, { added: [], removed: [pod] }, { removedIdentities: new Map([[key, identity]]), locals: this.lastLocalPods, localsBefore, identitiesBefore: new Set([identity.id]), namedEgressRules: this.namedEgress(), sourceChains: this.sourceChains })
        : undefined;
    return this.afterEvent(this.withEndpoints(patched, pod), t0);
  }

  /**
   * `pods` with their veths' interface indexes, resolved in the node's namespace where the
   * caller gave none (anti-spoofing matches by index, see LocalPod.hostVethIndex). A veth that
   * does not exist stays without one: pendingInterfaces() names it, refreshInterfaces() retries.
   */
  private withInterfaces(pods: readonly LocalPod[]): LocalPod[] {
    if (this.opts.policyOnly) return [...pods];
    const names = unresolvedVeths(pods);
    if (names.length === 0) return [...pods];
    let found = new Map<string, number>();
    let checked = new Map<string, boolean>();
    try {
      found = interfaceIndexes(this.opts.netns, names);
      // Each veth found gets the kernel's strict reverse-path filter: then weir's own
      // anti-spoofing rule need only see new connections (LocalPod.hostVethSourceChecked).
      // Not with the pod-interface wildcard: its guard checks every packet anyway (not ready);
      // nor with source chains, which check every packet on the veth's ingress hook.
      if (this.opts.podInterfaces === undefined && !this.sourceChains) checked = strictSourceCheck(this.opts.netns, found.keys());
    } catch (error) {
      this.logOnce(`cannot resolve pod interfaces (${error instanceof Error ? error.message : String(error)}): their pods have no anti-spoofing elements`);
    }
    const out = pods.map((p) => {
      if (!unresolved(p)) return p;
      const index = found.get(p.hostVeth);
      return index === undefined ? p : { ...p, hostVethIndex: index, hostVethSourceChecked: checked.get(p.hostVeth) === true };
    });
    const unchecked = this.opts.podInterfaces === undefined && !this.sourceChains ? [...found.keys()].filter((name) => checked.get(name) !== true) : [];
    if (unchecked.length > 0) this.logOnce(`strict reverse-path filter not in force on ${unchecked.slice(0, 5).join(', ')}${unchecked.length > 5 ? `, … (${unchecked.length})` : ''} (net.ipv4.conf.all.rp_filter is 2, or the write failed): anti-spoofing checks every packet in nftables`);
    const missing = unresolvedVeths(out);
    if (missing.length > 0) this.logOnce(`pod interface${missing.length > 1 ? 's' : ''} not found in the node's namespace: ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? `, … (${missing.length})` : ''} — no anti-spoofing elements until ${missing.length > 1 ? 'they appear' : 'it appears'}${this.opts.podInterfaces ? ' (not ready: dropped)' : ''}`);
    return out;
  }

  private logged = '';
  private logOnce(line: string): void {
    if (line === this.logged) return;
    this.logged = line;
    this.opts.log?.(`weir agent ${this.opts.node}: ${line}`);
  }

  /** Local pods' veths that had no interface in the node's namespace when last rendered. */
  pendingInterfaces(): string[] {
    return unresolvedVeths(this.lastLocalPods.values());
  }

  /**
   * Has any local pod's veth an index other than the one its elements hold — it appeared, went,
   * or was made anew under the same name — or lost the strict reverse-path filter the ruleset
   * relies on? One if_nametoindex and one sysctl read per local veth (microseconds).
   */
  interfacesChanged(): boolean {
    if (this.opts.policyOnly) return false;
    const names = [...this.lastLocalPods.values()].flatMap((p) => (p.hostVeth !== undefined ? [p.hostVeth] : []));
    if (names.length === 0) return false;
    let now: Map<string, number>;
    try {
      now = interfaceIndexes(this.opts.netns, names);
    } catch {
      return false;
    }
    if ([...this.lastLocalPods.values()].some((p) => p.hostVeth !== undefined && now.get(p.hostVeth) !== p.hostVethIndex)) return true;
    // The kernel's source check the ruleset relies on (LocalPod.hostVethSourceChecked), turned
    // off since: looked up again, the veth gets it back, or the rule checks every packet again.
    const relied = [...this.lastLocalPods.values()].flatMap((p) => (p.hostVethSourceChecked === true && p.hostVeth !== undefined ? [p.hostVeth] : []));
    if (relied.length === 0) return false;
    try {
      const inForce = sourceCheckInForce(this.opts.netns, relied);
      return relied.some((name) => inForce.get(name) !== true);
    } catch {
      return false;
    }
  }

  /**
   * When interfacesChanged(), looks the local veths up again and applies the anti-spoofing
   * elements that follow (a render of the node's chains, as any batch). Undefined when nothing
   * changed.
   */
  async refreshInterfaces(): Promise<AgentStatus | undefined> {
    if (this.synced === undefined || !this.interfacesChanged()) return undefined;
    // The veths' indexes are forgotten, so that the batch looks each of them up again.
    const again = [...this.lastLocalPods.values()].map(({ hostVethIndex, hostVethSourceChecked, ...p }): LocalPod => (p.hostVeth === undefined && hostVethIndex !== undefined ? { ...p, hostVethIndex, ...(hostVethSourceChecked !== undefined ? { hostVethSourceChecked } : {}) } : p));
    return this.apply({ events: [], localPods: again, snapshot: this.snapshot() });
  }

  private localList(replace: string, local: LocalPod | undefined): LocalPod[] {
    const out = [...this.lastLocalPods.values()].filter((p) => p.key !== replace);
    if (local) out.push(local);
    return out;
  }

  private renderNow(): Ruleset {
    this.change = 'full';
    const services = this.services();
    this.reasons = new ReasonLedger(this.engine);
    this.chainCache.clear();
    return renderRuleset({ engine: this.engine, localPods: [...this.lastLocalPods.values()], reasons: this.reasons, chainCache: this.chainCache, podInterfaces: this.opts.podInterfaces, sourceChains: this.sourceChains, policyOnly: this.opts.policyOnly, ...(services ? { services } : {}) });
  }

  /**
   * A pod a Service selects joins or leaves its endpoints: for Services whose weight maps hold
   * the endpoints (no affinity: src/render/services.ts) that is weight-map elements, patched
   * after the pod's policy elements and applied with them as one transaction. Undefined (a full
   * render) when more than elements would change (a Service gaining its first endpoint, affinity).
   */
  private withEndpoints(patched: Ruleset | undefined, pod: Pod): Ruleset | undefined {
    if (!patched || !this.selectedByService(pod)) return patched;
    const services = this.services();
    if (!services) return patched;
    const only = new Set(this.synced?.cluster.services.filter((s) => selectsPod([s], pod)).map((s) => `${s.namespace}/${s.name}`));
    const moved = serviceWeightPatch(patched, services, only);
    return moved ? chainPatches(patched, moved) : undefined;
  }

  /** A Service selects the pod: its change may move endpoints (the service NAT section), not only elements. */
  private selectedByService(pod: Pod): boolean {
    return this.synced !== undefined && selectsPod(this.synced.cluster.services, pod);
  }

  /** The last synced snapshot with the pod events since (merged here, only when read). */
  private snapshot(): ClusterSnapshot | undefined {
    if (this.synced && this.podEdits.size > 0) {
      const edits = this.podEdits;
      const pods = this.synced.cluster.pods.filter((p) => !edits.has(`${p.namespace}/${p.name}`));
      for (const p of edits.values()) if (p) pods.push(p);
      this.synced = withPods(this.synced, pods);
    }
    this.podEdits = new Map();
    return this.synced;
  }

  /** The service NAT section's input for this node, when the cluster has Services. */
  private services(): ServicesInput | undefined {
    if (!this.synced || this.synced.cluster.services.length === 0) return undefined;
    const snap = this.snapshot() as ClusterSnapshot;
    return planServices(snap.cluster, snap.endpointSlices, this.opts.node, { ...this.lbRuntime, podInterfaces: this.opts.podInterfaces, endpointsFrom: this.opts.serviceEndpoints });
  }

  /** The node's Services without run-time inputs (the balancing loop measures their endpoints). */
  servicesInput(): ServicesInput | undefined {
    if (!this.synced || this.synced.cluster.services.length === 0) return undefined;
    const snap = this.snapshot() as ClusterSnapshot;
    return planServices(snap.cluster, snap.endpointSlices, this.opts.node, { podInterfaces: this.opts.podInterfaces, endpointsFrom: this.opts.serviceEndpoints });
  }

  /**
   * The balancing loop's inputs: when only weights change, an element patch of the `lb_*`
   * maps (established connections stay where conntrack put them); otherwise a render.
   * `only`: the Services (`ns/name`) whose inputs changed (the others are not rendered).
   */
  async setServiceRuntime(runtime: ServiceRuntime, only?: ReadonlySet<string>): Promise<AgentStatus | undefined> {
    this.lbRuntime = runtime;
    // The patch is computed inside the apply queue, against exactly what the kernel holds.
    const next = this.applying.then(async () => {
      const applied = this.applier.applied;
      const services = this.services();
      if (!applied || !services) return undefined;
      const t0 = performance.now();
      const patched = serviceWeightPatch(applied, services, only);
      if (patched?.patch && patched.patch.added.size === 0 && patched.patch.removed.size === 0) return undefined;
      return this.applyNow(patched ?? this.renderNow(), performance.now() - t0);
    });
    this.applying = next.catch(() => undefined);
    return next;
  }

  /** Named-port egress rules change only with policies; cached per policy set. */
  private namedEgress(): CompiledRule[] {
    if (this.namedCache?.policies !== this.engine.policies.size || this.namedCache.version !== this.policyVersion) {
      this.namedCache = { policies: this.engine.policies.size, version: this.policyVersion, rules: namedEgress(this.engine) };
    }
    return this.namedCache.rules;
  }

  private async afterEvent(patched: Ruleset | undefined, t0: number): Promise<AgentStatus> {
    this.lastLocal ??= new Set(this.lastLocalPods.keys());
    this.change = 'elements';
    return this.applyRuleset(patched ?? this.renderNow(), performance.now() - t0);
  }

  /** One apply at a time: the balancing loop and the sources both apply. */
  private applyRuleset(ruleset: Ruleset, renderMs: number): Promise<AgentStatus> {
    const next = this.applying.then(() => this.applyNow(ruleset, renderMs));
    this.applying = next.catch(() => undefined);
    return next;
  }

  private async applyNow(ruleset: Ruleset, renderMs: number): Promise<AgentStatus> {
    const diagnostics = this.lastDiagnostics;
    const localPods = this.lastLocalPods;
    const desiredGeneration = this.desiredGeneration;
    const result = await this.applier.apply(ruleset);
    this.changes[this.change]++;
    let conntrackDeleted = 0;
    if (result.ok && this.opts.strict && result.narrowed) {
      const local = new Set([...localPods.values()].map((p) => p.ip ?? this.engine.pods.get(p.key)?.ip).filter((ip): ip is string => ip !== undefined));
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
      localPods: localPods.size,
      diagnostics: diagnostics.length,
      diagnosticErrors: errors.slice(0, 20),
      conntrackDeleted,
      ...(result.via ? { via: result.via } : {}),
      rendered: this.change === 'full',
      change: this.change,
      ...(result.fallback ? { fallback: result.fallback } : {}),
      identities: this.localIds.list().slice(),
    };
    this.last = status;
    if (result.fallback) this.opts.log?.(`weir agent ${this.opts.node}: element batch not applied, ${result.ok ? 'resynced through nft' : 'nft failed too'}: ${result.fallback}`);
    if (!result.ok) this.opts.log?.(`weir agent ${this.opts.node}: apply failed, previous ruleset kept: ${result.error ?? ''}`);
    if (this.opts.statusDir) {
      await writeAgentStatus(this.opts.statusDir, status);
      // The same table object is the same table (the reasons ledger makes a new one per change).
      const reasons = ruleset.reasons === this.lastReasonsTable ? this.lastReasons : JSON.stringify(ruleset.reasons);
      if (result.ok) this.lastReasonsTable = ruleset.reasons;
      if (result.ok && reasons !== this.lastReasons) {
        await writeJsonAtomic(join(this.opts.statusDir, REASONS_FILE), ruleset.reasons);
        this.lastReasons = reasons;
      }
    }
    return status;
  }
}

/** The policies a batch adds, changes or removes (engine keys, as a rule's `ref.policy`). */
function changedPolicies(events: readonly ClusterEvent[]): Set<string> {
  const out = new Set<string>();
  for (const e of events) {
    if (e.kind === 'NetworkPolicy') out.add(`NetworkPolicy ${e.object.namespace}/${e.object.name}`);
    else if (e.kind === 'AdminNetworkPolicy') out.add(`AdminNetworkPolicy ${e.object.name}`);
    else if (e.kind === 'BaselineAdminNetworkPolicy') {
      out.add(`BaselineAdminNetworkPolicy ${e.object.name}`);
      if (e.type === 'updated' && e.old) out.add(`BaselineAdminNetworkPolicy ${e.old.name}`);
    }
  }
  return out;
}
