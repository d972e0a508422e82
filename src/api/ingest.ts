// The server's side of flow shipping: agents POST batches (src/flows/shipper.ts), the server
// commits them through the one pipeline (store, aggregator, metrics, alerts, live stream), keeps
// what each agent reports for `weir status`, and fans `/api/flows` out to the agents' own raw
// records.
//
// - A bearer token is required on the ingest route always, also when the rest of the server is
//   open on loopback: an unauthenticated writer could forge any flow. Refusals are counted in
//   `weir_ingest_unauthorized_total`.
// - Exactly once: a batch is answered 200 only after its records are committed, and the highest
//   committed sequence of each agent is kept in the store (survives a server restart), so a
//   retry after a lost response is answered `duplicate` and not counted again.
// - Group commit: batches that arrive within a few ms share one flush (one transaction), so 100
//   agents cost a handful of transactions per second, not 100.
import type { FastifyPluginAsync } from 'fastify';
import { createHash, timingSafeEqual } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { FlowPipeline } from '../flows/pipeline.js';
import { flowCount, type FlowRecord } from '../flows/record.js';
import { AGENTS_PATH, INGEST_PATH, type AgentInfo, type AgentsReply, type IngestOverlap, type IngestReply } from '../flows/ship-protocol.js';
import { parseShipBatch } from '../flows/ship-validate.js';
import type { FlowStore } from '../flows/store.js';

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();

/** An older agent id of a node is listed while it was heard from within this of the newest. */
const SUPERSEDED_MS = 30_000;

/** Largest batch body accepted: a full window (20 samples + 5,000 edges) is about 3 MiB. */
export const INGEST_BODY_LIMIT = 16 * 1024 * 1024;

export class IngestMetrics {
  readonly unauthorized: Counter;
  readonly batches: Counter<'result'>;
  readonly flows: Counter;
  readonly lostFlows: Gauge<'node'>;
  readonly bufferedBatches: Gauge<'node'>;

  constructor(registry: Registry) {
    const registers = [registry];
    const existing = <T>(name: string): T | undefined => registry.getSingleMetric(name) as T | undefined;
    this.unauthorized =
      existing<Counter>('weir_ingest_unauthorized_total') ??
      new Counter({ name: 'weir_ingest_unauthorized_total', help: 'Flow batches refused for a missing or wrong token (401).', registers });
    this.batches =
      existing<Counter<'result'>>('weir_ingest_batches_total') ??
      new Counter({ name: 'weir_ingest_batches_total', help: 'Flow batches from agents, by result (accepted, duplicate, invalid, heartbeat).', labelNames: ['result'], registers });
    this.flows = existing<Counter>('weir_ingest_flows_total') ?? new Counter({ name: 'weir_ingest_flows_total', help: 'Flows committed from agents (aggregates count every flow they fold).', registers });
    this.lostFlows =
      existing<Gauge<'node'>>('weir_agent_lost_flows') ??
      new Gauge({ name: 'weir_agent_lost_flows', help: 'Flows an agent dropped because its on-disk buffer overflowed (as the agent last reported).', labelNames: ['node'], registers });
    this.bufferedBatches =
      existing<Gauge<'node'>>('weir_agent_buffered_batches') ??
      new Gauge({ name: 'weir_agent_buffered_batches', help: 'Batches waiting in an agent’s on-disk buffer (as the agent last reported).', labelNames: ['node'], registers });
  }
}

interface AgentEntry extends AgentInfo {
  inflight: Set<number>;
}

/** The store's state key for the highest batch sequence committed of an agent. */
export const seqStateKey = (agentId: string): string => `ingest.seq.${agentId}`;

/** What the server knows of the agents that shipped to it. */
export class AgentRegistry {
  private readonly agents = new Map<string, AgentEntry>();
  constructor(private readonly store: FlowStore) {}

  entry(agentId: string, node: string, report: AgentInfo['report']): AgentEntry {
    let e = this.agents.get(agentId);
    if (!e) {
      const seq = Number(this.store.getState(seqStateKey(agentId)) ?? '0');
      e = { agentId, node, report, lastSeen: 0, lastSeq: Number.isInteger(seq) ? seq : 0, batches: 0, duplicates: 0, flows: 0, inflight: new Set() };
      this.agents.set(agentId, e);
    }
    return e;
  }

