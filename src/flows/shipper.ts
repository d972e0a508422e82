// The agent's flow shipper: records → one window (ship-window.ts) → a sealed batch on disk
// (ship-buffer.ts) → POST to the server, oldest first, one at a time, until the server commits
// it. Failures are retried with exponential backoff and full jitter (a restarted server is not
// met by every agent at the same instant); a batch leaves the disk only when the server said
// it is committed (or a duplicate of one it committed).
//
// A backlog (a slow or restarted server) goes out as one request of up to 32 segments, committed
// together (`firstSeq`..`seq`): the agent catches up in one round trip instead of one per window,
// and a new edge sealed behind the backlog is not held back by it.
//
// Windows are sealed every `windowMs`, and at once (at most every `newEdgeMs`) when a record
// opens an edge this shipper has not sent before, so a new edge reaches the server's stream in
// well under a window while steady traffic costs one request per window.
import { request as httpRequest, Agent as HttpAgent } from 'node:http';
import { request as httpsRequest, Agent as HttpsAgent } from 'node:https';
import { ShipBuffer, type Segment } from './ship-buffer.js';
import { INGEST_PATH, MAX_RUN, type AgentReport, type AgentSyncReport, type IngestReply, type ShipBatch } from './ship-protocol.js';
import { FlowWindow, edgeKey, type WindowOptions } from './ship-window.js';
import type { FlowRecord } from './record.js';

/** Records one request may carry (the schema allows 50,000; a full window is ~5,000). */
const MAX_RUN_RECORDS = 20_000;

export interface ShipperTls {
  /** PEM CA bundle the server's certificate is checked against (default: the system's). */
  ca?: string | Buffer;
  /** Client certificate and key (mutual TLS), PEM. */
  cert?: string | Buffer;
  key?: string | Buffer;
}

export interface ShipperOptions extends WindowOptions {
  /** The server's base URL (`https://weir.example:7680`). */
  server: string;
  token: string;
  node: string;
  version: string;
  /** Folder of the on-disk buffer (one per agent). */
  bufferDir: string;
  maxBufferBytes?: number;
  tls?: ShipperTls;
  /** Window length (default 1 s). */
  windowMs?: number;
  /** Earliest seal after a new edge (default 50 ms). */
  newEdgeMs?: number;
  /** Segments one request may carry when a backlog waits (default 32; 1: one request per window). */
  maxRun?: number;
  /** A report without data at least this often (default 5 s). */
  heartbeatMs?: number;
  /** Backoff: first retry delay bound and its ceiling (default 250 ms, 15 s). */
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  requestTimeoutMs?: number;
  /** Where the server can query this agent's raw records. */
  queryUrl?: string;
  /** The node agent's part of the report. */
  syncReport?: () => AgentSyncReport;
  /** A batch's way out, for benchmarks: sealed to disk, request started, committed by the server. */
  trace?: (event: 'sealed' | 'sending' | 'delivered', seq: number) => void;
  log?: (line: string) => void;
}

export interface ShipperStats {
  observedFlows: number;
  sampledRecords: number;
  sentBatches: number;
  duplicates: number;
  failedAttempts: number;
  lastShipAt: number | undefined;
  lastError: string | undefined;
  bufferedBatches: number;
  bufferedBytes: number;
  lostBatches: number;
  lostFlows: number;
}

export class ShipperConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ShipperConfigError';
  }
}

interface PostResult {
  status: number;
  body: string;
}

export class FlowShipper {
  readonly buffer: ShipBuffer;
  private readonly url: URL;
  private readonly window: FlowWindow;
  private readonly windowMs: number;
  private readonly newEdgeMs: number;
  private readonly maxRun: number;
  private readonly heartbeatMs: number;
  private readonly baseMs: number;
  private readonly maxMs: number;
  private readonly timeoutMs: number;
  private readonly log: (line: string) => void;
  private readonly agent: HttpAgent | HttpsAgent;
  private readonly known = new Set<string>();
  private windowTimer: NodeJS.Timeout | undefined;
  private earlyTimer: NodeJS.Timeout | undefined;
  private running = false;
  private pumpDone: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private lastContact = 0;
  private lastLoggedError = '';
  private readonly s = { observedFlows: 0, sampledRecords: 0, sentBatches: 0, duplicates: 0, failedAttempts: 0, lastShipAt: undefined as number | undefined, lastError: undefined as string | undefined };

