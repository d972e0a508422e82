// A node agent's flows when it ships to a server (`weir agent … --server URL --token-file F`):
// the node's kernel (conntrack + nft sets, NodeFlowSource) → enriched and attributed from the
// agent's FlowView (the same source events its engine takes, src/flows/view.ts) → kept raw in a
// bounded ring (queryable on the agent's query port, which the server fans out to) and shipped
// as window aggregates plus samples (src/flows/shipper.ts). One path for the lab agent and the
// Kubernetes node agent: each only says where its node's kernel is and feeds the view.
import { join } from 'node:path';
import { startAgentQueryServer, type AgentQueryServer } from '../api/agent-query.js';
import { Enricher } from './enrich.js';
import { NodeFlowSource } from './node-source.js';
import { RawFlowRing } from './raw-ring.js';
import type { Reason, ReasonsTable } from './reasons.js';
import type { AgentSyncReport } from './ship-protocol.js';
import { FlowShipper, type ShipperTls } from './shipper.js';
import type { AgentStatus } from '../agent/status.js';
import type { ClusterAgent, ClusterAgentState } from '../agent/cluster.js';
import type { KubeAgentExtension } from '../agent/kube.js';
import { FlowView } from './view.js';

/** The `sync` part of an agent's report, from its last status and what the process counted. */
export function syncReportOf(status: AgentStatus | undefined, errors: number, lagMs: number | undefined): AgentSyncReport {
  if (!status) return { errors };
  return {
    lastSyncAt: status.updatedAt,
    lastApplyOk: status.lastApplyOk,
    rules: status.rules,
    setElements: status.setElements,
    errors,
    ...(lagMs !== undefined ? { lagMs } : {}),
    ...(status.error !== undefined ? { lastError: status.error } : {}),
  };
}

/** What `--server` and its companion flags say (the CLI checks them). */
export interface AgentFlowsOptions {
  readonly server: string;
  readonly token: string;
  readonly version: string;
  readonly tls?: ShipperTls;
  /** The on-disk buffer (default: beside the agent's status, `flows-<node>/`). */
  readonly bufferDir?: string;
  readonly maxBufferBytes?: number;
  /** The raw-record query endpoint: 127.0.0.1 (default) or the node's address (then the token is required). */
  readonly queryHost?: string;
  /** Its port (default 0: any free port, reported to the server). */
  readonly queryPort?: number;
  readonly windowMs?: number;
}

type ReasonsRecord = Readonly<Record<string, Reason>>;
const tables = new WeakMap<ReasonsRecord, ReasonsTable>();

/** The ruleset's reasons as the parsers' table (converted once per ruleset's table). */
function tableOf(reasons: ReasonsRecord): ReasonsTable {
  let t = tables.get(reasons);
  if (!t) tables.set(reasons, (t = new Map(Object.entries(reasons).map(([k, v]) => [Number(k), v]))));
  return t;
}

export interface NodeFlowsOptions extends AgentFlowsOptions {
  readonly node: string;
  /** Network namespace of the node's kernel; absent: the agent's own. */
  readonly netns?: string;
  readonly bufferDir: string;
  readonly view: FlowView;
  /** The reasons of the ruleset in the kernel (mark → policy and rule; the ruleset's `reasons`). */
  readonly reasons: () => ReasonsRecord | undefined;
  /** Named external networks (the lab's external range). */
  readonly externalCidrs?: readonly string[];
  readonly syncReport: () => AgentSyncReport;
  readonly log: (line: string) => void;
}

export interface NodeFlows {
  readonly shipper: FlowShipper;
  readonly query: AgentQueryServer;
  readonly ring: RawFlowRing;
  readonly source: NodeFlowSource;
  stop(): Promise<void>;
}

