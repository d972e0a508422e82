// Services at run time in cluster mode: the agents' balancing loops push their status here and
// get the drains and the other nodes' probes back (contract: src/agent/lb-protocol.ts); `weir lb
// drain|undrain --server` set the drains. Drains are kept in the flow store's small state
// (SQLite: they survive a restart of the server); statuses are kept in memory, as the agents
// push a fresh one every tick.
//
// Writers need the bearer token always, also on a server open on loopback (as the flow ingest
// route): an unauthenticated writer could drain a location or forge an endpoint's health. An
// agent's push also needs a client certificate when the server checks them (--client-ca).

import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { createHash, timingSafeEqual } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { LB_DRAINS_PATH, LB_STATUS_BODY_LIMIT, LB_STATUS_PATH, type LbDrainsReply, type LbExchangeReply } from '../../agent/lb-protocol.js';
import { LOCATION_NAME, lbNodeStatusSchema, serviceViews, type LbNodeStatus } from '../../agent/lb-status.js';
import type { FlowStore } from '../../flows/store.js';
import type { ServicesSource } from './services.js';

const DRAINS_KEY = 'lb.drained';
/** A node not heard from for this long is forgotten (its status is no longer served). */
const FORGET_MS = 60 * 60_000;

/** What the server knows of the agents' balancing: their statuses and the drains. */
export class LbStatusRegistry {
  private readonly statuses = new Map<string, { status: LbNodeStatus; at: number }>();
  private drained: Set<string>;

  constructor(private readonly store: FlowStore) {
    let saved: unknown;
    try {
      saved = JSON.parse(store.getState(DRAINS_KEY) ?? '[]');
    } catch {
      saved = [];
    }
    this.drained = new Set(Array.isArray(saved) ? saved.filter((x): x is string => typeof x === 'string' && LOCATION_NAME.test(x)) : []);
  }

  put(status: LbNodeStatus): void {
    this.statuses.set(status.node, { status, at: Date.now() });
  }

  reply(): LbExchangeReply {
    const now = Date.now();
    for (const [node, e] of this.statuses) if (now - e.at > FORGET_MS) this.statuses.delete(node);
    return {
      drained: this.drainedList(),
      peers: [...this.statuses.values()].map((e) => ({ node: e.status.node, ageMs: now - e.at, probes: e.status.probes })).sort((a, b) => a.node.localeCompare(b.node)),
    };
  }

  /** Every pushed status, `updatedAt` on the server's clock (when it arrived). */
  list(): LbNodeStatus[] {
    return [...this.statuses.values()].map((e) => ({ ...e.status, updatedAt: new Date(e.at).toISOString() }));
  }

  drainedList(): string[] {
    return [...this.drained].sort();
  }

  setDrain(location: string, drained: boolean): string[] {
    const next = new Set(this.drained);
    if (drained) next.add(location);
    else next.delete(location);
    // Stored before it is served: a drain the server answered must survive its restart.
    this.store.setState(DRAINS_KEY, JSON.stringify([...next].sort()));
    this.drained = next;
    return this.drainedList();
  }
}

/**
 * The Services view of `/api/services` and `/metrics`: what the lab's files say (when the
 * server follows a lab) and what agents pushed, by node, the newer of the two winning.
 */
export function servicesWithPushed(files: ServicesSource | undefined, registry: LbStatusRegistry): ServicesSource {
  const statuses = async (): Promise<{ statuses: LbNodeStatus[]; errors: readonly string[] }> => {
    const fromFiles = files?.statuses ? await files.statuses() : { statuses: [], errors: [] };
    const byNode = new Map(fromFiles.statuses.map((s) => [s.node, s]));
    for (const s of registry.list()) {
      const other = byNode.get(s.node);
      if (!other || Date.parse(other.updatedAt) <= Date.parse(s.updatedAt)) byNode.set(s.node, s);
    }
    return { statuses: [...byNode.values()], errors: fromFiles.errors };
  };
  return {
    async views() {
      // A source of views only (tests, embedding): its views, then the pushed nodes'.
      if (files && !files.statuses) {
        const v = await files.views();
        const pushed = registry.list();
        return pushed.length === 0 ? v : { services: [...v.services, ...serviceViews(pushed)], errors: v.errors };
      }
      const s = await statuses();
      return { services: serviceViews(s.statuses), errors: s.errors };
    },
    statuses,
    // The pods' groups come from whoever knows the pods (the lab's view): kept through the merge.
    ...(files?.endpointGroups ? { endpointGroups: files.endpointGroups.bind(files) } : {}),
  };
}

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();

