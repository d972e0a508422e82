// WorkerFlowStore: the SQLite FlowStore with its bulk flow writes on a worker thread.
// A benchmark variant (`bench/flows.ts --store worker`), not used by the product: `weir serve`
// writes inline, which measured faster (README, Benchmarks).
//
// At 20k+ flows/s the row inserts (plus index updates and the per-minute roll-up) cost more
// than the rest of the pipeline together; on the main thread they delayed the live stream past
// a second. Here `insert` encodes the batch into one Float64Array (columns) plus a string
// table, transfers it to the worker, and returns; the worker decodes and commits it with the
// same SqliteFlowStore code, one transaction per batch, in order. Reads, alerts, webhooks and
// state stay on the caller's connection: WAL lets them run beside the writer, and they are
// rare or cheap.
//
// Group commit: the writer gathers batches for up to `commitEveryMs` (1 s) or `maxTxRecords`
// and commits them as one transaction. Per row, a 25k-row transaction costs about half of a
// 5k-row one (the namespace index and the per-minute roll-up touch the same pages and keys
// once per transaction, not once per batch). Raw rows and their aggregates always commit
// together; `sync()` (and so `pipeline.flush()`/`stop()` and `close()`) commits at once. A
// crash can lose the last second of flows, rows and aggregates alike — the same kind of
// promise as `synchronous = NORMAL`.
//
// Bounded: at most `maxQueued` records wait for the writer. Beyond that a batch is *shed*: its
// per-minute edge aggregates and policy counters are computed here and committed, its raw rows
// are not, and the records are counted in the report (`shed`). Counts survive overload; only
// the raw row detail is downsampled, and never silently.
import { MessageChannel, Worker, isMainThread, parentPort, receiveMessageOnPort, workerData, type MessagePort } from 'node:worker_threads';
import type { Endpoint, FlowEvent, FlowProtocol, FlowRecord, Tier, Verdict } from '../src/flows/record.js';
import { SqliteFlowStore, rollUpRecords, type Rollup, type SqliteFlowStoreOptions } from '../src/flows/sqlite-store.js';
import type { BackgroundWrites, RetentionOptions, RetentionResult, WriteReport } from '../src/flows/store.js';

// ---- batch encoding -------------------------------------------------------------------------

/** Numeric columns per record in `EncodedBatch.nums`; string columns hold an index into `strings` (-1: absent). */
const C = { time: 0, node: 1, src: 2, dst: 3, srcPort: 4, dstPort: 5, protocol: 6, verdict: 7, policy: 8, rule: 9, tier: 10, direction: 11, bytes: 12, packets: 13, durationMs: 14, event: 15 } as const;
const NCOLS = 16;
/** Endpoint columns in `EncodedBatch.endpoints`: string indexes, except `external` (0/1) and `identityId` (-1: absent). */
const E = { ip: 0, namespace: 1, pod: 2, workload: 3, identity: 4, external: 5, cidr: 6, identityId: 7 } as const;
const ECOLS = 8;

/**
 * A batch as compact arrays. The enricher hands out one Endpoint object per address, so endpoints
 * are deduplicated by identity and every repeated string (node, policy, namespace…) is sent once.
 */
export interface EncodedBatch {
  n: number;
  strings: string[];
  endpoints: Int32Array;
  nums: Float64Array;
}

export function encodeBatch(records: readonly FlowRecord[]): EncodedBatch {
  const strings: string[] = [];
  const stringIdx = new Map<string, number>();
  const str = (v: string | undefined): number => {
    if (v === undefined) return -1;
    let i = stringIdx.get(v);
    if (i === undefined) {
      i = strings.length;
      strings.push(v);
      stringIdx.set(v, i);
    }
    return i;
  };
  const epIdx = new Map<Endpoint, number>();
  const eps: number[] = [];
  const ep = (e: Endpoint): number => {
    let i = epIdx.get(e);
    if (i === undefined) {
      i = eps.length / ECOLS;
      eps.push(str(e.ip), str(e.namespace), str(e.pod), str(e.workload), str(e.identity), e.external ? 1 : 0, str(e.cidr), e.identityId ?? -1);
      epIdx.set(e, i);
    }
    return i;
  };
  const nums = new Float64Array(records.length * NCOLS);
  for (let k = 0, o = 0; k < records.length; k++, o += NCOLS) {
    const r = records[k] as FlowRecord;
    nums[o + C.time] = r.time;
    nums[o + C.node] = str(r.node);
    nums[o + C.src] = ep(r.src);
    nums[o + C.dst] = ep(r.dst);
    nums[o + C.srcPort] = r.srcPort;
    nums[o + C.dstPort] = r.dstPort;
    nums[o + C.protocol] = str(r.protocol);
    nums[o + C.verdict] = str(r.verdict);
    nums[o + C.policy] = str(r.policy);
    nums[o + C.rule] = str(r.rule);
    nums[o + C.tier] = str(r.tier);
    nums[o + C.direction] = str(r.direction);
    nums[o + C.bytes] = r.bytes;
    nums[o + C.packets] = r.packets;
    nums[o + C.durationMs] = r.durationMs;
    nums[o + C.event] = str(r.event);
  }
  return { n: records.length, strings, endpoints: Int32Array.from(eps), nums };
}

