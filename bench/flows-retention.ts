// Flow store retention bench: one retention pass over a raw `flows` table at its row cap plus
// one interval's worth of overflow, timed on its own (no server, no agents).
//
//   npx tsx bench/flows-retention.ts [--cap 2000000] [--overflow 180000] [--ingest 6000]
//                                    [--base /tmp/weir-retention-base.db] [--keep-base] [--once]
//
// `--cap`: rawMaxRows (the server's default, 2,000,000). `--overflow`: rows beyond the cap when
// the pass starts. The cluster server stores the agents' samples plus one row per edge and
// window, not one per flow: at 100 agents × (20 samples + ~40 edges) that is ≤ 6,000 rows/s,
// so ≤ 180,000 rows per 30-s interval (the default). `--overflow 3000000` is the stress case of
// one row per flow at 100k flows/s. `--ingest`: rows/s inserted through the store's own insert
// (rows + per-minute roll-up) every 20 ms while the pass runs, as the group commit does; the gaps
// between those inserts are what a new edge waits for. 0 turns it off. The pass is the one the
// server's pipeline runs (`retentionInTurns` where the store has it); `--once` times
// `retention()`, the whole pass in one go.
//
// The table is built once with SQL (rows shaped like the server's: 20 namespaces, 1 in 20
// dropped, times spread over the 50 minutes before the build, and the pass runs at the build's
// clock, so age retention deletes none) into `--base`, reused when it exists with the same row
// count (`--keep-base` keeps it after the run); each run works on a copy. Printed: the row-count cut query alone (the OFFSET walk and max(id)), the pass
// (total, rows deleted), the longest time the event loop was held (the gaps of a 1-ms
// timer, and the CPU time used in a gap), and the ingest gaps. Figures only, no asserts.
import { copyFileSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FlowRecord } from '../src/flows/record.js';
import { SqliteFlowStore } from '../src/flows/sqlite-store.js';
import type { RetentionResult } from '../src/flows/store.js';
import { podRecord, syntheticCluster } from '../src/flows/synthetic.js';

const arg = (name: string, def: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};
const CAP = arg('cap', 2_000_000);
const OVERFLOW = arg('overflow', 180_000);
const INGEST = arg('ingest', 6_000);
const bi = process.argv.indexOf('--base');
const BASE = bi > 0 ? (process.argv[bi + 1] as string) : join(tmpdir(), `weir-retention-base-${CAP + OVERFLOW}.db`);
const KEEP_BASE = process.argv.includes('--keep-base') || bi > 0;
const TOTAL = CAP + OVERFLOW;
const BUILD_TX = 250_000;
const BUILT_AT = 'bench.flows-retention.builtAt';

const ms = (x: number): string => `${x.toFixed(1)} ms`;
const pct = (xs: number[], p: number): number => {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] as number;
};

