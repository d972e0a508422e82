// Live state fed by /api/stream. SSE batches are queued as they arrive and applied once per
// animation frame: counters are updated in place on the edge objects, and React is told
// "something changed" once per frame — 2,000 flows/s cost a few map updates per frame.
import type { AlertRecord, Edge, FlowRecord, GroupBy } from './api';

export interface LiveEdge extends Edge {
  key: string;
  /** Bumped on every change, so memoized edge components re-render only when their edge moved. */
  rev: number;
}

interface BatchEvent {
  time: number;
  flows: FlowRecord[];
  flowsOmitted: number;
  edges: Edge[];
  alerts: AlertRecord[];
}

const RECENT = 300;

export class LiveStore {
  edges = new Map<string, LiveEdge>();
  groups = new Set<string>();
  /** Changes when a group appears (the layout key). */
  groupsVersion = 0;
  recent: FlowRecord[] = [];
  alerts: AlertRecord[] = [];
  connected = false;
  flowsPerSecond = 0;
  version = 0;
  /** Times the server said this page fell behind (each followed by a fresh snapshot). */
  gaps = 0;
  /** Groups of the pods seen in flows (`ns/pod` → workload, identity): places Service endpoints the API could not. */
  podGroups = new Map<string, { workload?: string; identity?: string }>();
  private pending: BatchEvent[] = [];
  private es: EventSource | undefined;
  private listeners = new Set<() => void>();
  private frame = 0;
  private rateWindow: { t: number; n: number }[] = [];

  connect(group: GroupBy, window: string): void {
    this.es?.close();
    this.edges = new Map();
    this.groups = new Set();
    this.groupsVersion++;
    this.pending = [];
    const es = new EventSource(`api/stream?group=${group}&window=${encodeURIComponent(window)}`);
    this.es = es;
    es.addEventListener('open', () => {
      this.connected = true;
      this.notify();
    });
    es.addEventListener('error', () => {
      this.connected = false;
      this.notify();
    });
    es.addEventListener('snapshot', (ev) => {
      const snap = JSON.parse((ev as MessageEvent<string>).data) as { edges: Edge[] };
      this.edges = new Map();
      this.groups = new Set();
      this.addEdges(snap.edges);
      this.groupsVersion++;
      this.notify();
    });
    // The server dropped batches while this page was behind: the edge totals are no longer
    // exact, so start over from a fresh snapshot.
    es.addEventListener('gap', () => {
      this.gaps++;
      this.connect(group, window);
    });
    es.addEventListener('batch', (ev) => {
      this.pending.push(JSON.parse((ev as MessageEvent<string>).data) as BatchEvent);
      this.schedule();
    });
  }

  close(): void {
    this.es?.close();
    this.es = undefined;
  }

  private schedule(): void {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.apply();
    });
  }

  private addEdges(edges: readonly Edge[]): boolean {
    let newGroup = false;
    for (const d of edges) {
      const key = `${d.src}\u0000${d.dst}`;
      const e = this.edges.get(key);
      if (e) {
        e.flows += d.flows;
        e.bytes += d.bytes;
        e.packets += d.packets;
        e.forwarded += d.forwarded;
        e.dropped += d.dropped;
        e.audit += d.audit;
        e.lastSeen = Math.max(e.lastSeen, d.lastSeen);
        for (const [k, v] of Object.entries(d.via ?? {})) {
          e.via ??= {};
          const x = e.via[k];
          if (!x) e.via[k] = { ...v };
          else {
            x.flows += v.flows;
            x.bytes += v.bytes;
            x.forwarded += v.forwarded;
            x.dropped += v.dropped;
            x.audit += v.audit;
          }
        }
        e.rev++;
      } else {
        this.edges.set(key, { ...d, ...(d.via ? { via: structuredClone(d.via) } : {}), key, rev: 0 });
      }
      for (const g of [d.src, d.dst]) {
        if (!this.groups.has(g)) {
          this.groups.add(g);
          newGroup = true;
        }
      }
    }
    return newGroup;
  }

  private apply(): void {
    const batches = this.pending;
    this.pending = [];
    let n = 0;
    let newGroup = false;
    for (const b of batches) {
      if (this.addEdges(b.edges)) newGroup = true;
      n += b.flows.length + b.flowsOmitted;
      for (const f of b.flows) {
        for (const ep of [f.src, f.dst]) {
          if (!ep.namespace || !ep.pod) continue;
          if (this.podGroups.size >= 50_000) this.podGroups.clear();
          this.podGroups.set(`${ep.namespace}/${ep.pod}`, { ...(ep.workload !== undefined ? { workload: ep.workload } : {}), ...(ep.identity !== undefined ? { identity: ep.identity } : {}) });
        }
      }
      if (b.flows.length) {
        const tail = b.flows.length > RECENT ? b.flows.slice(-RECENT) : b.flows;
        this.recent = [...tail.slice().reverse(), ...this.recent].slice(0, RECENT);
      }
      if (b.alerts.length) this.alerts = [...b.alerts, ...this.alerts].slice(0, 200);
    }
    if (newGroup) this.groupsVersion++;
    const now = performance.now();
    this.rateWindow.push({ t: now, n });
    while (this.rateWindow.length && (this.rateWindow[0]?.t ?? now) < now - 2000) this.rateWindow.shift();
    this.flowsPerSecond = this.rateWindow.reduce((s, x) => s + x.n, 0) / 2;
    this.notify();
  }

  private notify(): void {
    this.version++;
    for (const l of this.listeners) l();
  }

  subscribe = (l: () => void): (() => void) => {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  };

  getVersion = (): number => this.version;
}