  constructor(private readonly opts: ShipperOptions) {
    if (!URL.canParse(opts.server)) throw new ShipperConfigError(`--server: not a URL: "${opts.server}"`);
    this.url = new URL(INGEST_PATH, opts.server.replace(/\/*$/, '/'));
    if (this.url.protocol !== 'http:' && this.url.protocol !== 'https:') throw new ShipperConfigError(`--server: must be http:// or https://, got "${opts.server}"`);
    if (this.url.protocol === 'http:' && opts.tls?.cert) throw new ShipperConfigError('--client-cert needs an https:// --server');
    this.buffer = new ShipBuffer({ dir: opts.bufferDir, ...(opts.maxBufferBytes !== undefined ? { maxBytes: opts.maxBufferBytes } : {}) });
    this.window = new FlowWindow(opts);
    this.windowMs = opts.windowMs ?? 1_000;
    this.newEdgeMs = opts.newEdgeMs ?? 50;
    this.maxRun = Math.max(1, Math.min(opts.maxRun ?? 32, MAX_RUN));
    this.heartbeatMs = opts.heartbeatMs ?? 5_000;
    this.baseMs = opts.backoffBaseMs ?? 250;
    this.maxMs = opts.backoffMaxMs ?? 15_000;
    this.timeoutMs = opts.requestTimeoutMs ?? 10_000;
    this.log = opts.log ?? ((l) => process.stderr.write(`${l}\n`));
    this.agent =
      this.url.protocol === 'https:'
        ? new HttpsAgent({ keepAlive: true, maxSockets: 1, ...(opts.tls?.ca ? { ca: opts.tls.ca } : {}), ...(opts.tls?.cert ? { cert: opts.tls.cert } : {}), ...(opts.tls?.key ? { key: opts.tls.key } : {}) })
        : new HttpAgent({ keepAlive: true, maxSockets: 1 });
  }

  get agentId(): string {
    return this.buffer.agentId;
  }

  start(): this {
    if (this.running) return this;
    this.running = true;
    this.windowTimer = setInterval(() => this.seal(), this.windowMs);
    this.pumpDone = this.pump();
    return this;
  }

  /** Seals the open window to disk and stops sending; what is on disk is sent by the next start. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    clearInterval(this.windowTimer);
    clearTimeout(this.earlyTimer);
    this.seal();
    this.wake?.();
    // A request in flight is cut: its batch stays on disk, and if the server did commit it the
    // next start's retry is answered `duplicate`.
    this.agent.destroy();
    await this.pumpDone;
  }

  add(records: readonly FlowRecord[]): void {
    let fresh = false;
    for (const r of records) {
      const k = edgeKey(r);
      this.window.add(r, k);
      if (!this.known.has(k)) {
        // Bounded: past the cap the set starts over (a few early seals, nothing lost).
        if (this.known.size >= 100_000) this.known.clear();
        this.known.add(k);
        fresh = true;
      }
    }
    if (fresh && this.running && this.earlyTimer === undefined) {
      this.earlyTimer = setTimeout(() => {
        this.earlyTimer = undefined;
        this.seal();
      }, this.newEdgeMs);
    }
  }

  /** Seals the open window into a batch on disk (nothing when it is empty). */
  seal(): void {
    if (this.window.size === 0) return;
    const w = this.window.seal();
    this.s.observedFlows += w.flows;
    this.s.sampledRecords += w.samples;
    const before = this.buffer.lost.batches;
    try {
      const seq = this.buffer.append(w.records, w.flows);
      this.opts.trace?.('sealed', seq);
    } catch (e) {
      // A disk that refuses the write (full, read-only) must not stop the agent: the batch is
      // lost, and counted like an overflow.
      this.log(`weir agent ${this.opts.node}: cannot write the flow buffer ${this.buffer.dir}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      try {
        this.buffer.countLost(1, w.flows);
      } catch {
        this.buffer.countLostInMemory(1, w.flows);
      }
    }
    if (this.buffer.lost.batches !== before) this.log(`weir agent ${this.opts.node}: flow buffer full (${this.buffer.maxBytes} bytes): ${this.buffer.lost.batches} batches (${this.buffer.lost.flows} flows) lost so far`);
    this.wake?.();
  }

  report(): AgentReport {
    const lost = this.buffer.lost;
    return {
      node: this.opts.node,
      version: this.opts.version,
      ...(this.opts.queryUrl ? { queryUrl: this.opts.queryUrl } : {}),
      sync: this.opts.syncReport?.() ?? {},
      ship: {
        bufferedBatches: this.buffer.batches,
        bufferedBytes: this.buffer.bytes,
        bufferLimitBytes: this.buffer.maxBytes,
        lostBatches: lost.batches,
        lostFlows: lost.flows,
        ...(this.s.lastShipAt !== undefined ? { lastShipAt: new Date(this.s.lastShipAt).toISOString() } : {}),
        sentBatches: this.s.sentBatches,
        failedAttempts: this.s.failedAttempts,
        observedFlows: this.s.observedFlows + this.window.flowCount,
        sampledRecords: this.s.sampledRecords,
      },
    };
  }

  get stats(): ShipperStats {
    const lost = this.buffer.lost;
    return { ...this.s, bufferedBatches: this.buffer.batches, bufferedBytes: this.buffer.bytes, lostBatches: lost.batches, lostFlows: lost.flows };
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      function done(): void {
        clearTimeout(t);
        resolve();
      }
      this.wake = () => {
        this.wake = undefined;
        done();
      };
    });
  }

  private async pump(): Promise<void> {
    let failures = 0;
    while (this.running) {
      const segs = this.buffer.peekRun(this.maxRun, MAX_RUN_RECORDS);
      const heartbeatDue = Date.now() - this.lastContact >= this.heartbeatMs;
      if (segs.length === 0 && !heartbeatDue) {
        await this.sleep(Math.max(10, this.heartbeatMs - (Date.now() - this.lastContact)));
        continue;
      }
      const ok = await this.send(segs);
      if (ok) {
        failures = 0;
        continue;
      }
      failures++;
      // Full jitter (AWS architecture blog, "Exponential Backoff And Jitter"): spreads the retries
      // of many agents over the whole interval instead of synchronising them.
      const ceiling = Math.min(this.maxMs, this.baseMs * 2 ** Math.min(failures - 1, 20));
      await this.sleep(this.baseMs / 4 + Math.random() * ceiling);
    }
  }

  private noteError(msg: string): void {
    this.s.failedAttempts++;
    this.s.lastError = msg;
    if (msg !== this.lastLoggedError) this.log(`weir agent ${this.opts.node}: shipping flows to ${this.url.origin}: ${msg} (retrying with backoff; batches wait on disk in ${this.buffer.dir})`);
    this.lastLoggedError = msg;
  }

  /**
   * One attempt with the oldest segments (one request for a backlog, committed together); true
   * when the server answered for good (committed, duplicate, or refused the batch as invalid).
   */
  private async send(segs: readonly Segment[]): Promise<boolean> {
    const head = segs[0];
    const last = segs[segs.length - 1];
    let flows = 0;
    let records: FlowRecord[] = [];
    if (segs.length === 1 && head) records = head.records;
    else for (const g of segs) for (const r of g.records) records.push(r);
    for (const g of segs) flows += g.flows;
    const batch: ShipBatch = {
      agentId: this.agentId,
      flows,
      records,
      report: this.report(),
      ...(last ? { seq: last.seq } : {}),
      ...(head && last && head.seq !== last.seq ? { firstSeq: head.seq } : {}),
    };
    const body = JSON.stringify(batch);
    for (const g of segs) this.opts.trace?.('sending', g.seq);
    let res: PostResult;
    try {
      res = await this.post(body);
    } catch (first) {
      // A kept-alive socket the server closed while idle fails the request that reuses it; the
      // batch is idempotent (seq), so it is sent again at once on a fresh connection.
      const code = (first as NodeJS.ErrnoException).code;
      try {
        if (!this.running || (code !== 'ECONNRESET' && code !== 'EPIPE')) throw first;
        res = await this.post(body);
      } catch (e) {
        this.noteError((e as NodeJS.ErrnoException).code ?? (e as Error).message);
        return false;
      }
    }
    if (res.status === 200) {
      this.lastContact = Date.now();
      if (segs.length > 0) {
        for (const g of segs) this.buffer.remove(g.seq);
        const reply = JSON.parse(res.body) as IngestReply;
        if (reply.duplicate) this.s.duplicates += segs.length;
        else this.s.sentBatches += segs.length;
        this.s.lastShipAt = Date.now();
        for (const g of segs) this.opts.trace?.('delivered', g.seq);
      }
      if (this.lastLoggedError) this.log(`weir agent ${this.opts.node}: shipping flows to ${this.url.origin}: delivering again`);
      this.lastLoggedError = '';
      return true;
    }
    let message = `HTTP ${res.status}`;
    let committedSeq: number | undefined;
    try {
      const b = JSON.parse(res.body) as { message?: string; committedSeq?: unknown };
      message += `: ${b.message ?? ''}`;
      if (typeof b.committedSeq === 'number') committedSeq = b.committedSeq;
    } catch {
      // Not JSON: the status says enough.
    }
    if (res.status === 409 && committedSeq !== undefined) {
      // The head of this backlog was committed by an attempt whose answer was lost: it goes,
      // and the rest is sent at once.
      for (const g of segs) if (g.seq <= committedSeq) this.buffer.remove(g.seq);
      this.lastContact = Date.now();
      return true;
    }
    if ((res.status === 400 || res.status === 413) && segs.length > 0) {
      // The server will never take this batch (a bug or version skew): keeping it would block
      // every later batch. It is dropped and counted as lost, loudly.
      this.log(`weir agent ${this.opts.node}: the server refused batch ${segs.map((g) => g.seq).join(',')} for good (${message}); ${flows} flows counted as lost`);
      for (const g of segs) this.buffer.remove(g.seq);
      this.buffer.countLost(segs.length, flows);
      this.lastContact = Date.now();
      return true;
    }
    this.noteError(message);
    return false;
  }

  private post(body: string): Promise<PostResult> {
    const request = this.url.protocol === 'https:' ? httpsRequest : httpRequest;
    return new Promise((resolve, reject) => {
      const req = request(
        this.url,
        {
          method: 'POST',
          agent: this.agent,
          timeout: this.timeoutMs,
          headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), authorization: `Bearer ${this.opts.token}` },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(Object.assign(new Error('request timed out'), { code: 'ETIMEDOUT' })));
      req.on('error', reject);
      req.end(body);
    });
  }
}