  /** After a commit that stored `seq` under seqStateKey (in the records' own transaction). */
  committed(e: AgentEntry, seq: number): void {
    if (seq > e.lastSeq) e.lastSeq = seq;
  }

  /**
   * The newest agent of every node, and older ones of the same node only while they are still
   * heard from (two live agents claiming one node is worth seeing; an agent that restarted with
   * a fresh buffer, and so a new id, is not).
   */
  list(): AgentInfo[] {
    const newest = new Map<string, number>();
    for (const a of this.agents.values()) newest.set(a.node, Math.max(newest.get(a.node) ?? 0, a.lastSeen));
    return [...this.agents.values()]
      .filter((a) => a.lastSeen >= (newest.get(a.node) ?? 0) - SUPERSEDED_MS)
      .map(({ inflight: _i, ...info }) => info)
      .sort((a, b) => a.node.localeCompare(b.node) || b.lastSeen - a.lastSeen);
  }

  /** The newest agent of every node that serves its raw records. */
  queryTargets(): { node: string; url: string }[] {
    const byNode = new Map<string, AgentInfo>();
    for (const a of this.agents.values()) {
      const prev = byNode.get(a.node);
      if (!prev || a.lastSeen > prev.lastSeen) byNode.set(a.node, a);
    }
    return [...byNode.values()].flatMap((a) => (a.report.queryUrl ? [{ node: a.node, url: a.report.queryUrl }] : []));
  }

  get size(): number {
    return this.agents.size;
  }
}

/**
 * Batches arriving together share one pipeline flush; each resolves once that flush committed.
 * The agents' sequence numbers are written in that same transaction: were they committed apart,
 * a crash between the two would leave flows counted whose batch the agent, never answered,
 * sends again — and they would be counted twice.
 */
class GroupCommit {
  private pending: { records: readonly FlowRecord[]; agent: { agentId: string; lastSeq: number }; seq: number; done: (err?: Error) => void }[] = [];
  private scheduled = false;
  constructor(
    private readonly pipeline: FlowPipeline,
    private readonly delayMs: number,
  ) {}

  /** `seq`: the batch's sequence; the agent's highest committed one is its `lastSeq` at commit time, or this. */
  submit(records: readonly FlowRecord[], agent: { agentId: string; lastSeq: number }, seq: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.pending.push({ records, agent, seq, done: (err) => (err ? reject(err) : resolve()) });
      if (!this.scheduled) {
        this.scheduled = true;
        setTimeout(() => this.run(), this.delayMs);
      }
    });
  }

  private run(): void {
    this.scheduled = false;
    const batch = this.pending;
    this.pending = [];
    const errorsBefore = this.pipeline.stats.storeErrors;
    const seqs = new Map<string, number>();
    for (const p of batch) {
      this.pipeline.ingest(p.records);
      seqs.set(p.agent.agentId, Math.max(seqs.get(p.agent.agentId) ?? p.agent.lastSeq, p.seq));
    }
    this.pipeline.flush(new Map([...seqs].map(([agentId, seq]) => [seqStateKey(agentId), String(seq)])));
    // The pipeline reports store errors by counting them; a rolled-back flush must not be acknowledged.
    const err = this.pipeline.stats.storeErrors > errorsBefore ? new Error('the flow store could not commit the batch') : undefined;
    for (const p of batch) p.done(err);
  }
}

export interface IngestOptions {
  pipeline: FlowPipeline;
  store: FlowStore;
  registry: Registry;
  agents: AgentRegistry;
  /** The token agents must send; without one every batch is refused. */
  token: string | undefined;
  /** Mutual TLS: a batch must come over a connection whose client certificate the server's `clientCa` signed. */
  requireClientCert?: boolean;
  /** Group-commit delay (default 20 ms). */
  commitDelayMs?: number;
}

