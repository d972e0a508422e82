// Flow scale of cluster mode: many agents shipping to one `weir serve --cluster`.
//
//   npx tsx bench/cluster-flows.ts [--agents 100] [--rate 1000] [--seconds 60] [--workers 4] [--max-run 32] [--server-heap 512]
//
// The server runs as its own process (the real CLI), so its RSS and CPU are its own. The agents
// are FlowShippers (window aggregation, on-disk buffer, HTTP) in `--workers` worker processes
// (bench/cluster-flows-agents.ts), each agent fed `rate` synthetic flows per second over ~40
// edges of its node, in 100 ms ticks: the simulator does not share the server's process, and
// its CPU use and event-loop delay are printed, so a starved simulator shows. Every 3 s one
// agent opens a brand-new edge; an SSE client (this process, which does nothing else) filtered
// on that namespace measures when the edge appears in the live stream, and the agent traces
// the batch that carried it (sealed, request started, committed) to say where the time went.
//
// The server runs as the Deployment runs it (deploy/base/server.yaml): V8's old space capped at
// `--server-heap` MiB (0: V8's default, which lets garbage pile up to several times the live heap).
//
// Goals (issue 11): aggregate counts exact — flows committed in the server's SQLite store equal
// flows the agents observed, none lost —, new edges in the stream ≤ 1 s, server RSS flat.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readSse } from '../src/flows/sse-client.js';
import { SqliteFlowStore } from '../src/flows/sqlite-store.js';
import type { FromWorker, ToWorker, WorkerConfig, WorkerStats } from './cluster-flows-agents.js';

const arg = (name: string, def: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  const v = i > 0 ? Number(process.argv[i + 1]) : def;
  if (!Number.isFinite(v) || v <= 0) throw new Error(`--${name}: expected a positive number`);
  return v;
};
const AGENTS = arg('agents', 100);
const RATE = arg('rate', 1_000);
const SECONDS = arg('seconds', 60);
const WORKERS = Math.min(AGENTS, arg('workers', 4));
/** Windows per request when a backlog waits (1: one request per window, as before runs). */
const MAX_RUN = arg('max-run', 32);
const TOKEN = 'bench-token-0123456789abcdef';

const dir = mkdtempSync(join(tmpdir(), 'weir-cluster-flows-'));
const tokenFile = join(dir, 'token');
writeFileSync(tokenFile, `${TOKEN}\n`);
const db = join(dir, 'flows.db');

const rssMiB = (pid: number): number => {
  const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Math.round(Number(m[1]) / 1024) : NaN;
};
/** utime + stime of a process, in seconds (clock ticks are 100/s on Linux). */
const cpuSeconds = (pid: number): number => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  return (Number(f[11]) + Number(f[12])) / 100;
};
const pctl = (xs: readonly number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN) : NaN;
};
const sum = (xs: readonly WorkerStats[], k: keyof WorkerStats): number => xs.reduce((a, s) => a + s[k], 0);

// WEIR_BENCH_SERVER_NODE_ARGS (e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`): node flags for the server process only.
const serverHeapIndex = process.argv.indexOf('--server-heap');
const SERVER_HEAP = serverHeapIndex > 0 ? Number(process.argv[serverHeapIndex + 1]) : 512;
if (!Number.isInteger(SERVER_HEAP) || SERVER_HEAP < 0) throw new Error('--server-heap: MiB, or 0 for V8\'s default');
const serverNodeArgs = [...(SERVER_HEAP > 0 ? [`--max-old-space-size=${SERVER_HEAP}`] : []), ...(process.env.WEIR_BENCH_SERVER_NODE_ARGS ?? '').split(' ').filter((a) => a !== '')];
const server = spawn(process.execPath, [...serverNodeArgs, 'bin/weir.js', 'serve', '--cluster', '--store', db, '--port', '0', '--token-file', tokenFile], { stdio: ['ignore', 'pipe', 'inherit'] });
const serverPid = server.pid ?? 0;
let serverOut = '';
server.stdout.setEncoding('utf8').on('data', (d: string) => (serverOut += d));
const url = await new Promise<string>((resolve, reject) => {
  const t = setInterval(() => {
    const m = /listening on (\S+)/.exec(serverOut);
    if (m?.[1]) {
      clearInterval(t);
      resolve(m[1]);
    }
  }, 50);
  server.on('exit', (code) => reject(new Error(`weir serve exited (${code ?? '?'})`)));
});

// The new-edge probes: when added (the agent's clock: same host), when its batch was sealed,
// sent and committed, and when the stream showed it.
interface Probe {
  addedAt?: number;
  sealedAt?: number;
  sendingAt?: number;
  deliveredAt?: number;
  seenAt?: number;
}
const probes = new Map<number, Probe>();
const probeOf = (id: number): Probe => {
  let p = probes.get(id);
  if (!p) probes.set(id, (p = {}));
  return p;
};

