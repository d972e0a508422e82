// One call to run the whole visibility side against a lab: store, pipeline, alerts, one
// NodeFlowSource per lab node (conntrack + nft in the node's netns), and the HTTP server.
import type { FastifyInstance } from 'fastify';
import { join } from 'node:path';
import { readState, type LabState } from '../lab/state.js';
import { AlertEngine, WebhookDispatcher, loadAlertConfig } from '../flows/alerts.js';
import { Enricher, identityOf, type PodInfo } from '../flows/enrich.js';
import { FlowMetrics } from '../flows/metrics.js';
import { NodeFlowSource } from '../flows/node-source.js';
import { FlowPipeline } from '../flows/pipeline.js';
import { SqliteFlowStore } from '../flows/sqlite-store.js';
import type { RetentionOptions } from '../flows/store.js';
import { DEFAULT_PORT, createServer } from './server.js';

export interface VisibilityOptions {
  labDir: string;
  /** SQLite file; default `<labDir>/flows.db`. */
  storePath?: string;
  port?: number;
  host?: string;
  /** Alert rules YAML. */
  alertsFile?: string;
  uiDir?: string;
  /** Follow the kernel of every lab node (default true). */
  sources?: boolean;
  retention?: Partial<RetentionOptions>;
  /** How often the lab state is re-read for new pods. */
  refreshMs?: number;
  log?: (line: string) => void;
}

export interface Visibility {
  app: FastifyInstance;
  url: string;
  store: SqliteFlowStore;
  pipeline: FlowPipeline;
  metrics: FlowMetrics;
  sources: NodeFlowSource[];
  stop(): Promise<void>;
}

function podIndex(state: LabState | undefined): Map<string, PodInfo> {
  const m = new Map<string, PodInfo>();
  for (const p of state?.pods ?? []) m.set(p.ip, { ip: p.ip, namespace: p.namespace, name: p.name, workload: p.workload, labels: p.labels, identity: identityOf(p.namespace, p.labels) });
  return m;
}

export async function startVisibility(opts: VisibilityOptions): Promise<Visibility> {
  const log = opts.log ?? ((l: string) => console.error(l));
  let state = await readState(opts.labDir);
  let pods = podIndex(state);
  const enricher = new Enricher({ lookup: (ip) => pods.get(ip), externalCidrs: state ? [state.network.externalCidr] : [] });
  const refresh = setInterval(() => {
    readState(opts.labDir)
      .then((s) => {
        if (s?.updatedAt === state?.updatedAt) return;
        state = s;
        pods = podIndex(s);
        enricher.invalidate();
      })
      .catch((e: unknown) => log(`weir flows: lab state: ${(e as Error).message}`));
  }, opts.refreshMs ?? 2000);
  refresh.unref();

  const store = new SqliteFlowStore(opts.storePath ?? join(opts.labDir, 'flows.db'), opts.retention ? { retention: opts.retention } : {});
  const metrics = new FlowMetrics({ defaultMetrics: true });
  const pipeline = new FlowPipeline({ store, metrics }).start();
  let dispatcher: WebhookDispatcher | undefined;
  let alerts: AlertEngine | undefined;
  if (opts.alertsFile) {
    const cfg = await loadAlertConfig(opts.alertsFile);
    dispatcher = cfg.webhook ? new WebhookDispatcher({ store, ...(cfg.webhook.maxAttempts ? { maxAttempts: cfg.webhook.maxAttempts } : {}) }).start() : undefined;
    alerts = new AlertEngine({ store, pipeline, rules: cfg.rules, ...(cfg.webhook ? { webhookUrl: cfg.webhook.url } : {}), ...(dispatcher ? { onQueued: dispatcher.kick } : {}) });
  }

  const sources: NodeFlowSource[] = [];
  if (opts.sources ?? true) {
    for (const node of state?.nodes ?? []) {
      const src = new NodeFlowSource({ node: node.name, netns: node.netns, reasonsFile: join(opts.labDir, 'reasons.json'), enricher });
      src.on('records', (r) => pipeline.ingest(r));
      src.on('warning', (e) => log(`weir flows: ${node.name}: ${e.message}`));
      await src.start();
      sources.push(src);
    }
  }

  const app = createServer({ store, pipeline, metrics, ...(alerts ? { alerts } : {}), ...(opts.uiDir ? { uiDir: opts.uiDir } : {}) });
  await app.listen({ host: opts.host ?? '127.0.0.1', port: opts.port ?? DEFAULT_PORT });
  const addr = app.server.address();
  const url = typeof addr === 'object' && addr ? `http://${opts.host ?? '127.0.0.1'}:${addr.port}` : String(addr);

  return {
    app,
    url,
    store,
    pipeline,
    metrics,
    sources,
    async stop() {
      clearInterval(refresh);
      await Promise.all(sources.map((s) => s.stop()));
      await app.close();
      await dispatcher?.stop();
      pipeline.stop();
      store.close();
    },
  };
}
