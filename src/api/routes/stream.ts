// Server-Sent Events: one `snapshot` (current edges for the window), then one `batch` per
// pipeline flush (~200 ms): the batch's flows (matching the filters) and edge deltas the
// client adds to its snapshot. A slow client loses flow lists, never edge counts.
import type { FastifyPluginAsync } from 'fastify';
import type { ServerResponse } from 'node:http';
import { aggregateEdges, type Aggregator, type Edge, type GroupBy } from '../../flows/aggregate.js';
import { matchesFilter, parseFlowFilter, type FlowFilter } from '../../flows/filter.js';
import type { FlowPipeline, PipelineBatch } from '../../flows/pipeline.js';
import type { FlowRecord } from '../../flows/record.js';
import { filterQuerySchema } from './flows.js';
import { parseGroupBy, parseWindow } from './edges.js';

export interface StreamOptions {
  pipeline: FlowPipeline;
  aggregator: Aggregator;
  /** Flow records per event at most (the rest are counted in `flowsOmitted`). */
  maxFlowsPerEvent?: number;
  /** Bytes buffered for a client before its flow lists are skipped. */
  maxBufferedBytes?: number;
  heartbeatMs?: number;
}

export interface StreamBatchEvent {
  time: number;
  flows: FlowRecord[];
  flowsOmitted: number;
  edges: Edge[];
  alerts: PipelineBatch['alerts'];
}

function isEmptyFilter(f: FlowFilter): boolean {
  return Object.keys(f).every((k) => k === 'limit');
}

export const streamRoutes: FastifyPluginAsync<StreamOptions> = async (app, opts) => {
  const open = new Set<ServerResponse>();
  // Edge deltas of an unfiltered batch are the same for every client with the same grouping.
  const shared = new WeakMap<PipelineBatch, Map<GroupBy, Edge[]>>();
  const sharedEdges = (b: PipelineBatch, group: GroupBy): Edge[] => {
    let m = shared.get(b);
    if (!m) shared.set(b, (m = new Map()));
    let e = m.get(group);
    if (!e) m.set(group, (e = aggregateEdges(b.records, group)));
    return e;
  };
  const maxFlows = opts.maxFlowsPerEvent ?? 2_000;
  const maxBuffered = opts.maxBufferedBytes ?? 4 * 1024 * 1024;

  app.addHook('preClose', async () => {
    for (const res of open) res.end();
    open.clear();
  });

  app.get(
    '/api/stream',
    {
      schema: {
        tags: ['flows'],
        summary: 'Live flows and edge deltas (Server-Sent Events: `snapshot`, then `batch` every ~200 ms)',
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

      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache, no-transform',
        connection: 'keep-alive',
        'x-accel-buffering': 'no',
      });
      open.add(res);
      const send = (event: string, data: unknown): void => {
        res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
      };
      send('snapshot', { time: Date.now(), group, windowMs, edges: opts.aggregator.edges(group, windowMs) });

      const unsubscribe = opts.pipeline.subscribe((b) => {
        const records = unfiltered ? b.records : b.records.filter((r) => matchesFilter(r, filter as FlowFilter));
        if (records.length === 0 && b.alerts.length === 0) return;
        const edges = unfiltered ? sharedEdges(b, group) : aggregateEdges(records, group);
        const congested = res.writableLength > maxBuffered;
        const flows = congested ? [] : records.length > maxFlows ? records.slice(records.length - maxFlows) : records;
        const ev: StreamBatchEvent = { time: b.time, flows: flows as FlowRecord[], flowsOmitted: records.length - flows.length, edges, alerts: b.alerts };
        send('batch', ev);
      });
      const heartbeat = setInterval(() => res.write(': keep-alive\n\n'), opts.heartbeatMs ?? 15_000);
      heartbeat.unref();
      const cleanup = (): void => {
        clearInterval(heartbeat);
        unsubscribe();
        open.delete(res);
      };
      res.on('close', cleanup);
      res.on('error', cleanup);
    },
  );
};
