// Open-loop load generator for bench/lb.ts, run inside the client pod's namespace:
// `node lb-client.mjs '<json config>'`. One request per connection: connect, read the reply,
// the server closes. Requests start on a fixed schedule whatever the answers (open loop), so a
// slow endpoint cannot slow the offered load down.
//
// Config: { endpoints: [{ ip, port }], rate, durationMs, warmupMs?, timeoutMs, strategy, weights?, arrivals? }
// Requests started in the first warmupMs feed the ticks but not the result.
// arrivals: "poisson" (exponential gaps at the mean rate: many independent clients) or "even".
// strategy: "rr" (round-robin), "wrr" (smooth weighted round-robin over `weights`),
// "lrif" (least requests in flight, ties by round-robin),
// "slots" (the kernel's `numgen inc mod S` over an interleaved weight map: slot arrays of
// endpoint indexes, from src/lb/weights.ts `interleave`, read live from stdin, one JSON array
// per line, round-robin until the first; one counter that runs on across updates, as the
// kernel's does),
// "oracle" (a reference no balancer can be: least requests in flight among the endpoints that
// are healthy *right now*, told the faults in advance by `oracle`: { never: [i…] (too slow
// for the target), stall: { index, everyMs, forMs } (the lab server's wall-clock stall
// windows, src/lab/server.mjs), failingFromMs: { index, atMs } (from start) }; an excluded
// endpoint is used only when nothing else is left).
// Every second it prints {"tick": [{ requests, errors, latencySum, inFlight } per endpoint]};
// at the end {"done": { latencies: [ms…], errors, perEndpoint }} (failed requests as -1).

import net from 'node:net';
import process from 'node:process';
import { performance } from 'node:perf_hooks';
import { clearInterval, setInterval, setTimeout } from 'node:timers';
import { leastInFlight, smoothWeighted } from './pick.mjs';

const config = JSON.parse(process.argv[2]);
const n = config.endpoints.length;
const weights = config.weights ?? new Array(n).fill(1);
const inFlight = new Array(n).fill(0);
const latencies = [];
/** The endpoint of each entry of `latencies`. */
const endpointOf = [];
const perEndpoint = new Array(n).fill(0);
const errorsPerEndpoint = new Array(n).fill(0);
let errors = 0;
let tick = fresh();
let rr = 0;
const current = new Array(n).fill(0);

function fresh() {
  return Array.from({ length: n }, () => ({ requests: 0, errors: 0, latencySum: 0 }));
}

let slots = Array.from({ length: n }, (_, i) => i);
let slotCounter = 0;
if (config.strategy === 'slots') {
  let buf = '';
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      if (line.trim()) slots = JSON.parse(line);
    }
  });
}

function choose() {
  switch (config.strategy) {
    case 'rr':
      return rr++ % n;
    case 'wrr':
      return smoothWeighted(current, weights);
    case 'lrif':
      return leastInFlight(inFlight, rr++);
    case 'oracle':
      return oracleChoice();
    case 'slots':
      return slots[slotCounter++ % slots.length];
    default:
      throw new Error(`unknown strategy ${config.strategy}`);
  }
}

function oracleChoice() {
  const o = config.oracle;
  const now = performance.now() - start;
  const bad = (i) => {
    if (o.never.includes(i)) return true;
    if (o.stall && o.stall.index === i) {
      // Stalled now, or would be before a reply queued behind what is in flight could leave.
      const at = (Date.now() + 20 * (inFlight[i] + 1)) % o.stall.everyMs;
      if (at < o.stall.forMs || (Date.now() % o.stall.everyMs) < o.stall.forMs) return true;
    }
    return o.failingFromMs !== undefined && o.failingFromMs.index === i && now >= o.failingFromMs.atMs;
  };
  return leastInFlight(inFlight, rr++, bad);
}

function request(counted) {
  const i = choose();
  const ep = config.endpoints[i];
  const t0 = performance.now();
  inFlight[i]++;
  if (counted) perEndpoint[i]++;
  let data = '';
  let done = false;
  const s = net.connect({ host: ep.ip, port: ep.port });
  const finish = (ok) => {
    if (done) return;
    done = true;
    s.destroy();
    inFlight[i]--;
    const ms = performance.now() - t0;
    tick[i].requests++;
    tick[i].latencySum += ms;
    if (!ok) tick[i].errors++;
    // Warm-up requests feed the controller (ticks) but not the figures.
    if (!counted) return;
    endpointOf.push(i);
    if (ok) latencies.push(ms);
    else {
      latencies.push(-1);
      errors++;
      errorsPerEndpoint[i]++;
    }
  };
  s.setTimeout(config.timeoutMs, () => finish(false));
  s.setEncoding('utf8');
  s.on('data', (d) => (data += d));
  s.on('error', () => finish(false));
  s.on('end', () => finish(data.length > 0));
}

const start = performance.now();
// The schedule is drawn up front (ms from start), so the offered load does not depend on how
// the endpoints answer; timers are coarse, so each pacer tick sends everything now due.
const schedule = [];
for (let t = 0, i = 0; ; i++) {
  t = config.arrivals === 'poisson' ? t - (Math.log(1 - Math.random()) * 1000) / config.rate : (i * 1000) / config.rate;
  if (t >= config.durationMs) break;
  schedule.push(t);
}
let sent = 0;
const pacer = setInterval(() => {
  const now = performance.now() - start;
  while (sent < schedule.length && schedule[sent] <= now) {
    request(schedule[sent] >= (config.warmupMs ?? 0));
    sent++;
  }
}, 2);
const ticker = setInterval(() => {
  process.stdout.write(`${JSON.stringify({ tick: tick.map((t, i) => ({ ...t, inFlight: inFlight[i] })) })}\n`);
  tick = fresh();
}, config.tickMs ?? 1000);
setTimeout(() => {
  clearInterval(pacer);
  const wait = setInterval(() => {
    if (inFlight.some((x) => x > 0) && performance.now() - start < config.durationMs + config.timeoutMs + 2000) return;
    clearInterval(wait);
    clearInterval(ticker);
    process.stdout.write(`${JSON.stringify({ done: { latencies, endpointOf, errors, perEndpoint, errorsPerEndpoint } })}\n`, () => process.exit(0));
  }, 50);
}, config.durationMs);
