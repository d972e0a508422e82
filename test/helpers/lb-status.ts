// Status files of the balancing loop (src/agent/lb-status.ts) as tests write them: one node's
// file around the Service ports a test describes.

import type { EndpointStatus, LbNodeStatus, ServicePortStatus } from '../../src/agent/lb-status.js';

/** A node's lb status, fresh, with the given Service ports and nothing drained or failing. */
export function lbNodeStatus(node: string, services: ServicePortStatus[]): LbNodeStatus {
  return { node, updatedAt: new Date().toISOString(), intervalMs: 500, windowMs: 30_000, drained: [], problems: [], probes: {}, services };
}

/** One ClusterIP Service port (`ns/name`), not rejecting, with its endpoints and weight history. */
export function clusterPort(
  service: string,
  at: { clusterIP: string; port: number; mode: ServicePortStatus['mode'] },
  endpoints: EndpointStatus[],
  history: ServicePortStatus['history'],
): ServicePortStatus {
  return { service, portIndex: 0, port: at.port, protocol: 'TCP', frontend: 'cluster', clusterIP: at.clusterIP, mode: at.mode, reject: false, notes: [], endpoints, history };
}