export interface LbRoutesOptions {
  readonly registry: LbStatusRegistry;
  /** The token writers must send; without one, writes are refused. */
  readonly token: string | undefined;
  /** Agents' pushes need a client certificate signed by the server's --client-ca. */
  readonly requireClientCert?: boolean;
}

function refuseWriter(req: FastifyRequest, reply: FastifyReply, token: string | undefined, what: string): FastifyReply | undefined {
  const auth = req.headers.authorization;
  const given = auth !== undefined && /^bearer /i.test(auth) ? auth.slice(7).trim() : undefined;
  if (token !== undefined && given !== undefined && timingSafeEqual(digest(given), digest(token))) return undefined;
  return reply
    .status(401)
    .header('www-authenticate', 'Bearer realm="weir"')
    .send({ statusCode: 401, error: 'Unauthorized', message: token === undefined ? `this server takes no ${what}: start it with --token-file` : given === undefined ? 'send Authorization: Bearer <token>' : 'wrong token' });
}

export const lbRoutes: FastifyPluginAsync<LbRoutesOptions> = async (app, opts) => {
  const { registry, token } = opts;

  app.post(LB_STATUS_PATH, { bodyLimit: LB_STATUS_BODY_LIMIT, schema: { tags: ['services'], summary: "An agent's balancing status; answered with the drains and the other nodes' probes (bearer token required)" } }, async (req, reply) => {
    const refused = refuseWriter(req, reply, token, 'balancing status from agents');
    if (refused) return refused;
    if (opts.requireClientCert && !(req.raw.socket as TLSSocket).authorized) {
      return reply.status(401).send({ statusCode: 401, error: 'Unauthorized', message: 'this server takes status only from agents with a client certificate signed by its --client-ca (--client-cert, --client-key)' });
    }
    const parsed = lbNodeStatusSchema.safeParse(req.body);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      return reply.status(400).send({ statusCode: 400, error: 'Bad Request', message: `balancing status: field ${issue?.path.join('.') || '(body)'}: ${issue?.message ?? 'invalid'}` });
    }
    registry.put(parsed.data);
    return registry.reply();
  });

  app.get(LB_STATUS_PATH, { schema: { tags: ['services'], summary: "The drains and every node's probes of its own endpoints" } }, async () => registry.reply());

  app.get(LB_DRAINS_PATH, { schema: { tags: ['services'], summary: 'Drained locations' } }, async () => ({ drained: registry.drainedList() }) satisfies LbDrainsReply);

  const setDrain = (drained: boolean) => async (req: FastifyRequest<{ Params: { location: string } }>, reply: FastifyReply) => {
    const refused = refuseWriter(req, reply, token, 'drains');
    if (refused) return refused;
    const { location } = req.params;
    if (!LOCATION_NAME.test(location)) {
      return reply.status(400).send({ statusCode: 400, error: 'Bad Request', message: `"${location}" is not a location name (a label value: letters, digits, '-', '_', '.', at most 63)` });
    }
    return { drained: registry.setDrain(location, drained) } satisfies LbDrainsReply;
  };
  const params = { type: 'object', properties: { location: { type: 'string' } }, required: ['location'] } as const;
  app.put<{ Params: { location: string } }>(`${LB_DRAINS_PATH}/:location`, { schema: { tags: ['services'], summary: 'Drain a location: no new connections to its endpoints (bearer token required)', params } }, setDrain(true));
  app.delete<{ Params: { location: string } }>(`${LB_DRAINS_PATH}/:location`, { schema: { tags: ['services'], summary: 'Undrain a location (bearer token required)', params } }, setDrain(false));
};
