// The per-node agent: desired state (lab state + manifests) → engine → renderer → applier.
//
// `NodeAgent` is the in-process core (tests, the lab's hooks); `runAgent` is the process the
// CLI runs as `weir agent --lab-dir DIR --node NAME`: it watches the lab directory and
// re-syncs within a second of any change. The engine is updated incrementally from the
// difference between the previous and the new desired cluster, so a pod add costs a pod
// upsert, a render and an element-only transaction.
//
// Restart: the agent keeps no state on disk besides its status; a new agent does an atomic
// full replace from the sources, so nothing is lost and nothing is left half-applied.

import { watch, type FSWatcher } from 'node:fs';
import { readFile, rename, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { emptyCluster, type Cluster, type Namespace, type Node, type Pod } from '../model/cluster.js';
import { hasErrors, formatDiagnostic, type Diagnostic } from '../model/diagnostics.js';
import { PolicyEngine } from '../policy/engine.js';
import type { Identity } from '../policy/cache.js';
import { loadManifests } from '../load/index.js';
import { HOST_VETH_PATTERN as LAB_POD_INTERFACES } from '../lab/names.js';
import { readState, type LabNode, type LabState } from '../lab/state.js';
import { Applier, nftRunner, type ApplyResult, type NftRunner } from '../nft/apply.js';
import { netlinkElementWriter } from '../nft/element-writer.js';
import { sweepConntrack } from './conntrack.js';
import { collectReasons } from '../render/reasons.js';
import { namedEgress, patchPods, renderRuleset, type LocalPod } from '../render/render.js';
import type { CompiledRule } from '../policy/rules.js';
import type { Ruleset } from '../render/ruleset.js';

export const REASONS_FILE = 'reasons.json';
export const DESIRED_FILE = 'desired.yaml';
export const DESIRED_DIR = 'desired';
/** Written by `weir lab apply` after every change of the desired folder (src/lab/supervisor.ts). */
export const GENERATION_FILE = '.generation';
export const statusFile = (node: string): string => `agent-${node}.json`;

/** agent-<node>.json */
export interface AgentStatus {
  readonly node: string;
  readonly pid: number;
  readonly generation: number;
  /**
   * The desired generation (`<lab dir>/desired/.generation`, written by `weir lab apply`) read
   * before the manifests this sync applied: `lab apply` knows its change is enforced once
   * every agent reports at least its generation.
   */
  readonly desiredGeneration?: number;
  readonly lastApplyOk: boolean;
  readonly error?: string;
  readonly updatedAt: string;
  readonly mode: ApplyResult['mode'];
  readonly renderMs: number;
  readonly applyMs: number;
  readonly rules: number;
  readonly chains: number;
  readonly sets: number;
  readonly setElements: number;
  readonly counters: number;
  readonly localPods: number;
  /** Diagnostics of the desired manifests (errors drop only the offending objects). */
  readonly diagnostics: number;
  readonly diagnosticErrors: readonly string[];
  readonly conntrackDeleted: number;
  /** How the last change reached the kernel (see ApplyResult.via). */
  readonly via?: ApplyResult['via'];
  /** Why the netlink fast path did not apply it, when `nft -f` then did (or failed too). */
  readonly fallback?: string;
}

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

async function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, `${JSON.stringify(value, null, 2)}\n`, { mode: 0o644 });
  await rename(tmp, path);
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
    const elements = opts.netlinkElements ?? opts.runner === undefined;
    this.applier = new Applier(opts.runner ?? nftRunner(opts.netns), elements ? netlinkElementWriter(opts.netns) : undefined);
  }

  /** Releases the applier's netlink socket (it would close itself when idle). */
  close(): void {
    this.applier.close();
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
        patched = patchPods(applied, this.engine, changes, changes.removedIdentities, locals, identitiesBefore);
      }
    }
    const ruleset = patched ?? renderRuleset({ engine: this.engine, localPods, reasons: collectReasons(this.engine), podInterfaces: this.opts.podInterfaces });
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
    if (local) this.lastLocalPods = new Map(this.lastLocalPods).set(key, local);
    const identity = this.engine.identityOfPod(key);
    const applied = this.applier.applied;
    // The identity existed before when the pod is not its only one.
    const known = identity && identity.pods.size > 1 ? new Set([identity.id]) : new Set<number>();
    const patched = applied ? patchPods(applied, this.engine, { added: [pod], removed: [] }, new Map(), this.lastLocalPods, known, this.namedEgress()) : undefined;
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
    if (this.lastLocalPods.has(key)) {
      this.lastLocalPods = new Map(this.lastLocalPods);
      this.lastLocalPods.delete(key);
    }
    const applied = this.applier.applied;
    const patched =
      applied && this.engine.cache.identities.has(identity.id)
        ? patchPods(applied, this.engine, { added: [], removed: [pod] }, new Map([[key, identity]]), this.lastLocalPods, new Set([identity.id]), this.namedEgress())
        : undefined;
    return this.afterEvent(patched, t0);
  }

  private localList(replace: string, local: LocalPod | undefined): LocalPod[] {
    const out = [...this.lastLocalPods.values()].filter((p) => p.key !== replace);
    if (local) out.push(local);
    return out;
  }

  private renderNow(): Ruleset {
    return renderRuleset({ engine: this.engine, localPods: [...this.lastLocalPods.values()], reasons: collectReasons(this.engine), podInterfaces: this.opts.podInterfaces });
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
      ...(result.via ? { via: result.via } : {}),
      ...(result.fallback ? { fallback: result.fallback } : {}),
    };
    this.last = status;
    if (result.fallback) this.opts.log?.(`weir agent ${this.opts.node}: element batch not applied, ${result.ok ? 'resynced through nft' : 'nft failed too'}: ${result.fallback}`);
    if (!result.ok) this.opts.log?.(`weir agent ${this.opts.node}: apply failed, previous ruleset kept: ${result.error ?? ''}`);
    if (this.opts.statusDir) {
      await writeJsonAtomic(join(this.opts.statusDir, statusFile(this.opts.node)), status);
      const reasons = JSON.stringify(ruleset.reasons);
      if (result.ok && reasons !== this.lastReasons) {
        await writeJsonAtomic(join(this.opts.statusDir, REASONS_FILE), ruleset.reasons);
        this.lastReasons = reasons;
      }
    }
    return status;
  }
}

