// The lab's lifecycle: up, down, status, exec and live pod changes. Order of every `up`:
// preflight → plan (all validation, nothing created yet) → state file (`starting`) →
// namespaces → underlay/nodes/overlay/external → onNodeReady hooks → pods → servers →
// state file (`up`). Any failure after the first namespace removes everything created.

import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { emptyCluster, type Cluster, type Labels, type Pod } from '../model/cluster.js';
import { HOSTNAME_LABEL, labCluster, nodeOfLab, podOfLab } from './cluster.js';
import { type Diagnostic, ValidationError } from '../model/diagnostics.js';
import { type ExecResult, runInNetns } from '../exec/run.js';
import { DEFAULT_PREFIX, defaultLabDir, isInstanceNetns, isValidPrefix, podKey } from './names.js';
import { type LabPlanOptions, planLab, replicasOf } from './plan.js';
import { preflight } from './preflight.js';
import { controlDir } from './behaviour.js';
import { isAlive, startServer, stopPid, stopServer } from './processes.js';
import { type LabNode, type LabPod, type LabState, readState, statePath, withStateLock, writeState } from './state.js';
import { addNetns, allNetns, attachPods, buildInfrastructure, deleteNetns, detachPod, forEachLimit, listNetns, netnsPids } from './topology.js';

export interface LabHooks {
  /**
   * Called once per node after its namespace, underlay, overlay and (node 0) external link
   * exist, and before any pod is attached or any server started. `state` is the complete
   * planned state (pod IPs and host veth names included), so an enforcement agent can load
   * the node's ruleset here and no pod ever runs unprotected.
   */
  readonly onNodeReady?: (node: LabNode, state: LabState) => Promise<void>;
  /**
   * Called once after `labUp` attached every pod (their veths exist now), before the servers
   * start: an in-process agent resolves the veths' interface indexes here (anti-spoofing).
   */
  readonly onPodsAttached?: (state: LabState) => Promise<void>;
  /** Called after a live change (`addPod`, `removePod`, `updatePodLabels`) was applied and saved. */
  readonly onChange?: (change: LabChange, state: LabState) => Promise<void>;
  /** Receives the planning diagnostics (warnings and notices) of a successful plan. */
  readonly onDiagnostics?: (diagnostics: readonly Diagnostic[]) => void;
}

export type LabChange =
  | { readonly kind: 'pod-added'; readonly pod: LabPod }
  | { readonly kind: 'pod-removed'; readonly pod: LabPod }
  | { readonly kind: 'pod-labels'; readonly pod: LabPod; readonly previous: Labels };

export interface LabUpOptions extends LabPlanOptions, LabHooks {}

export interface LabDownOptions {
  readonly dir?: string;
  readonly prefix?: string;
  /** Also remove every namespace (and the processes in it) whose name starts with the prefix. */
  readonly force?: boolean;
  /** Delete the state file too (default: keep it, so the next `up` keeps the addresses). */
  readonly purge?: boolean;
}

export interface LabDownResult {
  readonly removedNetns: readonly string[];
  readonly stoppedPids: readonly number[];
}

function resolveDir(opts: { dir?: string; prefix?: string }): string {
  return opts.dir ?? defaultLabDir(opts.prefix ?? DEFAULT_PREFIX);
}

function logDir(state: LabState): string {
  return join(state.dir, 'logs');
}

async function startServers(state: LabState, pods: readonly LabPod[]): Promise<Map<string, number>> {
  const pids = new Map<string, number>();
  await forEachLimit(
    pods.filter((p) => p.served.length > 0),
    32,
    async (pod) => {
      pids.set(pod.key, await startServer({ netns: pod.netns, identity: pod.key, ports: pod.served, logDir: logDir(state), controlDir: controlDir(state.dir) }));
    },
  );
  return pids;
}

/** Stops every process in the given namespaces (servers by PID first, then stragglers) and deletes them. */
async function teardown(netns: readonly string[], pids: readonly (number | undefined)[]): Promise<LabDownResult> {
  const stopped: number[] = [];
  await Promise.all(
    pids.map(async (pid) => {
      if (pid !== undefined && (await isAlive(pid))) {
        await stopServer(pid);
        stopped.push(pid);
      }
    }),
  );
  const existing = await listNetns();
  const present = netns.filter((n) => existing.has(n));
  // Anything else still running inside a lab namespace (a prober, a `lab exec`) was started
  // by the lab for the lab; a namespace with a live process would outlive `netns del`.
  await forEachLimit(present, 16, async (ns) => {
    for (const pid of await netnsPids(ns)) {
      await stopPid(pid);
      stopped.push(pid);
    }
  });
  await deleteNetns(present);
  return { removedNetns: present, stoppedPids: stopped };
}

