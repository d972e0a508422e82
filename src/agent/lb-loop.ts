// The agent's balancing loop: measures every Service endpoint from the node and lands what it
// decides in the kernel as element updates of the weight maps. Every tick (500 ms):
//
//   1. active probes: one TCP connect (or HTTP GET) to every TCP endpoint, from the node's
//      namespace, by a long-lived child (lb-probe.mjs). An endpoint is unhealthy after `fall`
//      (2) failed probes in a row and healthy again after `rise` (2) good ones — so a killed
//      endpoint leaves the rotation within ~1 s (two probes 500 ms apart, a refusal is
//      instant; a silent one needs the 400 ms timeout too), for every Service.
//   2. conntrack: `conntrack -L --dst-nat` in the node's namespace; every entry is counted for
//      the endpoint of its *reply* tuple (the DNAT target: the Service's choice). Open entries
//      are requests in flight (one request per connection; for long-lived connections, open
//      connections), entries new since the last tick feed the share of recent connections,
//      and a connection that ended in CLOSE (a reset) rather than TIME_WAIT counts as an error.
//   3. drains: `<dir>/lb-drain.json`, written by `weir lb drain/undrain` (or, in cluster mode,
//      the server's drains: src/agent/lb-remote.ts).
//   4. adaptive Services (`weir.dev/balancing: adaptive`): per Service port, one step of the
//      controller (src/lb/adaptive.ts) with, per endpoint, the probe's latency, errors (failed
//      probes and reset connections, so a backend that fails fast looks expensive, not fast)
//      and requests in flight.
//   5. the agent renders weights with health, drains and factors; when only weights changed
//      that is an element patch of `lb_*` maps (serviceWeightPatch): established connections
//      stay where conntrack put them.
//   6. `<dir>/lb-<node>.json` (src/agent/lb-status.ts) for `weir lb status`, the API and the
//      dashboard — or, in cluster mode, the same status pushed to the server, whose answer
//      carries the drains and the other nodes' probes (src/agent/lb-exchange.ts).
//
// Probes come from the node's own address, as kubelet's do. A NetworkPolicy that isolates a
// pod's ingress and does not admit the probing node makes that endpoint look unhealthy from
// other nodes (when every endpoint looks unhealthy, all stay in: see src/lb/weights.ts).

import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { adaptive } from '../lb/index.js';
import type { Endpoint } from '../lb/endpoints.js';
import { parseBalancing } from '../lb/config.js';
import { decide, type ServicesInput } from '../render/services.js';
import { run } from '../exec/run.js';
import { FileExchange, type LbExchange, type PeerProbes } from './lb-exchange.js';
import type { EndpointStatus, LbNodeStatus, ServicePortStatus } from './lb-status.js';

/** What the loop feeds the renderer (ServicesInput's run-time inputs). */
export interface ServiceRuntime {
  readonly health: ReadonlyMap<string, boolean>;
  readonly drained: ReadonlySet<string>;
  /** Adaptive factors per Service port (`ns/name/portIndex`), by endpoint key. */
  readonly adaptive: ReadonlyMap<string, ReadonlyMap<string, number>>;
}

/** The agent as the loop sees it (NodeAgent implements it). */
export interface LbTarget {
  /** The node's Services without run-time inputs; undefined when the cluster has none. */
  servicesInput(): ServicesInput | undefined;
  /**
   * Renders and applies with these inputs (weights only: an element patch); `only` names the
   * Services (`ns/name`) whose inputs changed, when that is all that changed.
   */
  setServiceRuntime(runtime: ServiceRuntime, only?: ReadonlySet<string>): Promise<unknown>;
}

export interface LbLoopOptions {
  readonly node: string;
  /** The node's network namespace (lab); undefined: the current one. */
  readonly netns?: string;
  /** Where lb-drain.json is read and lb-<node>.json written (with the default exchange). */
  readonly dir: string;
  /** How status, drains and the other nodes' probes are shared; default: files in `dir`. */
  readonly exchange?: LbExchange;
  readonly target: LbTarget;
  readonly intervalMs?: number;
  readonly probeTimeoutMs?: number;
  /** Failed probes in a row before an endpoint leaves the rotation. */
  readonly fall?: number;
  /** Good probes in a row before it returns. */
  readonly rise?: number;
  /** Window of `recentShare`, ms. */
  readonly windowMs?: number;
  /** Points of weight history kept per Service port. */
  readonly historyPoints?: number;
  /** Controller settings (src/lb/adaptive.ts). */
  readonly adaptiveOptions?: Partial<adaptive.AdaptiveOptions>;
  readonly log?: (line: string) => void;
}

