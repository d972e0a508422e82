import type { FastifyPluginAsync } from 'fastify';
import { GROUP_BYS, type Aggregator, type GroupBy } from '../../flows/aggregate.js';
import { FilterError, parseDuration } from '../../flows/filter.js';
import type { FlowStore } from '../../flows/store.js';

export function parseGroupBy(v: unknown): GroupBy {
  if (v === undefined || v === '') return 'workload';
  if (typeof v === 'string' && (GROUP_BYS as readonly string[]).includes(v)) return v as GroupBy;
  throw new FilterError('group', `must be one of ${GROUP_BYS.join(', ')}, got "${String(v)}"`);
}

export function parseWindow(v: unknown, fallback = '5m'): number {
  const text = v === undefined || v === '' ? fallback : String(v);
  const ms = parseDuration(text);
  if (ms === undefined || ms <= 0) throw new FilterError('window', `must be a duration like 1m, 5m or 1h, got "${text}"`);
  return ms;
}

export const edgesRoutes: FastifyPluginAsync<{ store: FlowStore; aggregator: Aggregator }> = async (app, { store, aggregator }) => {
  app.get(
    '/api/edges',
    {
      schema: {
        tags: ['flows'],
        summary: 'Group-to-group edges over a sliding window, with top talkers and top denied',
        querystring: {
          type: 'object',
          properties: {
            group: { type: 'string', enum: [...GROUP_BYS], description: 'Grouping (default workload).' },
            window: { type: 'string', description: 'Window: 1m, 5m, 1h (live, 10 s resolution) or longer (minute aggregates).' },
            top: { type: 'string', description: 'Entries in top lists (default 10).' },
          },
        },
      },
    },
    async (req) => {
      const q = req.query as Record<string, unknown>;
      const group = parseGroupBy(q.group);
      const windowMs = parseWindow(q.window);
      const top = q.top === undefined ? 10 : Number(q.top);
      if (!Number.isInteger(top) || top < 1 || top > 1000) throw new FilterError('top', `must be an integer between 1 and 1000, got "${String(q.top)}"`);
      // Within the live horizon the aggregator answers at bucket resolution; beyond it the store's minutes do.
      const edges = windowMs <= aggregator.horizonMs ? aggregator.edges(group, windowMs) : store.edges(group, Date.now() - windowMs);
      const groups = [...new Set(edges.flatMap((e) => [e.src, e.dst]))].sort();
      return {
        group,
        windowMs,
        groups,
        edges,
        topTalkers: [...edges].sort((a, b) => b.bytes - a.bytes || b.flows - a.flows).slice(0, top),
        topDenied: edges.filter((e) => e.dropped > 0).sort((a, b) => b.dropped - a.dropped).slice(0, top),
      };
    },
  );
};
