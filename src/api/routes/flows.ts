import type { FastifyPluginAsync } from 'fastify';
import { FILTER_FIELDS, parseFlowFilter, type RawQuery } from '../../flows/filter.js';
import type { FlowStore } from '../../flows/store.js';
import type { FanOutResult } from '../fanout.js';

/** Cluster mode: asks the agents for their raw records (undefined: no agent serves any). */
export type FlowsFanOut = (query: Readonly<Record<string, string>>) => Promise<FanOutResult> | undefined;

const FILTER_DOCS: Record<(typeof FILTER_FIELDS)[number], string> = {
  from_namespace: 'Source namespace (or an `external:<cidr>` group).',
  from_pod: 'Source pod name, or `namespace/pod`.',
  from_workload: 'Source workload key (`ns/name[Kind]`) or `external:<cidr>`.',
  from_identity: 'Source identity (`ns:label=value,...`).',
  to_namespace: 'Destination namespace (or an `external:<cidr>` group).',
  to_pod: 'Destination pod name, or `namespace/pod`.',
  to_workload: 'Destination workload key or `external:<cidr>`.',
  to_identity: 'Destination identity.',
  namespace: 'Either side in this namespace.',
  verdict: 'FORWARDED | DROPPED | AUDIT',
  port: 'Destination port.',
  protocol: 'TCP | UDP | SCTP | ICMP | ICMPv6',
  policy: 'Deciding policy, e.g. `NetworkPolicy shop/default-deny`.',
  node: 'Reporting node.',
  since: 'Duration ago (`5m`) or RFC3339 timestamp.',
  until: 'Duration ago (`1m`) or RFC3339 timestamp.',
  limit: 'Maximum flows returned (1..10000, default 100).',
};

export const filterQuerySchema = {
  type: 'object',
  properties: Object.fromEntries(FILTER_FIELDS.map((f) => [f, { type: 'string', description: FILTER_DOCS[f] }])),
} as const;

export const flowsRoutes: FastifyPluginAsync<{ store: FlowStore; fanOut?: FlowsFanOut }> = async (app, { store, fanOut }) => {
  app.get(
    '/api/flows',
    {
      schema: {
        tags: ['flows'],
        summary: 'Query stored flows (newest first) with Hubble-like filters',
        querystring: filterQuerySchema,
      },
    },
    async (req) => {
      // Parsed here rather than by ajv so every error names the field in weir's words.
      const filter = parseFlowFilter(req.query as RawQuery);
      const flows = store.queryFlows(filter);
      const q = req.query as Record<string, unknown>;
      const asked = fanOut?.(Object.fromEntries(FILTER_FIELDS.flatMap((f) => (typeof q[f] === 'string' ? [[f, q[f]]] : []))));
      if (!asked) return { count: flows.length, flows };
      // The agents hold their nodes' raw records; the store holds only samples and aggregates of them.
      const fo = await asked;
      const agentNodes = new Set(fo.sources.map((s) => s.node));
      const merged = [...flows.filter((f) => !agentNodes.has(f.node)), ...fo.flows].sort((a, b) => b.time - a.time).slice(0, filter.limit);
      return { count: merged.length, flows: merged, sources: fo.sources, partial: fo.sources.some((s) => !s.ok) };
    },
  );
};