/**
 * Builds the lab for `cluster`. Validation (preflight and plan) happens before anything is
 * created; a ValidationError lists every problem at once.
 */
export async function labUp(cluster: Cluster, opts: LabUpOptions = {}): Promise<LabState> {
  await preflight();
  const dir = resolveDir(opts);
  return withStateLock(dir, async () => {
    const previous = await readState(dir);
    const prefix = opts.prefix ?? previous?.prefix ?? DEFAULT_PREFIX;
    const existing = await listNetns();
    if (previous && previous.status !== 'down' && allNetns(previous).some((n) => existing.has(n))) {
      throw new ValidationError([
        { severity: 'error', code: 'lab-already-up', message: `a lab is already up in ${dir}: run \`weir lab down\` first (or \`weir lab apply\` to change it)` },
      ]);
    }
    const plan = planLab(cluster, { ...opts, dir, prefix }, previous);
    const state = plan.state;
    const clashing = allNetns(state).filter((n) => existing.has(n));
    if (clashing.length > 0) {
      throw new ValidationError([
        {
          severity: 'error',
          code: 'lab-netns-exists',
          message: `network namespace ${clashing[0]} already exists (another lab with prefix "${prefix}"?): use another prefix or \`weir lab down --force --prefix ${prefix}\``,
        },
      ]);
    }
    opts.onDiagnostics?.(plan.diagnostics);
    await writeState(state);

    const pids = new Map<string, number>();
    try {
      await addNetns(allNetns(state));
      await buildInfrastructure(state);
      for (const node of state.nodes) await opts.onNodeReady?.(node, state);
      await attachPods(state, state.pods);
      await opts.onPodsAttached?.(state);
      const externalPid = startServer({ netns: state.external.netns, identity: 'external', ports: state.external.served, logDir: logDir(state), controlDir: controlDir(state.dir) });
      for (const [k, v] of await startServers(state, state.pods)) pids.set(k, v);
      pids.set('external', await externalPid);
    } catch (error) {
      await teardown(allNetns(state), [...pids.values()]);
      await writeState({ ...state, status: 'down' });
      const reason = error instanceof Error ? error.message : String(error);
      throw new Error(`lab up failed: ${reason} (everything the lab had created was removed)`, { cause: error });
    }
    const up: LabState = {
      ...state,
      status: 'up',
      pods: state.pods.map((p) => ({ ...p, serverPid: pids.get(p.key) })),
      external: { ...state.external, serverPid: pids.get('external') },
    };
    await writeState(up);
    return up;
  });
}

/**
 * Takes the lab down: servers stopped by PID, namespaces deleted (with every link in them).
 * The state file stays (status `down`) unless `purge`, so the next `up` keeps addresses.
 */
export async function labDown(opts: LabDownOptions = {}): Promise<LabDownResult> {
  const dir = resolveDir(opts);
  const prefix = opts.prefix ?? DEFAULT_PREFIX;
  if (!isValidPrefix(prefix)) throw new Error(`invalid lab prefix "${prefix}"`);
  const run = async (): Promise<LabDownResult> => {
    const state = await readState(dir).catch((error: unknown) => {
      if (opts.force) return undefined;
      throw error;
    });
    if (!state && !opts.force) {
      throw new Error(`no lab state in ${dir}: nothing to take down (use --force to remove leftover "${prefix}" namespaces)`);
    }
    const netns = state ? allNetns(state) : [];
    if (opts.force) {
      const owned = state?.prefix ?? prefix;
      for (const n of await listNetns()) if (isInstanceNetns(owned, n) && !netns.includes(n)) netns.push(n);
    }
    const result = await teardown(netns, state ? [...state.pods.map((p) => p.serverPid), state.external.serverPid] : []);
    if (opts.purge) {
      await rm(statePath(dir), { force: true });
      await rm(join(dir, 'logs'), { recursive: true, force: true });
    } else if (state) {
      await writeState({
        ...state,
        status: 'down',
        pods: state.pods.map(({ serverPid: _pid, ...p }) => p),
        external: (({ serverPid: _pid, ...e }) => e)(state.external),
      });
    }
    return result;
  };
  // A forced down must work even with a stuck lock or an unwritable directory.
  if (opts.force) return run();
  return withStateLock(dir, run);
}

