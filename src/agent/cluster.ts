// The agent on a cluster node: a ClusterSource (the Kubernetes API, src/source/kube, or any
// other) → the NodeAgent, in policy-only mode beside the CNI (src/render/policy-only.ts), and
// with `services` also the Service NAT section in place of kube-proxy (src/render/services.ts).
//
//   source events ─► pending (coalesced) ─► NodeAgent.apply: one transaction per batch
//
// Events that arrive while a transaction is in flight, or within `batchWindowMs` of the first
// one, go into the next transaction together: at 1,000 pod events/s the agent applies a few
// dozen batches a second, not a thousand transactions.
//
// Until the source has synced and the first ruleset is in the kernel, the agent is not ready;
// on a node without a weir table it first applies an empty ruleset, so that pods it does not
// know (every pod, then) fail closed rather than pass unfiltered during the initial sync. A
// restarted agent finds the previous table in the kernel and replaces it atomically once it
// has synced: enforcement never lapses.
//
// A failed apply keeps the previous ruleset (the applier's guarantee); the agent retries with
// a full replace after a backoff, since the engine already holds the batch that failed.

import { NodeAgent } from './agent.js';
import type { AgentStatus } from './status.js';
import type { NftRunner } from '../nft/apply.js';
import type { PolicyOnlyOptions } from '../render/policy-only.js';
import type { LocalPod } from '../render/render.js';
import type { ClusterEvent, ClusterSource, SourceKind } from '../source/types.js';
import { run } from '../exec/run.js';
import { endpointKeysOfRuleset, flushStaleEndpoints } from './stale-endpoints.js';
import { TABLE, FAMILY } from '../render/names.js';

export interface ClusterAgentOptions {
  readonly node: string;
  readonly source: ClusterSource;
  readonly policyOnly: PolicyOnlyOptions;
  /** Namespace where nft runs (tests, benchmarks); undefined: the agent's own. */
  readonly netns?: string;
  readonly runner?: NftRunner;
  readonly strict?: boolean;
  /** Where agent-<node>.json goes (nothing when absent). */
  readonly statusDir?: string;
  /** How long to gather events after the first one before applying (default 10 ms). */
  readonly batchWindowMs?: number;
  /** First retry delay after a failed apply (doubles, at most 30 s; default 1 s). */
  readonly retryMs?: number;
  readonly log?: (line: string) => void;
  /**
   * How far the source has delivered (the Kubernetes source's resourceVersion), reported as the
   * status's `desiredGeneration` of the batch that applied it, and re-reported (an empty
   * transaction, a no-op) when it moves on without events, so a writer can wait for its write.
   */
  readonly progress?: () => number | undefined;
  /** Problems the source reports (an invalid policy: the CLI turns them into Kubernetes Events). */
  readonly onSourceError?: (error: Error) => void;
  /**
   * Program the Service NAT section too (`weir agent --services`, in place of kube-proxy): every
   * batch carries the source's snapshot, and Services get their endpoints from EndpointSlices.
   */
  readonly services?: boolean;
}

/** One applied batch, for metrics and benchmarks. */
export interface AppliedBatch {
  readonly events: number;
  /** From the arrival of the batch's first event to the end of its transaction. */
  readonly lagMs: number;
  /** performance.now() when the batch's first event arrived. */
  readonly firstEventAt: number;
  readonly status: AgentStatus;
}

export interface ClusterAgentState {
  readonly node: string;
  readonly source: string;
  readonly synced: boolean;
  readonly ready: boolean;
  readonly lastSyncAt?: string;
  readonly lastApplyOk?: boolean;
  readonly lastError?: string;
  readonly applyErrors: number;
  readonly applies: number;
  readonly events: Readonly<Record<string, number>>;
  readonly pendingEvents: number;
  readonly localPods: number;
  readonly lagMs: { readonly last?: number; readonly p50?: number; readonly p99?: number; readonly samples: number };
  readonly ruleset?: { readonly rules: number; readonly chains: number; readonly sets: number; readonly setElements: number };
  readonly podCidrs: readonly string[];
  /** Changes applied, by how they were computed (AgentStatus.change): `full` is the fallback. */
  readonly changes: { readonly elements: number; readonly chains: number; readonly full: number };
}

const LAG_SAMPLES = 1000;

