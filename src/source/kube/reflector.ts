// One kind's list-then-watch loop, as client-go's reflector does it, with one restart path:
//
//   loop: [re-list if needed] → watch from the last resourceVersion → the watch ends → decide:
//     ended cleanly (timeoutSeconds)      → watch again from the last resourceVersion
//     410 Gone (status or ERROR event)    → re-list, then watch
//     silent for longer than the watchdog → re-list, then watch
//     connection error / HTTP error       → back off (exponential, jittered), then retry
//
// Nothing else starts a request, so a dropped API server cannot cause a reconnect storm: each
// failure waits longer, and the jitter spreads the kinds (and the nodes) apart.
//
// Exactly once: every object is remembered with the resourceVersion it was last seen at. An
// event whose object is already known at that resourceVersion (replayed after a reconnect) is
// skipped; a re-list is diffed against what is known and becomes added/updated/deleted events,
// so a re-list converges to the same state the missed events would have produced.

import type { ClusterEvent, KindObjects, SourceKind } from '../types.js';
import { collectionPathOf, type KubeKind } from './kinds.js';
import { normalizeKubeObject, originOf, type NormalizeOptions } from './normalize.js';
import { KubeApiError, type KubeTransport, type WatchHandle, type WatchLine } from './transport.js';

export interface ReflectorTiming {
  /** A watch that delivers nothing (no event, no bookmark) for this long is stalled (default 3 min). */
  readonly watchdogMs: number;
  /** First retry delay after a failure; doubles per failure (default 500 ms). */
  readonly backoffBaseMs: number;
  /** Longest retry delay (default 30 s). */
  readonly backoffMaxMs: number;
  /** Server-side watch timeout range; each watch picks one at random (default 5–10 min, as client-go). */
  readonly watchTimeoutSeconds: readonly [number, number];
  /** List page size (default 500, as kubectl). */
  readonly pageSize: number;
  /** How often a kind the server does not serve (a missing CRD) is looked for again (default 60 s). */
  readonly absentRetryMs: number;
}

export const DEFAULT_TIMING: ReflectorTiming = {
  watchdogMs: 180_000,
  backoffBaseMs: 500,
  backoffMaxMs: 30_000,
  watchTimeoutSeconds: [300, 600],
  pageSize: 500,
  absentRetryMs: 60_000,
};

/** Counters for status and metrics, and for tests to see what the loop did. */
export interface ReflectorStats {
  readonly kind: SourceKind;
  synced: boolean;
  resourceVersion: string | undefined;
  lists: number;
  watches: number;
  /** Re-lists by cause. */
  relistsGone: number;
  relistsWatchdog: number;
  failures: number;
  bookmarks: number;
  eventsApplied: number;
  duplicatesSkipped: number;
  /** The kind is not served (CRD not installed): treated as having no objects. */
  absent: boolean;
  lastError?: string;
}

/**
 * An API object weir could not read as written: the kind and name travel with the error, so a
 * consumer can tell the object's owners (the agent writes a Kubernetes Event on it).
 * `salvaged`: kept as the loader salvaged it (what is certain enforced, the doubt denied);
 * otherwise treated as absent.
 */
export class KubeObjectProblem extends Error {
  constructor(
    readonly kind: SourceKind,
    readonly namespace: string | undefined,
    readonly objectName: string,
    readonly problems: readonly string[],
    readonly salvaged: boolean,
  ) {
    super(problems.join('\n'));
    this.name = 'KubeObjectProblem';
  }
}

export interface ReflectorSink {
  events(kind: SourceKind, events: ClusterEvent[]): void;
  synced(kind: SourceKind): void;
  error(error: Error): void;
}

interface Entry<K extends SourceKind> {
  /** resourceVersion of the API object as last seen. */
  readonly rv: string;
  /** The model object; undefined when the API object is invalid or not part of the model. */
  readonly object: KindObjects[K] | undefined;
}

type WatchOutcome =
  | { readonly kind: 'closed'; readonly lines: number; readonly ms: number }
  | { readonly kind: 'gone'; readonly lines: number }
  | { readonly kind: 'stalled' }
  | { readonly kind: 'stopped' };