// ------------------------------------------------------------------ conntrack

const OPEN_STATES = new Set(['SYN_SENT', 'SYN_RECV', 'ESTABLISHED', 'SYN_SENT2']);

export interface BackendEntry {
  /** `proto src:sport>dst:dport` of the original direction: one connection. */
  readonly id: string;
  /** The endpoint (`ip:port` of the reply tuple's source). */
  readonly endpoint: string;
  /** The Service address the client used (`ip:port` of the original destination). */
  readonly frontend: string;
  readonly protocol: string;
  /** TCP state (empty for other protocols). */
  readonly state: string;
}

/**
 * `conntrack -L` lines of translated connections: the first src/dst/sport/dport are the
 * original direction, the second the reply one; a connection was DNATed when the reply comes
 * from somewhere else than the original destination, and that somewhere is the endpoint.
 */
export function parseBackends(text: string): BackendEntry[] {
  const out: BackendEntry[] = [];
  for (const line of text.split('\n')) {
    const head = /^\s*(tcp|udp|sctp)\s+\d+\s+\d+\s+(?:([A-Z_0-9]+)\s+)?/.exec(line);
    if (!head) continue;
    const src = [...line.matchAll(/\bsrc=(\S+)/g)].map((m) => m[1]);
    const dst = [...line.matchAll(/\bdst=(\S+)/g)].map((m) => m[1]);
    const sport = [...line.matchAll(/\bsport=(\d+)/g)].map((m) => m[1]);
    const dport = [...line.matchAll(/\bdport=(\d+)/g)].map((m) => m[1]);
    if (src.length < 2 || dst.length < 1 || sport.length < 2 || dport.length < 1) continue;
    const frontend = `${dst[0]}:${dport[0]}`;
    const endpoint = `${src[1]}:${sport[1]}`;
    if (frontend === endpoint) continue;
    out.push({ id: `${head[1]} ${src[0]}:${sport[0]}>${frontend}`, endpoint, frontend, protocol: head[1], state: head[2] ?? '' });
  }
  return out;
}

export interface BackendCounts {
  inFlight: number;
  connections: number;
  /** Connections first seen this tick. */
  opened: number;
  /** Connections that finished this tick. */
  completed: number;
  /** Of those, the ones reset (TCP state CLOSE). */
  resets: number;
}

/** Per-endpoint counts from one listing and the previous one (connection id → open?). */
export function countBackends(entries: readonly BackendEntry[], previous: ReadonlyMap<string, boolean> | undefined): { counts: Map<string, BackendCounts>; seen: Map<string, boolean> } {
  const counts = new Map<string, BackendCounts>();
  const seen = new Map<string, boolean>();
  const at = (k: string): BackendCounts => {
    let c = counts.get(k);
    if (!c) counts.set(k, (c = { inFlight: 0, connections: 0, opened: 0, completed: 0, resets: 0 }));
    return c;
  };
  for (const e of entries) {
    const c = at(e.endpoint);
    const open = e.protocol !== 'tcp' || OPEN_STATES.has(e.state);
    seen.set(e.id, open);
    c.connections++;
    if (open && e.protocol === 'tcp') c.inFlight++;
    if (!previous) continue;
    const before = previous.get(e.id);
    if (before === undefined) c.opened++;
    if (!open && before !== false) {
      c.completed++;
      if (e.state === 'CLOSE') c.resets++;
    }
  }
  return { counts, seen };
}

// ------------------------------------------------------------------ health

export class HealthTracker {
  private readonly state = new Map<string, { healthy: boolean; fails: number; oks: number }>();
  constructor(private readonly fall = 2, private readonly rise = 2) {}

  /** One probe result; returns the endpoint's health after it. New endpoints start healthy. */
  record(key: string, ok: boolean): boolean {
    let s = this.state.get(key);
    if (!s) this.state.set(key, (s = { healthy: true, fails: 0, oks: 0 }));
    if (ok) {
      s.oks++;
      s.fails = 0;
      if (!s.healthy && s.oks >= this.rise) s.healthy = true;
    } else {
      s.fails++;
      s.oks = 0;
      if (s.healthy && s.fails >= this.fall) s.healthy = false;
    }
    return s.healthy;
  }

