// Flow scale of cluster mode: many agents shipping to one `weir serve --cluster`.
//
//   npx tsx bench/cluster-flows.ts [--agents 100] [--rate 1000] [--seconds 60]
//
// The server runs as its own process (the real CLI), so its RSS is its own. The agents are
// FlowShippers in this process (window aggregation, on-disk buffer, HTTP), each fed `rate`
// synthetic flows per second over ~40 edges of its node, in 100 ms ticks. Every 3 s one agent
// opens a brand-new edge; an SSE client filtered on that namespace measures how long the edge
// takes to appear in the live stream.
//
// Goals (issue 11): aggregate counts exact — flows committed in the server's SQLite store equal
// flows the agents observed, none lost —, new edges in the stream ≤ 1 s, server RSS flat.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PodInfo } from '../src/flows/enrich.js';
import type { FlowRecord } from '../src/flows/record.js';
import { FlowShipper } from '../src/flows/shipper.js';
import { readSse } from '../src/flows/sse-client.js';
import { SqliteFlowStore } from '../src/flows/sqlite-store.js';
import { podRecord, syntheticCluster } from '../src/flows/synthetic.js';

const arg = (name: string, def: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  const v = i > 0 ? Number(process.argv[i + 1]) : def;
  if (!Number.isFinite(v) || v <= 0) throw new Error(`--${name}: expected a positive number`);
  return v;
};
const AGENTS = arg('agents', 100);
const RATE = arg('rate', 1_000);
const SECONDS = arg('seconds', 60);
const TICK_MS = 100;
const TOKEN = 'bench-token-0123456789abcdef';

const dir = mkdtempSync(join(tmpdir(), 'weir-cluster-flows-'));
const tokenFile = join(dir, 'token');
writeFileSync(tokenFile, `${TOKEN}\n`);
const db = join(dir, 'flows.db');

const rssMiB = (pid: number): number => {
  const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Math.round(Number(m[1]) / 1024) : NaN;
};
const pctl = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN) : NaN;
};

const server = spawn(process.execPath, ['bin/weir.js', 'serve', '--cluster', '--store', db, '--port', '0', '--token-file', tokenFile], { stdio: ['ignore', 'pipe', 'inherit'] });
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

// 50 namespaces × 4 workloads × 2 pods; each agent's traffic: its 4 local pods → 10 destinations.
const cluster = syntheticCluster(50, 4, 2);
const pods = cluster.pods;
interface Sim {
  shipper: FlowShipper;
  node: string;
  templates: FlowRecord[];
  sent: number;
}
const sims: Sim[] = [];
for (let a = 0; a < AGENTS; a++) {
  const node = `node-${a}`;
  const local = [0, 1, 2, 3].map((i) => pods[(a * 4 + i) % pods.length] as PodInfo);
  const templates: FlowRecord[] = [];
  for (const [i, src] of local.entries()) {
    for (let d = 0; d < 10; d++) {
      const dst = pods[(a * 37 + i * 11 + d * 53) % pods.length] as PodInfo;
      templates.push({ ...podRecord(src, dst, { verdict: d % 4 === 0 ? 'DROPPED' : 'FORWARDED', dstPort: 80 + (d % 2) }), node });
    }
  }
  const shipper = new FlowShipper({ server: url, token: TOKEN, node, version: 'bench', bufferDir: join(dir, `buf-${a}`), windowMs: 1_000, log: (l) => console.error(l) }).start();
  sims.push({ shipper, node, templates, sent: 0 });
}

// The new-edge probe: an SSE client that sees only the probe namespace.
const latencies: number[] = [];
const probes = new Map<string, number>();
const ac = new AbortController();
const sse = (async () => {
  try {
    for await (const ev of readSse(`${url}/api/stream?to_namespace=probe`, ac.signal, { authorization: `Bearer ${TOKEN}` })) {
      if (ev.event !== 'batch') continue;
      const b = JSON.parse(ev.data) as { edges: { dst: string }[] };
      for (const e of b.edges) {
        const t0 = probes.get(e.dst);
        if (t0 !== undefined) {
          latencies.push(Date.now() - t0);
          probes.delete(e.dst);
        }
      }
    }
  } catch (e) {
    if (!ac.signal.aborted) console.error(`stream: ${(e as Error).message}`);
  }
})();