function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a).filter((k) => (a as Record<string, unknown>)[k] !== undefined);
  const kb = Object.keys(b).filter((k) => (b as Record<string, unknown>)[k] !== undefined);
  return ka.length === kb.length && ka.every((k) => jsonEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}

interface RawObject {
  metadata?: { name?: string; namespace?: string; resourceVersion?: string };
  [key: string]: unknown;
}

function keyOf(o: RawObject): string | undefined {
  const m = o.metadata;
  if (!m?.name) return undefined;
  return m.namespace ? `${m.namespace}/${m.name}` : m.name;
}

export class Reflector<K extends SourceKind> {
  readonly stats: ReflectorStats;
  private readonly known = new Map<string, Entry<K>>();
  private rv: string | undefined;
  private needList = true;
  private stopped = false;
  private current: WatchHandle | undefined;
  /** Settles the watch in flight as stopped (an aborted request reports nothing itself). */
  private cancelWatch: (() => void) | undefined;
  private wake: (() => void) | undefined;
  private running: Promise<void> | undefined;
  private absentReported = false;

  constructor(
    private readonly kind: KubeKind,
    private readonly transport: KubeTransport,
    private readonly sink: ReflectorSink,
    private readonly timing: ReflectorTiming = DEFAULT_TIMING,
    private readonly normalize: NormalizeOptions = {},
  ) {
    this.stats = {
      kind: kind.kind,
      synced: false,
      resourceVersion: undefined,
      lists: 0,
      watches: 0,
      relistsGone: 0,
      relistsWatchdog: 0,
      failures: 0,
      bookmarks: 0,
      eventsApplied: 0,
      duplicatesSkipped: 0,
      absent: false,
    };
  }

  /** The model objects known now (valid ones only). */
  objects(): KindObjects[K][] {
    const out: KindObjects[K][] = [];
    for (const e of this.known.values()) if (e.object !== undefined) out.push(e.object);
    return out;
  }

  start(): void {
    this.running ??= this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.current?.abort();
    this.cancelWatch?.();
    this.wake?.();
    await this.running;
  }

  private sleep(ms: number): Promise<void> {
    if (ms <= 0 || this.stopped) return Promise.resolve();
    return new Promise((ok) => {
      const t = setTimeout(() => {
        this.wake = undefined;
        ok();
      }, ms);
      this.wake = () => {
        clearTimeout(t);
        this.wake = undefined;
        ok();
      };
    });
  }

  private backoff(failures: number): number {
    const d = Math.min(this.timing.backoffMaxMs, this.timing.backoffBaseMs * 2 ** Math.max(0, failures - 1));
    // "Equal jitter": between half and all of the exponential delay.
    return d / 2 + Math.random() * (d / 2);
  }

  /** The one restart path. */
  private async run(): Promise<void> {
    let failures = 0;
    while (!this.stopped) {
      let delay = 0;
      try {
        if (this.needList) {
          const served = await this.list();
          if (!served) {
            await this.sleep(this.timing.absentRetryMs * (0.75 + Math.random() * 0.5));
            continue;
          }
        }
        const outcome = await this.watchOnce();
        switch (outcome.kind) {
          case 'stopped':
            return;
          case 'closed':
            // A server that ends watches at once (no line, under a second) must not be hammered.
            if (outcome.lines === 0 && outcome.ms < 1000) delay = this.backoff(++failures);
            else failures = 0;
            break;
          case 'gone':
            this.stats.relistsGone++;
            this.needList = true;
            // 410 straight after a fresh list (nothing but the ERROR line) must not loop at full
            // speed: the first one re-lists at once, repeats back off.
            if (outcome.lines <= 1) {
              delay = failures > 0 ? this.backoff(failures) : 0;
              failures++;
            } else failures = 0;
            break;
          case 'stalled':
            this.stats.relistsWatchdog++;
            this.needList = true;
            this.sink.error(new Error(`${this.kind.kind}: the watch sent nothing for ${this.timing.watchdogMs} ms; re-listing`));
            break;
        }
      } catch (e) {
        if (this.stopped) return;
        const err = e as Error;
        this.stats.failures++;
        this.stats.lastError = err.message;
        if (err instanceof KubeApiError && err.status === 410) {
          // Gone at the start of a watch (or a list page): re-list without waiting the first time.
          this.stats.relistsGone++;
          this.needList = true;
          delay = failures > 0 ? this.backoff(failures) : 0;
          failures++;
        } else {
          delay = this.backoff(++failures);
          this.sink.error(new Error(`${this.kind.kind}: ${err.message}; retrying in ${Math.round(delay)} ms`));
        }
      }
      await this.sleep(delay);
    }
  }