  /** Takes another node's verdict as is (that node applied the thresholds). */
  set(key: string, healthy: boolean): void {
    this.state.set(key, { healthy, fails: 0, oks: 0 });
  }

  healthy(key: string): boolean {
    return this.state.get(key)?.healthy ?? true;
  }

  /** Forget endpoints that are gone. */
  keep(keys: ReadonlySet<string>): void {
    for (const k of this.state.keys()) if (!keys.has(k)) this.state.delete(k);
  }

  map(): Map<string, boolean> {
    return new Map([...this.state].map(([k, s]) => [k, s.healthy]));
  }
}

// ------------------------------------------------------------------ prober child

interface ProbeTarget {
  readonly key: string;
  readonly ip: string;
  readonly port: number;
  readonly http: boolean;
}

interface ProbeResult {
  readonly key: string;
  readonly ok: boolean;
  readonly ms: number;
  readonly error?: string;
}

function proberScript(): string {
  const candidates = [new URL('./lb-probe.mjs', import.meta.url), new URL('../../../src/agent/lb-probe.mjs', import.meta.url)];
  for (const url of candidates) {
    const path = fileURLToPath(url);
    if (existsSync(path)) return path;
  }
  throw new Error(`weir agent: lb-probe.mjs not found next to ${fileURLToPath(import.meta.url)}`);
}

class Prober {
  private child: ChildProcessWithoutNullStreams | undefined;
  private buf = '';
  private nextId = 1;
  private readonly waiting = new Map<number, (r: ProbeResult[] | undefined) => void>();

  constructor(private readonly netns: string | undefined) {}

  private ensure(): ChildProcessWithoutNullStreams {
    if (this.child && this.child.exitCode === null && !this.child.killed) return this.child;
    const argv = [...(this.netns ? ['ip', 'netns', 'exec', this.netns] : []), process.execPath, '--max-old-space-size=32', proberScript()];
    const child = spawn(argv[0], argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      this.buf += chunk;
      let i: number;
      while ((i = this.buf.indexOf('\n')) >= 0) {
        const line = this.buf.slice(0, i);
        this.buf = this.buf.slice(i + 1);
        try {
          const msg = JSON.parse(line) as { id: number; results: ProbeResult[] };
          this.waiting.get(msg.id)?.(msg.results);
          this.waiting.delete(msg.id);
        } catch {
          // A line that is not ours: ignored.
        }
      }
    });
    child.stderr.resume();
    child.on('exit', () => {
      for (const done of this.waiting.values()) done(undefined);
      this.waiting.clear();
    });
    child.stdin.on('error', () => undefined);
    this.child = child;
    this.buf = '';
    return child;
  }

  /** Results by key; undefined when the prober could not answer (then health is left as it was). */
  probe(targets: readonly ProbeTarget[], timeoutMs: number): Promise<Map<string, ProbeResult> | undefined> {
    if (targets.length === 0) return Promise.resolve(new Map());
    const child = this.ensure();
    const id = this.nextId++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        resolve(undefined);
      }, timeoutMs + 2000);
      this.waiting.set(id, (results) => {
        clearTimeout(timer);
        resolve(results ? new Map(results.map((r) => [r.key, r])) : undefined);
      });
      child.stdin.write(`${JSON.stringify({ id, timeoutMs, targets })}\n`);
    });
  }

  stop(): void {
    const child = this.child;
    this.child = undefined;
    if (child && child.exitCode === null) {
      child.stdin.end();
      child.kill('SIGTERM');
    }
  }
}

// ------------------------------------------------------------------ the loop

interface Measured {
  latencyMs?: number;
  errorRate: number;
  inFlight: number;
  connections: number;
  /** New connections per tick over the window (ring). */
  opened: number[];
}

const EWMA = 0.3;
const round = (x: number, digits = 2): number => Math.round(x * 10 ** digits) / 10 ** digits;

export class LbLoop {
  private readonly intervalMs: number;
  private readonly probeTimeoutMs: number;
  private readonly windowTicks: number;
  private readonly historyPoints: number;
  private readonly health: HealthTracker;
  private readonly prober: Prober;
  private readonly exchange: LbExchange;
  private readonly measured = new Map<string, Measured>();
  private readonly controllers = new Map<string, adaptive.AdaptiveState>();
  private readonly history = new Map<string, { t: number; weights: Record<string, number> }[]>();
  private seen: Map<string, boolean> | undefined;
  /** Probe sequence numbers: this node's, and the last seen of each remote endpoint's. */
  private seq = 0;
  private readonly peerSeq = new Map<string, number>();
  private ownProbes: Record<string, { healthy: boolean; ok: boolean; ms: number; seq: number }> = {};
  /** What was last handed to the agent: health and drains, and factors per Service port. */
  private sent: { common: string; factors: Map<string, string> } | undefined;
  private drained = new Set<string>();
  private drainError = '';
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;
  private stopped = false;
  last: LbNodeStatus | undefined;