export function decodeBatch(b: EncodedBatch): FlowRecord[] {
  const s = (i: number): string | undefined => (i < 0 ? undefined : b.strings[i]);
  // A required string column that is absent decodes as undefined and fails the NOT NULL
  // constraint in SQLite: bad input is reported by the writer, not papered over here.
  const req = (i: number): string => s(i) as string;
  const endpoints: Endpoint[] = [];
  for (let o = 0; o < b.endpoints.length; o += ECOLS) {
    const e: Endpoint = { ip: req(b.endpoints[o + E.ip] as number) };
    const ns = s(b.endpoints[o + E.namespace] as number);
    const pod = s(b.endpoints[o + E.pod] as number);
    const wl = s(b.endpoints[o + E.workload] as number);
    const id = s(b.endpoints[o + E.identity] as number);
    const cidr = s(b.endpoints[o + E.cidr] as number);
    if (ns !== undefined) e.namespace = ns;
    if (pod !== undefined) e.pod = pod;
    if (wl !== undefined) e.workload = wl;
    if (id !== undefined) e.identity = id;
    if (b.endpoints[o + E.external] === 1) e.external = true;
    if (cidr !== undefined) e.cidr = cidr;
    const idNum = b.endpoints[o + E.identityId] as number;
    if (idNum > 0) e.identityId = idNum;
    endpoints.push(e);
  }
  const out: FlowRecord[] = new Array<FlowRecord>(b.n);
  const v = b.nums;
  for (let k = 0, o = 0; k < b.n; k++, o += NCOLS) {
    const r: FlowRecord = {
      time: v[o + C.time] as number,
      node: req(v[o + C.node] as number),
      src: endpoints[v[o + C.src] as number] as Endpoint,
      dst: endpoints[v[o + C.dst] as number] as Endpoint,
      srcPort: v[o + C.srcPort] as number,
      dstPort: v[o + C.dstPort] as number,
      protocol: req(v[o + C.protocol] as number) as FlowProtocol,
      verdict: req(v[o + C.verdict] as number) as Verdict,
      policy: req(v[o + C.policy] as number),
      rule: req(v[o + C.rule] as number),
      tier: req(v[o + C.tier] as number) as Tier,
      bytes: v[o + C.bytes] as number,
      packets: v[o + C.packets] as number,
      durationMs: v[o + C.durationMs] as number,
    };
    const dir = s(v[o + C.direction] as number);
    if (dir !== undefined) r.direction = dir as 'ingress' | 'egress';
    const ev = s(v[o + C.event] as number);
    if (ev !== undefined) r.event = ev as FlowEvent;
    out[k] = r;
  }
  return out;
}

// ---- protocol ---------------------------------------------------------------------------------

type Job =
  | { op: 'insert'; seq: number; batch: EncodedBatch }
  | { op: 'rollup'; seq: number; n: number; rollup: Rollup }
  | { op: 'retention'; seq: number; now: number; opts: Partial<RetentionOptions> }
  /** A barrier: commit everything gathered so far. */
  | { op: 'sync'; seq: number }
  | { op: 'close'; seq: number };

interface WireReport {
  seq: number;
  committed: number;
  shed: number;
  failed: number;
  error?: { name: string; message: string; code?: string; stack?: string };
  retention?: RetentionResult;
}

interface WorkerInit {
  weirStoreWorker: true;
  path: string;
  opts: SqliteFlowStoreOptions;
  reports: MessagePort;
  commitEveryMs: number;
  maxTxRecords: number;
  /** BigInt64: [last finished seq, state (STATE_*)]. */
  shared: SharedArrayBuffer;
}

const DONE = 0;
const STATE = 1;
const STATE_RUNNING = 0n;
const STATE_CLOSED = 1n;
const STATE_DEAD = 2n;