/** Rows shaped like the server's, generated inside SQLite (building millions of rows through JS would dominate the run). */
function build(path: string, now: number): void {
  rmSync(path, { force: true });
  rmSync(`${path}-wal`, { force: true });
  rmSync(`${path}-shm`, { force: true });
  const s = new SqliteFlowStore(path);
  const t0 = now - 50 * 60_000;
  const step = (50 * 60_000) / TOTAL;
  const ins = s.db.prepare(`WITH RECURSIVE n(i) AS (SELECT ? UNION ALL SELECT i + 1 FROM n WHERE i < ?)
    INSERT INTO flows (time, node, src_ip, src_ns, src_pod, src_workload, src_identity, src_ext, src_cidr,
      dst_ip, dst_ns, dst_pod, dst_workload, dst_identity, dst_ext, dst_cidr,
      src_port, dst_port, protocol, verdict, policy, rule, tier, direction, bytes, packets, duration_ms, event)
    SELECT CAST(? + i * ? AS INTEGER), 'node-' || (i % 100),
      '10.0.' || (i % 20) || '.' || (i % 10 + 1), 'ns' || (i % 20), 'w' || (i % 10) || '-0', 'ns' || (i % 20) || '/w' || (i % 10) || '[Deployment]', 'ns' || (i % 20) || ':pod=w' || (i % 10), 0, NULL,
      '10.0.' || ((i * 7) % 20) || '.' || ((i * 3) % 10 + 1), 'ns' || ((i * 7) % 20), 'w' || ((i * 3) % 10) || '-0', 'ns' || ((i * 7) % 20) || '/w' || ((i * 3) % 10) || '[Deployment]', 'ns' || ((i * 7) % 20) || ':pod=w' || ((i * 3) % 10), 0, NULL,
      40000 + (i % 20000), 80, 'TCP', CASE WHEN i % 20 = 0 THEN 'DROPPED' ELSE 'FORWARDED' END,
      CASE WHEN i % 20 = 0 THEN 'NetworkPolicy ns' || ((i * 7) % 20) || '/default-deny' ELSE 'default' END,
      CASE WHEN i % 20 = 0 THEN 'default-deny' ELSE 'default-allow' END,
      CASE WHEN i % 20 = 0 THEN 'NetworkPolicy' ELSE 'default' END, NULL, 1500, 10, 12, 'sample'
    FROM n`);
  const tx = s.db.transaction((from: number, to: number) => ins.run(from, to, t0, step));
  const b0 = performance.now();
  for (let i = 1; i <= TOTAL; i += BUILD_TX) {
    tx(i, Math.min(TOTAL, i + BUILD_TX - 1));
    process.stdout.write(`\rbuilding ${Math.min(TOTAL, i + BUILD_TX - 1).toLocaleString('en-US')} / ${TOTAL.toLocaleString('en-US')} rows`);
  }
  // The pass runs at the build's clock: a base reused an hour later would otherwise lose its
  // oldest rows to age retention first, and the row cap would have less (or nothing) to cut.
  s.setState(BUILT_AT, String(now));
  s.db.pragma('wal_checkpoint(TRUNCATE)');
  s.close();
  console.log(` in ${((performance.now() - b0) / 1000).toFixed(1)} s`);
}

/** The base's row count and build time, if it has both. */
function baseInfo(path: string): { rows: number; builtAt: number } | undefined {
  if (!existsSync(path)) return undefined;
  const s = new SqliteFlowStore(path);
  const r = s.db.prepare('SELECT count(*) AS n FROM flows').get() as { n: number };
  const builtAt = Number(s.getState(BUILT_AT));
  s.close();
  return Number.isFinite(builtAt) && builtAt > 0 ? { rows: r.n, builtAt } : undefined;
}

