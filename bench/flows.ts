// Visibility pipeline bench: raw kernel text (conntrack event lines + nft denied-set JSON)
// → parse → enrich → aggregate → SQLite → SSE, with end-to-end latency measured by an SSE
// client on loopback (kernel timestamp of the event → arrival at the client).
//
//   npx tsx bench/flows.ts [--rate 25000] [--seconds 10] [--store worker|inline]
//
// `--store inline` is the old arrangement (SQLite writes on the main thread), kept for
// before/after comparisons. The goals: ≥ 20,000 events/s sustained (every event committed to
// SQLite, none dropped or shed), p99 ≤ 1 s from kernel timestamp to the SSE client, RSS flat
// over the run (the last third's median within 15% of the middle third's).
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from '../src/api/server.js';
import { Aggregator } from '../src/flows/aggregate.js';
import { ConntrackFlowParser } from '../src/flows/conntrack.js';
import { Enricher } from '../src/flows/enrich.js';
import { FlowMetrics } from '../src/flows/metrics.js';
import { DeniedSetTracker, parseDeniedSet } from '../src/flows/nftjson.js';
import { FlowPipeline } from '../src/flows/pipeline.js';
import { parseReasons } from '../src/flows/reasons.js';
import type { FlowRecord } from '../src/flows/record.js';
import { SqliteFlowStore } from '../src/flows/sqlite-store.js';
import { WorkerFlowStore } from './store-worker.js';
import { SAMPLE_REASONS, conntrackLines, deniedSetJson, syntheticCluster, type DeniedSpec } from '../src/flows/synthetic.js';
import { rng } from '../src/synthetic/random.js';

const arg = (name: string, def: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};
const RATE = arg('rate', 25_000);
const SECONDS = arg('seconds', 10);
const si = process.argv.indexOf('--store');
const STORE = si > 0 ? process.argv[si + 1] : 'worker';
if (STORE !== 'worker' && STORE !== 'inline') throw new Error('--store worker|inline');

const dir = mkdtempSync(join(tmpdir(), 'weir-bench-'));
const cluster = syntheticCluster(20, 10, 2); // 200 workloads, 400 pods
const reasons = parseReasons(SAMPLE_REASONS);
const store = STORE === 'worker' ? new WorkerFlowStore(join(dir, 'flows.db')) : new SqliteFlowStore(join(dir, 'flows.db'));
const errors: unknown[] = [];
const pipeline = new FlowPipeline({ store, metrics: new FlowMetrics(), aggregator: new Aggregator(), flushMs: 200, maxBatch: 10_000, onError: (e) => errors.push(e) }).start();
const app = createServer({ store, pipeline, uiDir: join(dir, 'none'), stream: { maxFlowsPerEvent: 20_000 } });
await app.listen({ host: '127.0.0.1', port: 0 });
const addr = app.server.address();
const base = typeof addr === 'object' && addr ? `http://127.0.0.1:${addr.port}` : '';

const enricher = new Enricher({ lookup: cluster.lookup, externalCidrs: ['0.0.0.0/0'] });
const ct = new ConntrackFlowParser({ node: 'node-1', reasons: () => reasons });
const denied = new DeniedSetTracker('node-1', () => reasons);
const rand = rng(42);
const pods = cluster.pods;

