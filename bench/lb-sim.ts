// bench/lb-sim — a MODEL of the bench/lb scenario, not a measurement: a discrete-event
// simulation of the same five endpoints, load and strategies, in simulated time, without root
// or network namespaces, in a second or two. It is for iterating on the adaptive controller
// (src/lb/adaptive.ts) before spending a real, quiet bench/lb run; its figures say what the
// model predicts, and only bench/lb says what happens.
//   npx tsx bench/lb-sim.ts [--rate 250] [--seconds 12] [--warmup 4] [--rounds 3] [--seed 1]
//                           [--options '{"peakDecay":0.5}'] [--only adaptive]
//
// What is modelled, after src/lab/server.mjs and bench/lb-client.mjs: Poisson arrivals, one
// request per connection; each endpoint serves `concurrency` requests at a time for its
// service time and queues the rest in order; e2's replies are held while their end falls in
// the first 400 ms of every 2 s wall-clock window (the window's phase is random per round);
// e3 resets 20 % of connections at once from half-way; a server slot is held for the service
// time plus an exponential timer lateness (JITTER_MS), and the client sees the reply a fixed
// OVERHEAD_MS (connect, close) later — outside the slot, as src/lab/server.mjs takes its slot
// when the connection is accepted and frees it when its timer ends. The controller is stepped every tick with
// the same samples bench/lb gives it (completed requests, errors, mean latency, requests in
// flight at the tick) and its shares become weights by computeWeights, laid out in the kernel's
// interleaved slots (`interleave`, taken in turn as `numgen inc` does; `adaptive-random`: a
// weighted random choice, as `numgen random` would). What is not: the kernel, scheduling delays of a loaded 2-core machine, TCP.
//
// How far to trust it (2026-12-01, against quiet bench/lb runs of 3 rounds): weighted
// round-robin and least-requests-in-flight, whose endpoints run at 60 % of their capacity or
// less, come out within a point of the real figures. Until 2026-12-01 10:30 the model also held a
// server slot for the client's overhead (1.5 ms on 20 ms): a healthy endpoint served 93/s, not
// the lab's ~100/s, and where endpoints run near 80 % (adaptive, the oracle) it queued more
// than the lab and came out 8 to 19 points low on within-target. With the overhead outside the
// slot it agrees with the lab where it was checked: 250 req/s, adaptive 79.0 % within target
// (lab 78–83 %); 340 req/s (one real round of 16 s), WRR 69.6 % (70.4 %), least-in-flight
// 88.1 % (88.7 %), adaptive 26.0 % with p99 1.4 s (25.3 %, 1.0 s) and the same split of its
// requests (the controller before its capacity bounds, which the model then led to). The oracle stays some 10 points under the lab at 250 req/s (74.9 % vs 83–89 %).
// With the interleaved slots (2026-12-01 13:00) it predicted adaptive at 92.3 % within target
// at 250 req/s and 79.5 % at 340 (5 rounds); the lab gave 93.5 % and 78.9 % (3 rounds each).
// Before that correction it ranked the controller changes right except one: it said that
// counting stalls against the fleet's unloaded latency (stallWeight) would overload the healthy
// endpoints; the lab, which has more headroom there, gained on both p99 and within target. A
// change the model likes is worth a real run; one it dislikes only by a few points may still be.

import { parseArgs } from 'node:util';
import { adaptive, computeWeights, EQUAL, interleave, type Endpoint } from '../src/lb/index.js';
import { rng } from '../src/synthetic/random.js';
import { leastInFlight, smoothWeighted } from './pick.mjs';

