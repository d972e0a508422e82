// Prometheus metrics of the visibility side, on a registry owned by the server (no global
// state). The nft agent reports apply latency and ruleset sizes through the setters.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { flowCount, type FlowRecord } from './record.js';

function nsLabel(ep: FlowRecord['src']): string {
  return ep.external || !ep.namespace ? 'external' : ep.namespace;
}

export class FlowMetrics {
  readonly registry: Registry;
  private readonly flows: Counter<'verdict' | 'src_namespace' | 'dst_namespace' | 'policy'>;
  private readonly drops: Counter<'src_namespace' | 'dst_namespace' | 'policy'>;
  private readonly bytes: Counter<'verdict' | 'src_namespace' | 'dst_namespace'>;
  private readonly apply: Histogram<'node'>;
  private readonly nftRules: Gauge<'node'>;
  private readonly nftSetElements: Gauge<'node' | 'set'>;

  constructor(opts: { registry?: Registry; defaultMetrics?: boolean } = {}) {
    this.registry = opts.registry ?? new Registry();
    if (opts.defaultMetrics) collectDefaultMetrics({ register: this.registry });
    const registers = [this.registry];
    this.flows = new Counter({ name: 'weir_flows_total', help: 'Flows observed, by verdict, namespaces and deciding policy.', labelNames: ['verdict', 'src_namespace', 'dst_namespace', 'policy'], registers });
    this.drops = new Counter({ name: 'weir_drops_total', help: 'Denied flows, by namespaces and deciding policy.', labelNames: ['src_namespace', 'dst_namespace', 'policy'], registers });
    this.bytes = new Counter({ name: 'weir_flow_bytes_total', help: 'Bytes of observed flows.', labelNames: ['verdict', 'src_namespace', 'dst_namespace'], registers });
    this.apply = new Histogram({
      name: 'weir_apply_duration_seconds',
      help: 'Duration of one nftables transaction apply.',
      labelNames: ['node'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    });
    this.nftRules = new Gauge({ name: 'weir_nft_rules', help: 'Rules in the node ruleset.', labelNames: ['node'], registers });
    this.nftSetElements = new Gauge({ name: 'weir_nft_set_elements', help: 'Elements in an nftables set.', labelNames: ['node', 'set'], registers });
  }

  /** Pre-aggregates the batch so a 5,000-record flush costs a handful of label lookups. */
  observe(records: readonly FlowRecord[]): void {
    const flows = new Map<string, { v: string; s: string; d: string; p: string; n: number }>();
    const bytes = new Map<string, { v: string; s: string; d: string; n: number }>();
    for (const r of records) {
      const s = nsLabel(r.src);
      const d = nsLabel(r.dst);
      const n = flowCount(r);
      if (n > 0) {
        const k = `${r.verdict}\u0000${s}\u0000${d}\u0000${r.policy}`;
        const e = flows.get(k);
        if (e) e.n += n;
        else flows.set(k, { v: r.verdict, s, d, p: r.policy, n });
      }
      if (r.bytes > 0) {
        const k = `${r.verdict}\u0000${s}\u0000${d}`;
        const e = bytes.get(k);
        if (e) e.n += r.bytes;
        else bytes.set(k, { v: r.verdict, s, d, n: r.bytes });
      }
    }
    for (const e of flows.values()) {
      this.flows.inc({ verdict: e.v, src_namespace: e.s, dst_namespace: e.d, policy: e.p }, e.n);
      if (e.v === 'DROPPED') this.drops.inc({ src_namespace: e.s, dst_namespace: e.d, policy: e.p }, e.n);
    }
    for (const e of bytes.values()) this.bytes.inc({ verdict: e.v, src_namespace: e.s, dst_namespace: e.d }, e.n);
  }

  /** Called by the nft agent after each transaction. */
  observeApplyDuration(seconds: number, node = 'local'): void {
    this.apply.observe({ node }, seconds);
  }

  setNftRules(count: number, node = 'local'): void {
    this.nftRules.set({ node }, count);
  }

  setNftSetElements(set: string, count: number, node = 'local'): void {
    this.nftSetElements.set({ node, set }, count);
  }

  async text(): Promise<string> {
    return this.registry.metrics();
  }
}
