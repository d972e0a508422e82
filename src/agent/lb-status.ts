// The files of Services at run time, one schema each, imported by the writer and every reader
// (the agent's balancing loop writes, `weir lb`, `weir serve` and the dashboard read):
//
//   <dir>/lb-drain.json     { "drained": ["eu-west"] }   written by `weir lb drain/undrain`,
//                                                          read by every agent each tick
//   <dir>/lb-<node>.json    LbNodeStatus                  each agent's Services: endpoints,
//                                                          weights, measurements, history
//
// In the lab `<dir>` is the lab directory; on a node, the agent's status directory.

// Schemas and pure views only (the dashboard imports the types); reading and writing the
// files is lb-files.ts.

import { z } from 'zod';

export const LB_DRAIN_FILE = 'lb-drain.json';
export const lbStatusFile = (node: string): string => `lb-${node}.json`;

/** A location name: the Kubernetes label value syntax (as `weir.dev/location`). */
export const LOCATION_NAME = /^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$/;

export const drainFileSchema = z.strictObject({
  drained: z.array(z.string().regex(LOCATION_NAME, 'not a location name (label value syntax)')),
});
export type DrainFile = z.infer<typeof drainFileSchema>;

export const endpointStatusSchema = z.object({
  /** `ip:port`. */
  key: z.string(),
  pod: z.string().optional(),
  node: z.string().optional(),
  location: z.string().optional(),
  /** Kernel weight out of 1000 (0: no new connections). */
  weight: z.number().int(),
  /** Active probe verdict (after the rise/fall thresholds). */
  healthy: z.boolean(),
  /** Whether the endpoint's location is drained. */
  drained: z.boolean(),
  /** Smoothed latency of the active probes, ms. */
  latencyMs: z.number().optional(),
  /** Smoothed share of failed requests (probes and reset connections), 0–1. */
  errorRate: z.number(),
  /** Open connections through this node to the endpoint (conntrack, not yet closing). */
  inFlight: z.number().int(),
  /** Conntrack entries through this node to the endpoint, closing ones included. */
  connections: z.number().int(),
  /** Share of the new connections of the last window (0–1; absent when there were none). */
  recentShare: z.number().optional(),
  /** The adaptive controller's share (adaptive Services only). */
  adaptiveShare: z.number().optional(),
});
export type EndpointStatus = z.infer<typeof endpointStatusSchema>;

export const servicePortStatusSchema = z.object({
  /** `namespace/name`. */
  service: z.string(),
  portIndex: z.number().int(),
  port: z.number().int(),
  protocol: z.string(),
  frontend: z.enum(['cluster', 'node-port']),
  clusterIP: z.string().optional(),
  mode: z.enum(['equal', 'weighted', 'adaptive']),
  reject: z.boolean(),
  notes: z.array(z.string()),
  endpoints: z.array(endpointStatusSchema),
  /** Weights over time, oldest first (one point per tick, bounded). */
  history: z.array(z.object({ t: z.number(), weights: z.record(z.string(), z.number()) })),
});
export type ServicePortStatus = z.infer<typeof servicePortStatusSchema>;

export const lbNodeStatusSchema = z.object({
  node: z.string(),
  updatedAt: z.string(),
  intervalMs: z.number(),
  /** New-connection window behind `recentShare`, ms. */
  windowMs: z.number(),
  drained: z.array(z.string()),
  /** Why the last tick could not measure something (conntrack missing, prober down). */
  problems: z.array(z.string()),
  /**
   * The node's own probes of the endpoints on it (by `ip:port`): every agent probes only its
   * local endpoints, as kubelet does, and takes the others' health from their nodes' files.
   */
  probes: z.record(z.string(), z.object({ healthy: z.boolean(), ok: z.boolean(), ms: z.number(), seq: z.number().int() })).default({}),
  services: z.array(servicePortStatusSchema),
});
export type LbNodeStatus = z.infer<typeof lbNodeStatusSchema>;

/** One Service port as every node sees it (each node balances its own clients' connections). */
export const serviceViewSchema = servicePortStatusSchema.pick({ service: true, portIndex: true, port: true, protocol: true, frontend: true, clusterIP: true, mode: true }).extend({
  namespace: z.string(),
  name: z.string(),
  nodes: z.array(
    z.object({
      node: z.string(),
      updatedAt: z.string(),
      reject: z.boolean(),
      notes: z.array(z.string()),
      endpoints: z.array(endpointStatusSchema),
      history: servicePortStatusSchema.shape.history,
    }),
  ),
});
export type ServiceView = z.infer<typeof serviceViewSchema>;

/** The agents' files grouped by Service port, sorted by Service, port and node; `filter` is `ns/name` or `name`. */
export function serviceViews(statuses: readonly LbNodeStatus[], filter?: string): ServiceView[] {
  const byId = new Map<string, ServiceView>();
  for (const s of [...statuses].sort((a, b) => a.node.localeCompare(b.node))) {
    for (const p of s.services) {
      const [namespace, name] = p.service.split('/');
      if (filter !== undefined && filter !== p.service && filter !== name) continue;
      const id = `${p.service}/${p.portIndex}/${p.frontend}`;
      let view = byId.get(id);
      if (!view) {
        view = { service: p.service, namespace, name, portIndex: p.portIndex, port: p.port, protocol: p.protocol, frontend: p.frontend, ...(p.clusterIP !== undefined ? { clusterIP: p.clusterIP } : {}), mode: p.mode, nodes: [] };
        byId.set(id, view);
      }
      view.nodes.push({ node: s.node, updatedAt: s.updatedAt, reject: p.reject, notes: p.notes, endpoints: p.endpoints, history: p.history });
    }
  }
  return [...byId.values()].sort((a, b) => a.service.localeCompare(b.service) || a.portIndex - b.portIndex || a.frontend.localeCompare(b.frontend));
}
