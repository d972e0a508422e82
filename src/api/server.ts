// The weir visibility server: flows API, live stream, metrics and the dashboard. Each route
// group is a Fastify plugin that receives what it needs; the server holds no global state.
import fastifySwagger from '@fastify/swagger';
import fastifySwaggerUi from '@fastify/swagger-ui';
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FlowMetrics } from '../flows/metrics.js';
import type { FlowPipeline } from '../flows/pipeline.js';
import type { FlowStore } from '../flows/store.js';
import { installErrorHandler } from './errors.js';
import { alertsRoutes, type AlertRulesView } from './routes/alerts.js';
import { edgesRoutes } from './routes/edges.js';
import { flowsRoutes } from './routes/flows.js';
import { metricsRoutes } from './routes/metrics.js';
import { policiesRoutes, type KnownPolicy } from './routes/policies.js';
import { streamRoutes } from './routes/stream.js';
import { uiRoutes } from './routes/ui.js';

export const DEFAULT_PORT = 7680;

/** Where `npm run build:ui` puts the dashboard. */
export const DEFAULT_UI_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'ui', 'web', 'dist');

export interface ServerOptions {
  store: FlowStore;
  pipeline: FlowPipeline;
  alerts?: AlertRulesView;
  /** Metrics registry; defaults to the pipeline's, else a fresh one. */
  metrics?: FlowMetrics;
  knownPolicies?: () => readonly KnownPolicy[];
  uiDir?: string;
  logger?: FastifyServerOptions['logger'];
  stream?: { maxFlowsPerEvent?: number; heartbeatMs?: number };
}

export function createServer(opts: ServerOptions): FastifyInstance {
  const app = Fastify({ logger: opts.logger ?? false, forceCloseConnections: true });
  installErrorHandler(app);
  const metrics = opts.metrics ?? opts.pipeline.metrics ?? new FlowMetrics();
  const aggregator = opts.pipeline.aggregator;

  void app.register(fastifySwagger, {
    openapi: {
      info: { title: 'weir visibility API', version: '0.1.0', description: 'Flows between groups of workloads, policy hit counters, alerts and a live stream.' },
      tags: [{ name: 'flows' }, { name: 'policies' }, { name: 'alerts' }, { name: 'metrics' }],
    },
  });
  void app.register(fastifySwaggerUi, { routePrefix: '/docs' });

  void app.register(flowsRoutes, { store: opts.store });
  void app.register(edgesRoutes, { store: opts.store, aggregator });
  void app.register(policiesRoutes, { aggregator, ...(opts.knownPolicies ? { knownPolicies: opts.knownPolicies } : {}) });
  void app.register(alertsRoutes, { store: opts.store, ...(opts.alerts ? { alerts: opts.alerts } : {}) });
  void app.register(streamRoutes, { pipeline: opts.pipeline, aggregator, ...opts.stream });
  void app.register(metricsRoutes, { metrics });
  void app.register(uiRoutes, { uiDir: opts.uiDir ?? DEFAULT_UI_DIR });
  app.get('/api/health', { schema: { hide: true } }, async () => ({ ok: true, pipeline: opts.pipeline.stats }));
  return app;
}