export async function startNodeFlows(opts: NodeFlowsOptions): Promise<NodeFlows> {
  const view = opts.view;
  const enricher = new Enricher({ lookup: (ip) => view.pod(ip), serviceLookup: (ip, port) => view.service(ip, port), externalCidrs: opts.externalCidrs ?? [] });
  let seen = view.version;
  const ring = new RawFlowRing();
  const query = await startAgentQueryServer({ ring, host: opts.queryHost ?? '127.0.0.1', port: opts.queryPort ?? 0, token: opts.token });
  let shipper: FlowShipper;
  try {
    shipper = new FlowShipper({
      server: opts.server,
      token: opts.token,
      node: opts.node,
      version: opts.version,
      bufferDir: opts.bufferDir,
      queryUrl: query.url,
      syncReport: opts.syncReport,
      log: opts.log,
      ...(opts.tls ? { tls: opts.tls } : {}),
      ...(opts.maxBufferBytes !== undefined ? { maxBufferBytes: opts.maxBufferBytes } : {}),
      ...(opts.windowMs !== undefined ? { windowMs: opts.windowMs } : {}),
    }).start();
  } catch (e) {
    await query.close();
    throw e;
  }
  const source = new NodeFlowSource({
    node: opts.node,
    ...(opts.netns !== undefined ? { netns: opts.netns } : {}),
    reasons: () => {
      const r = opts.reasons();
      return r ? tableOf(r) : undefined;
    },
    enricher,
    // Asked before every record batch: a changed view (pods, Services, engine) empties the
    // enricher's per-address cache first.
    attributor: () => {
      if (view.version !== seen) {
        seen = view.version;
        enricher.invalidate();
      }
      return view.attribution();
    },
  });
  source.on('records', (records) => {
    ring.add(records);
    shipper.add(records);
  });
  source.on('warning', (e) => opts.log(`weir agent ${opts.node}: flows: ${e.message}`));
  try {
    await source.start();
  } catch (e) {
    await shipper.stop();
    await query.close();
    throw e;
  }
  return {
    shipper,
    query,
    ring,
    source,
    async stop() {
      await source.stop();
      await shipper.stop();
      await query.close();
    },
  };
}

/** The `sync` part of a Kubernetes node agent's reports (what `weir status` shows), from its state. */
export function kubeSyncReport(s: ClusterAgentState): AgentSyncReport {
  return {
    errors: s.applyErrors,
    ...(s.lastSyncAt !== undefined ? { lastSyncAt: s.lastSyncAt } : {}),
    ...(s.lagMs.last !== undefined ? { lagMs: s.lagMs.last } : {}),
    ...(s.lastApplyOk !== undefined ? { lastApplyOk: s.lastApplyOk } : {}),
    ...(s.ruleset ? { rules: s.ruleset.rules, setElements: s.ruleset.setElements } : {}),
    ...(s.lastError !== undefined ? { lastError: s.lastError } : {}),
  };
}

/**
 * Flow collection on a Kubernetes node agent (`runKubeAgent`'s extension, wired by the CLI):
 * the view takes the same source batches as the agent (pods of every node by address and
 * labels, Services, nodes) and a fresh attribution after every applied batch; the node's
 * kernel is followed and shipped once the agent has synced.
 */
export function kubeFlows(opts: AgentFlowsOptions & { readonly node: string; readonly netns?: string; readonly statusDir?: string; readonly log: (line: string) => void }): (agent: ClusterAgent) => KubeAgentExtension {
  return (agent) => {
    const view = new FlowView(agent.agent.engine, { log: opts.log });
    const previous = agent.onApplied;
    agent.onApplied = (b) => {
      view.engineChanged();
      previous?.(b);
    };
    let flows: NodeFlows | undefined;
    return {
      onEvents: (events) => view.apply(events),
      start: async () => {
        flows = await startNodeFlows({
          ...opts,
          bufferDir: opts.bufferDir ?? join(opts.statusDir ?? '/var/lib/weir', `flows-${opts.node}`),
          view,
          reasons: () => agent.agent.lastRuleset?.reasons,
          syncReport: () => kubeSyncReport(agent.state()),
        });
        opts.log(`weir agent ${opts.node}: shipping flows to ${opts.server}; raw records on ${flows.query.url}`);
      },
      stop: async () => {
        await flows?.stop();
      },
    };
  };
}
