// The contract between the agents' balancing loops and the one weir server in cluster mode,
// where agents on different nodes share no directory (in the lab they share lb-<node>.json and
// lb-drain.json, src/agent/lb-files.ts). One schema per message, imported by both sides
// (src/agent/lb-remote.ts sends, src/api/routes/lb.ts answers):
//
//   POST   /api/lb/status              LbNodeStatus → LbExchangeReply   (agents; bearer token
//                                        always, a client certificate when the server has --client-ca)
//   GET    /api/lb/status              → LbExchangeReply                  (the same, without pushing)
//   GET    /api/lb/drains              → LbDrainsReply
//   PUT    /api/lb/drains/:location    → LbDrainsReply                    (`weir lb drain --server`;
//   DELETE /api/lb/drains/:location    → LbDrainsReply                     bearer token always)
//
// One round trip per agent tick: the agent pushes its status and gets back the drains and the
// other nodes' probes of their own endpoints (what it needs for health), not their whole files.
// Ages are measured on the server's clock (`ageMs`), so the agents' clocks need not agree.

import { z } from 'zod';
import { LOCATION_NAME, lbNodeStatusSchema } from './lb-status.js';

export const LB_STATUS_PATH = '/api/lb/status';
export const LB_DRAINS_PATH = '/api/lb/drains';

/** Largest status body accepted (a node with a few thousand Service ports and their history). */
export const LB_STATUS_BODY_LIMIT = 8 * 1024 * 1024;

export const lbPeerSchema = z.object({
  node: z.string(),
  /** Time since the server received this node's status, on the server's clock. */
  ageMs: z.number().min(0),
  probes: lbNodeStatusSchema.shape.probes,
});
export type LbPeer = z.infer<typeof lbPeerSchema>;

export const lbExchangeReplySchema = z.object({
  drained: z.array(z.string().regex(LOCATION_NAME)),
  /** Every other node that reported, with its own probes. */
  peers: z.array(lbPeerSchema),
});
export type LbExchangeReply = z.infer<typeof lbExchangeReplySchema>;

export const lbDrainsReplySchema = z.object({ drained: z.array(z.string()) });
export type LbDrainsReply = z.infer<typeof lbDrainsReplySchema>;