export interface LabStatus {
  readonly state: LabState | undefined;
  /** Human-readable inconsistencies (missing namespaces, dead servers); empty when healthy. */
  readonly problems: readonly string[];
}

export async function labStatus(dir?: string): Promise<LabStatus> {
  const d = dir ?? defaultLabDir(DEFAULT_PREFIX);
  const state = await readState(d);
  if (!state || state.status === 'down') return { state, problems: [] };
  const problems: string[] = [];
  const existing = await listNetns();
  for (const n of allNetns(state)) if (!existing.has(n)) problems.push(`network namespace ${n} is missing`);
  for (const p of [...state.pods, state.external]) {
    if (p.serverPid !== undefined && !(await isAlive(p.serverPid))) problems.push(`server of ${'key' in p ? p.key : 'external'} (pid ${p.serverPid}) is not running`);
  }
  return { state, problems };
}

async function requireUp(dir: string): Promise<LabState> {
  const state = await readState(dir);
  if (!state || state.status !== 'up') throw new Error(`no lab is up in ${dir}: run \`weir lab up\` first`);
  return state;
}

/** Namespace of a lab target: `ns/pod`, a node name, `external` or `underlay`. */
export function targetNetns(state: LabState, target: string): string {
  if (target === 'external') return state.external.netns;
  if (target === 'underlay') return state.underlay.netns;
  const pod = state.pods.find((p) => p.key === target);
  if (pod) return pod.netns;
  const node = state.nodes.find((n) => n.name === target);
  if (node) return node.netns;
  throw new Error(`unknown lab target "${target}": expected namespace/pod, a node name, "external" or "underlay"`);
}

/** Runs argv inside a pod's (or node's, or the external host's) namespace; never throws on exit code. */
export async function labExec(dir: string, target: string, argv: readonly string[], input?: string): Promise<ExecResult> {
  const state = await requireUp(dir);
  return runInNetns(targetNetns(state, target), argv, input, { allowFailure: true, timeoutMs: 300_000 });
}

/** The lab's planning input: the cluster as the lab runs it (the one join), with `pods` as the target. */
function clusterOfState(state: LabState, pods: readonly Pod[]): Cluster {
  return { ...labCluster(emptyCluster(), state), pods };
}

/** Adds one pod to a running lab: namespace, veth, routes, server; returns it as recorded. */
export async function addPod(dir: string, pod: Pod, hooks: Pick<LabHooks, 'onChange' | 'onDiagnostics'> = {}): Promise<LabPod> {
  return withStateLock(dir, async () => {
    const state = await requireUp(dir);
    const key = podKey(pod.namespace, pod.name);
    if (state.pods.some((p) => p.key === key)) {
      throw new ValidationError([{ severity: 'error', code: 'lab-duplicate-pod', message: `pod ${key} already exists in the lab`, object: `Pod ${key}` }]);
    }
    // Re-plan with every existing pod pinned to its node and address, so only the new pod moves.
    const plan = planLab(clusterOfState(state, [...state.pods.map(podOfLab), pod]), { nodes: state.nodes.length, dir, prefix: state.prefix }, state);
    hooks.onDiagnostics?.(plan.diagnostics);
    const added = plan.state.pods.find((p) => p.key === key);
    if (!added) throw new Error(`pod ${key} cannot be emulated by the lab (see the warnings)`);
    const next: LabState = { ...state, pods: [...state.pods, added] };
    let pid: number | undefined;
    try {
      await addNetns([added.netns]);
      await attachPods(next, [added]);
      if (added.served.length > 0) pid = await startServer({ netns: added.netns, identity: key, ports: added.served, logDir: logDir(state), controlDir: controlDir(state.dir) });
    } catch (error) {
      await teardown([added.netns], [pid]);
      throw error;
    }
    const recorded: LabPod = { ...added, serverPid: pid };
    const saved: LabState = { ...state, pods: [...state.pods, recorded] };
    await writeState(saved);
    await hooks.onChange?.({ kind: 'pod-added', pod: recorded }, saved);
    return recorded;
  });
}

