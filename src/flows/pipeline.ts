// The pipeline: sources ingest records (cheap: an array push); a timer flushes batches into
// the store (one transaction), the aggregator, metrics and alert rules, then hands each batch
// to subscribers (the live stream). Ingest never waits on storage or on subscribers.
//
// With a background store (WorkerFlowStore) the timer's flush only hands the batch to the
// writer thread, so the live stream's latency does not depend on SQLite; `stored` then counts
// what the writer has committed. An explicit `flush()` or `stop()` waits for the writer, so
// "flush, then query" keeps meaning what it says.
import { Aggregator } from './aggregate.js';
import type { FlowMetrics } from './metrics.js';
import type { FlowRecord } from './record.js';
import type { AlertRecord, FlowStore } from './store.js';

export interface PipelineBatch {
  /** Flush time, epoch ms. */
  time: number;
  records: readonly FlowRecord[];
  /** Alerts fired or resolved since the previous batch. */
  alerts: readonly AlertRecord[];
}

export type PipelineListener = (batch: PipelineBatch) => void;

/** Anything evaluated on each batch after it is stored (alert rules). */
export interface BatchProcessor {
  process(records: readonly FlowRecord[], now: number): void;
}

export interface PipelineOptions {
  store: FlowStore;
  aggregator?: Aggregator;
  metrics?: FlowMetrics;
  flushMs?: number;
  /** Flush early when this many records wait. */
  maxBatch?: number;
  /** Hard bound on waiting records; beyond it the oldest are dropped (and counted). */
  maxBuffer?: number;
  retentionEveryMs?: number;
  /** Seed the aggregator from the store's per-minute history on construction. */
  seedFromStore?: boolean;
  now?: () => number;
  onError?: (err: unknown) => void;
}

export interface PipelineStats {
  ingested: number;
  /** Records whose raw rows are committed. */
  stored: number;
  /** Records dropped from the ingest buffer (the flush did not keep up). */
  overflowDropped: number;
  batches: number;
  storeErrors: number;
  /** Records lost to store errors (their transaction rolled back). */
  storeFailed: number;
  /** Records whose raw rows a background store shed under overload (aggregates kept). */
  storeShed: number;
  /** Records handed to a background store and not committed yet. */
  storeQueued: number;
  /** Retention passes finished, and timer ticks skipped because the previous pass still ran. */
  retentionPasses: number;
  retentionSkipped: number;
  buffered: number;
  subscribers: number;
  lastFlushMs: number;
}

export class FlowPipeline {
  readonly store: FlowStore;
  readonly aggregator: Aggregator;
  readonly metrics: FlowMetrics | undefined;
  private buffer: FlowRecord[] = [];
  private pendingAlerts: AlertRecord[] = [];
  private readonly listeners = new Set<PipelineListener>();
  private readonly processors: BatchProcessor[] = [];
  private readonly flushMs: number;
  private readonly maxBatch: number;
  private readonly maxBuffer: number;
  private readonly retentionEveryMs: number;
  private readonly now: () => number;
  private readonly onError: (err: unknown) => void;
  private timer: NodeJS.Timeout | undefined;
  private retentionTimer: NodeJS.Timeout | undefined;
  private earlyFlush = false;
  private readonly s: Omit<PipelineStats, 'buffered' | 'subscribers' | 'storeQueued'> = {
    ingested: 0,
    stored: 0,
    overflowDropped: 0,
    batches: 0,
    storeErrors: 0,
    storeFailed: 0,
    storeShed: 0,
    retentionPasses: 0,
    retentionSkipped: 0,
    lastFlushMs: 0,
  };
  private retaining: Promise<void> | undefined;

  constructor(opts: PipelineOptions) {
    this.store = opts.store;
    this.now = opts.now ?? Date.now;
    this.aggregator = opts.aggregator ?? new Aggregator({ now: this.now });
    this.metrics = opts.metrics;
    this.flushMs = opts.flushMs ?? 200;
    this.maxBatch = opts.maxBatch ?? 5_000;
    this.maxBuffer = opts.maxBuffer ?? 200_000;
    this.retentionEveryMs = opts.retentionEveryMs ?? 30_000;
    this.onError = opts.onError ?? ((e) => console.error('weir flows:', e));
    this.store.background?.onReport((r) => {
      this.s.stored += r.committed;
      this.s.storeShed += r.shed;
      this.s.storeFailed += r.failed;
      if (r.retention) this.s.retentionPasses++;
      if (r.error) {
        this.s.storeErrors++;
        this.onError(r.error);
      }
    });
    if (opts.seedFromStore ?? true) {
      this.aggregator.seed(this.store.edgeMinutes(this.now() - this.aggregator.horizonMs));
      this.aggregator.seedPolicies(this.store.policyCounters());
    }
  }

  start(): this {
    if (!this.timer) {
      this.timer = setInterval(() => this.flushBatch(), this.flushMs);
      this.timer.unref();
      this.retentionTimer = setInterval(() => void this.runRetention(), this.retentionEveryMs);
      this.retentionTimer.unref();
    }
    return this;
  }