// ------------------------------------------------------------------ lab glue

/**
 * The desired cluster for the lab: pods, their addresses and nodes come from the lab state
 * (the lab's IPAM is authoritative); policies and namespace labels from the manifests.
 */
export function clusterFromLab(state: LabState, desired: Cluster): Cluster {
  const declared = new Set(desired.namespaces.map((n) => n.name));
  const namespaces: Namespace[] = [...desired.namespaces];
  for (const n of state.namespaces) if (!declared.has(n.name)) namespaces.push({ name: n.name, labels: n.labels });
  return {
    ...desired,
    namespaces,
    nodes: state.nodes.map((n) => ({ name: n.name, labels: n.labels, ip: n.underlayIp })),
    pods: state.pods.map((p) => ({
      namespace: p.namespace,
      name: p.name,
      labels: p.labels,
      ports: p.ports,
      hostNetwork: false,
      ip: p.ip,
      node: p.node,
      workload: p.workload,
    })),
  };
}

export function localPodsOf(state: LabState, node: string): LocalPod[] {
  return state.pods.filter((p) => p.node === node).map((p) => ({ key: p.key, ip: p.ip, hostVeth: p.hostVeth }));
}

/**
 * Hooks for `labUp` / `addPod` / `labApply` (src/lab LabHooks shape): enforce from the moment
 * each node exists, before any pod is attached, and after every live change.
 */
export function labEnforcer(desired: () => Cluster, opts: { strict?: boolean; statusDir?: string; log?: (line: string) => void } = {}) {
  const agents = new Map<string, NodeAgent>();
  const agentFor = (node: LabNode, state: LabState): NodeAgent => {
    let a = agents.get(node.name);
    if (!a) {
      a = new NodeAgent({ node: node.name, netns: node.netns, strict: opts.strict, statusDir: opts.statusDir ?? state.dir, log: opts.log, podInterfaces: LAB_POD_INTERFACES });
      agents.set(node.name, a);
    }
    return a;
  };
  const syncNode = async (node: LabNode, state: LabState): Promise<void> => {
    const status = await agentFor(node, state).sync(clusterFromLab(state, desired()), localPodsOf(state, node.name));
    if (!status.lastApplyOk) throw new Error(`nftables apply failed on ${node.name}: ${status.error ?? ''}`);
  };
  return {
    agents,
    onNodeReady: syncNode,
    onChange: async (_change: unknown, state: LabState): Promise<void> => {
      for (const node of state.nodes) await syncNode(node, state);
    },
    /** Re-sync every node (after a policy change). */
    syncAll: async (state: LabState): Promise<void> => {
      for (const node of state.nodes) await syncNode(node, state);
    },
  };
}

// ------------------------------------------------------------------ the agent process

