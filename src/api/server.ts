// The weir visibility server: flows API, live stream, metrics and the dashboard. Each route
// group is a Fastify plugin that receives what it needs; the server holds no global state.
import fastifySwagger from '@fastify/swagger';
import fastifySwaggerUi from '@fastify/swagger-ui';
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import type { ServerOptions as HttpsServerOptions } from 'node:https';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { WebhookStatus } from '../flows/alerts.js';
import { FlowMetrics } from '../flows/metrics.js';
import type { FlowPipeline } from '../flows/pipeline.js';
import type { FlowStore } from '../flows/store.js';
import { installErrorHandler } from './errors.js';
import { fanOutFlows } from './fanout.js';
import { AgentRegistry, ingestRoutes } from './ingest.js';
import { installAccessControl, type AccessOptions } from './security.js';
import { ServerMetrics } from './server-metrics.js';
import { alertsRoutes, type AlertRulesView } from './routes/alerts.js';
import { edgesRoutes } from './routes/edges.js';
import { flowsRoutes } from './routes/flows.js';
import { metricsRoutes } from './routes/metrics.js';
import { policiesRoutes, type KnownPolicy } from './routes/policies.js';
import { streamRoutes, type StreamOptions } from './routes/stream.js';
import { uiRoutes } from './routes/ui.js';
import { registerServiceMetrics, servicesRoutes, type ServicesSource } from './routes/services.js';
import { LbStatusRegistry, lbRoutes, servicesWithPushed } from './routes/lb.js';

export const DEFAULT_PORT = 7680;

/** Where `npm run build:ui` puts the dashboard. */
export const DEFAULT_UI_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'ui', 'web', 'dist');

export interface ServerOptions {
  store: FlowStore;
  pipeline: FlowPipeline;
  alerts?: AlertRulesView;
  /** Webhook delivery status (when alerts have a webhook). */
  webhook?: () => WebhookStatus;
  /** Metrics registry; defaults to the pipeline's, else a fresh one. */
  metrics?: FlowMetrics;
  knownPolicies?: () => readonly KnownPolicy[];
  uiDir?: string;
  logger?: FastifyServerOptions['logger'];
  stream?: Omit<StreamOptions, 'pipeline' | 'aggregator' | 'metrics' | 'store'>;
  /** Token, Host check; see security.ts. Default: no token, any Host (tests, embedding). */
  access?: Omit<AccessOptions, 'tls'>;
  /** PEM certificate and key: serve HTTPS. `clientCa`: agents must also present a client certificate it signed (mTLS on ingest). */
  tls?: { cert: string | Buffer; key: string | Buffer; clientCa?: string | Buffer };
  /** Idle and slow-request limits (ms). */
  timeouts?: Partial<ServerTimeouts>;
  /** The agents' Service status (`/api/services`, per-endpoint metrics). */
  services?: ServicesSource;
}

export interface ServerTimeouts {
  /** A socket with no traffic either way for this long is closed (an SSE stream sends a heartbeat every 15 s). */
  idleMs: number;
  /** A kept-alive connection between requests. */
  keepAliveMs: number;
  /** Time to receive a request's headers (slow-header attacks). */
  headersMs: number;
  /** Time to receive a whole request. */
  requestMs: number;
}

export const DEFAULT_TIMEOUTS: ServerTimeouts = { idleMs: 60_000, keepAliveMs: 5_000, headersMs: 10_000, requestMs: 30_000 };

export function createServer(opts: ServerOptions): FastifyInstance {
  const t = { ...DEFAULT_TIMEOUTS, ...opts.timeouts };
  const common = {
    logger: opts.logger ?? false,
    forceCloseConnections: true,
    connectionTimeout: t.idleMs,
    keepAliveTimeout: t.keepAliveMs,
    requestTimeout: t.requestMs,
    bodyLimit: 64 * 1024,
  } as const;
  // Fastify types an HTTPS instance apart from an HTTP one; routes and hooks are the same, so
  // the rest of weir handles one FastifyInstance type.
  // A client certificate is asked for but not required by TLS itself: only the ingest route needs one (browsers have none).
  const clientCa = opts.tls?.clientCa;
  const https: HttpsServerOptions | undefined = opts.tls ? { cert: opts.tls.cert, key: opts.tls.key, ...(clientCa ? { ca: clientCa, requestCert: true, rejectUnauthorized: false } : {}) } : undefined;
  const app = https ? (Fastify({ ...common, https }) as unknown as FastifyInstance) : Fastify(common);
  app.server.headersTimeout = t.headersMs;
  installErrorHandler(app);
  const metrics = opts.metrics ?? opts.pipeline.metrics ?? new FlowMetrics();
  const serverMetrics = new ServerMetrics(metrics.registry);
  installAccessControl(app, { ...opts.access, tls: https !== undefined }, { onRefused: (reason) => serverMetrics.authFailures.inc({ reason }) });
  const aggregator = opts.pipeline.aggregator;

  void app.register(fastifySwagger, {
    openapi: {
      info: { title: 'weir visibility API', version: '0.1.0', description: 'Flows between groups of workloads, policy hit counters, alerts and a live stream.' },
      tags: [{ name: 'flows' }, { name: 'policies' }, { name: 'alerts' }, { name: 'services' }, { name: 'metrics' }],
    },
  });
  void app.register(fastifySwaggerUi, { routePrefix: '/docs' });

  // Cluster mode: agents ship here (token always), and flow queries fan out to them (src/api/ingest.ts).
  const agents = new AgentRegistry(opts.store);
  const token = opts.access?.token;
  void app.register(ingestRoutes, { pipeline: opts.pipeline, store: opts.store, registry: metrics.registry, agents, token, requireClientCert: clientCa !== undefined });
  const fanOut = (q: Readonly<Record<string, string>>) => (agents.queryTargets().length > 0 ? fanOutFlows(agents.queryTargets(), q, token !== undefined ? { token } : {}) : undefined);
  void app.register(flowsRoutes, { store: opts.store, fanOut });
  void app.register(edgesRoutes, { store: opts.store, aggregator });
  void app.register(policiesRoutes, { aggregator, ...(opts.knownPolicies ? { knownPolicies: opts.knownPolicies } : {}) });
  void app.register(alertsRoutes, { store: opts.store, ...(opts.alerts ? { alerts: opts.alerts } : {}), ...(opts.webhook ? { webhook: opts.webhook } : {}) });
  void app.register(streamRoutes, { pipeline: opts.pipeline, aggregator, metrics: serverMetrics, store: opts.store, ...opts.stream });
  // Services at run time: the lab's files (when given) and what agents push (routes/lb.ts);
  // with neither, an empty list, not a 404 the dashboard would report.
  const lb = new LbStatusRegistry(opts.store);
  void app.register(lbRoutes, { registry: lb, token, requireClientCert: clientCa !== undefined });
  const services = servicesWithPushed(opts.services, lb);
  void app.register(servicesRoutes, { source: services });
  registerServiceMetrics(metrics.registry, services);
  void app.register(metricsRoutes, { metrics });
  void app.register(uiRoutes, { uiDir: opts.uiDir ?? DEFAULT_UI_DIR });
  app.get('/api/health', { schema: { hide: true } }, async () => ({ ok: true, pipeline: opts.pipeline.stats }));
  return app;
}
