// Services at run time: what every agent's balancing loop measured and decided
// (src/agent/lb-loop.ts writes lb-<node>.json; `views` reads them), as JSON with OpenAPI
// schemas derived from the same zod schemas the files are checked with, and as Prometheus
// gauges per endpoint (collected when /metrics is scraped, so they are never stale by more
// than one agent tick).

import type { FastifyPluginAsync } from 'fastify';
import { Gauge, type Registry } from 'prom-client';
import { z } from 'zod';
import type { LbNodeStatus, ServiceView } from '../../agent/lb-status.js';
import { serviceApiSchema, type ServiceApiView } from '../services-schema.js';

export interface ServicesSource {
  /** Every Service port as the agents see it, and the files that could not be read. */
  views(): Promise<{ readonly services: readonly ServiceView[]; readonly errors: readonly string[] }>;
  /** The groups of the pod at an endpoint address (what the flows of that pod are grouped by), when the server knows the pod. */
  endpointGroups?(ip: string): { readonly workload?: string; readonly identity?: string } | undefined;
  /** The node statuses behind the views, when the source has them (the server merges agents' pushed ones by node). */
  statuses?(): Promise<{ readonly statuses: readonly LbNodeStatus[]; readonly errors: readonly string[] }>;
}

function withGroups(views: readonly ServiceView[], source: ServicesSource): ServiceApiView[] {
  const groups = source.endpointGroups?.bind(source);
  if (!groups) return [...views];
  return views.map((v) => ({
    ...v,
    nodes: v.nodes.map((n) => ({
      ...n,
      endpoints: n.endpoints.map((e) => {
        const g = groups(e.key.slice(0, e.key.lastIndexOf(':')));
        return { ...e, ...(g?.workload !== undefined ? { workload: g.workload } : {}), ...(g?.identity !== undefined ? { identity: g.identity } : {}) };
      }),
    })),
  }));
}

function jsonSchema(schema: z.ZodType): Record<string, unknown> {
  const { $schema: _drop, ...rest } = z.toJSONSchema(schema, { io: 'output', unrepresentable: 'any' }) as Record<string, unknown>;
  return rest;
}

const listSchema = z.object({
  services: z.array(serviceApiSchema),
  /** Agent files that could not be read (named with the problem). */
  errors: z.array(z.string()),
});
const oneSchema = z.object({ service: z.string(), ports: z.array(serviceApiSchema) });

const LABELS = ['service', 'port', 'frontend', 'node', 'endpoint', 'pod', 'location'] as const;
type EndpointView = ServiceView['nodes'][number]['endpoints'][number];

/** Per-endpoint gauges, refreshed from `source` on every scrape. */
export function registerServiceMetrics(registry: Registry, source: ServicesSource): void {
  // One set of gauges per registry (a registry shared by two servers keeps the first source).
  if (registry.getSingleMetric('weir_service_endpoint_weight')) return;
  // One read of the agents' files per scrape, shared by every gauge's collect: prom-client
  // starts the collects of a scrape together, so they all join the read in flight.
  let pending: Promise<readonly ServiceView[]> | undefined;
  const snapshot = (): Promise<readonly ServiceView[]> => {
    pending ??= source
      .views()
      .then((r) => r.services)
      .finally(() => {
        pending = undefined;
      });
    return pending;
  };
  const gauge = (name: string, help: string, value: (e: EndpointView) => number | undefined): Gauge =>
    new Gauge({
      name,
      help,
      labelNames: LABELS,
      registers: [registry],
      async collect() {
        const views = await snapshot();
        this.reset();
        for (const v of views) {
          for (const n of v.nodes) {
            for (const e of n.endpoints) {
              const x = value(e);
              if (x !== undefined) this.set({ service: v.service, port: String(v.port), frontend: v.frontend, node: n.node, endpoint: e.key, pod: e.pod ?? '', location: e.location ?? '' }, x);
            }
          }
        }
      },
    });
  gauge('weir_service_endpoint_weight', 'Kernel weight of a Service endpoint on a node, out of 1000 (0: no new connections)', (e) => e.weight);
  gauge('weir_service_endpoint_latency_seconds', 'Smoothed latency of the active health probes of a Service endpoint', (e) => (e.latencyMs !== undefined ? e.latencyMs / 1000 : undefined));
  gauge('weir_service_endpoint_healthy', '1 when the endpoint passes its active probes', (e) => (e.healthy ? 1 : 0));
  gauge('weir_service_endpoint_error_ratio', 'Smoothed share of failed requests (probes and reset connections)', (e) => e.errorRate);
  gauge('weir_service_endpoint_in_flight', 'Open connections through the node to the endpoint (conntrack)', (e) => e.inFlight);
}

export const servicesRoutes: FastifyPluginAsync<{ source: ServicesSource }> = async (app, { source }) => {
  app.get(
    '/api/services',
    {
      schema: {
        tags: ['services'],
        summary: "Every Service port: per node, its endpoints with location, weight, health, latency, error rate, requests in flight, share of recent connections and the weights over time",
        response: { 200: jsonSchema(listSchema) },
      },
    },
    async () => {
      const { services, errors } = await source.views();
      return { services: withGroups(services, source), errors };
    },
  );
  app.get<{ Params: { ns: string; name: string } }>(
    '/api/services/:ns/:name',
    {
      schema: {
        tags: ['services'],
        summary: 'One Service: its ports as every node balances them',
        params: { type: 'object', properties: { ns: { type: 'string' }, name: { type: 'string' } }, required: ['ns', 'name'] },
        response: { 200: jsonSchema(oneSchema) },
      },
    },
    async (req, reply) => {
      const key = `${req.params.ns}/${req.params.name}`;
      const ports = (await source.views()).services.filter((v) => v.service === key);
      if (ports.length === 0) return reply.code(404).send({ error: 'Not Found', message: `no Service ${key} (or no agent reports it yet)`, statusCode: 404 });
      return { service: key, ports: withGroups(ports, source) };
    },
  );
};
