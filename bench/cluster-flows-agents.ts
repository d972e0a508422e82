// One worker process of bench/cluster-flows.ts: a share of the simulated agents (FlowShippers:
// window aggregation, on-disk buffer, HTTP), each fed `rate` synthetic flows per second over ~40
// edges of its node in 100 ms ticks. Separate processes so that the benchmark measures the
// server, not a simulator starving in the server's shadow; each reports its own CPU use and
// event-loop delay, so a starved simulator shows in the figures.
//
// IPC with the parent: `probe` (open a brand-new edge on one agent now) → `probe` back with the
// add time, then `trace` with the batch's sealed/sending/delivered times; `stop` → drain and
// `done`. `stats` every second.
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { PodInfo } from '../src/flows/enrich.js';
import type { FlowRecord } from '../src/flows/record.js';
import { FlowShipper } from '../src/flows/shipper.js';
import { podRecord, syntheticCluster } from '../src/flows/synthetic.js';

export interface WorkerConfig {
  url: string;
  token: string;
  dir: string;
  first: number;
  count: number;
  rate: number;
  tickMs: number;
  /** Segments per request when a backlog waits (the shipper's maxRun). */
  maxRun?: number;
}

export interface WorkerStats {
  sent: number;
  observed: number;
  lost: number;
  failed: number;
  sentBatches: number;
  buffered: number;
  cpuS: number;
  rssMiB: number;
  /** Event-loop delay of this worker (ms): a starved simulator seals and sends late. */
  loopP99Ms: number;
}

export type ToWorker = { type: 'probe'; id: number; agent: number } | { type: 'stop' };
export type FromWorker =
  | { type: 'stats'; stats: WorkerStats }
  | { type: 'probe'; id: number; addedAt: number }
  | { type: 'trace'; id: number; sealedAt?: number; sendingAt?: number; deliveredAt?: number }
  | { type: 'done'; stats: WorkerStats };

interface Sim {
  shipper: FlowShipper;
  templates: FlowRecord[];
  sent: number;
  /** seq → probe ids waiting for that batch's trace. */
  probes: Map<number, { id: number; sealedAt?: number; sendingAt?: number }>;
  /** Probes added to the open window (the next sealed batch carries them). */
  open: number[];
}

const cfg = JSON.parse(process.env.WEIR_BENCH_WORKER ?? '{}') as WorkerConfig;
const send = (m: FromWorker): void => {
  process.send?.(m);
};
const loop = monitorEventLoopDelay({ resolution: 10 });
loop.enable();

const pods = syntheticCluster(50, 4, 2).pods;
const sims: Sim[] = [];
for (let a = cfg.first; a < cfg.first + cfg.count; a++) {
  const node = `node-${a}`;
  const local = [0, 1, 2, 3].map((i) => pods[(a * 4 + i) % pods.length] as PodInfo);
  const templates: FlowRecord[] = [];
  for (const [i, src] of local.entries()) {
    for (let d = 0; d < 10; d++) {
      const dst = pods[(a * 37 + i * 11 + d * 53) % pods.length] as PodInfo;
      templates.push({ ...podRecord(src, dst, { verdict: d % 4 === 0 ? 'DROPPED' : 'FORWARDED', dstPort: 80 + (d % 2) }), node });
    }
  }
  const sim: Sim = { shipper: undefined as unknown as FlowShipper, templates, sent: 0, probes: new Map(), open: [] };
  sim.shipper = new FlowShipper({
    server: cfg.url,
    token: cfg.token,
    node,
    version: 'bench',
    bufferDir: join(cfg.dir, `buf-${a}`),
    windowMs: 1_000,
    ...(cfg.maxRun !== undefined ? { maxRun: cfg.maxRun } : {}),
    log: (l) => console.error(l),
    trace: (event, seq) => {
      const now = Date.now();
      if (event === 'sealed') {
        for (const id of sim.open.splice(0)) sim.probes.set(seq, { id, sealedAt: now });
        return;
      }
      const p = sim.probes.get(seq);
      if (!p) return;
      if (event === 'sending') p.sendingAt ??= now;
      else {
        sim.probes.delete(seq);
        send({ type: 'trace', id: p.id, ...(p.sealedAt !== undefined ? { sealedAt: p.sealedAt } : {}), ...(p.sendingAt !== undefined ? { sendingAt: p.sendingAt } : {}), deliveredAt: now });
      }
    },
  }).start();
  sims.push(sim);
}

const cpu0 = process.cpuUsage();
const stats = (): WorkerStats => {
  const c = process.cpuUsage(cpu0);
  const s: WorkerStats = { sent: 0, observed: 0, lost: 0, failed: 0, sentBatches: 0, buffered: 0, cpuS: (c.user + c.system) / 1e6, rssMiB: Math.round(process.memoryUsage().rss / 1048576), loopP99Ms: Math.round(loop.percentile(99) / 1e5) / 10 };
  for (const sim of sims) {
    const st = sim.shipper.stats;
    s.sent += sim.sent;
    s.observed += st.observedFlows;
    s.lost += st.lostFlows;
    s.failed += st.failedAttempts;
    s.sentBatches += st.sentBatches;
    s.buffered += st.bufferedBatches;
  }
  return s;
};

let running = true;
process.on('message', (m: ToWorker) => {
  if (m.type === 'probe') {
    const sim = sims[m.agent - cfg.first];
    if (!sim) return;
    const src = sim.templates[0] as FlowRecord;
    const addedAt = Date.now();
    const workload = `probe/new-${m.id}[Deployment]`;
    sim.shipper.add([{ ...src, time: addedAt, dst: { ip: '10.250.0.1', namespace: 'probe', pod: 'p', workload, identity: `probe:${m.id}` } }]);
    sim.open.push(m.id);
    sim.sent++;
    send({ type: 'probe', id: m.id, addedAt });
  } else if (m.type === 'stop') {
    running = false;
  }
});

const statsTimer = setInterval(() => send({ type: 'stats', stats: stats() }), 1_000);
const perTick = cfg.rate / (1000 / cfg.tickMs);
const start = Date.now();
let tick = 0;
let carry = 0;
while (running) {
  tick++;
  const now = Date.now();
  carry += perTick;
  const n = Math.floor(carry);
  carry -= n;
  for (const s of sims) {
    // The templates are reused (the shipper copies what it keeps): the simulator should spend
    // its CPU on the shippers, not on allocating objects.
    for (const tpl of s.templates) tpl.time = now;
    const batch: FlowRecord[] = new Array<FlowRecord>(n);
    for (let i = 0; i < n; i++) batch[i] = s.templates[(tick * n + i) % s.templates.length] as FlowRecord;
    s.shipper.add(batch);
    s.sent += n;
  }
  const wait = start + tick * cfg.tickMs - Date.now();
  await new Promise((r) => setTimeout(r, Math.max(0, wait)));
}

// Drain: every agent seals its last window and sends everything on disk (bounded: 120 s).
for (const s of sims) s.shipper.seal();
const drainEnd = Date.now() + 120_000;
while (Date.now() < drainEnd && sims.some((s) => s.shipper.stats.bufferedBatches > 0)) await new Promise((r) => setTimeout(r, 100));
const final = stats();
await Promise.all(sims.map((s) => s.shipper.stop()));
clearInterval(statsTimer);
send({ type: 'done', stats: final });
process.disconnect?.();
