// The contract between the agents that ship flows and the one server that gathers them: one
// schema per message, imported by both sides (src/flows/shipper.ts writes, src/api/ingest.ts
// reads), so a field cannot be written under one name and read under another.
//
//   POST /api/ingest/flows   ShipBatch → IngestReply     (bearer token always; 401 counted)
//   GET  /api/agents         → AgentsReply               (what `weir status` prints)
//   GET  /api/flows          on an agent: its raw records (the server fans out to it)
import { z } from 'zod';
import { flowRecordSchema } from './record.js';

export const INGEST_PATH = '/api/ingest/flows';
export const AGENTS_PATH = '/api/agents';
/** An agent's own query endpoint: the same filters as the server's /api/flows. */
export const AGENT_FLOWS_PATH = '/api/flows';

/**
 * What an agent says about itself with every batch (or heartbeat). The node agent fills the
 * `sync` part from its own state; the shipper fills `ship`. Everything is a snapshot: the
 * server keeps the newest, so a retried batch carries a fresher report and that is fine.
 */
export const agentReportSchema = z.object({
  node: z.string().min(1),
  version: z.string(),
  /** Where the server can query this agent's raw records (`http(s)://addr:port`), if it serves them. */
  queryUrl: z.string().url().optional(),
  sync: z
    .object({
      /** ISO time of the last sync that reached the kernel. */
      lastSyncAt: z.string().optional(),
      /** Time from reading the source to the ruleset in the kernel, for the last sync (ms). */
      lagMs: z.number().nonnegative().optional(),
      lastApplyOk: z.boolean().optional(),
      rules: z.number().int().nonnegative().optional(),
      setElements: z.number().int().nonnegative().optional(),
      /** Applies that failed since the agent started. */
      errors: z.number().int().nonnegative().optional(),
      lastError: z.string().optional(),
    })
    .default({}),
  ship: z.object({
    /** Sealed batches waiting on disk. */
    bufferedBatches: z.number().int().nonnegative(),
    bufferedBytes: z.number().int().nonnegative(),
    bufferLimitBytes: z.number().int().nonnegative(),
    /** Batches and flows dropped because the buffer was full (cumulative, survives restarts). */
    lostBatches: z.number().int().nonnegative(),
    lostFlows: z.number().int().nonnegative(),
    /** ISO time of the last batch the server accepted. */
    lastShipAt: z.string().optional(),
    sentBatches: z.number().int().nonnegative(),
    failedAttempts: z.number().int().nonnegative(),
    /** Flows the agent observed and raw records it kept as samples (cumulative, this process). */
    observedFlows: z.number().int().nonnegative(),
    sampledRecords: z.number().int().nonnegative(),
  }),
});
export type AgentReport = z.infer<typeof agentReportSchema>;

/** What the node agent contributes to the report (the `sync` part). */
export type AgentSyncReport = AgentReport['sync'];

/** Segments one request may span (firstSeq..seq). */
export const MAX_RUN = 1_000;

export const shipBatchSchema = z.object({
  /** Random, persisted with the agent's buffer: a new buffer is a new agent id. */
  agentId: z.string().regex(/^[A-Za-z0-9_-]{8,64}$/),
  /**
   * The batch's sequence number in that buffer (1, 2, …, increasing, gaps where batches were
   * lost). The server remembers the highest it committed per agent: a retry after a lost
   * response is answered `duplicate` and not counted again. Absent: a heartbeat (report only).
   */
  seq: z.number().int().positive().optional(),
  /**
   * A backlog sent in one request: the batch holds the agent's segments `firstSeq`..`seq` (gaps
   * where segments were lost), committed together. Absent: the one segment `seq`. A server that
   * committed part of the range before answers 409 with `committedSeq`: the agent drops what
   * was committed and sends the rest.
   */
  firstSeq: z.number().int().positive().optional(),
  /** Flows the records of this batch stand for (sum of their counts): checked by the server. */
  flows: z.number().int().nonnegative().default(0),
  records: z.array(flowRecordSchema).max(50_000).default([]),
  report: agentReportSchema,
})
  .refine((b) => b.firstSeq === undefined || (b.seq !== undefined && b.firstSeq <= b.seq && b.seq - b.firstSeq < MAX_RUN), { message: `firstSeq must come with seq, be at most seq and span fewer than ${MAX_RUN} segments`, path: ['firstSeq'] });
export type ShipBatch = z.infer<typeof shipBatchSchema>;

export interface IngestReply {
  accepted: number;
  /** The batch was committed before (a retry): nothing was added. */
  duplicate: boolean;
}

/** The 409 body when part of a batch's range was committed before: what the agent may drop. */
export interface IngestOverlap {
  statusCode: 409;
  error: string;
  message: string;
  committedSeq: number;
}

export const agentInfoSchema = z.object({
  agentId: z.string(),
  node: z.string(),
  report: agentReportSchema,
  /** Epoch ms of the last batch or heartbeat the server received. */
  lastSeen: z.number(),
  /** The highest batch sequence committed. */
  lastSeq: z.number().int(),
  batches: z.number().int(),
  duplicates: z.number().int(),
  flows: z.number().int(),
  remote: z.string().optional(),
});
export type AgentInfo = z.infer<typeof agentInfoSchema>;

export const agentsReplySchema = z.object({
  now: z.number(),
  agents: z.array(agentInfoSchema),
});
export type AgentsReply = z.infer<typeof agentsReplySchema>;

/** One agent's part of a fanned-out query: `ok: false` is the marker that results are partial. */
export interface FanOutSource {
  node: string;
  url: string;
  ok: boolean;
  flows: number;
  error?: string;
}
