// bench/lb — balancing strategies against heterogeneous endpoints, in the lab (root):
//   sudo npx tsx bench/lb.ts [--rate 300] [--seconds 16] [--target-ms 30] [--tick-ms 500] [--rounds 1]
//
// With --rounds N every strategy runs N times for --seconds each, in an order rotated per
// round, and the results are pooled: on a shared machine whose load drifts, no strategy gets
// all the quiet (or all the busy) minutes.
//
// Five pod servers behind one "Service", each serving 4 requests at a time in 10 ms (the
// lab's own slow/flaky servers, src/lab/behaviour.ts; the kernel has no netem):
//   e0, e4  healthy
//   e1      5× slower (50 ms per request)
//   e2      stalls: replies held for 400 ms every 2 s
//   e3      fails 20 % of requests (TCP reset) from half-way
// A client pod sends an open-loop stream at a fixed rate, one request per connection, for each
// strategy in turn: round-robin, weighted round-robin with static weights from capacity
// (5:1:5:5:5), least requests in flight, and weir adaptive (the controller of src/lb/adaptive.ts
// fed every 500 ms with what completed, its weights turned into choices by weighted random,
// which is what the kernel's `numgen random` over the weight map does).
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
import { adaptive, computeWeights, EQUAL, type Endpoint } from '../src/lb/index.js';
import { clearBehaviour, setBehaviour, type Behaviour } from '../src/lab/behaviour.js';
import { labDown, labUp } from '../src/lab/index.js';
import type { Cluster, Pod } from '../src/model/cluster.js';
import { emptyCluster } from '../src/model/cluster.js';

const { values } = parseArgs({
  options: {
    rate: { type: 'string', default: '300' },
    seconds: { type: 'string', default: '16' },
    'target-ms': { type: 'string', default: '30' },
    'tick-ms': { type: 'string', default: '500' },
    rounds: { type: 'string', default: '1' },
  },
});
const RATE = Number(values.rate);
const SECONDS = Number(values.seconds);
const TARGET_MS = Number(values['target-ms']);
const TICK_MS = Number(values['tick-ms']);
const ROUNDS = Math.max(1, Number(values.rounds));
const PORT = 8080;
const NAMES = ['e0', 'e1', 'e2', 'e3', 'e4'];

const BASE: Behaviour = { delayMs: 10, concurrency: 4 };
const BEHAVIOUR: Record<string, Behaviour> = {
  e0: BASE,
  e1: { delayMs: 50, concurrency: 4 },
  e2: { ...BASE, stall: { everyMs: 2000, forMs: 400 } },
  e3: BASE,
  e4: BASE,
};
const FAILING: Behaviour = { ...BASE, errorRate: 0.2 };
/** Static weights from capacity (requests per second each can serve: 400, 80, 400, 400, 400). */
const WRR_WEIGHTS = [5, 1, 5, 5, 5];

type Strategy = 'rr' | 'wrr' | 'lrif' | 'adaptive';

interface Tick {
  requests: number;
  errors: number;
  latencySum: number;
  inFlight: number;
}

interface Done {
  latencies: number[];
  errors: number;
  perEndpoint: number[];
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
    durationMs: SECONDS * 1000,
    timeoutMs: 2000,
    tickMs: TICK_MS,
    strategy: strategy === 'adaptive' ? 'weighted' : strategy,
    weights: strategy === 'wrr' ? WRR_WEIGHTS : undefined,
  };
  const child = spawn('ip', ['netns', 'exec', clientNetns, process.execPath, clientScript, JSON.stringify(config)], { stdio: ['pipe', 'pipe', 'inherit'] });
  // e3 starts failing half-way.
  const halfway = setTimeout(() => void setBehaviour(dir, netnsOf.get('e3') as string, FAILING), (SECONDS * 1000) / 2);
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
        state = adaptive.step(state, samples, keys);
        const w = computeWeights({ endpoints, config: { ...EQUAL, mode: 'adaptive' }, adaptive: adaptive.factors(state) });
        child.stdin.write(`${JSON.stringify(keys.map((k) => w.weights.get(k) ?? 0))}\n`);
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
    console.log(`bench/lb: ${RATE} req/s open loop for ${SECONDS} s per strategy and round (${ROUNDS} round(s)), controller tick ${TICK_MS} ms, one request per connection; target ${TARGET_MS} ms`);
    console.log('endpoints: e0,e4 healthy (10 ms, 4 at a time); e1 5x slower (50 ms); e2 stalls 400 ms every 2 s; e3 fails 20 % from half-way\n');
    const rows: string[] = [];
    const header = '| strategy | p50 | p99 | errors | within target | requests per endpoint (e0..e4) |';
    const strategies = ['rr', 'wrr', 'lrif', 'adaptive'] as const;
    const pooled = new Map<Strategy, Done>(strategies.map((k) => [k, { latencies: [], errors: 0, perEndpoint: NAMES.map(() => 0) }]));
    for (let round = 0; round < ROUNDS; round++) {
      for (let i = 0; i < strategies.length; i++) {
        const strategy = strategies[(i + round) % strategies.length];
        const r = await runStrategy(strategy, dir, clientNetns, netnsOf, ips);
        const p = pooled.get(strategy) as Done;
        for (const x of r.latencies) p.latencies.push(x);
        p.errors += r.errors;
        r.perEndpoint.forEach((n, k) => (p.perEndpoint[k] += n));
        console.log(`${strategy} done (round ${round + 1}/${ROUNDS})`);
      }
    }
    for (const strategy of strategies) {
      const r = pooled.get(strategy) as Done;
      const ok = r.latencies.filter((x) => x >= 0).sort((a, b) => a - b);
      // Percentiles of the requests that succeeded; failures are counted apart (and as outside
      // the target).
      const all = ok;
      const inTarget = ok.filter((x) => x <= TARGET_MS).length;
      const name = { rr: 'round-robin', wrr: 'weighted round-robin (5:1:5:5:5)', lrif: 'least requests in flight', adaptive: 'weir adaptive' }[strategy];
      rows.push(
        `| ${name} | ${percentile(all, 0.5).toFixed(1)} ms | ${percentile(all, 0.99).toFixed(1)} ms | ${r.errors} (${((100 * r.errors) / r.latencies.length).toFixed(1)} %) | ${((100 * inTarget) / r.latencies.length).toFixed(1)} % | ${r.perEndpoint.join(' / ')} |`,
      );
    }
    for (const name of NAMES) await clearBehaviour(dir, netnsOf.get(name) as string);
    console.log(`\n${header}\n|---|---:|---:|---:|---:|---|\n${rows.join('\n')}`);
  } finally {
    await labDown({ dir, prefix, force: true }).catch((e: unknown) => console.error(`cleanup: ${String(e)}`));
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : String(error));
  process.exit(1);
});