const workerFile = fileURLToPath(new URL('./cluster-flows-agents.ts', import.meta.url));
const workers: { child: ChildProcess; first: number; count: number; stats: WorkerStats | undefined; done: Promise<WorkerStats> }[] = [];
for (let w = 0; w < WORKERS; w++) {
  const first = Math.floor((w * AGENTS) / WORKERS);
  const count = Math.floor(((w + 1) * AGENTS) / WORKERS) - first;
  const cfg: WorkerConfig = { url, token: TOKEN, dir, first, count, rate: RATE, tickMs: 100, maxRun: MAX_RUN };
  const child = spawn(process.execPath, ['--import', 'tsx', workerFile], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], env: { ...process.env, WEIR_BENCH_WORKER: JSON.stringify(cfg) } });
  const entry = { child, first, count, stats: undefined as WorkerStats | undefined, done: undefined as unknown as Promise<WorkerStats> };
  entry.done = new Promise<WorkerStats>((resolve, reject) => {
    child.on('message', (m: FromWorker) => {
      if (m.type === 'stats') entry.stats = m.stats;
      else if (m.type === 'probe') probeOf(m.id).addedAt = m.addedAt;
      else if (m.type === 'trace') Object.assign(probeOf(m.id), { sealedAt: m.sealedAt, sendingAt: m.sendingAt, deliveredAt: m.deliveredAt });
      else if (m.type === 'done') {
        entry.stats = m.stats;
        resolve(m.stats);
      }
    });
    child.on('exit', (code) => reject(new Error(`worker ${w} exited (${code ?? '?'}) before it reported`)));
  });
  workers.push(entry);
}
const tell = (w: (typeof workers)[number], m: ToWorker): void => {
  w.child.send(m);
};

const ac = new AbortController();
const sse = (async () => {
  try {
    for await (const ev of readSse(`${url}/api/stream?to_namespace=probe`, ac.signal, { authorization: `Bearer ${TOKEN}` })) {
      if (ev.event !== 'batch') continue;
      const b = JSON.parse(ev.data) as { edges: { dst: string }[] };
      const now = Date.now();
      for (const e of b.edges) {
        const m = /^probe\/new-(\d+)\[/.exec(e.dst);
        if (m) probeOf(Number(m[1])).seenAt ??= now;
      }
    }
  } catch (e) {
    if (!ac.signal.aborted) console.error(`stream: ${(e as Error).message}`);
  }
})();

console.log(`cluster flows: ${AGENTS} agents × ${RATE} flows/s for ${SECONDS} s into ${url} (server pid ${serverPid}, V8 old space ${SERVER_HEAP > 0 ? `${SERVER_HEAP} MiB` : "V8's default"}); ${WORKERS} agent worker processes; 1 s windows, backlog runs of ≤ ${MAX_RUN}, ≤ 20 samples/window`);
console.log('   t   sent flows  accepted flows  buffered  server RSS  heap used  server CPU  agents CPU  agents loop p99  load');
let lastAccepted = 0;
/** The server's V8 heap in use (prom-client's default metrics), MiB, from the last scrape. */
let heapUsedMiB = 0;
const heapUsed: number[] = [];
const acceptedFlows = async (): Promise<number> => {
  // A kept-alive socket the busy server just closed fails one fetch: the next one reconnects.
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const text = await (await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })).text();
      lastAccepted = Number(/^weir_ingest_flows_total (\d+)/m.exec(text)?.[1] ?? 0);
      heapUsedMiB = Math.round(Number(/^nodejs_heap_size_used_bytes (\d+)/m.exec(text)?.[1] ?? 0) / 2 ** 20);
      return lastAccepted;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return lastAccepted;
};

// The clock runs once every worker has started its agents (tsx compiles each worker first).
while (workers.some((w) => w.stats === undefined)) await new Promise((r) => setTimeout(r, 100));
const start = Date.now();
const cpu0 = cpuSeconds(serverPid);
const rss: number[] = [];
let probeN = 0;
let lastServerCpu = cpu0;
let lastAgentsCpu = 0;
let lastT = start;
// Probes on their own timer: a slow /metrics answer below must not space them out.
const probeTimer = setInterval(() => {
  const agent = probeN % AGENTS;
  const w = workers.find((x) => agent >= x.first && agent < x.first + x.count);
  if (w) tell(w, { type: 'probe', id: probeN++, agent });
}, 3_000);
while (Date.now() - start < SECONDS * 1000) {
  await new Promise((r) => setTimeout(r, Math.min(6_000, Math.max(0, start + SECONDS * 1000 - Date.now()))));
  {
    const r = rssMiB(serverPid);
    rss.push(r);
    const stats = workers.flatMap((x) => (x.stats ? [x.stats] : []));
    const now = Date.now();
    const serverCpu = cpuSeconds(serverPid);
    const agentsCpu = sum(stats, 'cpuS');
    const pct = (d: number): string => `${Math.round((d / ((now - lastT) / 1000)) * 100)}%`.padStart(9);
    const load = readFileSync('/proc/loadavg', 'utf8').split(' ')[0] ?? '?';
    console.log(
      `${String(Math.round((now - start) / 1000)).padStart(4)}  ${String(sum(stats, 'sent')).padStart(11)}  ${String(await acceptedFlows()).padStart(14)}  ${String(sum(stats, 'buffered')).padStart(8)}  ${String(r).padStart(7)} MiB  ${String(heapUsedMiB).padStart(6)} MiB  ${pct(serverCpu - lastServerCpu)}  ${pct(agentsCpu - lastAgentsCpu)}  ${String(Math.max(...stats.map((s) => s.loopP99Ms))).padStart(12)} ms  ${load}`,
    );
    heapUsed.push(heapUsedMiB);
    lastServerCpu = serverCpu;
    lastAgentsCpu = agentsCpu;
    lastT = now;
  }
}
clearInterval(probeTimer);
const genSeconds = (Date.now() - start) / 1000;

