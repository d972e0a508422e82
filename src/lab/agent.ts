// The lab's agents: the lab runs one NodeAgent (src/agent) per emulated node, either in-process
// (`labEnforcer`: hooks for `labUp` / `addPod` / `labApply`) or as the `weir agent --lab-dir DIR
// --node NAME` process that `weir lab up` starts per node (`runAgent`, see supervisor.ts). The
// lab uses the agent; the agent knows nothing of the lab. Both read the lab through the one
// join (cluster.ts): the process through the lab source (src/source/lab.ts), whose events the
// agent consumes batch by batch.

import { join } from 'node:path';
import type { Cluster } from '../model/cluster.js';
import { formatDiagnostic, hasErrors } from '../model/diagnostics.js';
import { NodeAgent } from '../agent/agent.js';
import { LbLoop } from '../agent/lb-loop.js';
import { LbRemote } from '../agent/lb-remote.js';
import { REASONS_FILE, type AgentStatus } from '../agent/status.js';
import type { LocalPod } from '../render/render.js';
import { snapshotEvents } from '../source/diff.js';
import { LabSource } from '../source/lab.js';
import { FileWatch } from '../source/watch.js';
import { labCluster } from './cluster.js';
import { DESIRED_FILE, desiredDir } from './desired.js';
import { startNodeFlows, syncReportOf, type AgentFlowsOptions, type NodeFlows } from '../flows/agent-flows.js';
import { FlowView } from '../flows/view.js';
import { HOST_VETH_PATTERN as LAB_POD_INTERFACES } from './names.js';
import { STATE_FILE, type LabNode, type LabState } from './state.js';

/** How often the agent process looks its pods' veths up again (missing, or made anew). */
const INTERFACE_RETRY_MS = 250;

export function localPodsOf(state: Pick<LabState, 'pods'>, node: string): LocalPod[] {
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
    const status = await agentFor(node, state).sync(labCluster(desired(), state), localPodsOf(state, node.name));
    if (!status.lastApplyOk) throw new Error(`nftables apply failed on ${node.name}: ${status.error ?? ''}`);
  };
  const syncAll = async (state: LabState): Promise<void> => {
    for (const node of state.nodes) await syncNode(node, state);
  };
  return {
    agents,
    onNodeReady: syncNode,
    // The pods' veths exist now: their interface indexes (anti-spoofing) are looked up.
    onPodsAttached: syncAll,
    onChange: (_change: unknown, state: LabState): Promise<void> => syncAll(state),
    /** Re-sync every node (after a policy change). */
    syncAll,
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
  /** The balancing loop's tick (src/agent/lb-loop.ts; default 500 ms); 0 turns it off. */
  readonly lbIntervalMs?: number;
  /** Ship the node's flows to a server (src/flows/agent-flows.ts). */
  readonly flows?: AgentFlowsOptions;
}

/**
 * `weir agent --lab-dir DIR --node NAME [--strict] [--manifests PATH...] [--once]`: the lab
 * source's batches → the node's agent. Every read of the lab is applied, also one without
 * events, so that the status reports the desired generation `weir lab apply` waits for.
 * Resolves when `signal` aborts (or after one sync with `once`). The ruleset stays in the
 * kernel when the agent stops: enforcement must not depend on the agent being alive.
 */
