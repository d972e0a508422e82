// The agent's own query endpoint: its raw records (src/flows/raw-ring.ts) under the same filters
// as the server's /api/flows, so the server can fan a query out to every agent (as Hubble Relay
// asks each node's buffer). Bound to loopback, or to the node's address with a token.
import Fastify, { type FastifyInstance } from 'fastify';
import { parseFlowFilter, type RawQuery } from '../flows/filter.js';
import type { RawFlowRing } from '../flows/raw-ring.js';
import { AGENT_FLOWS_PATH } from '../flows/ship-protocol.js';
import { installErrorHandler } from './errors.js';
import { checkExposure, installAccessControl, isLoopbackAddress } from './security.js';

export interface AgentQueryOptions {
  ring: RawFlowRing;
  host: string;
  port: number;
  /** Required unless `host` is loopback (the records name every workload of the node). */
  token?: string;
}

export interface AgentQueryServer {
  app: FastifyInstance;
  /** `http://host:port`, what the agent reports as its queryUrl. */
  url: string;
  close(): Promise<void>;
}

export async function startAgentQueryServer(opts: AgentQueryOptions): Promise<AgentQueryServer> {
  checkExposure(opts.host, opts.token);
  const app = Fastify({ logger: false, forceCloseConnections: true });
  installErrorHandler(app);
  installAccessControl(app, { ...(opts.token !== undefined ? { token: opts.token } : {}), loopbackOnly: isLoopbackAddress(opts.host) });
  app.get(AGENT_FLOWS_PATH, async (req) => {
    const flows = opts.ring.query(parseFlowFilter(req.query as RawQuery));
    return { count: flows.length, flows };
  });
  app.get('/api/health', async () => ({ ok: true, records: opts.ring.size }));
  await app.listen({ host: opts.host, port: opts.port });
  const addr = app.server.address();
  const host = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
  const url = typeof addr === 'object' && addr ? `http://${host}:${addr.port}` : String(addr);
  return { app, url, close: () => app.close() };
}
