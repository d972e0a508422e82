import type { FastifyPluginAsync } from 'fastify';
import type { FlowMetrics } from '../../flows/metrics.js';

export const metricsRoutes: FastifyPluginAsync<{ metrics: FlowMetrics }> = async (app, { metrics }) => {
  app.get('/metrics', { schema: { tags: ['metrics'], summary: 'Prometheus metrics' } }, async (_req, reply) => {
    reply.type(metrics.registry.contentType);
    return metrics.text();
  });
};