const base = baseInfo(BASE);
console.log(`flows retention: cap ${CAP.toLocaleString('en-US')} + overflow ${OVERFLOW.toLocaleString('en-US')} rows; ingest ${INGEST} rows/s during the pass`);
console.log(`machine: ${cpus().length} × ${cpus()[0]?.model ?? '?'}, node ${process.version}, load ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
let now = Date.now();
if (base?.rows === TOTAL) {
  now = base.builtAt;
  console.log(`reusing ${BASE} (built ${new Date(now).toISOString()}; the pass runs at that time)`);
} else build(BASE, now);

const dir = mkdtempSync(join(tmpdir(), 'weir-retention-'));
const path = join(dir, 'flows.db');
copyFileSync(BASE, path);
const store = new SqliteFlowStore(path, { retention: { rawMaxRows: CAP } });
const rowsBefore = (store.db.prepare('SELECT count(*) AS n FROM flows').get() as { n: number }).n;

// The cut alone: the row-count cut as it was (walks `cap` entries of the table's B-tree
// newest-first) and from max(id) (one step down the B-tree's right edge).
let t = performance.now();
const offsetCut = (store.db.prepare('SELECT id FROM flows ORDER BY id DESC LIMIT 1 OFFSET ?').get(CAP) as { id: number } | undefined)?.id;
const offsetMs = performance.now() - t;
t = performance.now();
const maxId = (store.db.prepare('SELECT max(id) AS m FROM flows').get() as { m: number }).m;
const maxMs = performance.now() - t;
console.log(`cut query alone: ORDER BY id DESC LIMIT 1 OFFSET ${CAP} → id ${offsetCut} in ${ms(offsetMs)}; max(id) − cap → id ${maxId - CAP} in ${ms(maxMs)}`);

// What the event loop sees while the pass runs: the gaps of a 1-ms timer chain. (Not
// monitorEventLoopDelay: on Node 20 it reported a 1 ms max across a 500 ms synchronous block.)
// Beside each gap, the CPU time the process used in it: on a shared machine (and under `nice`)
// a gap can be time the process did not get, not time it held the loop.
const gaps: number[] = [];
const gapCpu: number[] = [];
let last = performance.now();
let lastCpu = process.cpuUsage();
let ticking = true;
const tick = (): void => {
  const t1 = performance.now();
  const c = process.cpuUsage(lastCpu);
  gaps.push(t1 - last);
  gapCpu.push((c.user + c.system) / 1000);
  last = t1;
  lastCpu = process.cpuUsage();
  if (ticking) setTimeout(tick, 1);
};
setTimeout(tick, 1);

// Ingest beside the pass: every 20 ms the rows that arrived since the last insert.
const cluster = syntheticCluster(20, 10, 2);
const pods = cluster.pods;
const insertGaps: number[] = [];
let ingested = 0;
let lastInsert = performance.now();
let carry = 0;
const ingestTimer =
  INGEST > 0
    ? setInterval(() => {
        const t1 = performance.now();
        carry += (INGEST * (t1 - lastInsert)) / 1000;
        insertGaps.push(t1 - lastInsert);
        lastInsert = t1;
        const n = Math.floor(carry);
        carry -= n;
        const batch: FlowRecord[] = [];
        const wall = Date.now();
        for (let i = 0; i < n; i++) batch.push(podRecord(pods[(ingested + i) % pods.length]!, pods[(ingested + i * 7 + 3) % pods.length]!, { time: wall }));
        store.insert(batch);
        ingested += n;
      }, 20)
    : undefined;
await new Promise((r) => setTimeout(r, 200));
insertGaps.length = 0;
gaps.length = 0;
gapCpu.length = 0;

// In turns when the store can (and `--once` does not ask for the one-go pass).
const inTurns = process.argv.includes('--once') ? undefined : (store as unknown as { retentionInTurns?: (now: number) => Promise<RetentionResult> }).retentionInTurns;
const ingestedBefore = ingested;
t = performance.now();
const r = inTurns ? await inTurns.call(store, now) : store.retention(now);
const passMs = performance.now() - t;
const ingestedDuring = ingested - ingestedBefore;
const ingestedAtEnd = ingested;
// Let the timers see the end of the pass.
await new Promise((res) => setTimeout(res, 100));
ticking = false;
clearInterval(ingestTimer);

// Rows inserted after the pass ended (the 100 ms above) do not count against it.
const rowsAfter = (store.db.prepare('SELECT count(*) AS n FROM flows').get() as { n: number }).n - (ingested - ingestedAtEnd);
const kept = store.db.prepare('SELECT min(id) AS lo, max(id) AS hi FROM flows').get() as { lo: number; hi: number };
console.log(`pass (${inTurns ? 'retentionInTurns(): between event-loop turns' : 'retention(): in one go'}): ${ms(passMs)}; raw rows deleted ${r.rawDeleted.toLocaleString('en-US')}`);
console.log(`rows: ${(rowsBefore + ingestedBefore).toLocaleString('en-US')} when the pass started, ${rowsAfter.toLocaleString('en-US')} after (${ingestedDuring} ingested during the pass); ids kept ${kept.lo}…${kept.hi}`);
console.log(`event loop held: longest 1-ms timer gap ${ms(Math.max(0, ...gaps))} (p99 ${ms(pct(gaps, 99))}, ${gaps.length} ticks); most CPU in one gap ${ms(Math.max(0, ...gapCpu))} (p99 ${ms(pct(gapCpu, 99))})`);
if (INGEST > 0) console.log(`ingest (every 20 ms): ${insertGaps.length} inserts, gap p50 ${ms(pct(insertGaps, 50))}, p99 ${ms(pct(insertGaps, 99))}, max ${ms(Math.max(0, ...insertGaps))}`);
store.close();
rmSync(dir, { recursive: true, force: true });
if (!KEEP_BASE) {
  rmSync(BASE, { force: true });
  rmSync(`${BASE}-wal`, { force: true });
  rmSync(`${BASE}-shm`, { force: true });
}