// Drain: every agent seals its last window and sends everything on disk.
const drainStart = Date.now();
for (const w of workers) tell(w, { type: 'stop' });
const finals = await Promise.all(workers.map((w) => w.done));
const sentTotal = sum(finals, 'sent');
while (Date.now() - drainStart < 120_000 && (await acceptedFlows()) < sentTotal) await new Promise((r) => setTimeout(r, 200));
const drainMs = Date.now() - drainStart;
await new Promise((r) => setTimeout(r, 1_500));
ac.abort();
await sse;
const accepted = await acceptedFlows();
const serverCpuS = cpuSeconds(serverPid) - cpu0;
const totalS = (Date.now() - start) / 1000;
server.kill('SIGTERM');
await new Promise((r) => server.on('exit', r));
const store = new SqliteFlowStore(db);
const stored = store.edges('workload', 0).reduce((a, e) => a + e.flows, 0);
const rawRows = store.stats().flows;
store.close();
rmSync(dir, { recursive: true, force: true });

const done = [...probes.values()].filter((p) => p.addedAt !== undefined);
const seen = done.filter((p) => p.seenAt !== undefined);
const lat = (from: keyof Probe, to: keyof Probe): number[] => done.flatMap((p) => (p[from] !== undefined && p[to] !== undefined ? [(p[to] as number) - (p[from] as number)] : []));
const show = (xs: number[]): string => (xs.length ? `p50 ${pctl(xs, 50)} ms, p99 ${pctl(xs, 99)} ms, max ${Math.max(...xs)} ms` : 'none');
const third = Math.floor(rss.length / 3);
const mid = pctl(rss.slice(third, 2 * third), 50);
const last = pctl(rss.slice(2 * third), 50);
const agentsCpuS = sum(finals, 'cpuS');
console.log('');
console.log(`flows sent          ${sentTotal} (${Math.round(sentTotal / genSeconds)}/s offered; agents observed ${sum(finals, 'observed')})`);
console.log(`flows accepted      ${accepted} (ingest counter); committed in SQLite edge aggregates: ${stored}; lost to full buffers: ${sum(finals, 'lost')}`);
console.log(`exact               ${stored === sentTotal && accepted === sentTotal ? 'yes' : `NO (difference ${sentTotal - stored})`}`);
console.log(`requests            ${sum(finals, 'sentBatches')} batches (${Math.round(sum(finals, 'sentBatches') / genSeconds)}/s), ${sum(finals, 'failed')} failed attempts (retried); raw rows stored ${rawRows} (samples + one per edge and window)`);
console.log(`drain after the run ${drainMs} ms`);
console.log(`CPU                 server ${serverCpuS.toFixed(1)} s (${Math.round((serverCpuS / totalS) * 100)}% of one core); agents ${agentsCpuS.toFixed(1)} s in ${WORKERS} processes (${Math.round((agentsCpuS / totalS) * 100)}%), their event-loop delay p99 up to ${Math.max(...finals.map((s) => s.loopP99Ms))} ms; over ${totalS.toFixed(0)} s wall`);
// Robust to the machine's load (unlike latencies): what the server spends per request and per flow.
console.log(`server CPU per unit ${((serverCpuS * 1000) / Math.max(1, sum(finals, 'sentBatches'))).toFixed(2)} ms per request, ${((serverCpuS * 1e6) / Math.max(1, sentTotal)).toFixed(2)} s per 1M flows (includes the bench's /metrics scrapes and the server's timers)`);
console.log(`new edge → stream   ${seen.length}/${done.length} seen; ${show(lat('addedAt', 'seenAt'))}`);
console.log(`  where it went     add → sealed ${show(lat('addedAt', 'sealedAt'))}`);
console.log(`                    sealed → request started ${show(lat('sealedAt', 'sendingAt'))}`);
console.log(`                    request → committed (server) ${show(lat('sendingAt', 'deliveredAt'))}`);
console.log(`                    request → on the stream ${show(lat('sendingAt', 'seenAt'))}`);
console.log(`server RSS          ${rss.join(' ')} MiB ${rss.length < 3 ? '(too short a run to judge)' : `(median middle third ${mid}, last third ${last}: ${last <= mid * 1.15 ? 'flat' : 'GROWING'})`}`);
console.log(`server heap used    ${heapUsed.join(' ')} MiB (V8, at each scrape: what is live plus garbage not yet collected)`);
console.log(`A shared 2-core machine: figures move with the load of other processes (load average now ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}).`);
