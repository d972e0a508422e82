// bench/lb — balancing strategies against heterogeneous endpoints, in the lab (root):
//   sudo npx tsx bench/lb.ts [--rate 250] [--seconds 16] [--warmup 4] [--tick-ms 500] [--rounds 1] [--arrivals poisson|even]
//
// Every strategy first runs --warmup seconds that are not counted (the same load and the same
// slow and stalling endpoints): the figures are of a Service in steady state, not of its first
// seconds, for all four alike — only adaptive learns from them (the others keep no state); a
// cold start from equal weights sends a 20-request/s endpoint 50/s for a second or two.
//
// With --rounds N every strategy runs N times for --seconds each, in an order rotated per
// round, and the results are pooled: on a shared machine whose load drifts, no strategy gets
// all the quiet (or all the busy) minutes.
//
// Five pod servers behind one "Service", each serving SLOTS (2) requests at a time in 20 ms
// and queueing the rest (the lab's own slow/flaky servers, src/lab/behaviour.ts; the kernel
// has no netem): a healthy endpoint's capacity is 100 requests/s. (20 ms rather than less: on
// a shared 2-core machine, scheduling delays of a few ms must stay small beside the service.)
//   e0, e4  healthy
//   e1      5× slower (100 ms per request: 20 requests/s)
//   e2      stalls: replies held for 400 ms every 2 s
//   e3      fails 20 % of requests (TCP reset) from half-way through the counted part
// A client pod sends an open-loop stream at a fixed mean rate (default 250 requests/s, 60 % of
// the nominal 420/s, so that queueing on a bad endpoint matters), one request per connection,
// for each strategy in turn: round-robin, weighted round-robin with static weights from
// capacity (5:1:5:5:5), least requests in flight, and weir adaptive (the controller of
// src/lb/adaptive.ts fed every 500 ms with what completed, its weights laid out in 100
// interleaved slots taken in turn, which is what the kernel's `numgen inc mod 100` over the
// weight map does for an adaptive Service, src/render/services.ts), and
// last a reference no balancer can be, the *oracle*: told every fault in advance (e1 always too
// slow for the target, e2's stall windows, e3 failing from half-way), it sends each request to
// the least loaded of the endpoints healthy at that moment. What it reaches is the ceiling of
// this scenario: the most within target any strategy could serve here.
// Arrivals are Poisson by default (many independent clients, as in front of a real Service;
// `--arrivals even` spaces them evenly, which no real client population does).
//
// The latency target is fixed before the run and the same for all four: TARGET_FACTOR (3) ×
// a healthy endpoint's service time (20 ms) = 60 ms, "served after waiting for at most two
// requests' worth". A failed request is never within target; p50/p99 are of the requests
// that succeeded.
//
// What is emulated: the endpoint choice is made in the client process, for every strategy,
// so all four are compared under the same conditions (least-requests-in-flight cannot be done
// by the kernel at all). The controller's measurements come from the client's observations here;
// in the product they come from conntrack and active probes. Figures are noisy on a shared VM.

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { adaptive, computeWeights, EQUAL, interleave, type Endpoint } from '../src/lb/index.js';
import { clearBehaviour, setBehaviour, type Behaviour } from '../src/lab/behaviour.js';
import { labDown, labUp } from '../src/lab/index.js';
import type { Cluster, Pod } from '../src/model/cluster.js';
import { emptyCluster } from '../src/model/cluster.js';

const { values } = parseArgs({
  options: {
    rate: { type: 'string', default: '250' },
    seconds: { type: 'string', default: '16' },
    'tick-ms': { type: 'string', default: '500' },
    rounds: { type: 'string', default: '1' },
    warmup: { type: 'string', default: '4' },
    arrivals: { type: 'string', default: 'poisson' },
    /** Print the adaptive shares every tick (to stderr). */
    trace: { type: 'boolean', default: false },
  },
});
if (values.arrivals !== 'poisson' && values.arrivals !== 'even') throw new Error(`--arrivals: poisson or even, not "${values.arrivals}"`);
const RATE = Number(values.rate);
const SECONDS = Number(values.seconds);
const TICK_MS = Number(values['tick-ms']);
const ROUNDS = Math.max(1, Number(values.rounds));
const WARMUP = Number(values.warmup);
const PORT = 8080;
const NAMES = ['e0', 'e1', 'e2', 'e3', 'e4'];

