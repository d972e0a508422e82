// The lab's agents: the lab runs one NodeAgent (src/agent) per emulated node, either in-process
// (`labEnforcer`: hooks for `labUp` / `addPod` / `labApply`) or as the `weir agent --lab-dir DIR
// --node NAME` process that `weir lab up` starts per node (`runAgent`, see supervisor.ts). The
// lab uses the agent; the agent knows nothing of the lab.

import { watch, type FSWatcher } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { emptyCluster, type Cluster, type Namespace } from '../model/cluster.js';
import { hasErrors, formatDiagnostic } from '../model/diagnostics.js';
import { loadManifests } from '../load/index.js';
import { NodeAgent } from '../agent/agent.js';
import { REASONS_FILE, type AgentStatus } from '../agent/status.js';
import type { LocalPod } from '../render/render.js';
import { HOST_VETH_PATTERN as LAB_POD_INTERFACES } from './names.js';
import { readState, type LabNode, type LabState } from './state.js';
import { DESIRED_DIR, GENERATION_FILE } from './supervisor.js';

export const DESIRED_FILE = 'desired.yaml';

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
