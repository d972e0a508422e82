// Server-Sent Events: one `snapshot` (current edges for the window), then one `batch` per
// pipeline flush (~200 ms): the batch's flows (matching the filters) and edge deltas the
// client adds to its snapshot.
//
// Every client's queue is bounded. A batch is written only while the client's unsent bytes are
// under `maxQueuedBytes`; otherwise it is dropped for that client and counted, and once the
// client catches up it first gets a `gap` event (batches, flows and alerts it missed, since
// when), after which its edge totals are no longer exact (the dashboard reconnects for a fresh
// snapshot). A client that stays behind for `maxBehindMs` is disconnected, and at most
// `maxClients` streams are open at once (503 beyond). Unfiltered clients of one grouping share
// one serialized buffer per batch, so 200 of them cost one copy of the batch, not 200.
import type { FastifyPluginAsync } from 'fastify';
import type { ServerResponse } from 'node:http';
import { aggregateEdges, type Aggregator, type Edge, type GroupBy } from '../../flows/aggregate.js';
import { matchesFilter, parseFlowFilter, type FlowFilter } from '../../flows/filter.js';
import type { FlowStore } from '../../flows/store.js';
import type { FlowPipeline, PipelineBatch } from '../../flows/pipeline.js';
import type { FlowRecord } from '../../flows/record.js';
import type { ServerMetrics } from '../server-metrics.js';
import { filterQuerySchema } from './flows.js';
import { parseGroupBy, parseWindow } from './edges.js';

export interface StreamOptions {
  pipeline: FlowPipeline;
  aggregator: Aggregator;
  metrics?: ServerMetrics;
  /** Answers a snapshot window longer than the aggregator's horizon (per-minute aggregates). */
  store?: Pick<FlowStore, 'edges'>;
  /** Flow records per event at most (the rest are counted in `flowsOmitted`). */
  maxFlowsPerEvent?: number;
  /** Unsent bytes a client may have before batches are dropped for it (default 512 KiB). */
  maxQueuedBytes?: number;
  /** A client dropping batches for this long is disconnected (default 10 s). */
  maxBehindMs?: number;
  /** Open streams at most (default 256); more get 503. */
  maxClients?: number;
  heartbeatMs?: number;
}

export const STREAM_DEFAULTS = { maxFlowsPerEvent: 2_000, maxQueuedBytes: 512 * 1024, maxBehindMs: 10_000, maxClients: 256, heartbeatMs: 15_000 } as const;

export interface StreamBatchEvent {
  time: number;
  flows: FlowRecord[];
  flowsOmitted: number;
  edges: Edge[];
  alerts: PipelineBatch['alerts'];
}

/** What a client missed while its queue was full; sent as the `gap` event when it catches up. */
export interface StreamGapEvent {
  /** First dropped batch's time. */
  since: number;
  batches: number;
  flows: number;
  alerts: number;
}

function isEmptyFilter(f: FlowFilter): boolean {
  return Object.keys(f).every((k) => k === 'limit');
}