  constructor(private readonly opts: LbLoopOptions) {
    this.intervalMs = opts.intervalMs ?? 500;
    this.probeTimeoutMs = opts.probeTimeoutMs ?? Math.min(400, Math.max(50, this.intervalMs - 100));
    this.windowTicks = Math.max(1, Math.round((opts.windowMs ?? 30_000) / this.intervalMs));
    this.historyPoints = opts.historyPoints ?? 240;
    this.health = new HealthTracker(opts.fall ?? 2, opts.rise ?? 2);
    this.prober = new Prober(opts.netns);
    this.exchange = opts.exchange ?? new FileExchange(opts.dir);
  }

  /** Ticks every interval until stop(); a tick never overlaps the one before. */
  start(): void {
    this.stopped = false;
    const loop = (): void => {
      if (this.stopped) return;
      const t0 = Date.now();
      this.running = this.tick()
        .catch((e: unknown) => this.opts.log?.(`weir agent ${this.opts.node}: balancing loop: ${e instanceof Error ? e.message : String(e)}`))
        .finally(() => {
          if (!this.stopped) this.timer = setTimeout(loop, Math.max(0, this.intervalMs - (Date.now() - t0)));
        });
    };
    loop();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
    this.prober.stop();
    this.exchange.close();
  }

  /** One measurement and decision (public for tests and `--once`). */
  async tick(): Promise<LbNodeStatus | undefined> {
    const input = this.opts.target.servicesInput();
    const problems: string[] = [];
    try {
      this.drained = await this.exchange.drains();
      this.drainError = '';
    } catch (e) {
      const msg = `drains not read, the previous ones are kept: ${e instanceof Error ? e.message : String(e)}`;
      if (msg !== this.drainError) this.opts.log?.(`weir agent ${this.opts.node}: ${msg}`);
      this.drainError = msg;
      problems.push(msg);
    }
    if (!input) {
      const empty: LbNodeStatus = { node: this.opts.node, updatedAt: new Date().toISOString(), intervalMs: this.intervalMs, windowMs: this.windowTicks * this.intervalMs, drained: [...this.drained].sort(), problems, probes: {}, services: [] };
      problems.push(...this.exchange.problems());
      if (this.last?.services.length !== 0 || this.exchange.problems().length > 0) await this.exchange.publish(empty);
      this.last = empty;
      return empty;
    }

    // Endpoints to probe: every TCP endpoint of every Service with a virtual address.
    // Endpoints this node probes: its own (and those of no known node), as kubelet probes its
    // pods; node-to-local-pod traffic does not cross the forward hook, so no NetworkPolicy
    // denies a probe and no probe shows as a dropped flow. The others' health comes from their
    // nodes' files.
    const targets = new Map<string, ProbeTarget>();
    const all = new Set<string>();
    const remote = new Map<string, string>();
    for (const svc of input.services) {
      if (svc.address.kind !== 'virtual') continue;
      for (const port of svc.ports) {
        for (const e of port.endpoints) {
          all.add(e.key);
          if (port.protocol !== 'TCP') continue;
          if (e.node === undefined || e.node === this.opts.node) targets.set(e.key, { key: e.key, ip: e.ip, port: e.port, http: svc.annotations['weir.dev/probe'] === 'http' });
          else remote.set(e.key, e.node);
        }
      }
    }
    const [probes, listing, peers] = await Promise.all([
      this.prober.probe([...targets.values()], this.probeTimeoutMs),
      run([...(this.opts.netns ? ['ip', 'netns', 'exec', this.opts.netns] : []), 'conntrack', '-L', '--dst-nat'], { allowFailure: true }),
      remote.size > 0 ? this.exchange.peers() : Promise.resolve([] as readonly PeerProbes[]),
    ]);
    problems.push(...this.exchange.problems());
    // A peer's probe counts once (its sequence number), and only while its file is fresh.
    const peerProbe = new Map<string, { ok: boolean; ms: number; healthy: boolean }>();
    for (const st of peers) {
      if (st.node === this.opts.node || Date.now() - st.measuredAt > 5000) continue;
      for (const [key, pr] of Object.entries(st.probes)) {
        if (remote.get(key) !== st.node) continue;
        const fresh = this.peerSeq.get(key) !== pr.seq;
        this.peerSeq.set(key, pr.seq);
        // ms -1: the same probe as last tick, not a new latency sample.
        peerProbe.set(key, { healthy: pr.healthy, ok: pr.ok, ms: fresh ? pr.ms : -1 });
      }
    }
    for (const key of remote.keys()) if (!peerProbe.has(key)) problems.push(`no fresh probe of ${key} from its node ${remote.get(key) ?? ''}: health left as it was`);
    if (!probes) problems.push('the health prober did not answer: health is left as it was');
    if (listing.code !== 0) problems.push(`conntrack -L failed (${listing.stderr.trim().split('\n')[0] ?? ''}): no connection counts`);
    const { counts, seen } = listing.code === 0 ? countBackends(parseBackends(listing.stdout), this.seen) : { counts: new Map<string, BackendCounts>(), seen: this.seen };
    this.seen = seen;

    // Health and per-endpoint measurements.
    this.health.keep(all);
    for (const k of this.measured.keys()) if (!all.has(k)) this.measured.delete(k);
    const samples = new Map<string, adaptive.Sample>();
    for (const key of all) {
      const peer = peerProbe.get(key);
      // A remote endpoint's health is its node's verdict; its probe is a sample once (ms ≥ 0).
      if (peer) this.health.set(key, peer.healthy);
      const p = probes?.get(key) ?? (peer && peer.ms >= 0 ? { key, ok: peer.ok, ms: peer.ms } : undefined);
      if (p && !peer) this.health.record(key, p.ok);
      const c = counts.get(key);
      const m = this.measured.get(key) ?? { errorRate: 0, inFlight: 0, connections: 0, opened: [] };
      if (p?.ok) m.latencyMs = m.latencyMs === undefined ? p.ms : EWMA * p.ms + (1 - EWMA) * m.latencyMs;
      const requests = (c?.completed ?? 0) + (p ? 1 : 0);
      const errors = (c?.resets ?? 0) + (p && !p.ok ? 1 : 0);
      if (requests > 0) m.errorRate = EWMA * (errors / requests) + (1 - EWMA) * m.errorRate;
      m.inFlight = c?.inFlight ?? 0;
      m.connections = c?.connections ?? 0;
      m.opened.push(c?.opened ?? 0);
      if (m.opened.length > this.windowTicks) m.opened.shift();
      this.measured.set(key, m);
      // The controller's sample: the probe is the latency sample (a failed one costs what it
      // took, and counts as an error), completed connections and resets give the error rate.
      samples.set(key, { requests, errors, latencyMs: p ? p.ms : 0, inFlight: m.inFlight });
    }

    this.seq++;
    const own: Record<string, { healthy: boolean; ok: boolean; ms: number; seq: number }> = {};
    for (const [key, p] of probes ?? new Map<string, ProbeResult>()) own[key] = { healthy: this.health.healthy(key), ok: p.ok, ms: p.ms, seq: this.seq };
    this.ownProbes = own;

    // The adaptive controller, per Service port.
    const factors = new Map<string, Map<string, number>>();
    const live = new Set<string>();
    for (const svc of input.services) {
      if (svc.address.kind !== 'virtual' || parseBalancing(svc.service).config.mode !== 'adaptive') continue;
      for (const port of svc.ports) {
        const id = `${svc.key}/${port.index}`;
        live.add(id);
        // An unhealthy endpoint's failing probes push its share to the lower bound, so when it
        // returns it starts with a trickle and earns its share back.
        const keys = port.endpoints.map((e) => e.key);
        const state = adaptive.step(this.controllers.get(id) ?? adaptive.initialState(keys), samples, keys, { intervalMs: this.intervalMs, ...this.opts.adaptiveOptions });
        this.controllers.set(id, state);
        factors.set(id, adaptive.factors(state));
      }
    }
    for (const id of this.controllers.keys()) if (!live.has(id)) this.controllers.delete(id);

    const runtime: ServiceRuntime = { health: this.health.map(), drained: new Set(this.drained), adaptive: factors };
    // Hand the agent only what changed: most ticks change nothing (then no render at all), and
    // an adaptive step changes the Services it stepped (rendered alone, with thousands of others).
    const common = JSON.stringify([[...runtime.health].sort(), [...runtime.drained].sort()]);
    const factorKeys = new Map([...factors].map(([id, f]) => [id, JSON.stringify([...f].map(([k, v]) => [k, Math.round(v * 1e4)]))]));
    const sent = this.sent;
    if (!sent || sent.common !== common) {
      await this.opts.target.setServiceRuntime(runtime);
    } else {
      const changed = new Set<string>();
      for (const id of new Set([...factorKeys.keys(), ...sent.factors.keys()])) {
        if (factorKeys.get(id) !== sent.factors.get(id)) changed.add(id.slice(0, id.lastIndexOf('/')));
      }
      if (changed.size > 0) await this.opts.target.setServiceRuntime(runtime, changed);
    }
    this.sent = { common, factors: factorKeys };

    const status = this.status(input, runtime, problems);
    await this.exchange.publish(status);
    this.last = status;
    return status;
  }