export async function runAgent(opts: RunAgentOptions): Promise<AgentStatus | undefined> {
  const log = opts.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const source = new LabSource({ dir: opts.labDir, ...(opts.manifests ? { manifests: opts.manifests } : {}) });
  let agent: NodeAgent | undefined;
  let last: AgentStatus | undefined;
  let lb: LbLoop | undefined;
  let reportedErrors = '';
  let flows: NodeFlows | undefined;
  let view: FlowView | undefined;
  const sync = { errors: 0, lagMs: undefined as number | undefined };
  await source.start({
    // The agent takes every read below (refresh), events or not; the first is the snapshot.
    onEvents: () => undefined,
    onError: (e) => log(`weir agent ${opts.node}: ${e.message}`),
  });
  const syncOnce = async (): Promise<void> => {
    const t0 = Date.now();
    const read = await source.refresh();
    const state = read.state;
    if (!state) return;
    const node = state.nodes.find((n) => n.name === opts.node);
    if (!node) {
      log(`weir agent: node ${opts.node} is not in the lab (${state.nodes.map((n) => n.name).join(', ')})`);
      return;
    }
    const errors = read.diagnostics.filter((d) => d.severity === 'error').slice(0, 5).map(formatDiagnostic);
    if (hasErrors(read.diagnostics) && errors.join('\n') !== reportedErrors) for (const e of errors) log(`weir agent ${opts.node}: ${e}`);
    reportedErrors = errors.join('\n');
    // The first batch of a new agent is the whole snapshot (a restart is a full replace).
    const first = !agent;
    if (!agent) agent = new NodeAgent({ node: node.name, netns: node.netns, strict: opts.strict, statusDir: opts.labDir, log, podInterfaces: LAB_POD_INTERFACES });
    // Health probes, conntrack counts, drains and adaptive weights (src/agent/lb-loop.ts), from
    // the first sync on (not for `--once`).
    if (!lb && !opts.once && opts.lbIntervalMs !== 0) {
      // With a server (cluster mode's channel), status, drains and the other nodes' probes go
      // through it (src/agent/lb-remote.ts); the node's file is still written for the lab's tools.
      const exchange = opts.flows ? new LbRemote({ server: opts.flows.server, token: opts.flows.token, node: node.name, fileDir: opts.labDir, ...(opts.flows.tls ? { tls: opts.flows.tls } : {}) }) : undefined;
      lb = new LbLoop({ node: node.name, netns: node.netns, dir: opts.labDir, target: agent, ...(exchange ? { exchange } : {}), ...(opts.lbIntervalMs ? { intervalMs: opts.lbIntervalMs } : {}), log });
      lb.start();
    }
    const events = first ? snapshotEvents(source.snapshot()) : read.events;
    last = await agent.apply({ events, localPods: localPodsOf(state, node.name), diagnostics: read.diagnostics, desiredGeneration: read.generation, snapshot: source.snapshot() });
    if (!last.lastApplyOk) sync.errors++;
    sync.lagMs = Date.now() - t0;
    if (opts.flows && !opts.once) {
      // The view takes the batch the engine just took (pods with addresses, Services, nodes).
      if (!view) view = new FlowView(agent.engine, { log });
      view.apply(events);
      view.engineChanged();
      const a = agent;
      flows ??= await startNodeFlows({
        ...opts.flows,
        node: node.name,
        netns: node.netns,
        bufferDir: opts.flows.bufferDir ?? join(opts.labDir, `flows-${node.name}`),
        view,
        reasons: () => a.lastRuleset?.reasons,
        externalCidrs: [state.network.externalCidr],
        log,
        syncReport: () => syncReportOf(last, sync.errors, sync.lagMs),
      });
    }
  };

  try {
    await syncOnce();
    if (opts.once) return last;
    const dir = opts.labDir;
    const inputs = new Set([STATE_FILE, DESIRED_FILE, 'desired']);
    const watch = new FileWatch({
      paths: () => [join(dir, STATE_FILE), join(dir, DESIRED_FILE), desiredDir(dir), ...(opts.manifests ?? [])],
      watchDirs: [dir, desiredDir(dir)],
      // The lab directory also holds the agents' own outputs; they are no reason to re-sync.
      ignore: (name) => name === REASONS_FILE || name.startsWith('agent-') || name === 'state.lock' || (!inputs.has(name) && !name.endsWith('.yaml') && name !== '.generation'),
      pollMs: opts.pollMs,
      reload: syncOnce,
      onError: (e) => log(`weir agent ${opts.node}: sync failed: ${e.message}`),
    });
    await watch.start();
    // Pods the agent knows before their veths exist (the planned state, read before the lab
    // attaches them) have no anti-spoofing elements yet, and a veth made anew under the same
    // name has another index: it looks again, and re-syncs when an index changed.
    const retry = setInterval(() => {
      if (agent?.interfacesChanged()) void watch.trigger();
    }, INTERFACE_RETRY_MS);
    retry.unref();
    await new Promise<void>((resolve) => {
      if (opts.signal?.aborted) resolve();
      else opts.signal?.addEventListener('abort', () => resolve(), { once: true });
    });
    clearInterval(retry);
    await watch.stop();
    return last;
  } finally {
    await lb?.stop();
    await flows?.stop();
    await source.stop();
  }
}