function eventBytes(event: string, data: unknown): Buffer {
  return Buffer.from(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
}

interface Client {
  res: ServerResponse;
  gap: StreamGapEvent | undefined;
  behindSince: number | undefined;
}

export const streamRoutes: FastifyPluginAsync<StreamOptions> = async (app, opts) => {
  const o = {
    maxFlowsPerEvent: opts.maxFlowsPerEvent ?? STREAM_DEFAULTS.maxFlowsPerEvent,
    maxQueuedBytes: opts.maxQueuedBytes ?? STREAM_DEFAULTS.maxQueuedBytes,
    maxBehindMs: opts.maxBehindMs ?? STREAM_DEFAULTS.maxBehindMs,
    maxClients: opts.maxClients ?? STREAM_DEFAULTS.maxClients,
    heartbeatMs: opts.heartbeatMs ?? STREAM_DEFAULTS.heartbeatMs,
  };
  const open = new Set<ServerResponse>();
  // The serialized event of an unfiltered batch is the same for every client with the same grouping.
  const shared = new WeakMap<PipelineBatch, Map<GroupBy, Buffer>>();
  const batchEvent = (b: PipelineBatch, records: readonly FlowRecord[], edges: Edge[]): StreamBatchEvent => {
    const flows = records.length > o.maxFlowsPerEvent ? records.slice(records.length - o.maxFlowsPerEvent) : records;
    return { time: b.time, flows: flows as FlowRecord[], flowsOmitted: records.length - flows.length, edges, alerts: b.alerts };
  };
  const sharedEvent = (b: PipelineBatch, group: GroupBy): Buffer => {
    let m = shared.get(b);
    if (!m) shared.set(b, (m = new Map()));
    let e = m.get(group);
    if (!e) m.set(group, (e = eventBytes('batch', batchEvent(b, b.records, aggregateEdges(b.records, group)))));
    return e;
  };

  app.addHook('preClose', async () => {
    // A client that is not reading would never take the end of the stream: cut it.
    for (const res of open) {
      if (res.writableLength > 0) res.destroy();
      else res.end();
    }
    open.clear();
  });

  app.get(
    '/api/stream',
    {
      schema: {
        tags: ['flows'],
        summary: 'Live flows and edge deltas (Server-Sent Events: `snapshot`, then `batch` every ~200 ms; `gap` after batches were dropped for a slow client)',
        querystring: {
          type: 'object',
          properties: {
            ...filterQuerySchema.properties,
            group: { type: 'string', description: 'Edge grouping: workload | namespace | identity.' },
            window: { type: 'string', description: 'Window of the initial edge snapshot (default 5m).' },
          },
        },
      },
    },
    async (req, reply) => {
      const { group: g, window: w, ...rest } = req.query as Record<string, unknown>;
      const group = parseGroupBy(g);
      const windowMs = parseWindow(w);
      const { limit: _limit, ...filter } = parseFlowFilter(rest);
      const unfiltered = isEmptyFilter(filter as FlowFilter);
      if (open.size >= o.maxClients) {
        opts.metrics?.streamRefused.inc();
        return reply
          .status(503)
          .header('retry-after', '10')
          .send({ statusCode: 503, error: 'Service Unavailable', message: `too many live streams open (${o.maxClients}); try again later` });
      }

      reply.hijack();
      const res = reply.raw;
      // Hijacked: write the headers hooks already set on the reply (security headers) ourselves.
      const set: Record<string, string | number | string[]> = {};
      for (const [k, v] of Object.entries(reply.getHeaders())) if (v !== undefined) set[k] = v;
      res.writeHead(200, {
        ...set,
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache, no-transform',
        connection: 'keep-alive',
        'x-accel-buffering': 'no',
      });
      open.add(res);
      opts.metrics?.streamClients.set(open.size);
      const client: Client = { res, gap: undefined, behindSince: undefined };
      res.write(eventBytes('snapshot', { time: Date.now(), group, windowMs, edges: windowMs > opts.aggregator.horizonMs && opts.store ? opts.store.edges(group, Date.now() - windowMs) : opts.aggregator.edges(group, windowMs) }));

      const disconnectIfBehind = (now: number): boolean => {
        if (client.behindSince === undefined || now - client.behindSince < o.maxBehindMs) return false;
        opts.metrics?.streamDisconnects.inc({ reason: 'slow' });
        res.destroy();
        return true;
      };
      const unsubscribe = opts.pipeline.subscribe((b) => {
        if (res.destroyed) return;
        const records = unfiltered ? b.records : b.records.filter((r) => matchesFilter(r, filter as FlowFilter));
        if (records.length === 0 && b.alerts.length === 0) return;
        if (res.writableLength > o.maxQueuedBytes) {
          const now = Date.now();
          client.behindSince ??= now;
          client.gap ??= { since: b.time, batches: 0, flows: 0, alerts: 0 };
          client.gap.batches++;
          client.gap.flows += records.length;
          client.gap.alerts += b.alerts.length;
          opts.metrics?.streamDroppedBatches.inc();
          disconnectIfBehind(now);
          return;
        }
        client.behindSince = undefined;
        if (client.gap) {
          res.write(eventBytes('gap', client.gap));
          client.gap = undefined;
        }
        res.write(unfiltered ? sharedEvent(b, group) : eventBytes('batch', batchEvent(b, records, aggregateEdges(records, group))));
      });
      const heartbeat = setInterval(() => {
        if (disconnectIfBehind(Date.now())) return;
        if (res.writableLength === 0) res.write(': keep-alive\n\n');
      }, o.heartbeatMs);
      heartbeat.unref();
      const cleanup = (): void => {
        clearInterval(heartbeat);
        unsubscribe();
        if (open.delete(res)) opts.metrics?.streamClients.set(open.size);
      };
      res.on('close', cleanup);
      res.on('error', cleanup);
    },
  );
};