console.log(`cluster flows: ${AGENTS} agents × ${RATE} flows/s for ${SECONDS} s into ${url} (server pid ${serverPid}); 1 s windows, ≤ 20 samples/window`);
console.log('   t   sent flows  accepted flows  buffered  server RSS  bench RSS  load');
const perTick = RATE / (1000 / TICK_MS);
const start = Date.now();
let tick = 0;
let probeN = 0;
let carry = 0;
const rss: number[] = [];
let lastAccepted = 0;
const acceptedFlows = async (): Promise<number> => {
  // A kept-alive socket the busy server just closed fails one fetch: the next one reconnects.
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const text = await (await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })).text();
      lastAccepted = Number(/^weir_ingest_flows_total (\d+)/m.exec(text)?.[1] ?? 0);
      return lastAccepted;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return lastAccepted;
};
while (Date.now() - start < SECONDS * 1000) {
  tick++;
  const now = Date.now();
  carry += perTick;
  const n = Math.floor(carry);
  carry -= n;
  for (const s of sims) {
    // The templates are reused (the shipper copies what it keeps): the bench should spend its
    // CPU on the shippers, not on allocating 100,000 objects a second.
    for (const tpl of s.templates) tpl.time = now;
    const batch: FlowRecord[] = new Array<FlowRecord>(n);
    for (let i = 0; i < n; i++) batch[i] = s.templates[(tick * n + i) % s.templates.length] as FlowRecord;
    s.shipper.add(batch);
    s.sent += n;
  }
  if (tick % 30 === 0) {
    const s = sims[probeN % sims.length] as Sim;
    const workload = `probe/new-${probeN++}[Deployment]`;
    const src = s.templates[0] as FlowRecord;
    probes.set(workload, Date.now());
    s.shipper.add([{ ...src, time: Date.now(), dst: { ip: '10.250.0.1', namespace: 'probe', pod: 'p', workload, identity: 'probe:x' } }]);
    s.sent++;
  }
  if (tick % 50 === 0) {
    const r = rssMiB(serverPid);
    rss.push(r);
    const sent = sims.reduce((a, s) => a + s.sent, 0);
    const buffered = sims.reduce((a, s) => a + s.shipper.stats.bufferedBatches, 0);
    const load = readFileSync('/proc/loadavg', 'utf8').split(' ')[0] ?? '?';
    console.log(`${String(Math.round((Date.now() - start) / 1000)).padStart(4)}  ${String(sent).padStart(11)}  ${String(await acceptedFlows()).padStart(14)}  ${String(buffered).padStart(8)}  ${String(r).padStart(7)} MiB  ${String(Math.round(process.memoryUsage().rss / 1048576)).padStart(6)} MiB  ${load}`);
  }
  const wait = start + tick * TICK_MS - Date.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
}
const genSeconds = (Date.now() - start) / 1000;

// Drain: every agent seals its last window and sends everything on disk.
const drainStart = Date.now();
for (const s of sims) s.shipper.seal();
const sentTotal = sims.reduce((a, s) => a + s.sent, 0);
while (Date.now() - drainStart < 120_000) {
  const buffered = sims.reduce((a, s) => a + s.shipper.stats.bufferedBatches, 0);
  if (buffered === 0 && (await acceptedFlows()) >= sentTotal) break;
  await new Promise((r) => setTimeout(r, 200));
}
const drainMs = Date.now() - drainStart;
await new Promise((r) => setTimeout(r, 1_500));
ac.abort();
await sse;
const observed = sims.reduce((a, s) => a + s.shipper.stats.observedFlows, 0);
const lost = sims.reduce((a, s) => a + s.shipper.stats.lostFlows, 0);
const failed = sims.reduce((a, s) => a + s.shipper.stats.failedAttempts, 0);
const sentBatches = sims.reduce((a, s) => a + s.shipper.stats.sentBatches, 0);
const accepted = await acceptedFlows();
await Promise.all(sims.map((s) => s.shipper.stop()));
// utime + stime of the server process, in clock ticks (100/s on Linux).
const serverCpuS = (() => {
  const f = readFileSync(`/proc/${serverPid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  return (Number(f[11]) + Number(f[12])) / 100;
})();
const benchCpu = process.cpuUsage();
const totalS = (Date.now() - start) / 1000;
server.kill('SIGTERM');
await new Promise((r) => server.on('exit', r));
const store = new SqliteFlowStore(db);
const stored = store.edges('workload', 0).reduce((a, e) => a + e.flows, 0);
const rawRows = store.stats().flows;
store.close();
rmSync(dir, { recursive: true, force: true });

const third = Math.floor(rss.length / 3);
const mid = pctl(rss.slice(third, 2 * third), 50);
const last = pctl(rss.slice(2 * third), 50);
console.log('');
console.log(`flows sent          ${sentTotal} (${Math.round(sentTotal / genSeconds)}/s offered; agents observed ${observed})`);
console.log(`flows accepted      ${accepted} (ingest counter); committed in SQLite edge aggregates: ${stored}; lost to full buffers: ${lost}`);
console.log(`exact               ${stored === sentTotal && accepted === sentTotal ? 'yes' : `NO (difference ${sentTotal - stored})`}`);
console.log(`requests            ${sentBatches} batches (${Math.round(sentBatches / genSeconds)}/s), ${failed} failed attempts (retried); raw rows stored ${rawRows} (samples + one per edge and window)`);
console.log(`drain after the run ${drainMs} ms`);
console.log(`CPU                 server ${serverCpuS.toFixed(1)} s, agents+bench ${((benchCpu.user + benchCpu.system) / 1e6).toFixed(1)} s over ${totalS.toFixed(0)} s wall (server ${Math.round((serverCpuS / totalS) * 100)}% of one core)`);
console.log(`new edge → stream   ${latencies.length}/${probeN} seen; p50 ${pctl(latencies, 50)} ms, p99 ${pctl(latencies, 99)} ms, max ${Math.max(...latencies)} ms`);
console.log(`server RSS          ${rss.join(' ')} MiB ${rss.length < 3 ? '(too short a run to judge)' : `(median middle third ${mid}, last third ${last}: ${last <= mid * 1.15 ? 'flat' : 'GROWING'})`}`);
console.log('A shared 2-core machine: figures move with the load of other processes (see the load column).');