const { values } = parseArgs({
  options: {
    rate: { type: 'string', default: '250' },
    seconds: { type: 'string', default: '12' },
    warmup: { type: 'string', default: '4' },
    'tick-ms': { type: 'string', default: '500' },
    rounds: { type: 'string', default: '3' },
    seed: { type: 'string', default: '1' },
    options: { type: 'string', default: '{}' },
    only: { type: 'string' },
    /** A fixed weighted random split, JSON [[e0..e4] before half-way, [e0..e4] after]: strategy "fixed". */
    fixed: { type: 'string' },
    /** Print the adaptive state every tick of the first round (to stderr). */
    trace: { type: 'boolean', default: false },
  },
});
const RATE = Number(values.rate);
const SECONDS = Number(values.seconds);
const WARMUP = Number(values.warmup);
const TICK_MS = Number(values['tick-ms']);
const ROUNDS = Math.max(1, Number(values.rounds));
const OPTIONS = JSON.parse(values.options) as Partial<adaptive.AdaptiveOptions>;
const TARGET_MS = 60;
const OVERHEAD_MS = 1;
const JITTER_MS = 0.5;
const NAMES = ['e0', 'e1', 'e2', 'e3', 'e4'];
const STALL = { index: 2, everyMs: 2000, forMs: 400 };
const SERVICE = [20, 100, 20, 20, 20];
const SLOTS = 2;
const FAILING = { index: 3, errorRate: 0.2 };
const WRR_WEIGHTS = [5, 1, 5, 5, 5];

/** adaptive-random: the controller's weights by weighted random (`numgen random`), for comparison. */
type Strategy = 'wrr' | 'lrif' | 'adaptive' | 'adaptive-random' | 'oracle' | 'fixed';
const FIXED = values.fixed ? (JSON.parse(values.fixed) as number[][]) : undefined;

/** A binary heap of completion times. */
class Heap<T> {
  private readonly items: { at: number; v: T }[] = [];
  get size(): number {
    return this.items.length;
  }
  peek(): number {
    return this.items[0]?.at ?? Infinity;
  }
  push(at: number, v: T): void {
    const a = this.items;
    a.push({ at, v });
    for (let i = a.length - 1; i > 0; ) {
      const p = (i - 1) >> 1;
      if (a[p].at <= a[i].at) break;
      [a[p], a[i]] = [a[i], a[p]];
      i = p;
    }
  }
  pop(): T {
    const a = this.items;
    const top = a[0];
    const last = a.pop() as { at: number; v: T };
    if (a.length > 0) {
      a[0] = last;
      for (let i = 0; ; ) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && a[l].at < a[m].at) m = l;
        if (r < a.length && a[r].at < a[m].at) m = r;
        if (m === i) break;
        [a[m], a[i]] = [a[i], a[m]];
        i = m;
      }
    }
    return top.v;
  }
}

interface Result {
  /** Latency per counted request, -1 for a failure. */
  latencies: number[];
  endpointOf: number[];
  perEndpoint: number[];
  errors: number;
}

interface Req {
  i: number;
  t0: number;
  counted: boolean;
}