const SERVICE_MS = 20;
const SLOTS = 2;
const TARGET_FACTOR = 3;
const TARGET_MS = TARGET_FACTOR * SERVICE_MS;
/** An endpoint that receives less than this share of the requests counts as starved. */
const STARVED_SHARE = 0.01;
const BASE: Behaviour = { delayMs: SERVICE_MS, concurrency: SLOTS };
const BEHAVIOUR: Record<string, Behaviour> = {
  e0: BASE,
  e1: { delayMs: 5 * SERVICE_MS, concurrency: SLOTS },
  e2: { ...BASE, stall: { everyMs: 2000, forMs: 400 } },
  e3: BASE,
  e4: BASE,
};
const FAILING: Behaviour = { ...BASE, errorRate: 0.2 };
/** Static weights from capacity (requests per second each can serve: 100, 20, 100, 100, 100). */
const WRR_WEIGHTS = [5, 1, 5, 5, 5];

type Strategy = 'rr' | 'wrr' | 'lrif' | 'adaptive' | 'oracle';

interface Tick {
  requests: number;
  errors: number;
  latencySum: number;
  inFlight: number;
}

interface Done {
  latencies: number[];
  endpointOf: number[];
  errors: number;
  perEndpoint: number[];
  errorsPerEndpoint: number[];
}

function pod(name: string, i: number): Pod {
  return {
    namespace: 'bench',
    name,
    labels: { app: name === 'client' ? 'client' : 'lb' },
    ports: [{ port: name === 'client' ? 9 : PORT, protocol: 'TCP' }],
    hostNetwork: false,
    node: `node-${i % 2}`,
    workload: `bench/${name}[Pod]`,
  };
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}

