import type { FastifyPluginAsync } from 'fastify';
import type { WebhookStatus } from '../../flows/alerts.js';
import { FilterError } from '../../flows/filter.js';
import type { AlertState, FlowStore } from '../../flows/store.js';

export interface AlertRulesView {
  rules(): readonly { name: string; kind: string; state: string }[];
}

const STATES: readonly AlertState[] = ['firing', 'resolved', 'event'];

export const alertsRoutes: FastifyPluginAsync<{ store: FlowStore; alerts?: AlertRulesView; webhook?: () => WebhookStatus }> = async (app, { store, alerts, webhook }) => {
  app.get(
    '/api/alerts',
    {
      schema: {
        tags: ['alerts'],
        summary: 'Fired alerts (newest first), the configured rules and the webhook delivery status (null without a webhook)',
        querystring: { type: 'object', properties: { state: { type: 'string', enum: [...STATES] }, limit: { type: 'string' } } },
      },
    },
    async (req) => {
      const q = req.query as { state?: AlertState; limit?: string };
      const limit = q.limit === undefined ? 100 : Number(q.limit);
      if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) throw new FilterError('limit', `must be an integer between 1 and 10000, got "${q.limit}"`);
      return { alerts: store.listAlerts({ limit, ...(q.state ? { state: q.state } : {}) }), rules: alerts?.rules() ?? [], webhook: webhook?.() ?? null };
    },
  );
};