export interface RunAgentOptions {
  readonly labDir: string;
  readonly node: string;
  readonly strict?: boolean;
  /** Manifest files or folders; default `<labDir>/desired.yaml` and/or `<labDir>/desired/`. */
  readonly manifests?: readonly string[];
  /** Sync once and return (exit code material: the status). */
  readonly once?: boolean;
  /** Poll interval, the fallback when fs.watch misses an event (default 200 ms). */
  readonly pollMs?: number;
  readonly signal?: AbortSignal;
  readonly log?: (line: string) => void;
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

async function manifestPaths(opts: RunAgentOptions): Promise<string[]> {
  if (opts.manifests) return [...opts.manifests];
  const out: string[] = [];
  for (const p of [join(opts.labDir, DESIRED_FILE), join(opts.labDir, DESIRED_DIR)]) if (await exists(p)) out.push(p);
  return out;
}

/** `<labDir>/desired/.generation` (see src/lab/supervisor.ts); undefined when absent or not an integer. */
export async function readDesiredGeneration(labDir: string): Promise<number | undefined> {
  const text = await readFile(join(labDir, DESIRED_DIR, GENERATION_FILE), 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  const n = Number(text.trim());
  return Number.isInteger(n) && n >= 0 ? n : undefined;
}

/** mtime+size of every input, to notice changes fs.watch missed. */
async function inputsSignature(labDir: string, paths: readonly string[]): Promise<string> {
  const parts: string[] = [];
  for (const p of [join(labDir, 'state.json'), join(labDir, DESIRED_FILE), join(labDir, DESIRED_DIR), ...paths]) {
    const s = await stat(p).catch(() => undefined);
    parts.push(s ? `${p}:${s.mtimeMs}:${s.size}` : `${p}:-`);
    if (s?.isDirectory()) {
      const { readdir } = await import('node:fs/promises');
      for (const f of (await readdir(p).catch(() => [])).sort()) {
        const fs = await stat(join(p, f)).catch(() => undefined);
        parts.push(fs ? `${f}:${fs.mtimeMs}:${fs.size}` : `${f}:-`);
      }
    }
  }
  return parts.join('|');
}

/**
 * `weir agent --lab-dir DIR --node NAME [--strict] [--manifests PATH...] [--once]`.
 * Resolves when `signal` aborts (or after one sync with `once`). The ruleset stays in the
 * kernel when the agent stops: enforcement must not depend on the agent being alive.
 */
export async function runAgent(opts: RunAgentOptions): Promise<AgentStatus | undefined> {
  const log = opts.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  let agent: NodeAgent | undefined;
  let last: AgentStatus | undefined;
  const syncOnce = async (): Promise<void> => {
    let state: LabState | undefined;
    try {
      state = await readState(opts.labDir);
    } catch (error) {
      log(`weir agent ${opts.node}: ${error instanceof Error ? error.message : String(error)}`);
      return;
    }
    if (!state) return;
    const node = state.nodes.find((n) => n.name === opts.node);
    if (!node) {
      log(`weir agent: node ${opts.node} is not in the lab (${state.nodes.map((n) => n.name).join(', ')})`);
      return;
    }
    if (!agent) agent = new NodeAgent({ node: node.name, netns: node.netns, strict: opts.strict, statusDir: opts.labDir, log, podInterfaces: LAB_POD_INTERFACES });
    // Read before the manifests: whatever they contain is at least this generation.
    const desiredGeneration = await readDesiredGeneration(opts.labDir);
    const paths = await manifestPaths(opts);
    const loaded = paths.length > 0 ? await loadManifests(paths) : { cluster: emptyCluster(), diagnostics: [] };
    if (hasErrors(loaded.diagnostics)) {
      for (const d of loaded.diagnostics.filter((x) => x.severity === 'error').slice(0, 5)) log(`weir agent ${opts.node}: ${formatDiagnostic(d)}`);
    }
    last = await agent.sync(clusterFromLab(state, loaded.cluster), localPodsOf(state, node.name), loaded.diagnostics, desiredGeneration);
  };

  await syncOnce();
  if (opts.once) return last;

  let dirty = false;
  let running: Promise<void> | undefined;
  const trigger = (): void => {
    dirty = true;
    if (running) return;
    running = (async () => {
      while (dirty) {
        dirty = false;
        await syncOnce().catch((error: unknown) => log(`weir agent ${opts.node}: sync failed: ${error instanceof Error ? error.message : String(error)}`));
      }
      running = undefined;
    })();
  };
  let watcher: FSWatcher | undefined;
  try {
    watcher = watch(opts.labDir, (_event, file) => {
      const name = file?.toString() ?? '';
      // Our own outputs change the directory too; they are no reason to re-sync.
      if (name === REASONS_FILE || name.startsWith('agent-') || name.endsWith('.tmp') || name === 'state.lock') return;
      trigger();
    });
  } catch {
    watcher = undefined; // the poll below still notices changes
  }
  const extra = opts.manifests ?? [];
  let signature = await inputsSignature(opts.labDir, extra);
  const pollMs = opts.pollMs ?? 200;
  try {
    while (!opts.signal?.aborted) {
      await sleep(pollMs, undefined, { signal: opts.signal }).catch(() => undefined);
      const now = await inputsSignature(opts.labDir, extra);
      if (now !== signature) {
        signature = now;
        trigger();
      }
    }
  } finally {
    watcher?.close();
    await running;
  }
  return last;
}

/** Reads an agent's status file (for the CLI and tests). */
export async function readAgentStatus(labDir: string, node: string): Promise<AgentStatus | undefined> {
  const text = await readFile(join(labDir, statusFile(node)), 'utf8').catch(() => undefined);
  return text ? (JSON.parse(text) as AgentStatus) : undefined;
}