function simulate(strategy: Strategy, seed: number): Result {
  const random = rng(seed);
  const endMs = (WARMUP + SECONDS) * 1000;
  const failFrom = (WARMUP + SECONDS / 2) * 1000;
  const phase = random() * STALL.everyMs;
  const n = NAMES.length;
  const keys = NAMES.map((k) => `${k}:8080`);
  const endpoints: Endpoint[] = keys.map((key, i) => ({ key, ip: `10.0.0.${i + 1}`, port: 8080, labels: {} }));
  let state = adaptive.initialState(keys);
  let weights = new Array(n).fill(1) as number[];
  const inFlight = new Array(n).fill(0) as number[];
  const active = new Array(n).fill(0) as number[];
  const waiting: Req[][] = NAMES.map(() => []);
  /** Events: a slot freed (`served`, the reply then on its way) or a reply at the client. */
  const done = new Heap<Req & { ok: boolean; served?: boolean }>();
  const current = new Array(n).fill(0) as number[];
  let rr = 0;
  /** Adaptive: the kernel's interleaved slots (`numgen inc mod 100`) and its one counter. */
  let slots = keys.map((_, i) => i);
  let slotCounter = 0;
  let tick = NAMES.map(() => ({ requests: 0, errors: 0, latencySum: 0 }));
  const out: Result = { latencies: [], endpointOf: [], perEndpoint: new Array(n).fill(0), errors: 0 };

  const stalled = (t: number): boolean => (t + phase) % STALL.everyMs < STALL.forMs;
  const choose = (now: number): number => {
    if (strategy === 'wrr') return smoothWeighted(current, WRR_WEIGHTS);
    if (strategy === 'lrif' || strategy === 'oracle') {
      const bad = (i: number): boolean =>
        strategy === 'oracle' && (i === 1 || (i === STALL.index && (stalled(now + 20 * (inFlight[i] + 1)) || stalled(now))) || (i === FAILING.index && now >= failFrom));
      return leastInFlight(inFlight, rr++, bad);
    }
    if (strategy === 'adaptive') return slots[slotCounter++ % slots.length];
    if (strategy === 'fixed' && FIXED) weights = now >= failFrom ? FIXED[1] : FIXED[0];
    const total = weights.reduce((a, b) => a + b, 0);
    let x = random() * total;
    for (let i = 0; i < n; i++) {
      x -= weights[i];
      if (x < 0) return i;
    }
    return n - 1;
  };
  // A request entering service: its reply leaves after the service time, or when the stall
  // window its end falls in is over (src/lab/server.mjs, waitMs).
  const serve = (r: Req, now: number): void => {
    active[r.i]++;
    let ms = SERVICE[r.i];
    if (r.i === STALL.index) {
      const at = (now + ms + phase) % STALL.everyMs;
      if (at < STALL.forMs) ms += STALL.forMs - at;
    }
    done.push(now + ms - Math.log(1 - random()) * JITTER_MS, { ...r, ok: true, served: true });
  };
  const finish = (r: Req & { ok: boolean }, now: number): void => {
    inFlight[r.i]--;
    const ms = now - r.t0;
    tick[r.i].requests++;
    tick[r.i].latencySum += ms;
    if (!r.ok) tick[r.i].errors++;
    if (!r.counted) return;
    out.endpointOf.push(r.i);
    out.latencies.push(r.ok ? ms : -1);
    if (!r.ok) out.errors++;
  };

  let nextArrival = -Math.log(1 - random()) * (1000 / RATE);
  let nextTick = TICK_MS;
  for (;;) {
    const tDone = done.peek();
    const now = Math.min(tDone, nextArrival < endMs ? nextArrival : Infinity, nextTick < endMs ? nextTick : Infinity);
    if (now === Infinity) break;
    if (now === tDone) {
      const r = done.pop();
      if (r.served) {
        active[r.i]--;
        const next = waiting[r.i].shift();
        if (next) serve(next, now);
        done.push(now + OVERHEAD_MS, { ...r, served: false });
      } else finish(r, now);
    } else if (now === nextArrival) {
      nextArrival += -Math.log(1 - random()) * (1000 / RATE);
      const i = choose(now);
      const r: Req = { i, t0: now, counted: now >= WARMUP * 1000 };
      inFlight[i]++;
      if (r.counted) out.perEndpoint[i]++;
      if (i === FAILING.index && now >= failFrom && random() < FAILING.errorRate) done.push(now + OVERHEAD_MS, { ...r, ok: false });
      else if (active[i] < SLOTS) serve(r, now);
      else waiting[i].push(r);
    } else {
      nextTick += TICK_MS;
      if (strategy === 'adaptive' || strategy === 'adaptive-random') {
        const samples = new Map<string, adaptive.Sample>();
        tick.forEach((t, k) => samples.set(keys[k], { requests: t.requests, errors: t.errors, latencyMs: t.requests > 0 ? t.latencySum / t.requests : 0, inFlight: inFlight[k] }));
        state = adaptive.step(state, samples, keys, { intervalMs: TICK_MS, ...OPTIONS });
        const w = computeWeights({ endpoints, config: { ...EQUAL, mode: 'adaptive' }, adaptive: adaptive.factors(state) });
        weights = keys.map((k) => w.weights.get(k) ?? 0);
        slots = (interleave(w.weights) ?? keys).map((k) => keys.indexOf(k));
        if (values.trace && seed % 1000 === 0) {
          const cell = (k: string, i: number): string => {
            const e = state.get(k) as adaptive.EndpointState;
            return `${(100 * e.share).toFixed(0).padStart(3)}% ${(e.latencyMs ?? 0).toFixed(0).padStart(4)}+${(e.stallMs ?? 0).toFixed(0).padStart(3)}ms e${(100 * e.errorRate).toFixed(0).padStart(2)} if${String(inFlight[i]).padStart(2)} c${e.capacity === undefined ? '  -' : e.capacity.toFixed(0).padStart(3)}`;
          };
          console.error(`${(now / 1000).toFixed(1).padStart(5)} ${keys.map(cell).join(' | ')}`);
        }
      }
      tick = NAMES.map(() => ({ requests: 0, errors: 0, latencySum: 0 }));
    }
  }
  return out;
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}

