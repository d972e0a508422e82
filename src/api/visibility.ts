// One call to run the whole visibility side against a lab: store, pipeline, alerts, one
// NodeFlowSource per lab node (conntrack + nft in the node's netns), and the HTTP server.
//
// The lab is read through its ClusterSource (src/source/lab.ts: the desired manifests joined
// with the pod addresses by the same join the agents use), watched; every change arrives as
// events that update one policy engine incrementally, so accepted connections are attributed
// by the engine the kernel was compiled from (src/flows/attribution.ts).
import type { FastifyInstance } from 'fastify';
import { join } from 'node:path';
import type { LabState } from '../lab/state.js';
import { PolicyEngine } from '../policy/engine.js';
import { applyEventsToEngine } from '../source/engine.js';
import { LabSource } from '../source/lab.js';
import { AlertEngine, DEFAULT_WEBHOOK_TIMEOUT_MS, WebhookDispatcher, alertRuleWarnings, loadAlertConfig, type KnownNames } from '../flows/alerts.js';
import { parseDuration } from '../flows/filter.js';
import { Aggregator } from '../flows/aggregate.js';
import { FlowAttribution, type AttributedPod, type AttributionStats } from '../flows/attribution.js';
import { Enricher, identityOf, type PodInfo } from '../flows/enrich.js';
import { FlowMetrics } from '../flows/metrics.js';
import { NodeFlowSource } from '../flows/node-source.js';
import { FlowPipeline } from '../flows/pipeline.js';
import { SqliteFlowStore } from '../flows/sqlite-store.js';
import type { RetentionOptions } from '../flows/store.js';
import type { KnownPolicy } from './routes/policies.js';
import { checkExposure, isLoopbackAddress } from './security.js';
import { DEFAULT_PORT, createServer, type ServerOptions } from './server.js';
import { REASONS_FILE } from '../agent/status.js';
import { readLbStatuses } from '../agent/lb-files.js';
import { serviceViews } from '../agent/lb-status.js';
import { addAttributionStats, emptyAttributionStats, serviceAddresses } from '../flows/view.js';
import type { Service } from '../model/cluster.js';

export interface VisibilityOptions {
  /** The lab to follow; absent: a cluster server fed only by shipping agents (then `storePath` is needed). */
  labDir?: string;
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
  /** How often the lab state and desired generation are checked for changes (default 500 ms). */
  refreshMs?: number;
  /** nft poll period of the node sources (default 500 ms). */
  pollMs?: number;
  log?: (line: string) => void;
  /** Bearer token (required unless `host` is loopback). */
  token?: string;
  /** PEM certificate and key: serve HTTPS (`clientCa`: mTLS for agents, see ServerOptions). */
  tls?: { cert: string | Buffer; key: string | Buffer; clientCa?: string | Buffer };
  /**
   * How far back the in-memory aggregator answers (default 1 h); longer windows come from the
   * store's per-minute aggregates. A cluster server keeps it short: its memory grows with
   * distinct edges × 10 s buckets up to this horizon.
   */
  liveHorizonMs?: number;
  /** Live-stream limits (tests). */
  stream?: ServerOptions['stream'];
}

/** The lab as the visibility side sees it at one moment; rebuilt whenever the lab changes. */
export interface LabView {
  readonly state: LabState | undefined;
  readonly generation: string;
  readonly pods: ReadonlyMap<string, PodInfo>;
  readonly attribution: FlowAttribution | undefined;
  readonly knownPolicies: readonly KnownPolicy[];
  /** `namespace/name` of a Service by `ip:port` (ClusterIP and NodePorts): flows through Services. */
  readonly services: ReadonlyMap<string, string>;
}

export interface Visibility {
  app: FastifyInstance;
  url: string;
  store: SqliteFlowStore;
  pipeline: FlowPipeline;
  metrics: FlowMetrics;
  sources: NodeFlowSource[];
  /** The current lab view (engine, pods). */
  view(): LabView;
  /** Re-reads the lab now (also done every refreshMs); resolves once the view is current. */
  refresh(): Promise<LabView>;
  /** Attribution counters summed over engine rebuilds. */
  attributionStats(): AttributionStats;
  stop(): Promise<void>;
}