function wireError(e: unknown): NonNullable<WireReport['error']> {
  const err = e instanceof Error ? e : new Error(String(e));
  const code = (err as { code?: unknown }).code;
  return { name: err.name, message: err.message, ...(typeof code === 'string' ? { code } : {}), ...(err.stack ? { stack: err.stack } : {}) };
}

/** The writer's side: one SqliteFlowStore, jobs in arrival order, a report for each. */
function runWorker(init: WorkerInit): void {
  const state = new BigInt64Array(init.shared);
  const finish = (r: WireReport, st = STATE_RUNNING): void => {
    // Report first, then publish the seq: whoever sees the seq finds the report on the port.
    init.reports.postMessage(r);
    if (st !== STATE_RUNNING) Atomics.store(state, STATE, st);
    Atomics.store(state, DONE, BigInt(r.seq));
    Atomics.notify(state, DONE);
  };
  // Decoded batches waiting for the group commit, and the jobs they came from (in seq order).
  let gathered: FlowRecord[] = [];
  let jobs: { seq: number; n: number }[] = [];
  let timer: NodeJS.Timeout | undefined;
  const commit = (): void => {
    clearTimeout(timer);
    timer = undefined;
    if (jobs.length === 0) return;
    const records = gathered;
    const done = jobs;
    gathered = [];
    jobs = [];
    let error: WireReport['error'];
    try {
      store.insert(records);
    } catch (e) {
      error = wireError(e);
    }
    // One report per job; a failed transaction is one error (on its first job), all its records failed.
    done.forEach((j, i) => finish(error ? { seq: j.seq, committed: 0, shed: 0, failed: j.n, ...(i === 0 ? { error } : {}) } : { seq: j.seq, committed: j.n, shed: 0, failed: 0 }));
  };
  let store: SqliteFlowStore;
  try {
    store = new SqliteFlowStore(init.path, init.opts);
  } catch (e) {
    finish({ seq: 0, committed: 0, shed: 0, failed: 0, error: wireError(e) }, STATE_DEAD);
    return;
  }
  parentPort?.on('message', (job: Job) => {
    if (job.op === 'insert') {
      for (const r of decodeBatch(job.batch)) gathered.push(r);
      jobs.push({ seq: job.seq, n: job.batch.n });
      if (gathered.length >= init.maxTxRecords) commit();
      else timer ??= setTimeout(commit, init.commitEveryMs);
      return;
    }
    // Every other job sees the inserts before it committed: jobs finish in seq order.
    commit();
    switch (job.op) {
      case 'sync':
        finish({ seq: job.seq, committed: 0, shed: 0, failed: 0 });
        return;
      case 'rollup':
        try {
          store.insertRollup(job.rollup);
          finish({ seq: job.seq, committed: 0, shed: job.n, failed: 0 });
        } catch (e) {
          finish({ seq: job.seq, committed: 0, shed: 0, failed: job.n, error: wireError(e) });
        }
        return;
      case 'retention':
        try {
          finish({ seq: job.seq, committed: 0, shed: 0, failed: 0, retention: store.retention(job.now, job.opts) });
        } catch (e) {
          finish({ seq: job.seq, committed: 0, shed: 0, failed: 0, error: wireError(e) });
        }
        return;
      case 'close':
        try {
          store.close();
          finish({ seq: job.seq, committed: 0, shed: 0, failed: 0 }, STATE_CLOSED);
        } catch (e) {
          finish({ seq: job.seq, committed: 0, shed: 0, failed: 0, error: wireError(e) }, STATE_DEAD);
        }
        parentPort?.close();
        init.reports.close();
        return;
    }
  });
}

// ---- caller's side ------------------------------------------------------------------------------

export class StoreWriteError extends Error {
  constructor(
    message: string,
    readonly code?: string,
  ) {
    super(message);
    this.name = 'StoreWriteError';
  }
}

export interface WorkerFlowStoreOptions extends SqliteFlowStoreOptions {
  /** Records waiting for the writer beyond which new batches are shed to aggregates (default 100,000: 4 s at 25k/s). */
  maxQueued?: number;
  /** Records per batch handed to the writer at most (larger inserts are split; default 10,000). */
  maxJobRecords?: number;
  /** Group commit: the writer commits gathered batches at least this often (default 1000 ms)… */
  commitEveryMs?: number;
  /** …or when this many records are gathered (default 50,000). */
  maxTxRecords?: number;
  /** How long `sync`/`close` wait for the writer (default 30 s). */
  syncTimeoutMs?: number;
}

