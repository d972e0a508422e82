// The pipeline: sources ingest records (cheap: an array push); a timer flushes batches into
// the store (one transaction), the aggregator, metrics and alert rules, then hands each batch
// to subscribers (the live stream). Ingest never waits on storage or on subscribers.
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
  stored: number;
  overflowDropped: number;
  batches: number;
  storeErrors: number;
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
  private readonly s: Omit<PipelineStats, 'buffered' | 'subscribers'> = { ingested: 0, stored: 0, overflowDropped: 0, batches: 0, storeErrors: 0, lastFlushMs: 0 };

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
    if (opts.seedFromStore ?? true) {
      this.aggregator.seed(this.store.edgeMinutes(this.now() - this.aggregator.horizonMs));
      this.aggregator.seedPolicies(this.store.policyCounters());
    }
  }

  start(): this {
    if (!this.timer) {
      this.timer = setInterval(() => this.flush(), this.flushMs);
      this.timer.unref();
      this.retentionTimer = setInterval(() => this.runRetention(), this.retentionEveryMs);
      this.retentionTimer.unref();
    }
    return this;
  }

  /** Stops the timers and flushes what is waiting. */
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
        this.flush();
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

  flush(): PipelineBatch | undefined {
    const now = this.now();
    const t0 = performance.now();
    const records = this.buffer;
    this.buffer = [];
    if (records.length > 0) {
      try {
        for (let i = 0; i < records.length; i += this.maxBatch) this.store.insert(records.slice(i, i + this.maxBatch));
        this.s.stored += records.length;
      } catch (e) {
        this.s.storeErrors++;
        this.onError(e);
      }
      this.aggregator.add(records);
      this.metrics?.observe(records);
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

  runRetention(): void {
    try {
      this.store.retention(this.now());
    } catch (e) {
      this.onError(e);
    }
  }

  get stats(): PipelineStats {
    return { ...this.s, buffered: this.buffer.length, subscribers: this.listeners.size };
  }
}