function quantile(sorted: readonly number[], q: number): number | undefined {
  if (sorted.length === 0) return undefined;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

/** Is the weir table in the kernel (of `netns`)? */
export async function kernelHasTable(netns?: string): Promise<boolean> {
  const argv = ['nft', 'list', 'table', FAMILY, TABLE];
  const r = await run(netns ? ['ip', 'netns', 'exec', netns, ...argv] : argv, { allowFailure: true, timeoutMs: 60_000 });
  return r.code === 0;
}

export class ClusterAgent {
  readonly agent: NodeAgent;
  private readonly locals = new Map<string, LocalPod>();
  private pending: ClusterEvent[] = [];
  private pendingSince: number | undefined;
  private timer: NodeJS.Timeout | undefined;
  private draining: Promise<void> | undefined;
  private sourceSynced = false;
  private initialApplied = false;
  private needsFull = false;
  private failures = 0;
  private stopped = false;
  private applyStartedAt: number | undefined;
  private lastSyncAt: Date | undefined;
  private lastError: string | undefined;
  private applyErrors = 0;
  private applies = 0;
  private readonly eventCounts: Record<string, number> = {};
  private readonly lags: number[] = [];
  private readyWaiters: (() => void)[] = [];
  private reported: number | undefined;
  private progressDue = false;
  private progressTimer: NodeJS.Timeout | undefined;
  /** With Services: the endpoints in the kernel after the last applied batch (stale-endpoints.ts keys). */
  private endpoints: Set<string> | undefined;
  /** Called after every applied batch (metrics, benchmarks). */
  onApplied: ((b: AppliedBatch) => void) | undefined;

  constructor(private readonly opts: ClusterAgentOptions) {
    this.agent = new NodeAgent({
      node: opts.node,
      ...(opts.netns !== undefined ? { netns: opts.netns } : {}),
      ...(opts.runner ? { runner: opts.runner } : {}),
      strict: opts.strict,
      statusDir: opts.statusDir,
      log: opts.log,
      policyOnly: opts.services ? { ...opts.policyOnly, services: true } : opts.policyOnly,
      ...(opts.services ? { serviceEndpoints: 'slices' as const } : {}),
    });
  }

  get node(): string {
    return this.opts.node;
  }

  /** Synced, first ruleset applied, last apply fine. */
  get ready(): boolean {
    return this.initialApplied && !this.needsFull;
  }

  /** Alive: no transaction stuck for longer than `stuckMs`. */
  live(stuckMs = 300_000): boolean {
    return this.applyStartedAt === undefined || performance.now() - this.applyStartedAt < stuckMs;
  }

  /**
   * Starts the source; resolves once the source has synced and the first ruleset is in the
   * kernel (or the agent stops).
   */
  async start(): Promise<void> {
    if (this.opts.policyOnly.podCidrs.length > 0 && !this.opts.runner && !(await kernelHasTable(this.opts.netns))) {
      // Nothing enforced on this node yet: an empty ruleset makes every pod in the node's pod
      // CIDRs unknown, hence dropped, until the first real ruleset replaces it.
      const s = await this.agent.apply({ events: [], localPods: [] });
      if (!s.lastApplyOk) throw new Error(`weir agent ${this.opts.node}: the fail-closed bootstrap ruleset could not be applied: ${s.error ?? ''}`);
      this.opts.log?.(`weir agent ${this.opts.node}: no weir table on this node; unknown pods fail closed until the first sync`);
    }
    const ready = new Promise<void>((ok) => this.readyWaiters.push(ok));
    await this.opts.source.start({
      onEvents: (events) => this.accept(events),
      onSynced: () => {
        this.sourceSynced = true;
        this.lastSyncAt = new Date();
        this.kick(0);
      },
      onError: (e) => {
        this.opts.log?.(`weir agent ${this.opts.node}: ${e.message}`);
        this.opts.onSourceError?.(e);
      },
    });
    if (this.opts.progress) {
      this.progressTimer = setInterval(() => {
        const p = this.opts.progress?.();
        if (!this.initialApplied || p === undefined || (this.reported !== undefined && p <= this.reported)) return;
        this.progressDue = true;
        this.kick(0);
      }, 100);
      this.progressTimer.unref();
    }
    if (!this.stopped) await ready;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.progressTimer) clearInterval(this.progressTimer);
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.opts.source.stop();
    await this.draining;
    this.agent.close();
    for (const w of this.readyWaiters.splice(0)) w();
  }

  /** Resolves when nothing is pending or being applied. */
  async idle(): Promise<void> {
    for (;;) {
      if (this.draining) await this.draining;
      else if (this.timer || this.pending.length > 0) await new Promise((r) => setTimeout(r, 5));
      else return;
    }
  }

  private accept(events: readonly ClusterEvent[]): void {
    if (this.stopped || events.length === 0) return;
    for (const e of events) {
      this.eventCounts[e.kind] = (this.eventCounts[e.kind] ?? 0) + 1;
      if (e.kind !== 'Pod') continue;
      const key = `${e.object.namespace}/${e.object.name}`;
      if (e.type !== 'deleted' && e.object.node === this.opts.node && e.object.ip !== undefined && !e.object.hostNetwork) this.locals.set(key, { key, ip: e.object.ip });
      else this.locals.delete(key);
    }
    // Not push(...events): an initial batch of 150k events would overflow the stack.
    if (this.pending.length === 0) this.pending = [...events];
    else for (const e of events) this.pending.push(e);
    this.pendingSince ??= performance.now();
    if (this.sourceSynced) this.kick(this.opts.batchWindowMs ?? 10);
  }

  private kick(delay: number): void {
    if (this.stopped || this.draining || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.draining = this.drain().finally(() => {
        this.draining = undefined;
        // Events that came in during the last transaction, or a retry.
        if (this.pending.length > 0) this.kick(0);
      });
    }, delay);
  }

  private async drain(): Promise<void> {
    while (!this.stopped && (this.pending.length > 0 || this.needsFull || this.progressDue || (this.sourceSynced && !this.initialApplied))) {
      this.progressDue = false;
      // Read together with taking the events: every change up to `progress` is in `events`.
      const progress = this.opts.progress?.();
      const events = this.pending;
      const since = this.pendingSince ?? performance.now();
      const initial = this.sourceSynced && !this.initialApplied;
      this.pending = [];
      this.pendingSince = undefined;
      // After a failed transaction the kernel holds an older ruleset than the engine's state:
      // only a full replace is sure to bring it up to date.
      if (this.needsFull) this.agent.applier.reset();
      this.applyStartedAt = performance.now();
      let status: AgentStatus;
      try {
        // With Services, the snapshot the NAT section is planned from (it may be ahead of
        // `events` by what the source has not delivered yet; the next batch brings those).
        const snapshot = this.opts.services ? { snapshot: this.opts.source.snapshot() } : {};
        status = await this.agent.apply({ events, localPods: [...this.locals.values()], ...(progress !== undefined ? { desiredGeneration: progress } : {}), ...snapshot });
      } finally {
        this.applyStartedAt = undefined;
      }
      this.applies++;
      const lagMs = performance.now() - since;
      if (status.lastApplyOk) {
        if (this.opts.services) await this.forgetRemovedEndpoints();
        if (progress !== undefined) this.reported = progress;
        this.needsFull = false;
        this.failures = 0;
        this.lastSyncAt = new Date();
        this.lags.push(lagMs);
        if (this.lags.length > LAG_SAMPLES) this.lags.splice(0, this.lags.length - LAG_SAMPLES);
        if (initial) {
          this.initialApplied = true;
          for (const w of this.readyWaiters.splice(0)) w();
        }
      } else {
        this.applyErrors++;
        this.lastError = status.error;
        this.needsFull = true;
        this.failures++;
        const wait = Math.min(30_000, (this.opts.retryMs ?? 1000) * 2 ** (this.failures - 1));
        this.opts.log?.(`weir agent ${this.opts.node}: apply failed (${status.error ?? ''}); full replace in ${wait} ms`);
        this.onApplied?.({ events: events.length, lagMs, firstEventAt: since, status });
        await new Promise((r) => setTimeout(r, wait));
        continue;
      }
      this.onApplied?.({ events: events.length, lagMs, firstEventAt: since, status });
    }
  }

  /** With Services: conntrack entries that would outlive the endpoints this batch removed (stale-endpoints.ts). */
  private async forgetRemovedEndpoints(): Promise<void> {
    const now = endpointKeysOfRuleset(this.agent.lastRuleset);
    const before = this.endpoints;
    this.endpoints = now;
    if (!before || this.opts.runner) return;
    const n = await flushStaleEndpoints(before, now, this.opts.netns);
    if (n > 0) this.opts.log?.(`weir agent ${this.opts.node}: ${n} conntrack entr${n === 1 ? 'y' : 'ies'} to removed endpoints deleted`);
  }

  state(): ClusterAgentState {
    const sorted = [...this.lags].sort((a, b) => a - b);
    const last = this.agent.last;
    const round = (x: number | undefined) => (x === undefined ? undefined : Math.round(x * 10) / 10);
    return {
      node: this.opts.node,
      source: this.opts.source.description,
      synced: this.sourceSynced,
      ready: this.ready,
      ...(this.lastSyncAt ? { lastSyncAt: this.lastSyncAt.toISOString() } : {}),
      ...(last ? { lastApplyOk: last.lastApplyOk } : {}),
      ...(this.lastError !== undefined ? { lastError: this.lastError } : {}),
      applyErrors: this.applyErrors,
      applies: this.applies,
      events: { ...this.eventCounts },
      pendingEvents: this.pending.length,
      localPods: this.locals.size,
      lagMs: { last: round(this.lags[this.lags.length - 1]), p50: round(quantile(sorted, 0.5)), p99: round(quantile(sorted, 0.99)), samples: sorted.length },
      ...(last ? { ruleset: { rules: last.rules, chains: last.chains, sets: last.sets, setElements: last.setElements } } : {}),
      podCidrs: this.opts.policyOnly.podCidrs,
      changes: { ...this.agent.changes },
    };
  }

  /** Event counts by kind (for metrics). */
  eventsByKind(): ReadonlyMap<SourceKind, number> {
    return new Map(Object.entries(this.eventCounts) as [SourceKind, number][]);
  }
}