const strategies: Strategy[] = values.only ? (values.only.split(',') as Strategy[]) : ['wrr', 'lrif', 'adaptive', 'oracle', ...(FIXED ? (['fixed'] as const) : [])];
if (!strategies.includes('wrr')) strategies.unshift('wrr');
const pooled = new Map<Strategy, Result>();
for (const s of strategies) {
  const p: Result = { latencies: [], endpointOf: [], perEndpoint: new Array(NAMES.length).fill(0), errors: 0 };
  for (let round = 0; round < ROUNDS; round++) {
    const r = simulate(s, Number(values.seed) * 1000 + round);
    p.latencies.push(...r.latencies);
    p.endpointOf.push(...r.endpointOf);
    r.perEndpoint.forEach((x, k) => (p.perEndpoint[k] += x));
    p.errors += r.errors;
  }
  pooled.set(s, p);
}
const within = (r: Result): number => r.latencies.filter((x) => x >= 0 && x <= TARGET_MS).length / r.latencies.length;
const p99 = (r: Result): number => percentile(r.latencies.filter((x) => x >= 0).sort((a, b) => a - b), 0.99);
const wrr = pooled.get('wrr') as Result;
console.log(`bench/lb-sim: a MODEL of bench/lb (simulated time, not a measurement), ${RATE} req/s for ${WARMUP} + ${SECONDS} s x ${ROUNDS} round(s); adaptive options ${JSON.stringify(OPTIONS)}`);
console.log('| strategy | p50 | p99 | errors | within target | vs WRR | p99 cut | requests e0..e4 | per endpoint p50 / within target / requests slower than half the p99 of WRR |');
const half = p99(wrr) / 2;
for (const [s, r] of pooled) {
  const ok = r.latencies.filter((x) => x >= 0).sort((a, b) => a - b);
  const cells = NAMES.map((_, k) => {
    const mine = r.latencies.filter((_, j) => r.endpointOf[j] === k);
    const okMine = mine.filter((x) => x >= 0).sort((a, b) => a - b);
    return `${percentile(okMine, 0.5).toFixed(0)}/${mine.length ? ((100 * okMine.filter((x) => x <= TARGET_MS).length) / mine.length).toFixed(0) : '-'}%/${okMine.filter((x) => x > half).length}`;
  });
  console.log(
    `| ${s} | ${percentile(ok, 0.5).toFixed(1)} | ${p99(r).toFixed(1)} | ${((100 * r.errors) / r.latencies.length).toFixed(1)} % | ${(100 * within(r)).toFixed(1)} % | ${s === 'wrr' ? '' : `${(((within(r) - within(wrr)) / within(wrr)) * 100).toFixed(1)} %`} | ${s === 'wrr' ? '' : `${(p99(wrr) / p99(r)).toFixed(2)}x`} | ${r.perEndpoint.join(' / ')} | ${cells.join(' ')} |`,
  );
}