  /** Stops the timers and flushes what is waiting (committed when this returns). */
  stop(): void {
    clearInterval(this.timer);
    clearInterval(this.retentionTimer);
    this.timer = undefined;
    this.retentionTimer = undefined;
    this.flush();
  }

  ingest(records: FlowRecord | readonly FlowRecord[]): void {
    if (Array.isArray(records)) {
      for (const r of records as readonly FlowRecord[]) this.buffer.push(r);
      this.s.ingested += records.length;
    } else {
      this.buffer.push(records as FlowRecord);
      this.s.ingested++;
    }
    if (this.buffer.length > this.maxBuffer) {
      const over = this.buffer.length - this.maxBuffer;
      this.buffer.splice(0, over);
      this.s.overflowDropped += over;
    }
    if (this.buffer.length >= this.maxBatch && !this.earlyFlush && this.timer) {
      this.earlyFlush = true;
      setImmediate(() => {
        this.earlyFlush = false;
        this.flushBatch();
      });
    }
  }

  use(p: BatchProcessor): void {
    this.processors.push(p);
  }

  /** Alert engines report fired/resolved alerts here; they ride on the next batch. */
  publishAlert(a: AlertRecord): void {
    this.pendingAlerts.push(a);
  }

  subscribe(listener: PipelineListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Flushes what is waiting; with a background store, also waits until it is committed. `state`
   * is committed in the same transaction as the records (the store's `insert`), so that it says
   * the truth about them after a crash too.
   */
  flush(state?: ReadonlyMap<string, string>): PipelineBatch | undefined {
    const batch = this.flushBatch(state);
    const bg = this.store.background;
    if (bg) {
      try {
        bg.sync();
      } catch (e) {
        this.s.storeErrors++;
        this.onError(e);
      }
    }
    return batch;
  }

  private flushBatch(state?: ReadonlyMap<string, string>): PipelineBatch | undefined {
    const now = this.now();
    const t0 = performance.now();
    const records = this.buffer;
    this.buffer = [];
    if (records.length > 0 || (state !== undefined && state.size > 0)) {
      const bg = this.store.background;
      let done = 0;
      try {
        if (bg) {
          // Queues only; the store splits, commits and reports (see the constructor). Its state
          // is written apart, at once: a background store promises no crash atomicity anyway.
          this.store.insert(records);
          if (state) for (const [k, v] of state) this.store.setState(k, v);
        } else if (state !== undefined) {
          // State rides with its records: all of them in one transaction, however many.
          this.store.insert(records, state);
          done = records.length;
          this.s.stored += records.length;
        } else {
          for (; done < records.length; done += this.maxBatch) {
            this.store.insert(records.slice(done, done + this.maxBatch));
            this.s.stored += Math.min(this.maxBatch, records.length - done);
          }
        }
      } catch (e) {
        this.s.storeErrors++;
        this.s.storeFailed += records.length - done;
        this.onError(e);
      }
      if (records.length > 0) {
        this.aggregator.add(records);
        this.metrics?.observe(records);
      }
    }
    for (const p of this.processors) {
      try {
        p.process(records, now);
      } catch (e) {
        this.onError(e);
      }
    }
    if (records.length === 0 && this.pendingAlerts.length === 0) return undefined;
    const batch: PipelineBatch = { time: now, records, alerts: this.pendingAlerts };
    this.pendingAlerts = [];
    this.s.batches++;
    for (const l of this.listeners) {
      try {
        l(batch);
      } catch (e) {
        this.onError(e);
      }
    }
    this.s.lastFlushMs = performance.now() - t0;
    return batch;
  }

  /**
   * One retention pass. A store that can (`retentionInTurns`) runs it between event-loop turns,
   * so that ingest and the live stream go on meanwhile; the promise settles when it is done
   * (errors go to `onError`). While a pass runs, another call skips (counted) and returns the
   * running one: passes never overlap and never pile up behind a slow one.
   */
  runRetention(): Promise<void> {
    if (this.retaining) {
      this.s.retentionSkipped++;
      return this.retaining;
    }
    try {
      const bg = this.store.background;
      if (bg) {
        bg.retentionLater(this.now());
      } else if (this.store.retentionInTurns) {
        const pass = this.store.retentionInTurns(this.now()).then(
          (r) => {
            if (!r.interrupted) this.s.retentionPasses++;
          },
          (e: unknown) => this.onError(e),
        );
        this.retaining = pass.finally(() => {
          this.retaining = undefined;
        });
        return this.retaining;
      } else {
        this.store.retention(this.now());
        this.s.retentionPasses++;
      }
    } catch (e) {
      this.onError(e);
    }
    return Promise.resolve();
  }

  get stats(): PipelineStats {
    return { ...this.s, storeQueued: this.store.background?.queued ?? 0, buffered: this.buffer.length, subscribers: this.listeners.size };
  }
}