/** Removes one pod from a running lab (server, routes, namespace). */
export async function removePod(dir: string, key: string, hooks: Pick<LabHooks, 'onChange'> = {}): Promise<void> {
  await withStateLock(dir, async () => {
    const state = await requireUp(dir);
    const pod = state.pods.find((p) => p.key === key);
    if (!pod) throw new Error(`pod ${key} is not in the lab`);
    await teardown([pod.netns], [pod.serverPid]);
    await detachPod(state, pod);
    const saved: LabState = { ...state, pods: state.pods.filter((p) => p.key !== key) };
    await writeState(saved);
    await hooks.onChange?.({ kind: 'pod-removed', pod }, saved);
  });
}

/** Replaces a pod's labels in the state (the network is label-blind; the agent reacts via onChange). */
export async function updatePodLabels(dir: string, key: string, labels: Labels, hooks: Pick<LabHooks, 'onChange'> = {}): Promise<LabPod> {
  return withStateLock(dir, async () => {
    const state = await requireUp(dir);
    const pod = state.pods.find((p) => p.key === key);
    if (!pod) throw new Error(`pod ${key} is not in the lab`);
    const updated: LabPod = { ...pod, labels: { ...labels } };
    const saved: LabState = { ...state, pods: state.pods.map((p) => (p.key === key ? updated : p)) };
    await writeState(saved);
    await hooks.onChange?.({ kind: 'pod-labels', pod: updated, previous: pod.labels }, saved);
    return updated;
  });
}

export interface LabApplyResult {
  readonly added: readonly string[];
  readonly removed: readonly string[];
  readonly relabelled: readonly string[];
}

/**
 * `weir lab apply`: brings a running lab to `cluster`'s pods — adds missing pods, removes
 * pods no longer declared, updates labels. Pods whose ports changed are recreated. Namespaces
 * and node labels are recorded as `cluster` declares them (a node without a Node object keeps
 * only `kubernetes.io/hostname`).
 */
export async function labApply(dir: string, cluster: Cluster, hooks: Pick<LabHooks, 'onChange' | 'onDiagnostics'> = {}): Promise<LabApplyResult> {
  const state = await requireUp(dir);
  // Validate the whole target first (against the running lab's nodes and pools).
  const plan = planLab(clusterOfState(state, cluster.pods), { nodes: state.nodes.length, dir, prefix: state.prefix }, state);
  hooks.onDiagnostics?.(plan.diagnostics);
  const wanted = new Map(replicasOf(cluster.pods).filter((p) => !p.hostNetwork).map((p) => [podKey(p.namespace, p.name), p]));
  const have = new Map(state.pods.map((p) => [p.key, p]));
  const samePorts = (a: LabPod, b: Pod): boolean => JSON.stringify(a.ports) === JSON.stringify(b.ports);
  const sameLabels = (a: Labels, b: Labels): boolean => JSON.stringify(Object.entries(a).sort()) === JSON.stringify(Object.entries(b).sort());
  const added: string[] = [];
  const removed: string[] = [];
  const relabelled: string[] = [];
  for (const [key, pod] of have) {
    const want = wanted.get(key);
    if (!want || !samePorts(pod, want) || (want.ip !== undefined && want.ip !== pod.ip) || (want.node !== undefined && want.node !== pod.node)) {
      await removePod(dir, key, hooks);
      removed.push(key);
    }
  }
  for (const [key, want] of wanted) {
    const pod = have.get(key);
    if (!pod || removed.includes(key)) {
      await addPod(dir, want, hooks);
      added.push(key);
    } else if (!sameLabels(pod.labels, want.labels)) {
      await updatePodLabels(dir, key, want.labels, hooks);
      relabelled.push(key);
    }
  }
  await withStateLock(dir, async () => {
    const current = await requireUp(dir);
    // Namespaces and node labels follow the manifests too (pods were brought there above), so
    // the state says what the cluster is even to a reader that does not load the manifests.
    const declared = new Map(cluster.nodes.map((n) => [n.name, n]));
    await writeState({
      ...current,
      namespaces: cluster.namespaces.map((n) => ({ name: n.name, labels: { ...n.labels } })),
      nodes: current.nodes.map((n) => ({ ...n, labels: { ...nodeOfLab({ ...n, labels: { [HOSTNAME_LABEL]: n.name } }, declared.get(n.name)).labels } })),
    });
  });
  return { added, removed, relabelled };
}
