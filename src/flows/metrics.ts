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
  private readonly pendingFlows = new Map<string, { v: string; s: string; d: string; p: string; n: number }>();
  private readonly pendingBytes = new Map<string, { v: string; s: string; d: string; n: number }>();

  constructor(opts: { registry?: Registry; defaultMetrics?: boolean } = {}) {
    this.registry = opts.registry ?? new Registry();
    if (opts.defaultMetrics) collectDefaultMetrics({ register: this.registry });
    const registers = [this.registry];
    const collect = (): void => this.applyPending();
    this.flows = new Counter({ name: 'weir_flows_total', help: 'Flows observed, by verdict, namespaces and deciding policy.', labelNames: ['verdict', 'src_namespace', 'dst_namespace', 'policy'], registers, collect });
    this.drops = new Counter({ name: 'weir_drops_total', help: 'Denied flows, by namespaces and deciding policy.', labelNames: ['src_namespace', 'dst_namespace', 'policy'], registers, collect });
    this.bytes = new Counter({ name: 'weir_flow_bytes_total', help: 'Bytes of observed flows.', labelNames: ['verdict', 'src_namespace', 'dst_namespace'], registers, collect });
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

  /**
   * Adds the batch to pending per-label-set sums; the counters take them when scraped (their
   * `collect`). prom-client hashes the label object on every `inc` (~70 µs per flush of a
   * cluster server, where nearly every record is its own label set); a Map of our own keys is a
   * fraction of that, and a scrape every few seconds folds thousands of flushes into one `inc`
   * per label set. Bounded like the counters themselves: one entry per label set.
   */
  observe(records: readonly FlowRecord[]): void {
    for (const r of records) {
      const s = nsLabel(r.src);
      const d = nsLabel(r.dst);
      const n = flowCount(r);
      if (n > 0) {
        const k = `${r.verdict}\u0000${s}\u0000${d}\u0000${r.policy}`;
        const e = this.pendingFlows.get(k);
        if (e) e.n += n;
        else this.pendingFlows.set(k, { v: r.verdict, s, d, p: r.policy, n });
      }
      if (r.bytes > 0) {
        const k = `${r.verdict}\u0000${s}\u0000${d}`;
        const e = this.pendingBytes.get(k);
        if (e) e.n += r.bytes;
        else this.pendingBytes.set(k, { v: r.verdict, s, d, n: r.bytes });
      }
    }
  }

  /** Moves the pending sums into the counters (every counter's `collect` calls it). */
  private applyPending(): void {
    for (const e of this.pendingFlows.values()) {
      this.flows.inc({ verdict: e.v, src_namespace: e.s, dst_namespace: e.d, policy: e.p }, e.n);
      if (e.v === 'DROPPED') this.drops.inc({ src_namespace: e.s, dst_namespace: e.d, policy: e.p }, e.n);
    }
    for (const e of this.pendingBytes.values()) this.bytes.inc({ verdict: e.v, src_namespace: e.s, dst_namespace: e.d }, e.n);
    this.pendingFlows.clear();
    this.pendingBytes.clear();
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
