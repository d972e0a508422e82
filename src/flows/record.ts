// The flow record: one observation of traffic between two endpoints, as every part of the
// visibility pipeline (parsers, aggregator, store, API, dashboard) sees it.
import { z } from 'zod';

export const VERDICTS = ['FORWARDED', 'DROPPED', 'AUDIT'] as const;
export const verdictSchema = z.enum(VERDICTS);
/** AUDIT: an audit-mode policy would have denied the flow, but it passed. */
export type Verdict = z.infer<typeof verdictSchema>;

export const TIERS = ['AdminNetworkPolicy', 'NetworkPolicy', 'BaselineAdminNetworkPolicy', 'default'] as const;
export const tierSchema = z.enum(TIERS);
export type Tier = z.infer<typeof tierSchema>;

export const FLOW_PROTOCOLS = ['TCP', 'UDP', 'SCTP', 'ICMP', 'ICMPv6', 'OTHER'] as const;
export const flowProtocolSchema = z.enum(FLOW_PROTOCOLS);
export type FlowProtocol = z.infer<typeof flowProtocolSchema>;

/**
 * One side of a flow. A pod endpoint carries namespace/pod (and workload/identity when known);
 * anything the enricher cannot map to a pod is `external`, optionally with the CIDR it matched.
 * Kept flat (rather than a union) so it maps 1:1 onto store columns and query filters.
 */
export const endpointSchema = z.object({
  ip: z.string().min(1),
  namespace: z.string().optional(),
  pod: z.string().optional(),
  workload: z.string().optional(),
  identity: z.string().optional(),
  /** The engine's numeric identity id (src/policy/cache.ts): the same in `lab status` and the agents' status. */
  identityId: z.number().int().positive().optional(),
  external: z.boolean().optional(),
  cidr: z.string().optional(),
});
export type Endpoint = z.infer<typeof endpointSchema>;

/**
 * `start`: a connection was created (conntrack NEW) — counts one flow, no bytes yet.
 * `end`: the connection ended (conntrack DESTROY) and carries its totals — bytes only, the flow
 *        was counted by its `start`.
 * `sample`: a self-contained observation (a counter delta, a flow whose start we missed) —
 *        counts one flow and its bytes.
 * This keeps every connection counted once and every byte counted once.
 */
export const FLOW_EVENTS = ['start', 'end', 'sample'] as const;
export const flowEventSchema = z.enum(FLOW_EVENTS);
export type FlowEvent = z.infer<typeof flowEventSchema>;

export const flowRecordSchema = z.object({
  /** Unix epoch milliseconds. */
  time: z.number().nonnegative(),
  node: z.string(),
  src: endpointSchema,
  dst: endpointSchema,
  srcPort: z.number().int().min(0).max(65535),
  dstPort: z.number().int().min(0).max(65535),
  protocol: flowProtocolSchema,
  verdict: verdictSchema,
  /** `Kind namespace/name` or `Kind name`, e.g. `NetworkPolicy shop/default-deny`; `default` when no policy decided. */
  policy: z.string(),
  /** `ingress[0]`, an admin rule name, or `default-deny` / `default-allow`. */
  rule: z.string(),
  tier: tierSchema,
  direction: z.enum(['ingress', 'egress']).optional(),
  bytes: z.number().int().nonnegative(),
  packets: z.number().int().nonnegative(),
  durationMs: z.number().nonnegative(),
  event: flowEventSchema.optional(),
  /**
   * The Service the client addressed, when the connection was translated to an endpoint (the
   * conntrack reply tuple comes from elsewhere than the original destination): `dst` and
   * `dstPort` are then the chosen endpoint, and this the Service's address and port (and
   * `namespace/name` when the enricher knows it).
   */
  service: z.object({ ip: z.string(), port: z.number().int().min(0).max(65535), name: z.string().optional() }).optional(),
  /**
   * Connections this record stands for (default 1). An agent that ships to a cluster server
   * folds the flows of one window and edge into one record (src/flows/ship-window.ts) and says
   * here how many it folded, so every count stays exact without shipping every connection.
   */
  count: z.number().int().nonnegative().optional(),
});
export type FlowRecord = z.infer<typeof flowRecordSchema>;

/** Flows this record adds to a count (see FlowEvent). */
export function flowCount(r: Pick<FlowRecord, 'event' | 'count'>): number {
  return r.event === 'end' ? 0 : (r.count ?? 1);
}

const PROTO_BY_NAME: Record<string, FlowProtocol> = {
  tcp: 'TCP',
  udp: 'UDP',
  sctp: 'SCTP',
  icmp: 'ICMP',
  icmpv6: 'ICMPv6',
  'ipv6-icmp': 'ICMPv6',
};
const PROTO_BY_NUMBER: Record<number, FlowProtocol> = { 6: 'TCP', 17: 'UDP', 132: 'SCTP', 1: 'ICMP', 58: 'ICMPv6' };

/** Protocol from a name (`tcp`) or an IANA number (`6`), as conntrack and nft print them. */
export function protocolFrom(v: string | number): FlowProtocol {
  if (typeof v === 'number') return PROTO_BY_NUMBER[v] ?? 'OTHER';
  const n = Number(v);
  if (v !== '' && Number.isInteger(n)) return PROTO_BY_NUMBER[n] ?? 'OTHER';
  return PROTO_BY_NAME[v.toLowerCase()] ?? 'OTHER';
}