/** Where the worker entry is: the compiled .js next to us, or this .ts under tsx (workers do not inherit tsx's hooks). */
function spawnWriter(init: WorkerInit): Worker {
  const self = new URL(import.meta.url);
  if (self.pathname.endsWith('.ts')) {
    const tsx = import.meta.resolve('tsx/esm/api');
    const boot = `import(${JSON.stringify(tsx)}).then((t) => { t.register(); return import(${JSON.stringify(self.href)}); })`;
    return new Worker(boot, { eval: true, workerData: init, transferList: [init.reports] });
  }
  return new Worker(self, { workerData: init, transferList: [init.reports] });
}

export class WorkerFlowStore extends SqliteFlowStore implements BackgroundWrites {
  readonly background: BackgroundWrites = this;
  private readonly worker: Worker;
  private readonly reports: MessagePort;
  private readonly state: BigInt64Array;
  private readonly listeners = new Set<(r: WriteReport) => void>();
  private readonly maxQueued: number;
  private readonly maxJob: number;
  private readonly syncTimeoutMs: number;
  private readonly retentionResults = new Map<number, RetentionResult>();
  /** Records per outstanding job, by seq. */
  private readonly inFlight = new Map<number, number>();
  private seq = 0;
  private queuedRecords = 0;
  /** Errors no listener took: thrown by the next insert/sync/close. */
  private unclaimed: Error[] = [];
  private exited: Error | undefined;
  private closed = false;

  constructor(path: string, opts: WorkerFlowStoreOptions = {}) {
    if (path === ':memory:') throw new StoreWriteError('WorkerFlowStore needs a file: an in-memory database cannot be shared with the writer thread');
    // The caller's connection creates the schema before the writer opens the file.
    super(path, opts);
    this.maxQueued = opts.maxQueued ?? 100_000;
    this.maxJob = opts.maxJobRecords ?? 10_000;
    this.syncTimeoutMs = opts.syncTimeoutMs ?? 30_000;
    const shared = new SharedArrayBuffer(2 * BigInt64Array.BYTES_PER_ELEMENT);
    this.state = new BigInt64Array(shared);
    const { port1, port2 } = new MessageChannel();
    this.reports = port1;
    const sqliteOpts: SqliteFlowStoreOptions = {};
    if (opts.retention) sqliteOpts.retention = opts.retention;
    if (opts.cacheKiB !== undefined) sqliteOpts.cacheKiB = opts.cacheKiB;
    this.worker = spawnWriter({
      weirStoreWorker: true,
      path,
      opts: sqliteOpts,
      reports: port2,
      commitEveryMs: opts.commitEveryMs ?? 1000,
      maxTxRecords: opts.maxTxRecords ?? 50_000,
      shared,
    });
    this.reports.on('message', (r: WireReport) => this.handle(r));
    this.reports.unref();
    this.worker.on('error', (e: unknown) => {
      this.exited = new StoreWriteError(`flow store writer crashed: ${e instanceof Error ? e.message : String(e)}`);
      if (e instanceof Error && e.stack) this.exited.stack = `${this.exited.name}: ${this.exited.message}\n--- in the writer thread ---\n${e.stack}`;
      this.fail(this.exited);
    });
    this.worker.on('exit', (code) => {
      const st = Atomics.load(this.state, STATE);
      if (this.exited || st === STATE_CLOSED) return;
      this.exited = new StoreWriteError(`flow store writer exited (code ${code})`);
      // A writer that died on its own (STATE_DEAD) already reported why; still account for its queue.
      if (st === STATE_RUNNING || this.queuedRecords > 0) this.fail(this.exited);
    });
    // The writer never keeps the process alive: close() is what finishes its work.
    this.worker.unref();
  }

  get queued(): number {
    return this.queuedRecords;
  }