  /** Lists every page; returns false when the kind is not served (CRD absent). */
  private async list(): Promise<boolean> {
    const path = collectionPathOf(this.kind);
    const items: RawObject[] = [];
    let cont: string | undefined;
    let rv = '';
    this.stats.lists++;
    try {
      do {
        // No resourceVersion: a consistent read of the newest state (a re-list after 410 must not
        // be served from a stale cache).
        const page = (await this.transport.getJSON(path, { limit: String(this.timing.pageSize), continue: cont })) as {
          metadata?: { resourceVersion?: string; continue?: string };
          items?: RawObject[];
        };
        for (const item of page.items ?? []) items.push(item);
        rv = page.metadata?.resourceVersion ?? rv;
        cont = page.metadata?.continue || undefined;
      } while (cont);
    } catch (e) {
      if (this.kind.optional && e instanceof KubeApiError && e.status === 404) {
        this.becomeAbsent();
        return false;
      }
      throw e;
    }
    this.stats.absent = false;
    this.absentReported = false;
    this.replace(items, rv);
    return true;
  }

  private becomeAbsent(): void {
    this.stats.absent = true;
    if (!this.absentReported) {
      this.absentReported = true;
      this.sink.error(
        new Error(`${this.kind.kind}: the API server does not serve ${this.kind.group}/${this.kind.version} ${this.kind.plural} (CRD not installed?); treated as none, looking again every ${Math.round(this.timing.absentRetryMs / 1000)} s`),
      );
    }
    // The CRD went away (or never was): no such objects exist. Look for it again by listing
    // (there is nothing to watch until it is served).
    this.replace([], undefined);
    this.needList = true;
  }

  /** A full list: diff against what is known, as one batch. */
  private replace(items: readonly RawObject[], rv: string | undefined): void {
    const events: ClusterEvent[] = [];
    const seen = new Set<string>();
    for (const item of items) {
      const key = keyOf(item);
      if (!key) continue;
      seen.add(key);
      this.upsert(key, item, events);
    }
    for (const [key, entry] of [...this.known]) {
      if (seen.has(key)) continue;
      this.known.delete(key);
      if (entry.object !== undefined) events.push(this.event('deleted', entry.object));
    }
    this.rv = rv;
    this.stats.resourceVersion = rv;
    this.needList = false;
    this.emit(events);
    if (!this.stats.synced) {
      this.stats.synced = true;
      this.sink.synced(this.kind.kind);
    }
  }

  private event(type: 'added' | 'deleted', object: KindObjects[K]): ClusterEvent {
    return { type, kind: this.kind.kind, object } as ClusterEvent;
  }

  private emit(events: ClusterEvent[]): void {
    if (events.length === 0) return;
    this.stats.eventsApplied += events.length;
    this.sink.events(this.kind.kind, events);
  }

  /** ADDED/MODIFIED (or a listed item): turns it into at most one event. */
  private upsert(key: string, raw: RawObject, out: ClusterEvent[]): void {
    const rv = raw.metadata?.resourceVersion ?? '';
    const prev = this.known.get(key);
    if (prev && prev.rv === rv && rv !== '') {
      this.stats.duplicatesSkipped++;
      return;
    }
    const n = normalizeKubeObject(this.kind.kind, raw as Record<string, unknown>, this.normalize);
    let object: KindObjects[K] | undefined;
    if (n.ok) {
      object = n.object as KindObjects[K] | undefined;
      // Kept as the loader salvaged it (what is certain, the doubtful part marked), and reported.
      if (n.problems) this.sink.error(this.problem(raw, n.problems, true));
    } else {
      // An object the loader cannot read at all (policies it salvages instead) is treated as
      // absent, as in files, and the problem is reported with the object and field named.
      this.sink.error(this.problem(raw, n.problems, false));
      object = undefined;
    }
    this.known.set(key, { rv, object });
    const old = prev?.object;
    if (old === undefined && object !== undefined) out.push(this.event('added', object));
    else if (old !== undefined && object === undefined) out.push(this.event('deleted', old));
    else if (old !== undefined && object !== undefined && !jsonEqual(old, object)) {
      out.push({ type: 'updated', kind: this.kind.kind, object, old } as ClusterEvent);
    }
  }

