// The agent's bounded on-disk buffer of sealed batches: one segment file per batch, named by its
// sequence number, written atomically (temporary file + rename) before anything is sent, and
// removed only once the server has committed it. So a server restart, a network outage or an
// agent restart loses nothing while the buffer has room; when it does not, the oldest segments
// go first and what they held is counted (and reported to the server with every later batch).
//
//   <dir>/shipper.json        { agentId, nextSeq, lostBatches, lostFlows }
//   <dir>/seg-<seq>.json      { seq, flows, records }
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { flowRecordSchema, type FlowRecord } from './record.js';

const stateSchema = z.object({
  agentId: z.string(),
  nextSeq: z.number().int().positive(),
  lostBatches: z.number().int().nonnegative(),
  lostFlows: z.number().int().nonnegative(),
});
type BufferState = z.infer<typeof stateSchema>;

const segmentSchema = z.object({ seq: z.number().int().positive(), flows: z.number().int().nonnegative(), records: z.array(flowRecordSchema) });
export type Segment = z.infer<typeof segmentSchema>;

export const DEFAULT_BUFFER_BYTES = 64 * 1024 * 1024;
const STATE_FILE = 'shipper.json';
const SEGMENT = /^seg-(\d{12})\.json$/;
const segName = (seq: number): string => `seg-${String(seq).padStart(12, '0')}.json`;

export class ShipBufferError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ShipBufferError';
  }
}

export interface ShipBufferOptions {
  dir: string;
  /** Bound on the segments' total size (default 64 MiB). */
  maxBytes?: number;
}

function writeAtomic(path: string, text: string): void {
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, text, { mode: 0o600 });
  renameSync(tmp, path);
}

export class ShipBuffer {
  readonly dir: string;
  readonly maxBytes: number;
  private state: BufferState;
  /** seq → [size, flows], oldest first (Map keeps insertion order; seqs only grow). */
  private readonly segments = new Map<number, { bytes: number; flows: number }>();
  private total = 0;

  constructor(opts: ShipBufferOptions) {
    this.dir = opts.dir;
    this.maxBytes = opts.maxBytes ?? DEFAULT_BUFFER_BYTES;
    try {
      mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    } catch (e) {
      throw new ShipBufferError(`flow buffer ${this.dir}: cannot create it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    this.state = this.readState();
    const seqs: number[] = [];
    for (const name of readdirSync(this.dir)) {
      const m = SEGMENT.exec(name);
      if (m) seqs.push(Number(m[1]));
      else if (name.endsWith('.tmp')) unlinkSync(join(this.dir, name)); // a write cut short: never renamed, never counted
    }
    seqs.sort((a, b) => a - b);
    for (const seq of seqs) {
      const bytes = statSync(join(this.dir, segName(seq))).size;
      // The flow count is read lazily (on overflow or send); until then the size is what bounds.
      this.segments.set(seq, { bytes, flows: -1 });
      this.total += bytes;
      if (seq >= this.state.nextSeq) this.state.nextSeq = seq + 1;
    }
    this.saveState();
  }

  private readState(): BufferState {
    const path = join(this.dir, STATE_FILE);
    let text: string | undefined;
    try {
      text = readFileSync(path, 'utf8');
    } catch {
      text = undefined;
    }
    if (text !== undefined) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch {
        throw new ShipBufferError(`${path}: not JSON; move it away to start a new buffer (a new agent id)`);
      }
      const r = stateSchema.safeParse(parsed);
      if (!r.success) throw new ShipBufferError(`${path}: field ${r.error.issues[0]?.path.join('.') ?? '?'}: ${r.error.issues[0]?.message ?? 'invalid'}`);
      return r.data;
    }
    return { agentId: randomBytes(12).toString('base64url'), nextSeq: 1, lostBatches: 0, lostFlows: 0 };
  }

  private saveState(): void {
    writeAtomic(join(this.dir, STATE_FILE), `${JSON.stringify(this.state)}\n`);
  }

  get agentId(): string {
    return this.state.agentId;
  }

  get lost(): { batches: number; flows: number } {
    return { batches: this.state.lostBatches, flows: this.state.lostFlows };
  }

  get batches(): number {
    return this.segments.size;
  }

  get bytes(): number {
    return this.total;
  }

  /** Seals a batch to disk; drops the oldest segments (counted) when it would not fit. */
  append(records: readonly FlowRecord[], flows: number): number {
    const seq = this.state.nextSeq++;
    const text = JSON.stringify({ seq, flows, records });
    const bytes = Buffer.byteLength(text);
    if (bytes > this.maxBytes) {
      this.state.lostBatches++;
      this.state.lostFlows += flows;
      this.saveState();
      return seq;
    }
    while (this.total + bytes > this.maxBytes) {
      const oldest = this.segments.keys().next();
      if (oldest.done) break;
      this.dropSegment(oldest.value);
    }
    writeAtomic(join(this.dir, segName(seq)), text);
    this.segments.set(seq, { bytes, flows });
    this.total += bytes;
    this.saveState();
    return seq;
  }

  private dropSegment(seq: number): void {
    const s = this.segments.get(seq);
    if (!s) return;
    const flows = s.flows >= 0 ? s.flows : (this.readSegment(seq)?.flows ?? 0);
    this.remove(seq);
    this.state.lostBatches++;
    this.state.lostFlows += flows;
  }

  private readSegment(seq: number): Segment | undefined {
    try {
      const r = segmentSchema.safeParse(JSON.parse(readFileSync(join(this.dir, segName(seq)), 'utf8')));
      return r.success ? r.data : undefined;
    } catch {
      return undefined;
    }
  }

  /** The oldest segment, or undefined when empty. A segment that cannot be read is dropped and counted. */
  peek(): Segment | undefined {
    for (;;) {
      const oldest = this.segments.keys().next();
      if (oldest.done) return undefined;
      const seg = this.readSegment(oldest.value);
      if (seg) return seg;
      this.dropSegment(oldest.value);
      this.saveState();
    }
  }

  /**
   * The oldest segments, in order, as many as fit `maxSegments` and `maxRecords` (at least one):
   * a backlog goes out in one request instead of one round trip per window. Stops before a
   * segment that cannot be read (the next peek drops and counts it).
   */
  peekRun(maxSegments: number, maxRecords: number): Segment[] {
    const first = this.peek();
    if (!first) return [];
    const out = [first];
    let records = first.records.length;
    for (const seq of this.segments.keys()) {
      if (seq <= first.seq) continue;
      if (out.length >= maxSegments) break;
      const seg = this.readSegment(seq);
      if (!seg || records + seg.records.length > maxRecords) break;
      out.push(seg);
      records += seg.records.length;
    }
    return out;
  }

  /** Counts batches lost elsewhere (a batch the server refused for good, a failed write). */
  countLost(batches: number, flows: number): void {
    this.countLostInMemory(batches, flows);
    this.saveState();
  }

  /** The same, when the state file cannot be written either: reported, saved with the next write. */
  countLostInMemory(batches: number, flows: number): void {
    this.state.lostBatches += batches;
    this.state.lostFlows += flows;
  }

  /** The server committed `seq`: its segment goes. */
  remove(seq: number): void {
    const s = this.segments.get(seq);
    if (!s) return;
    this.segments.delete(seq);
    this.total -= s.bytes;
    try {
      unlinkSync(join(this.dir, segName(seq)));
    } catch {
      // Already gone: nothing left to send.
    }
  }
}