  private status(input: ServicesInput, runtime: ServiceRuntime, problems: string[]): LbNodeStatus {
    const t = Date.now();
    const services: ServicePortStatus[] = [];
    const byKey = new Map(input.services.map((s) => [s.key, s]));
    const seenHistory = new Set<string>();
    for (const d of decide({ ...input, health: runtime.health, drained: runtime.drained, adaptive: runtime.adaptive })) {
      const svc = byKey.get(d.service);
      if (!svc) continue;
      const mode = parseBalancing(svc.service).config.mode;
      const id = `${d.service}/${d.port.index}/${d.frontend}`;
      seenHistory.add(id);
      const weights: Record<string, number> = {};
      for (const e of d.endpoints) weights[e.key] = d.result.weights.get(e.key) ?? 0;
      const history = this.history.get(id) ?? [];
      history.push({ t, weights });
      if (history.length > this.historyPoints) history.shift();
      this.history.set(id, history);
      const controller = this.controllers.get(`${d.service}/${d.port.index}`);
      const openedTotal = d.endpoints.reduce((s, e) => s + sum(this.measured.get(e.key)?.opened), 0);
      services.push({
        service: d.service,
        portIndex: d.port.index,
        port: d.frontend === 'node-port' ? (d.port.nodePort ?? d.port.port) : d.port.port,
        protocol: d.port.protocol,
        frontend: d.frontend,
        ...(svc.address.kind === 'virtual' ? { clusterIP: svc.address.ip } : {}),
        mode,
        reject: d.result.reject,
        notes: [...d.result.notes],
        endpoints: d.endpoints.map((e) => this.endpointStatus(e, d.result.weights.get(e.key) ?? 0, runtime, openedTotal, controller)),
        history: [...history],
      });
    }
    for (const id of this.history.keys()) if (!seenHistory.has(id)) this.history.delete(id);
    return { node: this.opts.node, updatedAt: new Date(t).toISOString(), intervalMs: this.intervalMs, windowMs: this.windowTicks * this.intervalMs, drained: [...runtime.drained].sort(), problems, probes: this.ownProbes, services };
  }

  private endpointStatus(e: Endpoint, weight: number, runtime: ServiceRuntime, openedTotal: number, controller: adaptive.AdaptiveState | undefined): EndpointStatus {
    const m = this.measured.get(e.key);
    const share = controller?.get(e.key)?.share;
    return {
      key: e.key,
      ...(e.pod !== undefined ? { pod: e.pod } : {}),
      ...(e.node !== undefined ? { node: e.node } : {}),
      ...(e.location !== undefined ? { location: e.location } : {}),
      weight,
      healthy: runtime.health.get(e.key) ?? true,
      drained: e.location !== undefined && runtime.drained.has(e.location),
      ...(m?.latencyMs !== undefined ? { latencyMs: round(m.latencyMs) } : {}),
      errorRate: round(m?.errorRate ?? 0, 4),
      inFlight: m?.inFlight ?? 0,
      connections: m?.connections ?? 0,
      ...(openedTotal > 0 ? { recentShare: round(sum(m?.opened) / openedTotal, 4) } : {}),
      ...(share !== undefined ? { adaptiveShare: round(share, 4) } : {}),
    };
  }
}

function sum(xs: readonly number[] | undefined): number {
  return (xs ?? []).reduce((a, b) => a + b, 0);
}