// SSE client in its own process (a real client on loopback, not sharing our event loop):
// latency = arrival − kernel timestamp of the event, for every flow delivered.
const CLIENT = `
const latencies = []; let received = 0;
const ac = new AbortController();
process.on('message', () => ac.abort());
(async () => {
  try {
    const res = await fetch(process.argv[1], { signal: ac.signal });
    const dec = new TextDecoder(); let buf = '';
    for await (const chunk of res.body) {
      buf += dec.decode(chunk, { stream: true });
      let i;
      while ((i = buf.indexOf('\\n\\n')) >= 0) {
        const block = buf.slice(0, i); buf = buf.slice(i + 2);
        if (!block.startsWith('event: batch')) continue;
        const now = Date.now();
        const b = JSON.parse(block.slice(block.indexOf('data: ') + 6));
        received += b.flows.length + b.flowsOmitted;
        for (const f of b.flows) latencies.push(now - f.time);
      }
    }
  } catch {}
  process.send({ latencies, received }, () => process.exit(0));
})();`;
const client = spawn(process.execPath, ['-e', CLIENT, `${base}/api/stream?group=workload`], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
const result = new Promise<{ latencies: number[]; received: number }>((resolve) => client.once('message', (m) => resolve(m as { latencies: number[]; received: number })));
await new Promise((r) => setTimeout(r, 500));

let rssPeak = 0;
const rssSamples: number[] = [];
const rssTimer = setInterval(() => {
  const rss = process.memoryUsage().rss;
  rssPeak = Math.max(rssPeak, rss);
  rssSamples.push(rss);
}, 250);

// Denied-set state: elements whose counters grow, as the kernel's would.
const deniedEls: DeniedSpec[] = Array.from({ length: 2000 }, (_, i) => ({
  saddr: pods[i % pods.length]!.ip,
  daddr: pods[(i * 7 + 3) % pods.length]!.ip,
  proto: 'tcp',
  dport: 81,
  mark: i % 3 === 0 ? 5 : 3,
  packets: 0,
  bytes: 0,
}));

let events = 0;
const t0 = Date.now();
let id = 1;
let conntrackEvents = 0;
let deniedEvents = 0;

let lastPoll = t0;
let owed = 0;
let last = t0;
while (Date.now() - t0 < SECONDS * 1000) {
  const now = Date.now();
  owed += ((now - last) * RATE) / 1000;
  last = now;
  const batch: FlowRecord[] = [];
  // Connections: NEW + DESTROY pairs (two events each), timestamped now, as the kernel would.
  while (owed >= 2) {
    const s = pods[Math.floor(rand() * pods.length)]!;
    const d = pods[Math.floor(rand() * pods.length)]!;
    const [n, x] = conntrackLines(s.ip, d.ip, 30000 + (id % 30000), 80, id++, now - 5, now, 200 + Math.floor(rand() * 5000));
    for (const line of [n, x]) {
      const r = ct.push(line);
      if (r) batch.push(enricher.enrich(r));
    }
    owed -= 2;
    events += 2;
    conntrackEvents += 2;
  }
  // Every 500 ms: one nft poll of the denied set (a few hundred elements grew).
  if (now - lastPoll >= 500) {
    for (let k = 0; k < 300; k++) {
      const e = deniedEls[Math.floor(rand() * deniedEls.length)]!;
      e.packets += 1;
      e.bytes += 60;
    }
    const recs = denied.update(parseDeniedSet(deniedSetJson(deniedEls)), now, now - lastPoll);
    for (const r of recs) batch.push(enricher.enrich(r));
    deniedEvents += recs.length;
    events += recs.length;
    lastPoll = now;
  }
  if (batch.length) pipeline.ingest(batch);
  await new Promise((r) => setTimeout(r, 5));
}
const genEnd = Date.now();
// Sustained means committed: wait until the store has every event (or gave up on some).
const settled = (): boolean => {
  const st = pipeline.stats;
  return st.buffered === 0 && st.storeQueued === 0 && st.stored + st.storeShed + st.storeFailed + st.overflowDropped >= events;
};
while (!settled() && Date.now() - genEnd < 60_000) await new Promise((r) => setTimeout(r, 10));
const tStored = Date.now();
await new Promise((r) => setTimeout(r, 1000));
client.send('stop');
const { latencies, received } = await result;
clearInterval(rssTimer);
const rssEnd = process.memoryUsage().rss;
await app.close();
pipeline.stop();
const rows = store.stats().flows;
store.close();

latencies.sort((a, b) => a - b);
const pct = (p: number): number => latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))] ?? NaN;
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
const stats = pipeline.stats;
const sustained = Math.round(stats.stored / ((tStored - t0) / 1000));
const drops = stats.overflowDropped + stats.storeShed + stats.storeFailed;
const third = Math.floor(rssSamples.length / 3);
const rssMid = median(rssSamples.slice(third, 2 * third));
const rssLast = median(rssSamples.slice(2 * third));
const rssDrift = (rssLast - rssMid) / rssMid;
const mib = (b: number): string => `${(b / 1024 / 1024).toFixed(0)} MiB`;
const p99 = pct(99);
console.log(`store             ${STORE === 'worker' ? 'WorkerFlowStore (SQLite writes on a worker thread)' : 'SqliteFlowStore inline (main thread)'}`);
console.log(`offered           ${RATE.toLocaleString()} events/s for ${SECONDS}s: ${events.toLocaleString()} events (${conntrackEvents.toLocaleString()} conntrack lines, ${deniedEvents.toLocaleString()} denied-set deltas)`);
console.log(`sustained         ${sustained.toLocaleString()} events/s committed (parse → enrich → aggregate → SQLite; last commit ${tStored - genEnd} ms after the last event)`);
console.log(`rows stored       ${rows.toLocaleString()} rows in SQLite (events ${events.toLocaleString()})`);
console.log(`drops             ${drops} (${stats.overflowDropped} buffer overflow, ${stats.storeShed} shed to aggregates, ${stats.storeFailed} failed in ${stats.storeErrors} store errors)`);
console.log(`SSE               ${received.toLocaleString()} flows delivered; latency p50 ${pct(50)} ms, p99 ${p99} ms, max ${latencies.at(-1)} ms`);
console.log(`RSS               peak ${mib(rssPeak)}, end ${mib(rssEnd)}; median middle third ${mib(rssMid)}, last third ${mib(rssLast)} (${(rssDrift * 100).toFixed(1)}%)`);
const goal = (ok: boolean): string => (ok ? 'met' : 'MISSED');
console.log(
  `goals             ≥20,000/s ${goal(sustained >= 20_000)}; p99 ≤1000 ms ${goal(p99 <= 1000)}; drops 0 ${goal(drops === 0 && errors.length === 0)}; rows = events ${goal(rows === events)}; RSS flat (±15%) ${goal(Math.abs(rssDrift) <= 0.15)}`,
);
for (const e of errors.slice(0, 3)) console.error('store error:', e);
rmSync(dir, { recursive: true, force: true });
