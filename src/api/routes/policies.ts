import type { FastifyPluginAsync } from 'fastify';
import type { Aggregator, PolicyCounter } from '../../flows/aggregate.js';
import type { Tier } from '../../flows/record.js';

export interface KnownPolicy {
  policy: string;
  tier: Tier;
}

export const policiesRoutes: FastifyPluginAsync<{ aggregator: Aggregator; knownPolicies?: () => readonly KnownPolicy[] }> = async (app, opts) => {
  app.get('/api/policies', { schema: { tags: ['policies'], summary: 'Per-policy hit counters (policies never hit are listed with zero hits)' } }, async () => {
    const counters = new Map<string, PolicyCounter>(opts.aggregator.policyCounters().map((p) => [p.policy, p]));
    for (const k of opts.knownPolicies?.() ?? []) {
      if (!counters.has(k.policy)) counters.set(k.policy, { policy: k.policy, tier: k.tier, hits: 0, forwarded: 0, dropped: 0, audit: 0, packets: 0, bytes: 0, lastSeen: 0, rules: {} });
    }
    return { policies: [...counters.values()].sort((a, b) => b.hits - a.hits || a.policy.localeCompare(b.policy)) };
  });
};