  onReport(listener: (r: WriteReport) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  override insert(records: readonly FlowRecord[]): void {
    this.throwUnclaimed();
    this.assertUsable();
    for (let i = 0; i < records.length; i += this.maxJob) {
      const chunk = i === 0 && records.length <= this.maxJob ? records : records.slice(i, i + this.maxJob);
      if (this.queuedRecords + chunk.length > this.maxQueued) {
        this.post({ op: 'rollup', seq: ++this.seq, n: chunk.length, rollup: rollUpRecords(chunk) }, chunk.length);
      } else {
        const batch = encodeBatch(chunk);
        this.post({ op: 'insert', seq: ++this.seq, batch }, chunk.length, [batch.nums.buffer as ArrayBuffer, batch.endpoints.buffer as ArrayBuffer]);
      }
    }
  }

  retentionLater(now: number, opts: Partial<RetentionOptions> = {}): void {
    this.assertUsable();
    this.post({ op: 'retention', seq: ++this.seq, now, opts }, 0);
  }

  /** Synchronous, like every FlowStore call: runs on the writer (in order after queued inserts) and waits. */
  override retention(now: number, opts: Partial<RetentionOptions> = {}): RetentionResult {
    this.retentionLater(now, opts);
    const seq = this.seq;
    this.sync();
    const r = this.retentionResults.get(seq);
    this.retentionResults.delete(seq);
    if (!r) throw new StoreWriteError('flow store writer: retention failed (see the reported error)');
    return r;
  }

  /** On the writer too (the inherited one would delete through the caller's connection); waits as `retention` does. */
  override retentionInTurns(now: number, opts: Partial<RetentionOptions> = {}): Promise<RetentionResult> {
    try {
      return Promise.resolve(this.retention(now, opts));
    } catch (e) {
      return Promise.reject(e instanceof Error ? e : new Error(String(e)));
    }
  }

  sync(timeoutMs = this.syncTimeoutMs): void {
    if (this.inFlight.size > 0) {
      this.assertUsable();
      this.post({ op: 'sync', seq: ++this.seq }, 0);
      this.waitFor(this.seq, timeoutMs);
    }
    this.throwUnclaimed();
  }

  override close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      if (!this.exited && Atomics.load(this.state, STATE) === STATE_RUNNING) {
        this.post({ op: 'close', seq: ++this.seq }, 0);
        this.waitFor(this.seq, this.syncTimeoutMs);
      }
    } finally {
      this.reports.close();
      super.close();
    }
    this.throwUnclaimed();
  }

  private post(job: Job, records: number, transfer: ArrayBuffer[] = []): void {
    this.inFlight.set(job.seq, records);
    this.queuedRecords += records;
    this.worker.postMessage(job, transfer);
  }

  private waitFor(seq: number, timeoutMs: number): void {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      this.drain();
      const done = Atomics.load(this.state, DONE);
      if (done >= BigInt(seq)) break;
      if (this.exited) throw this.exited;
      if (Atomics.load(this.state, STATE) === STATE_DEAD) throw new StoreWriteError('flow store writer is dead (its error was reported)');
      const left = deadline - performance.now();
      if (left <= 0) throw new StoreWriteError(`flow store writer: ${this.queuedRecords} records still queued after ${timeoutMs} ms`);
      // Bounded waits: a writer killed from outside never notifies.
      Atomics.wait(this.state, DONE, done, Math.min(left, 100));
    }
    this.drain();
  }

  /** Takes the reports waiting on the port now, without the event loop (we may be inside sync()). */
  private drain(): void {
    for (let m = receiveMessageOnPort(this.reports); m; m = receiveMessageOnPort(this.reports)) this.handle(m.message as WireReport);
  }

  private handle(w: WireReport): void {
    const n = this.inFlight.get(w.seq) ?? 0;
    this.inFlight.delete(w.seq);
    this.queuedRecords -= n;
    if (w.retention) this.retentionResults.set(w.seq, w.retention);
    const r: WriteReport = { committed: w.committed, shed: w.shed, failed: w.failed };
    if (w.retention) r.retention = w.retention;
    if (w.error) {
      const e = new StoreWriteError(`flow store writer: ${w.error.message}`, w.error.code);
      if (w.error.stack) e.stack = `${e.name}: ${e.message}\n--- in the writer thread ---\n${w.error.stack}`;
      r.error = e;
    }
    this.emit(r);
  }

  private fail(e: Error): void {
    this.emit({ committed: 0, shed: 0, failed: this.queuedRecords, error: e });
    this.queuedRecords = 0;
    this.inFlight.clear();
  }

  private emit(r: WriteReport): void {
    if (r.error && this.listeners.size === 0) this.unclaimed.push(r.error);
    for (const l of this.listeners) l(r);
  }

  private assertUsable(): void {
    if (this.closed) throw new StoreWriteError('flow store is closed');
    if (this.exited) throw this.exited;
  }

  private throwUnclaimed(): void {
    if (this.unclaimed.length === 0) return;
    const errs = this.unclaimed;
    this.unclaimed = [];
    throw errs.length === 1 ? errs[0] : new AggregateError(errs, `flow store writer: ${errs.length} jobs failed`);
  }
}

if (!isMainThread && (workerData as Partial<WorkerInit> | null)?.weirStoreWorker === true) runWorker(workerData as WorkerInit);
