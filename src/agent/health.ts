// The agent's local HTTP port (default 127.0.0.1:9791), for the DaemonSet's probes, Prometheus
// and `weir status`:
//
//   GET /readyz   200 once the source has synced and the first ruleset is in the kernel
//                 (and the last transaction applied); 503 with the reason otherwise
//   GET /livez    200 unless a transaction has been stuck for 5 minutes
//   GET /metrics  Prometheus text: sync lag, ruleset size, apply errors, events, re-lists
//   GET /status   JSON: version, node, last sync, lag, ruleset size, errors (what `weir status` shows)
//
// Loopback by default: the DaemonSet runs with the host network, and the probes come from the
// kubelet on the same node.

import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { ReflectorStats } from '../source/kube/reflector.js';
import type { AppliedBatch, ClusterAgent } from './cluster.js';

export const DEFAULT_HEALTH_PORT = 9791;

export interface HealthServerOptions {
  readonly host?: string;
  readonly port?: number;
  readonly version: string;
  /** Per-kind reflector counters, when the source is the Kubernetes API. */
  readonly sourceStats?: () => readonly ReflectorStats[];
  /** Kubernetes Events written and failed (the CLI's recorder). */
  readonly eventStats?: () => { readonly written: number; readonly failed: number };
}

/** The agent's metrics, fed by its applied batches. */
export function agentMetrics(agent: ClusterAgent, opts: HealthServerOptions): { registry: Registry; observe: (b: AppliedBatch) => void } {
  const registry = new Registry();
  new Gauge({ name: 'weir_agent_info', help: 'The agent: version and node', labelNames: ['version', 'node'], registers: [registry] }).set({ version: opts.version, node: agent.node }, 1);
  const lag = new Histogram({
    name: 'weir_agent_sync_lag_seconds',
    help: 'From the arrival of a batch\'s first event to the end of its transaction',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  const applies = new Counter({ name: 'weir_agent_applies_total', help: 'Transactions by outcome and mode', labelNames: ['outcome', 'mode'], registers: [registry] });
  const errors = new Counter({ name: 'weir_agent_apply_errors_total', help: 'Transactions the kernel refused (the previous ruleset stayed)', registers: [registry] });
  const batchEvents = new Counter({ name: 'weir_agent_batched_events_total', help: 'Source events applied', registers: [registry] });
  new Gauge({
    name: 'weir_agent_ready',
    help: '1 when synced and the last transaction applied',
    registers: [registry],
    collect() {
      this.set(agent.ready ? 1 : 0);
    },
  });
  new Gauge({
    name: 'weir_agent_last_sync_timestamp_seconds',
    help: 'When the last transaction was applied',
    registers: [registry],
    collect() {
      const at = agent.state().lastSyncAt;
      if (at) this.set(Date.parse(at) / 1000);
    },
  });
  new Gauge({
    name: 'weir_agent_ruleset',
    help: 'Size of the ruleset in the kernel',
    labelNames: ['what'],
    registers: [registry],
    collect() {
      const r = agent.state().ruleset;
      if (!r) return;
      this.set({ what: 'rules' }, r.rules);
      this.set({ what: 'chains' }, r.chains);
      this.set({ what: 'sets' }, r.sets);
      this.set({ what: 'set_elements' }, r.setElements);
    },
  });
  new Gauge({
    name: 'weir_agent_pending_events',
    help: 'Source events waiting for the next transaction',
    registers: [registry],
    collect() {
      this.set(agent.state().pendingEvents);
    },
  });
  new Gauge({
    name: 'weir_agent_source_events',
    help: 'Source events received, by kind',
    labelNames: ['kind'],
    registers: [registry],
    collect() {
      for (const [kind, n] of agent.eventsByKind()) this.set({ kind }, n);
    },
  });
  if (opts.sourceStats) {
    const stats = opts.sourceStats;
    new Gauge({
      name: 'weir_agent_source_relists',
      help: 'Re-lists of the Kubernetes source, by kind and cause',
      labelNames: ['kind', 'cause'],
      registers: [registry],
      collect() {
        for (const s of stats()) {
          this.set({ kind: s.kind, cause: 'gone' }, s.relistsGone);
          this.set({ kind: s.kind, cause: 'watchdog' }, s.relistsWatchdog);
        }
      },
    });
    new Gauge({
      name: 'weir_agent_source_failures',
      help: 'Failed list or watch requests, by kind',
      labelNames: ['kind'],
      registers: [registry],
      collect() {
        for (const s of stats()) this.set({ kind: s.kind }, s.failures);
      },
    });
  }
  if (opts.eventStats) {
    const stats = opts.eventStats;
    new Gauge({
      name: 'weir_agent_kube_events',
      help: 'Kubernetes Events about policies the agent cannot enforce, by outcome',
      labelNames: ['outcome'],
      registers: [registry],
      collect() {
        const s = stats();
        this.set({ outcome: 'written' }, s.written);
        this.set({ outcome: 'failed' }, s.failed);
      },
    });
  }
  return {
    registry,
    observe: (b) => {
      applies.inc({ outcome: b.status.lastApplyOk ? 'ok' : 'error', mode: b.status.mode });
      if (!b.status.lastApplyOk) errors.inc();
      else lag.observe(b.lagMs / 1000);
      batchEvents.inc(b.events);
    },
  };
}

export interface HealthServer {
  readonly url: string;
  close(): Promise<void>;
}

/** Serves /readyz, /livez, /metrics and /status for `agent`. */
export async function startHealthServer(agent: ClusterAgent, opts: HealthServerOptions): Promise<HealthServer> {
  const { registry, observe } = agentMetrics(agent, opts);
  const previous = agent.onApplied;
  agent.onApplied = (b) => {
    observe(b);
    previous?.(b);
  };
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const send = (code: number, type: string, body: string): void => {
      res.writeHead(code, { 'Content-Type': type, 'Cache-Control': 'no-store' });
      res.end(body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'text/plain', 'method not allowed\n');
    switch (path) {
      case '/readyz': {
        const s = agent.state();
        if (agent.ready) return send(200, 'text/plain', 'ok\n');
        const why = !s.synced ? 'the source has not synced yet' : s.lastApplyOk === false ? `the last transaction failed: ${s.lastError ?? ''}` : 'the first ruleset is not applied yet';
        return send(503, 'text/plain', `not ready: ${why}\n`);
      }
      case '/livez':
        return agent.live() ? send(200, 'text/plain', 'ok\n') : send(503, 'text/plain', 'a transaction has been stuck for 5 minutes\n');
      case '/metrics':
        void registry.metrics().then(
          (text) => send(200, registry.contentType, text),
          (e: unknown) => send(500, 'text/plain', `${(e as Error).message}\n`),
        );
        return;
      case '/status': {
        const body = { version: opts.version, ...agent.state(), ...(opts.sourceStats ? { sourceKinds: opts.sourceStats() } : {}), ...(opts.eventStats ? { kubeEvents: opts.eventStats() } : {}) };
        return send(200, 'application/json', `${JSON.stringify(body, null, 2)}\n`);
      }
      default:
        return send(404, 'text/plain', 'not found (routes: /readyz /livez /metrics /status)\n');
    }
  });
  await new Promise<void>((ok, fail) => {
    server.once('error', fail);
    server.listen(opts.port ?? DEFAULT_HEALTH_PORT, opts.host ?? '127.0.0.1', () => ok());
  });
  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return {
    url: `http://${host}:${addr.port}`,
    close: () =>
      new Promise<void>((ok) => {
        server.closeAllConnections();
        server.close(() => ok());
      }),
  };
}