export const ingestRoutes: FastifyPluginAsync<IngestOptions> = async (app, opts) => {
  const metrics = new IngestMetrics(opts.registry);
  const commit = new GroupCommit(opts.pipeline, opts.commitDelayMs ?? 20);
  const token = opts.token;
  // Every 401 of this route counts, whether the server-wide check refused it first or this one.
  app.addHook('onResponse', async (req, reply) => {
    if (reply.statusCode === 401 && req.routeOptions.url === INGEST_PATH) metrics.unauthorized.inc();
  });

  app.post(INGEST_PATH, { bodyLimit: INGEST_BODY_LIMIT, schema: { tags: ['flows'], summary: 'Agents ship flow batches here (bearer token required)' } }, async (req, reply) => {
    const auth = req.headers.authorization;
    const given = auth !== undefined && /^bearer /i.test(auth) ? auth.slice(7).trim() : undefined;
    if (token === undefined || given === undefined || !timingSafeEqual(digest(given), digest(token))) {
      return reply
        .status(401)
        .header('www-authenticate', 'Bearer realm="weir"')
        .send({ statusCode: 401, error: 'Unauthorized', message: token === undefined ? 'this server takes no flows from agents: start it with --token-file' : given === undefined ? 'send Authorization: Bearer <token>' : 'wrong token' });
    }
    if (opts.requireClientCert && !(req.raw.socket as TLSSocket).authorized) {
      return reply.status(401).send({ statusCode: 401, error: 'Unauthorized', message: 'this server takes flows only from agents with a client certificate signed by its --client-ca (--client-cert, --client-key)' });
    }
    const parsed = parseShipBatch(req.body);
    if (!parsed.ok) {
      metrics.batches.inc({ result: 'invalid' });
      return reply.status(400).send({ statusCode: 400, error: 'Bad Request', message: `flow batch: ${parsed.message}` });
    }
    const b = parsed.batch;
    let sum = 0;
    for (const r of b.records) sum += flowCount(r);
    if (sum !== b.flows) {
      metrics.batches.inc({ result: 'invalid' });
      return reply.status(400).send({ statusCode: 400, error: 'Bad Request', message: `flow batch ${b.seq ?? '-'}: field flows: says ${b.flows} but the records count ${sum}` });
    }
    const e = opts.agents.entry(b.agentId, b.report.node, b.report);
    e.node = b.report.node;
    e.report = b.report;
    e.lastSeen = Date.now();
    e.remote = req.ip;
    metrics.lostFlows.set({ node: e.node }, b.report.ship.lostFlows);
    metrics.bufferedBatches.set({ node: e.node }, b.report.ship.bufferedBatches);
    if (b.seq === undefined) {
      metrics.batches.inc({ result: 'heartbeat' });
      return { accepted: 0, duplicate: false } satisfies IngestReply;
    }
    if (b.seq <= e.lastSeq) {
      e.duplicates++;
      metrics.batches.inc({ result: 'duplicate' });
      return { accepted: 0, duplicate: true } satisfies IngestReply;
    }
    const first = b.firstSeq ?? b.seq;
    if (first <= e.lastSeq) {
      // A backlog resent after a lost answer, grown since: its head is committed. Counting it
      // again would count twice; the agent drops up to committedSeq and sends the rest.
      metrics.batches.inc({ result: 'duplicate' });
      return reply.status(409).send({ statusCode: 409, error: 'Conflict', message: `batches ${first}..${e.lastSeq} were committed before: send from ${e.lastSeq + 1}`, committedSeq: e.lastSeq } satisfies IngestOverlap);
    }
    for (let s = first; s <= b.seq; s++) {
      if (e.inflight.has(s)) return reply.status(409).send({ statusCode: 409, error: 'Conflict', message: `batch ${s} is being committed: retry` });
    }
    for (let s = first; s <= b.seq; s++) e.inflight.add(s);
    try {
      // Records arrive stamped by the agent; the node is the agent's, whatever a record says.
      const records = b.records.map((r) => (r.node === e.node ? r : { ...r, node: e.node }));
      await commit.submit(records, e, b.seq);
      opts.agents.committed(e, b.seq);
      e.batches++;
      e.flows += sum;
      metrics.batches.inc({ result: 'accepted' });
      metrics.flows.inc(sum);
      return { accepted: b.records.length, duplicate: false } satisfies IngestReply;
    } finally {
      for (let s = first; s <= b.seq; s++) e.inflight.delete(s);
    }
  });

  app.get(AGENTS_PATH, { schema: { tags: ['flows'], summary: 'Agents that shipped flows: node, version, sync, buffer, losses' } }, async () => ({ now: Date.now(), agents: opts.agents.list() }) satisfies AgentsReply);
};