export function buildView(engine: PolicyEngine, state: LabState | undefined, generation: string, log: (l: string) => void, services: readonly Service[] = []): LabView {
  const pods = new Map<string, PodInfo>();
  const placed = new Map<string, AttributedPod>();
  for (const p of state?.pods ?? []) {
    const identityId = engine.identityOfPod(p.key)?.id;
    pods.set(p.ip, { ip: p.ip, namespace: p.namespace, name: p.name, workload: p.workload, labels: p.labels, identity: identityOf(p.namespace, p.labels), ...(identityId !== undefined ? { identityId } : {}) });
    placed.set(p.ip, { key: p.key, ip: p.ip, node: p.node });
  }
  if (!state) return { state, generation, pods, attribution: undefined, knownPolicies: [], services: new Map() };
  let lastLog = 0;
  const attribution = new FlowAttribution(engine, {
    pods: placed,
    onMismatch: (m) => {
      // One line per 10 s at most: a systematic disagreement would otherwise flood the log.
      if (Date.now() - lastLog < 10_000) return;
      lastLog = Date.now();
      log(`weir flows: kernel and engine disagree: ${m}`);
    },
  });
  const knownPolicies = [...engine.policies.values()].map((p) => ({ policy: p.key, tier: p.tier }));
  return { state, generation, pods, attribution, knownPolicies, services: serviceAddresses(services, state.nodes.map((n) => n.underlayIp)) };
}

function knownNames(view: LabView): KnownNames {
  const pods = [...view.pods.values()];
  return {
    namespaces: new Set(pods.map((p) => p.namespace)),
    workloads: new Set(pods.flatMap((p) => (p.workload ? [p.workload] : []))),
    policies: new Set(view.knownPolicies.map((k) => k.policy)),
  };
}

