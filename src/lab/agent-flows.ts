// A lab agent's flows when it ships to a server (`weir agent --server URL --token-file F`, or
// `weir lab up --server …`): the node's kernel (conntrack + nft sets, NodeFlowSource) → enriched
// and attributed by the agent's own engine → kept raw in a bounded ring (queryable on the
// agent's loopback port, which the server fans out to) and shipped as window aggregates plus
// samples (src/flows/shipper.ts). The same path a cluster agent takes; the lab only supplies
// the pod table and the node's namespace.
import { join } from 'node:path';
import { startAgentQueryServer, type AgentQueryServer } from '../api/agent-query.js';
import { buildView, type LabView } from '../api/visibility.js';
import { REASONS_FILE } from '../agent/status.js';
import { Enricher } from '../flows/enrich.js';
import { NodeFlowSource } from '../flows/node-source.js';
import { RawFlowRing } from '../flows/raw-ring.js';
import type { AgentSyncReport } from '../flows/ship-protocol.js';
import { FlowShipper, type ShipperTls } from '../flows/shipper.js';
import type { PolicyEngine } from '../policy/engine.js';
import type { AgentStatus } from '../agent/status.js';
import type { LabState } from './state.js';

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

export interface AgentFlowsOptions {
  readonly server: string;
  readonly token: string;
  readonly version: string;
  readonly tls?: ShipperTls;
  /** Default `<labDir>/flows-<node>/`. */
  readonly bufferDir?: string;
  readonly maxBufferBytes?: number;
  /** The raw-record query port on 127.0.0.1 (default 0: any free port, reported to the server). */
  readonly queryPort?: number;
  readonly windowMs?: number;
}

export interface AgentFlows {
  readonly shipper: FlowShipper;
  readonly query: AgentQueryServer;
  /** After every sync: the pod table and the engine's attribution follow the new state. */
  update(state: LabState, generation: string): void;
  stop(): Promise<void>;
}

export async function startAgentFlows(
  labDir: string,
  node: { name: string; netns: string },
  engine: PolicyEngine,
  state: LabState,
  opts: AgentFlowsOptions & { syncReport: () => AgentSyncReport; log: (line: string) => void },
): Promise<AgentFlows> {
  let view: LabView = buildView(engine, state, '', opts.log);
  const enricher = new Enricher({ lookup: (ip) => view.pods.get(ip), externalCidrs: [state.network.externalCidr] });
  const ring = new RawFlowRing();
  const query = await startAgentQueryServer({ ring, host: '127.0.0.1', port: opts.queryPort ?? 0, token: opts.token });
  let shipper: FlowShipper;
  try {
    shipper = new FlowShipper({
      server: opts.server,
      token: opts.token,
      node: node.name,
      version: opts.version,
      bufferDir: opts.bufferDir ?? join(labDir, `flows-${node.name}`),
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
  const source = new NodeFlowSource({ node: node.name, netns: node.netns, reasonsFile: join(labDir, REASONS_FILE), enricher, attributor: () => view.attribution });
  source.on('records', (records) => {
    ring.add(records);
    shipper.add(records);
  });
  source.on('warning', (e) => opts.log(`weir agent ${node.name}: flows: ${e.message}`));
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
    update(next, generation) {
      view = buildView(engine, next, generation, opts.log);
      enricher.invalidate();
    },
    async stop() {
      await source.stop();
      await shipper.stop();
      await query.close();
    },
  };
}
