// The kernel-facing adapter of one node: follows conntrack events and polls the `denied` and
// `hits` sets of the node's `inet weir` table, inside the node's network namespace. Pure
// parsing lives in conntrack.ts / nftjson.ts; this file only spawns, reads and times.
import { spawn, execFile, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { EventEmitter, once } from 'node:events';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { ConntrackFlowParser } from './conntrack.js';
import type { RecordAttributor } from './attribution.js';
import type { Enricher } from './enrich.js';
import { CounterTracker, DeniedSetTracker, parseDeniedSet, parseHitCounters, type CounterDelta } from './nftjson.js';
import { loadReasons, type ReasonsTable } from './reasons.js';
import type { FlowRecord } from './record.js';
import { DENIED_SET, FAMILY, HITS_SET, SOURCE_DENIED_SET, SOURCE_HITS_SET, SOURCE_TABLE, TABLE } from '../render/names.js';

const execFileP = promisify(execFile);

export interface NodeFlowSourceOptions {
  node: string;
  /** Network namespace of the node; absent: the current one. */
  netns?: string;
  /** The agent's reasons table (re-read on every poll, so new policies are attributed). */
  reasonsFile?: string;
  /** The reasons table in memory (the agent's last applied ruleset); wins over `reasonsFile`. */
  reasons?: () => ReasonsTable | undefined;
  /** nft family + table holding the denied sets and the hit counters. */
  table?: string;
  /** Dynamic sets of denied flows (default `denied`). */
  sets?: readonly string[];
  /** Dynamic set of per-reason hit counters, keyed by mark (default `hits`). */
  hitsSet?: string;
  pollMs?: number;
  enricher?: Enricher;
  /** Flush conntrack records at least this often (they are batched between flushes). */
  batchMs?: number;
  /**
   * Asked for every record before it is handed on (current one per call, so a rebuilt engine
   * takes effect at once): attributes accepted connections, drops what another node reports.
   */
  attributor?: () => RecordAttributor | undefined;
  /**
   * A denied-set element carries no source port, so several dropped first packets between the
   * same pair, port and reason in one poll arrive as one packet delta. Each dropped first
   * packet is one denied connection attempt (as the `hits` counters count them), so the
   * delta is split into one record per packet, at most this many per element and poll (the
   * rest rides on the last record). Default 1000.
   */
  maxDeniedRecordsPerElement?: number;
}

/** One record per dropped first packet (see maxDeniedRecordsPerElement). */
export function splitDenied(r: FlowRecord, max: number): FlowRecord[] {
  const n = Math.min(r.packets, Math.max(1, max));
  if (n <= 1) return [r];
  const out: FlowRecord[] = [];
  const per = Math.floor(r.bytes / r.packets);
  for (let i = 0; i < n; i++) {
    const last = i === n - 1;
    const packets = last ? r.packets - (n - 1) : 1;
    out.push({ ...r, packets, bytes: last ? r.bytes - per * (n - 1) : per });
  }
  return out;
}

export interface NodeFlowSourceEvents {
  records: [FlowRecord[]];
  counters: [CounterDelta[]];
  warning: [Error];
  exit: [];
}

export class NodeFlowSource extends EventEmitter<NodeFlowSourceEvents> implements AsyncIterable<FlowRecord[]> {
  private child: ChildProcessWithoutNullStreams | undefined;
  private pollTimer: NodeJS.Timeout | undefined;
  private batchTimer: NodeJS.Timeout | undefined;
  private reasons: ReasonsTable = new Map();
  private readonly parser: ConntrackFlowParser;
  private readonly denied: DeniedSetTracker;
  private readonly counters = new CounterTracker();
  private pending: FlowRecord[] = [];
  private lastPoll = 0;
  private polling = false;
  /** The source chains' table was not there: looked for again after this time (ms). */
  private sourceTableAgain = 0;
  private stopped = false;
  readonly stats = { conntrackLines: 0, polls: 0, pollErrors: 0 };

  constructor(private readonly opts: NodeFlowSourceOptions) {
    super();
    this.parser = new ConntrackFlowParser({ node: opts.node, reasons: () => this.reasons });
    this.denied = new DeniedSetTracker(opts.node, () => this.reasons);
  }

  /**
   * Byte and packet counts of allowed flows come from conntrack's accounting extension, which
   * is off by default and per network namespace (`net.netfilter.nf_conntrack_acct`): without
   * it, DESTROY events carry no `packets=`/`bytes=`. Turned on for the node before following.
   */
  private async enableAccounting(): Promise<void> {
    const [cmd, args] = this.argv('sysctl', ['-qw', 'net.netfilter.nf_conntrack_acct=1']);
    try {
      await execFileP(cmd, args);
    } catch (e) {
      this.emit('warning', new Error(`conntrack accounting could not be enabled on ${this.opts.node} (flows will have no byte counts): ${(e as Error).message.split('\n')[0]}`));
    }
  }

  private argv(cmd: string, args: readonly string[]): [string, string[]] {
    return this.opts.netns ? ['ip', ['netns', 'exec', this.opts.netns, cmd, ...args]] : [cmd, [...args]];
  }

  get node(): string {
    return this.opts.node;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  async start(): Promise<this> {
    await this.reloadReasons();
    await this.enableAccounting();
    const [cmd, args] = this.argv('conntrack', ['-E', '-e', 'NEW,DESTROY', '-o', 'timestamp,extended,id']);
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    this.child = child;
    child.on('error', (e) => this.emit('warning', e));
    // Read stderr by line: a pipe may split one message across chunks (seen in CI: the exit
    // summary arrived as "conntrack v1.4.7 (conntrack-tools):" and then the rest).
    createInterface({ input: child.stderr }).on('line', (line) => {
      const t = line.trim();
      // conntrack prints its summary on stderr when it exits.
      if (t && !/flow events have been shown/.test(t)) this.emit('warning', new Error(`conntrack (${this.opts.node}): ${t}`));
    });
    child.on('exit', () => {
      if (!this.stopped) this.emit('warning', new Error(`conntrack (${this.opts.node}) exited`));
    });
    const rl = createInterface({ input: child.stdout });
    rl.on('line', (line) => {
      this.stats.conntrackLines++;
      let r = this.parser.push(line);
      const attributor = this.opts.attributor?.();
      if (r && attributor) r = attributor.conntrack(r, this.opts.node);
      if (r) this.pending.push(this.opts.enricher ? this.opts.enricher.enrich(r) : r);
    });
    this.batchTimer = setInterval(() => this.flushPending(), this.opts.batchMs ?? 100);
    this.pollTimer = setInterval(() => void this.poll(), this.opts.pollMs ?? 500);
    await this.poll(); // baseline of the counters
    return this;
  }

  private flushPending(): void {
    if (this.pending.length === 0) return;
    const recs = this.pending;
    this.pending = [];
    this.emit('records', recs);
  }

  private async reloadReasons(): Promise<void> {
    if (this.opts.reasons) {
      this.reasons = this.opts.reasons() ?? this.reasons;
      return;
    }
    if (!this.opts.reasonsFile) return;
    try {
      this.reasons = await loadReasons(this.opts.reasonsFile);
    } catch (e) {
      this.emit('warning', e as Error);
    }
  }

  private async nftJson(args: readonly string[]): Promise<string> {
    const [cmd, argv] = this.argv('nft', ['-j', ...args]);
    const { stdout } = await execFileP(cmd, argv, { timeout: 5000, maxBuffer: 256 * 1024 * 1024 });
    return stdout;
  }

  /**
   * The source chains' table, listed (one `nft` for both its sets), on a node with the default
   * table; undefined when it is not there (looked for again every 10 s: a node without source
   * chains pays one `nft` per 10 s for it) or could not be read (a poll error).
   */
  private async sourceTable(now: number): Promise<string | undefined> {
    if (this.opts.table !== undefined || now < this.sourceTableAgain) return undefined;
    try {
      return await this.nftJson(['list', 'table', FAMILY, SOURCE_TABLE]);
    } catch (e) {
      const stderr = (e as { stderr?: unknown }).stderr;
      if (typeof stderr === 'string' && /No such file or directory/.test(stderr)) this.sourceTableAgain = now + 10_000;
      else {
        this.stats.pollErrors++;
        this.emit('warning', e as Error);
      }
      return undefined;
    }
  }

  /** One poll of the denied sets and counters. */
  async poll(): Promise<void> {
    if (this.polling || this.stopped) return;
    this.polling = true;
    try {
      await this.reloadReasons();
      const [family = FAMILY, table = TABLE] = (this.opts.table ?? `${FAMILY} ${TABLE}`).split(/\s+/);
      const now = Date.now();
      const interval = this.lastPoll ? now - this.lastPoll : 0;
      this.lastPoll = now;
      const elements = [];
      for (const set of this.opts.sets ?? [DENIED_SET]) {
        try {
          elements.push(...parseDeniedSet(await this.nftJson(['list', 'set', family, table, set])));
        } catch (e) {
          this.stats.pollErrors++;
          this.emit('warning', e as Error);
        }
      }
      // What the source chains dropped (names.ts, SOURCE_TABLE), when the node has them.
      const source = await this.sourceTable(now);
      const sourceDenied = source === undefined ? [] : parseDeniedSet(source).filter((e) => e.set === SOURCE_DENIED_SET);
      let recs = this.denied.update([...elements, ...sourceDenied], now, interval);
      const max = this.opts.maxDeniedRecordsPerElement ?? 1000;
      recs = recs.flatMap((r) => splitDenied(r, max));
      const attributor = this.opts.attributor?.();
      if (attributor) recs = recs.map((r) => attributor.denied(r, this.opts.node)).filter((r): r is FlowRecord => r !== undefined);
      const en = this.opts.enricher;
      if (en) recs = recs.map((r) => en.enrich(r));
      if (recs.length) this.emit('records', recs);
      try {
        const hits = parseHitCounters(await this.nftJson(['list', 'set', family, table, this.opts.hitsSet ?? HITS_SET]));
        // One count per reason: the source chains' drops add to the spoofing reason's.
        const sum = new Map<number, { reasonId: number; packets: number; bytes: number }>();
        for (const h of [...hits, ...(source === undefined ? [] : parseHitCounters(source, SOURCE_HITS_SET))]) {
          const c = sum.get(h.reasonId);
          if (c) {
            c.packets += h.packets;
            c.bytes += h.bytes;
          } else sum.set(h.reasonId, { ...h });
        }
        const deltas = this.counters.update([...sum.values()]);
        if (deltas.length) this.emit('counters', deltas);
      } catch (e) {
        this.stats.pollErrors++;
        this.emit('warning', e as Error);
      }
      this.stats.polls++;
    } finally {
      this.polling = false;
    }
  }

  /** Stops polling and ends our own conntrack process (by its pid). */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.pollTimer);
    clearInterval(this.batchTimer);
    const child = this.child;
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 2000);
      await exited;
      clearTimeout(t);
    }
    this.flushPending();
    this.emit('exit');
  }

  async *[Symbol.asyncIterator](): AsyncIterator<FlowRecord[]> {
    const queue: FlowRecord[][] = [];
    let wake: (() => void) | undefined;
    const onRecords = (r: FlowRecord[]): void => {
      queue.push(r);
      wake?.();
    };
    const onExit = (): void => wake?.();
    this.on('records', onRecords);
    this.on('exit', onExit);
    try {
      for (;;) {
        const next = queue.shift();
        if (next) {
          yield next;
          continue;
        }
        if (this.stopped) return;
        await new Promise<void>((r) => (wake = r));
        wake = undefined;
      }
    } finally {
      this.off('records', onRecords);
      this.off('exit', onExit);
    }
  }
}
