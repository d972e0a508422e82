// `weir agent --services` on a Kubernetes node: weir replaces kube-proxy (as Cilium's
// kube-proxy replacement does, opt-in). The ClusterAgent renders the Service NAT section from the
// cluster's Services and EndpointSlices (cluster.ts, `services`); this file adds the lab's
// balancing loop (lb-loop.ts: active probes, conntrack counts, drains, adaptive weights) and
// picks how it shares health and drains with the other nodes:
//
//   - a weir server (`--server URL --token-file F`, the flow shipper's channel): lb-remote.ts;
//   - else a status directory (`--status-dir`, the lab): lb-<node>.json files, as lab agents;
//   - else nothing is shared: the node probes its own endpoints and takes the others as healthy
//     (never dropping traffic for want of a peer), and knows no drain.

import { FileExchange, type LbExchange, type PeerProbes } from './lb-exchange.js';
import { LbLoop, type LbTarget } from './lb-loop.js';
import { LbRemote, type LbRemoteOptions } from './lb-remote.js';
import type { LbNodeStatus } from './lb-status.js';

export interface KubeServicesOptions {
  /** Share health and drains through this weir server (URL, token and TLS of the flow shipper). */
  readonly server?: Pick<LbRemoteOptions, 'server' | 'token' | 'tls'>;
  /** The balancing loop's tick (default 500 ms); 0 turns the loop off (Service NAT with equal weights). */
  readonly lbIntervalMs?: number;
}

/** No server, no shared directory: own probes only, no drains, nothing published. */
export class NodeOnlyExchange implements LbExchange {
  drains(): Promise<Set<string>> {
    return Promise.resolve(new Set());
  }
  peers(): Promise<readonly PeerProbes[]> {
    return Promise.resolve([]);
  }
  publish(_status: LbNodeStatus): Promise<void> {
    return Promise.resolve();
  }
  problems(): readonly string[] {
    return [];
  }
  close(): void {}
}

export interface BalancingOptions {
  readonly node: string;
  readonly netns?: string;
  readonly statusDir?: string;
  readonly services: KubeServicesOptions;
  readonly log?: (line: string) => void;
}

/** The exchange `opts` call for (see the header). */
export function balancingExchange(opts: BalancingOptions): { exchange: LbExchange; how: string } {
  const server = opts.services.server;
  if (server) {
    return {
      exchange: new LbRemote({ ...server, node: opts.node, ...(opts.statusDir !== undefined ? { fileDir: opts.statusDir } : {}) }),
      how: `health and drains through ${server.server}`,
    };
  }
  if (opts.statusDir !== undefined) return { exchange: new FileExchange(opts.statusDir), how: `health and drains through ${opts.statusDir}/lb-*.json` };
  return { exchange: new NodeOnlyExchange(), how: "no --server: this node's own probes only, other nodes' endpoints taken as healthy, no drains" };
}

/** Starts the balancing loop on `target` (the agent's NodeAgent); undefined when turned off. */
export function startBalancing(target: LbTarget, opts: BalancingOptions): LbLoop | undefined {
  if (opts.services.lbIntervalMs === 0) return undefined;
  const { exchange, how } = balancingExchange(opts);
  const loop = new LbLoop({
    node: opts.node,
    ...(opts.netns !== undefined ? { netns: opts.netns } : {}),
    dir: opts.statusDir ?? '',
    exchange,
    target,
    ...(opts.services.lbIntervalMs !== undefined ? { intervalMs: opts.services.lbIntervalMs } : {}),
    ...(opts.log ? { log: opts.log } : {}),
  });
  opts.log?.(`weir agent ${opts.node}: balancing loop on (${how})`);
  loop.start();
  return loop;
}