async function runStrategy(strategy: Strategy, dir: string, clientNetns: string, netnsOf: Map<string, string>, ips: string[]): Promise<Done> {
  for (const name of NAMES) await setBehaviour(dir, netnsOf.get(name) as string, BEHAVIOUR[name]);
  await new Promise((r) => setTimeout(r, 300));
  const clientScript = fileURLToPath(new URL('./lb-client.mjs', import.meta.url));
  const config = {
    endpoints: ips.map((ip) => ({ ip, port: PORT })),
    rate: RATE,
    durationMs: (WARMUP + SECONDS) * 1000,
    warmupMs: WARMUP * 1000,
    timeoutMs: 2000,
    tickMs: TICK_MS,
    arrivals: values.arrivals,
    strategy: strategy === 'adaptive' ? 'slots' : strategy,
    weights: strategy === 'wrr' ? WRR_WEIGHTS : undefined,
    // The reference: told the faults in advance (e1 always too slow for the target, e2's
    // stall windows, e3 failing from half-way), least requests in flight among the rest.
    oracle: strategy === 'oracle' ? { never: [1], stall: { index: 2, ...(BEHAVIOUR.e2.stall as { everyMs: number; forMs: number }) }, failingFromMs: { index: 3, atMs: (WARMUP + SECONDS / 2) * 1000 } } : undefined,
  };
  const child = spawn('ip', ['netns', 'exec', clientNetns, process.execPath, clientScript, JSON.stringify(config)], { stdio: ['pipe', 'pipe', 'inherit'] });
  // e3 starts failing half-way.
  const halfway = setTimeout(() => void setBehaviour(dir, netnsOf.get('e3') as string, FAILING), (WARMUP + SECONDS / 2) * 1000);
  const keys = ips.map((ip) => `${ip}:${PORT}`);
  const endpoints: Endpoint[] = keys.map((key, i) => ({ key, ip: ips[i], port: PORT, labels: {} }));
  let state = adaptive.initialState(keys);
  let done: Done | undefined;
  let buf = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => {
    buf += chunk;
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = JSON.parse(buf.slice(0, i)) as { tick?: Tick[]; done?: Done };
      buf = buf.slice(i + 1);
      if (line.done) done = line.done;
      if (line.tick && strategy === 'adaptive') {
        const samples = new Map<string, adaptive.Sample>();
        line.tick.forEach((t, k) =>
          samples.set(keys[k], { requests: t.requests, errors: t.errors, latencyMs: t.requests > 0 ? t.latencySum / t.requests : 0, inFlight: t.inFlight }),
        );
        state = adaptive.step(state, samples, keys, { intervalMs: TICK_MS });
        if (values.trace) {
          const cell = (k: string): string => {
            const e = state.get(k) as adaptive.EndpointState;
            const t = line.tick?.[keys.indexOf(k)] as Tick;
            return `${(100 * e.share).toFixed(0).padStart(3)}% ${(e.latencyMs ?? 0).toFixed(0).padStart(4)}ms if${t.inFlight} c${e.capacity === undefined ? '-' : e.capacity.toFixed(0)}`;
          };
          console.error(keys.map(cell).join(' | '));
        }
        // What the kernel gets: the weights laid out in interleaved slots (`numgen inc mod 100`).
        const w = computeWeights({ endpoints, config: { ...EQUAL, mode: 'adaptive' }, adaptive: adaptive.factors(state) });
        const slots = interleave(w.weights) ?? keys;
        child.stdin.write(`${JSON.stringify(slots.map((k) => keys.indexOf(k)))}\n`);
      }
    }
  });
  await new Promise<void>((resolve) => child.on('exit', () => resolve()));
  clearTimeout(halfway);
  if (!done) throw new Error(`the client of ${strategy} ended without a result`);
  return done;
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('bench/lb needs root (network namespaces)');
  const prefix = `weir-b${randomBytes(2).toString('hex')}-`;
  const dir = await mkdtemp(join(tmpdir(), 'weir-bench-lb-'));
  const cluster: Cluster = { ...emptyCluster(), namespaces: [{ name: 'bench', labels: { 'kubernetes.io/metadata.name': 'bench' } }], pods: [...NAMES, 'client'].map(pod) };
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => void labDown({ dir, prefix, force: true }).finally(() => process.exit(130)));
  }
  try {
    const state = await labUp(cluster, { prefix, dir, nodes: 2 });
    const netnsOf = new Map(state.pods.map((p) => [p.name, p.netns]));
    const ips = NAMES.map((n) => state.pods.find((p) => p.name === n)?.ip as string);
    const clientNetns = netnsOf.get('client') as string;
    console.log(`bench/lb: ${RATE} req/s open loop (${values.arrivals} arrivals) for ${WARMUP} s of warm-up (not counted) + ${SECONDS} s per strategy and round (${ROUNDS} round(s)), controller tick ${TICK_MS} ms, one request per connection`);
    console.log(`endpoints: e0,e4 healthy (${SERVICE_MS} ms, ${SLOTS} at a time, the rest queue); e1 5x slower (${5 * SERVICE_MS} ms); e2 stalls 400 ms every 2 s; e3 fails 20 % from half-way`);
    console.log(`target: ${TARGET_FACTOR} x a healthy endpoint's service time = ${TARGET_MS} ms (failed requests never within target)\n`);
    const rows: string[] = [];
    const header = '| strategy | p50 | p99 | errors | within target | vs WRR | requests per endpoint (e0..e4) | starved |';
    const strategies = ['rr', 'wrr', 'lrif', 'adaptive', 'oracle'] as const;
    const pooled = new Map<Strategy, Done>(strategies.map((k) => [k, { latencies: [], endpointOf: [], errors: 0, perEndpoint: NAMES.map(() => 0), errorsPerEndpoint: NAMES.map(() => 0) }]));
    for (let round = 0; round < ROUNDS; round++) {
      for (let i = 0; i < strategies.length; i++) {
        const strategy = strategies[(i + round) % strategies.length];
        const r = await runStrategy(strategy, dir, clientNetns, netnsOf, ips);
        const p = pooled.get(strategy) as Done;
        for (const x of r.latencies) p.latencies.push(x);
        for (const x of r.endpointOf) p.endpointOf.push(x);
        p.errors += r.errors;
        r.perEndpoint.forEach((n, k) => (p.perEndpoint[k] += n));
        r.errorsPerEndpoint.forEach((n, k) => (p.errorsPerEndpoint[k] += n));
        console.log(`${strategy} done (round ${round + 1}/${ROUNDS})`);
      }
    }
    const inTargetShare = (r: Done): number => r.latencies.filter((x) => x >= 0 && x <= TARGET_MS).length / r.latencies.length;
    const wrrShare = inTargetShare(pooled.get('wrr') as Done);
    for (const strategy of strategies) {
      const r = pooled.get(strategy) as Done;
      const ok = r.latencies.filter((x) => x >= 0).sort((a, b) => a - b);
      // Percentiles of the requests that succeeded; failures are counted apart (and as outside
      // the target).
      const all = ok;
      const inTarget = ok.filter((x) => x <= TARGET_MS).length;
      const starved = NAMES.filter((_, k) => r.perEndpoint[k] < STARVED_SHARE * r.latencies.length);
      const name = { rr: 'round-robin', wrr: 'weighted round-robin (5:1:5:5:5)', lrif: 'least requests in flight', adaptive: 'weir adaptive', oracle: 'oracle (faults known in advance)' }[strategy];
      rows.push(
        `| ${name} | ${percentile(all, 0.5).toFixed(1)} ms | ${percentile(all, 0.99).toFixed(1)} ms | ${r.errors} (${((100 * r.errors) / r.latencies.length).toFixed(1)} %) | ${((100 * inTarget) / r.latencies.length).toFixed(1)} % | ${strategy === 'wrr' ? '' : `${inTargetShare(r) >= wrrShare ? '+' : ''}${((100 * (inTargetShare(r) - wrrShare)) / wrrShare).toFixed(0)} %`} | ${r.perEndpoint.join(' / ')} (errors ${r.errorsPerEndpoint.join(' / ')}) | ${starved.length > 0 ? starved.join(', ') : 'none'} |`,
      );
    }
    for (const name of NAMES) await clearBehaviour(dir, netnsOf.get(name) as string);
    // Per endpoint: p50 of the successes and the share within target, to see where a
    // strategy loses.
    console.log('\nper endpoint (e0..e4): p50 ms / within target');
    for (const strategy of strategies) {
      const r = pooled.get(strategy) as Done;
      const cells = NAMES.map((_, k) => {
        const mine = r.latencies.filter((_, j) => r.endpointOf[j] === k);
        const ok = mine.filter((x) => x >= 0).sort((a, b) => a - b);
        return `${percentile(ok, 0.5).toFixed(0)} / ${mine.length > 0 ? ((100 * ok.filter((x) => x <= TARGET_MS).length) / mine.length).toFixed(0) : '-'} %`;
      });
      console.log(`  ${strategy.padEnd(9)} ${cells.join('  |  ')}`);
    }
    console.log(`\n${header}\n|---|---:|---:|---:|---:|---:|---|---|\n${rows.join('\n')}`);
    const p99 = (k: Strategy): number => percentile((pooled.get(k) as Done).latencies.filter((x) => x >= 0).sort((a, b) => a - b), 0.99);
    console.log(`\nceiling: the oracle, which knows every fault in advance, serves ${((100 * (inTargetShare(pooled.get('oracle') as Done) - wrrShare)) / wrrShare).toFixed(0)} % more within target than weighted round-robin, p99 ${(p99('wrr') / p99('oracle')).toFixed(2)}x lower`);
    console.log(`adaptive vs weighted round-robin: within target ${((100 * (inTargetShare(pooled.get('adaptive') as Done) - wrrShare)) / wrrShare).toFixed(0)} % (goal >= +30 %), p99 cut ${(p99('wrr') / p99('adaptive')).toFixed(2)}x (goal >= 2x)`);
  } finally {
    await labDown({ dir, prefix, force: true }).catch((e: unknown) => console.error(`cleanup: ${String(e)}`));
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : String(error));
  process.exit(1);
});
