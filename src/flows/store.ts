// Storage contract of the visibility pipeline. Synchronous on purpose: the SQLite
// implementation answers in microseconds, and a sync interface keeps batch boundaries
// (one transaction per pipeline flush) explicit. The exceptions are the bulk jobs, which at
// tens of thousands of rows per second would own the caller's thread: a store may commit flow
// writes in the background and say so through `background` (see WorkerFlowStore), and may run
// retention in steps between event-loop turns (`retentionInTurns`).
import type { Edge, EdgeCounters, GroupBy, PolicyCounter } from './aggregate.js';
import type { FlowFilter } from './filter.js';
import type { Endpoint, FlowRecord } from './record.js';

export interface StoredFlow extends FlowRecord {
  id: number;
}

export type AlertState = 'firing' | 'resolved' | 'event';

export interface AlertRecord {
  id: number;
  rule: string;
  kind: string;
  /** `firing` until resolved; `event` for one-shot alerts (e.g. new-external) that never resolve. */
  state: AlertState;
  firedAt: number;
  resolvedAt?: number;
  message: string;
  value: number;
  threshold: number;
  labels: Record<string, string>;
}

export type NewAlert = Omit<AlertRecord, 'id'>;

export interface WebhookJob {
  id: number;
  alertId: number;
  url: string;
  payload: string;
  attempts: number;
  nextAt: number;
}

export interface EdgeMinute {
  time: number;
  src: Endpoint;
  dst: Endpoint;
  counters: EdgeCounters;
}

export interface RetentionOptions {
  /** Raw flows older than this are deleted (their per-minute edge aggregates stay). */
  rawMaxAgeMs: number;
  /** At most this many raw flows are kept (oldest go first). */
  rawMaxRows: number;
  /** Per-minute edge aggregates older than this are deleted. */
  aggregateMaxAgeMs: number;
  /** Resolved alerts and delivered webhook jobs older than this are deleted. */
  alertMaxAgeMs: number;
}

export const DEFAULT_RETENTION: RetentionOptions = {
  rawMaxAgeMs: 3_600_000,
  rawMaxRows: 2_000_000,
  aggregateMaxAgeMs: 7 * 86_400_000,
  alertMaxAgeMs: 7 * 86_400_000,
};

export interface RetentionResult {
  rawDeleted: number;
  aggregatesDeleted: number;
  alertsDeleted: number;
  /** The store was closed during the pass: it stopped there (the counts say what it did). */
  interrupted?: boolean;
}

export interface StoreStats {
  flows: number;
  edgeMinutes: number;
  alerts: number;
  webhookPending: number;
}

/** What a background writer did with one job (a batch of records, or retention). */
export interface WriteReport {
  /** Records whose raw rows (and aggregates) are committed. */
  committed: number;
  /** Records whose raw rows were shed under overload; their aggregates are committed. */
  shed: number;
  /** Records lost: the job failed and its transaction rolled back (`error` says why). */
  failed: number;
  error?: Error;
  retention?: RetentionResult;
}

/**
 * Present on stores whose `insert` only queues (the commit happens on another thread). Errors of
 * background jobs go to `onReport` listeners; with no listener subscribed they are thrown by the
 * next `insert`/`sync`/`close` instead, so they are never lost silently.
 */
export interface BackgroundWrites {
  /** Records handed to `insert` and not yet committed, shed or failed. */
  readonly queued: number;
  /** Blocks until every job queued so far has finished; throws if the writer is gone or too slow. */
  sync(timeoutMs?: number): void;
  /** Runs retention on the writer's thread; the result arrives as a report. */
  retentionLater(now: number, opts?: Partial<RetentionOptions>): void;
  onReport(listener: (r: WriteReport) => void): () => void;
}

export interface FlowStore {
  /**
   * One transaction: raw rows + per-minute edge aggregates + policy counters, and the `state`
   * keys given (what must be true exactly when these rows are, e.g. the highest batch sequence
   * an agent has committed). With `background` the rows are committed later, on the writer's
   * thread, in the order inserted.
   */
  insert(records: readonly FlowRecord[], state?: ReadonlyMap<string, string>): void;
  readonly background?: BackgroundWrites;
  /** Newest first. */
  queryFlows(filter: FlowFilter): StoredFlow[];
  /** Edges from the per-minute aggregates (minute resolution; survives restarts and raw retention). */
  edges(by: GroupBy, since: number, until?: number): Edge[];
  edgeMinutes(since: number): EdgeMinute[];
  policyCounters(): PolicyCounter[];

  insertAlert(a: NewAlert): AlertRecord;
  resolveAlert(id: number, at: number): void;
  listAlerts(opts?: { limit?: number; state?: AlertState; since?: number }): AlertRecord[];

  enqueueWebhook(alertId: number, url: string, payload: string, now: number): number;
  dueWebhooks(now: number, limit: number): WebhookJob[];
  nextWebhookAt(): number | undefined;
  webhookDelivered(id: number, at: number): void;
  webhookFailed(id: number, nextAt: number, error: string, dead: boolean): void;

  /** Small key/value state that must survive restarts (alert engine bookkeeping). */
  getState(key: string): string | undefined;
  setState(key: string, value: string): void;

  /** One retention pass, done when this returns (it holds the caller's thread throughout). */
  retention(now: number, opts?: Partial<RetentionOptions>): RetentionResult;
  /**
   * The same pass in small steps between event-loop turns (what a server runs: a pass over
   * hundreds of thousands of rows must not hold back ingest). Passes never overlap.
   */
  retentionInTurns?(now: number, opts?: Partial<RetentionOptions>): Promise<RetentionResult>;
  stats(): StoreStats;
  /** Webhook deliveries still to be made: stats().webhookPending without counting every flow row (read on each /metrics scrape). */
  webhookPending(): number;
  close(): void;
}