export async function startVisibility(opts: VisibilityOptions): Promise<Visibility> {
  const log = opts.log ?? ((l: string) => console.error(l));
  const host = opts.host ?? '127.0.0.1';
  // Before anything is opened: an exposed server without a token does not start at all.
  checkExposure(host, opts.token);
  const engine = new PolicyEngine();
  const retired = emptyAttributionStats();
  const labDir = opts.labDir;
  const storePath = opts.storePath ?? (labDir !== undefined ? join(labDir, 'flows.db') : undefined);
  if (storePath === undefined) throw new Error('a cluster server without a lab needs a store path');
  const labSource = labDir !== undefined ? new LabSource({ dir: labDir, watch: true, pollMs: opts.refreshMs ?? 500 }) : undefined;
  let view: LabView = { state: undefined, generation: '', pods: new Map(), attribution: undefined, knownPolicies: [], services: new Map() };
  // Created once the first state is read (its external network); events may come before.
  const enrich: { current?: Enricher } = {};
  await labSource?.start({
    onEvents: (events) => {
      applyEventsToEngine(engine, events);
      const state = labSource.state();
      const generation = String(labSource.generation() ?? '');
      if (events.length === 0 && state?.updatedAt === view.state?.updatedAt && generation === view.generation) return;
      // The attribution memo is per engine state: a new one after every change.
      if (view.attribution) addAttributionStats(retired, view.attribution.stats);
      view = buildView(engine, state, generation, log, labSource.snapshot().cluster.services);
      enrich.current?.invalidate();
    },
    onError: (e) => log(`weir flows: lab state: ${e.message}`),
  });
  const first = { state: labSource?.state() };
  const enricher = new Enricher({ lookup: (ip) => view.pods.get(ip), serviceLookup: (ip, port) => view.services.get(`${ip}:${port}`), externalCidrs: first.state ? [first.state.network.externalCidr] : [] });
  enrich.current = enricher;
  const refreshNow = async (): Promise<LabView> => {
    await labSource?.refresh();
    return view;
  };

  // The lab source is watching (a timer): every input error from here on stops it, or the
  // process would stay alive after reporting the error.
  let store: SqliteFlowStore;
  try {
    store = new SqliteFlowStore(storePath, opts.retention ? { retention: opts.retention } : {});
  } catch (e) {
    await labSource?.stop();
    throw e;
  }
  const metrics = new FlowMetrics({ defaultMetrics: true });
  const aggregator = opts.liveHorizonMs !== undefined ? new Aggregator({ horizonMs: opts.liveHorizonMs }) : undefined;
  const pipeline = new FlowPipeline({ store, metrics, ...(aggregator ? { aggregator } : {}) }).start();
  let dispatcher: WebhookDispatcher | undefined;
  let alerts: AlertEngine | undefined;
  if (opts.alertsFile) {
    let cfg: Awaited<ReturnType<typeof loadAlertConfig>>;
    try {
      cfg = await loadAlertConfig(opts.alertsFile);
    } catch (e) {
      await labSource?.stop();
      pipeline.stop();
      store.close();
      throw e;
    }
    for (const w of alertRuleWarnings(opts.alertsFile, cfg.rules, knownNames(view))) log(`weir alerts: warning: ${w}`);
    const wh = cfg.webhook;
    dispatcher = wh
      ? new WebhookDispatcher({
          store,
          url: wh.url,
          log,
          registry: metrics.registry,
          timeoutMs: wh.timeout !== undefined ? (parseDuration(wh.timeout) ?? DEFAULT_WEBHOOK_TIMEOUT_MS) : DEFAULT_WEBHOOK_TIMEOUT_MS,
          ...(wh.maxAttempts ? { maxAttempts: wh.maxAttempts } : {}),
        }).start()
      : undefined;
    alerts = new AlertEngine({ store, pipeline, rules: cfg.rules, ...(cfg.webhook ? { webhookUrl: cfg.webhook.url } : {}), ...(dispatcher ? { onQueued: dispatcher.kick } : {}) });
  }

  const sources: NodeFlowSource[] = [];
  const stopSources = async (): Promise<void> => {
    await Promise.all(sources.map((s) => s.stop()));
  };
  try {
    if (labDir !== undefined && (opts.sources ?? true)) {
      for (const node of first.state?.nodes ?? []) {
        const src = new NodeFlowSource({
          node: node.name,
          netns: node.netns,
          reasonsFile: join(labDir, REASONS_FILE),
          enricher,
          attributor: () => view.attribution,
          ...(opts.pollMs !== undefined ? { pollMs: opts.pollMs } : {}),
        });
        src.on('records', (r) => pipeline.ingest(r));
        src.on('warning', (e) => log(`weir flows: ${node.name}: ${e.message}`));
        await src.start();
        sources.push(src);
      }
    }
  } catch (e) {
    await labSource?.stop();
    await stopSources();
    pipeline.stop();
    store.close();
    throw e;
  }

  const attributionStats = (): AttributionStats => {
    const s = { ...retired };
    if (view.attribution) addAttributionStats(s, view.attribution.stats);
    return s;
  };
  const app = createServer({
    store,
    pipeline,
    metrics,
    knownPolicies: () => view.knownPolicies,
    ...(alerts ? { alerts } : {}),
    ...(dispatcher ? { webhook: () => dispatcher.status() } : {}),
    ...(opts.uiDir ? { uiDir: opts.uiDir } : {}),
    access: { ...(opts.token !== undefined ? { token: opts.token } : {}), loopbackOnly: isLoopbackAddress(host) },
    ...(opts.tls ? { tls: opts.tls } : {}),
    ...(opts.stream ? { stream: opts.stream } : {}),
    ...(labDir !== undefined
      ? {
          services: {
            views: async () => readLbStatuses(labDir).then(({ statuses, errors }) => ({ services: serviceViews(statuses), errors })),
            statuses: () => readLbStatuses(labDir),
            // The same groups the enricher gives the flows of that pod.
            endpointGroups: (ip: string) => {
              const ep = enricher.endpoint(ip);
              return ep.external ? undefined : { ...(ep.workload !== undefined ? { workload: ep.workload } : {}), ...(ep.identity !== undefined ? { identity: ep.identity } : {}) };
            },
          },
        }
      : {}),
  });
  app.get('/api/attribution', { schema: { tags: ['flows'], summary: 'How kernel records were attributed and deduplicated across nodes' } }, async () => ({
    generation: view.generation,
    stateUpdatedAt: view.state?.updatedAt ?? null,
    ...attributionStats(),
  }));
  try {
    await app.listen({ host, port: opts.port ?? DEFAULT_PORT });
  } catch (e) {
    await labSource?.stop();
    await stopSources();
    await dispatcher?.stop();
    pipeline.stop();
    store.close();
    throw e;
  }
  const addr = app.server.address();
  const urlHost = host.includes(':') ? `[${host}]` : host;
  const url = typeof addr === 'object' && addr ? `${opts.tls ? 'https' : 'http'}://${urlHost}:${addr.port}` : String(addr);

  return {
    app,
    url,
    store,
    pipeline,
    metrics,
    sources,
    view: () => view,
    refresh: refreshNow,
    attributionStats,
    async stop() {
      await labSource?.stop();
      await stopSources();
      await app.close();
      await dispatcher?.stop();
      pipeline.stop();
      store.close();
    },
  };
}