  private problem(raw: RawObject, problems: readonly string[], salvaged: boolean): KubeObjectProblem {
    return new KubeObjectProblem(this.kind.kind, raw.metadata?.namespace || undefined, raw.metadata?.name ?? '', problems, salvaged);
  }

  private remove(key: string, out: ClusterEvent[]): void {
    const prev = this.known.get(key);
    if (!prev) {
      this.stats.duplicatesSkipped++;
      return;
    }
    this.known.delete(key);
    if (prev.object !== undefined) out.push(this.event('deleted', prev.object));
  }

  /** One watch request, until it ends, is found stalled, or the reflector stops. */
  private watchOnce(): Promise<WatchOutcome> {
    const [lo, hi] = this.timing.watchTimeoutSeconds;
    const timeoutSeconds = Math.round(lo + Math.random() * (hi - lo));
    const started = Date.now();
    let lines = 0;
    this.stats.watches++;
    return new Promise<WatchOutcome>((resolve, reject) => {
      let settled = false;
      let watchdog: NodeJS.Timeout | undefined;
      const finish = (f: () => void) => {
        if (settled) return;
        settled = true;
        if (watchdog) clearTimeout(watchdog);
        this.current = undefined;
        this.cancelWatch = undefined;
        f();
      };
      const arm = () => {
        if (watchdog) clearTimeout(watchdog);
        watchdog = setTimeout(() => {
          this.current?.abort();
          finish(() => resolve({ kind: 'stalled' }));
        }, this.timing.watchdogMs);
      };
      const onLine = (line: WatchLine) => {
        if (settled) return;
        lines++;
        arm();
        const obj = line.object as RawObject;
        if (line.type === 'BOOKMARK') {
          // A bookmark moves the resourceVersion on without an object change, so the next watch
          // resumes from here rather than from an old version the server may have compacted.
          const rv = obj.metadata?.resourceVersion;
          if (rv) this.rv = this.stats.resourceVersion = rv;
          this.stats.bookmarks++;
          return;
        }
        if (line.type === 'ERROR') {
          const status = line.object as { code?: number; message?: string; reason?: string };
          this.current?.abort();
          if (status.code === 410) finish(() => resolve({ kind: 'gone', lines }));
          else finish(() => reject(new KubeApiError(status.code ?? 500, status.reason ?? 'Error', `watch: ${status.message ?? 'error event'}`)));
          return;
        }
        const key = keyOf(obj);
        if (!key) {
          this.sink.error(new Error(`${originOf(this.kind.kind, obj as Record<string, unknown>)}: watch event without metadata.name; ignored`));
          return;
        }
        const events: ClusterEvent[] = [];
        if (line.type === 'DELETED') this.remove(key, events);
        else this.upsert(key, obj, events);
        const rv = obj.metadata?.resourceVersion;
        if (rv) this.rv = this.stats.resourceVersion = rv;
        this.emit(events);
      };
      this.cancelWatch = () => finish(() => resolve({ kind: 'stopped' }));
      arm();
      this.transport
        .watch(
          collectionPathOf(this.kind),
          { resourceVersion: this.rv, allowWatchBookmarks: 'true', timeoutSeconds: String(timeoutSeconds) },
          {
            onLine,
            onEnd: (err) => finish(() => (err ? reject(err) : resolve({ kind: 'closed', lines, ms: Date.now() - started }))),
          },
        )
        .then((handle) => {
          if (settled || this.stopped) {
            handle.abort();
            if (this.stopped) finish(() => resolve({ kind: 'stopped' }));
            return;
          }
          this.current = handle;
        })
        .catch((e: unknown) => finish(() => reject(e as Error)));
      if (this.stopped) finish(() => resolve({ kind: 'stopped' }));
    });
  }
}
