// The adaptive controller against simulated endpoints. Each endpoint is a queue with a base
// service time and a concurrency: at utilisation ρ its latency is base / (1 − ρ) (saturating
// at 20 × base), so moving load onto an endpoint makes it slower — the feedback that makes a
// careless controller oscillate. Requests in flight follow Little's law.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { adaptive } from '../src/lb/index.js';

interface SimEndpoint {
  baseMs: number;
  concurrency: number;
  errorRate: number;
  /** Errors return at once (1 ms) instead of after the service time. */
  failFast?: boolean;
  /** No request completes this step (a stall); they pile up in flight. */
  stalled?: boolean;
}

const KEYS = ['e0', 'e1', 'e2', 'e3', 'e4'];

function measure(eps: readonly SimEndpoint[], state: adaptive.AdaptiveState, rate: number): Map<string, adaptive.Sample> {
  const out = new Map<string, adaptive.Sample>();
  eps.forEach((e, i) => {
    const k = KEYS[i];
    const r = rate * (state.get(k)?.share ?? 0);
    const rho = (r * e.baseMs) / 1000 / e.concurrency;
    const latency = rho >= 0.95 ? 20 * e.baseMs : e.baseMs / (1 - rho);
    if (e.stalled) {
      out.set(k, { requests: 0, errors: 0, latencyMs: 0, inFlight: r });
      return;
    }
    const mean = e.failFast ? (1 - e.errorRate) * latency + e.errorRate * 1 : latency;
    out.set(k, { requests: r, errors: r * e.errorRate, latencyMs: mean, inFlight: (r * latency) / 1000 });
  });
  return out;
}

function run(
  eps: SimEndpoint[],
  steps: number,
  opts: Partial<adaptive.AdaptiveOptions> = {},
  rate = 800,
  change?: (step: number, eps: SimEndpoint[]) => void,
): adaptive.AdaptiveState[] {
  let state = adaptive.initialState(KEYS);
  const history = [state];
  for (let s = 0; s < steps; s++) {
    change?.(s, eps);
    state = adaptive.step(state, measure(eps, state, rate), KEYS, opts);
    history.push(state);
  }
  return history;
}

const share = (st: adaptive.AdaptiveState, k: string): number => st.get(k)?.share ?? NaN;
const healthy = (): SimEndpoint => ({ baseMs: 10, concurrency: 4, errorRate: 0 });

function assertSumsToOne(history: readonly adaptive.AdaptiveState[]): void {
  for (const st of history) {
    const sum = [...st.values()].reduce((s, e) => s + e.share, 0);
    assert.ok(Math.abs(sum - 1) < 1e-9, `shares sum to ${sum}`);
  }
}

/** Largest step-to-step change of any share over the last `n` steps. */
function jitter(history: readonly adaptive.AdaptiveState[], n: number): number {
  let max = 0;
  for (let i = history.length - n; i < history.length; i++) {
    for (const k of KEYS) max = Math.max(max, Math.abs(share(history[i], k) - share(history[i - 1], k)));
  }
  return max;
}

describe('adaptive controller', () => {
  test('converges: a 5× slower endpoint loses weight, the others share it, and it settles', () => {
    const eps = [healthy(), healthy(), healthy(), healthy(), { ...healthy(), baseMs: 50 }];
    const h = run(eps, 40);
    assertSumsToOne(h);
    const end = h[h.length - 1];
    assert.ok(share(end, 'e4') < 0.08, `slow share ${share(end, 'e4')}`);
    for (const k of KEYS.slice(0, 4)) assert.ok(share(end, k) > 0.22 && share(end, k) < 0.25, `${k} ${share(end, k)}`);
    assert.ok(jitter(h, 10) < 0.005, `still moving by ${jitter(h, 10)}`);
  });

  test('errors count: an endpoint that fails 30% fast looks bad, not fast', () => {
    const eps = [healthy(), healthy(), healthy(), healthy(), { baseMs: 1, concurrency: 4, errorRate: 0.3, failFast: true }];
    const end = run(eps, 30).at(-1) as adaptive.AdaptiveState;
    assert.ok(share(end, 'e4') < 0.1, `fail-fast share ${share(end, 'e4')}`);
  });

  test('bounds: a dead endpoint keeps a trickle, a very fast one is never stampeded', () => {
    const eps = [healthy(), healthy(), healthy(), { baseMs: 10, concurrency: 4, errorRate: 1 }, { baseMs: 0.5, concurrency: 64, errorRate: 0 }];
    const h = run(eps, 40);
    for (const st of h) {
      assert.ok(share(st, 'e3') >= 0.1 / 5 - 1e-12, `dead endpoint starved: ${share(st, 'e3')}`);
      for (const k of KEYS) assert.ok(share(st, k) <= 3 / 5 + 1e-12, `${k} stampeded: ${share(st, k)}`);
    }
    // The dead one ends at the lower bound; the fast one near the upper.
    assert.ok(share(h.at(-1) as adaptive.AdaptiveState, 'e3') < 0.025);
    assert.ok(share(h.at(-1) as adaptive.AdaptiveState, 'e4') > 0.5);
  });

  test('damping: with load-dependent latency the damped controller settles where an undamped one oscillates', () => {
    // Two endpoints of half the capacity: as soon as they get more load they get slow.
    const mk = (): SimEndpoint[] => [healthy(), healthy(), healthy(), { baseMs: 10, concurrency: 2, errorRate: 0 }, { baseMs: 10, concurrency: 2, errorRate: 0 }];
    const undamped = run(mk(), 60, { smoothing: 1, gain: 1, maxStepRatio: 1e9, reversalDamping: 1, deadBand: 0, peakDecay: 0, reversion: 0 }, 1200);
    const damped = run(mk(), 60, {}, 1200);
    assertSumsToOne(damped);
    const u = jitter(undamped, 20);
    const d = jitter(damped, 20);
    assert.ok(u > 0.05, `the undamped baseline should oscillate (jitter ${u})`);
    assert.ok(d < 0.01, `damped jitter ${d}`);
  });

  test('recovery: weight returns once a slow endpoint is fast again', () => {
    const eps = [healthy(), healthy(), healthy(), healthy(), { ...healthy(), baseMs: 50 }];
    const h = run(eps, 60, {}, 800, (s, e) => {
      if (s === 30) e[4] = healthy();
    });
    assert.ok(share(h[30], 'e4') < 0.08);
    const back = h.findIndex((st, i) => i > 30 && share(st, 'e4') > 0.17);
    assert.ok(back !== -1 && back - 30 <= 15, `back to near-equal after ${back - 30} steps`);
    assert.ok(share(h.at(-1) as adaptive.AdaptiveState, 'e4') > 0.18);
  });

  test('a stall moves weight within a step, before any latency sample arrives', () => {
    const eps = [healthy(), healthy(), healthy(), healthy(), healthy()];
    const h = run(eps, 12, {}, 800, (s, e) => {
      e[4] = { ...healthy(), stalled: s >= 10 };
    });
    // Step 10 measured the stall (no completions, requests piling up in flight).
    assert.ok(share(h[10], 'e4') > 0.19);
    assert.ok(share(h[11], 'e4') < 0.15, `share after one stalled step ${share(h[11], 'e4')}`);
  });

  test('fast endpoints are not loaded until they are as slow as the bad ones (the split heads for equal requests in flight)', () => {
    // Three healthy endpoints, one 5× slower, one failing 30 % fast: equalising cost would push
    // the healthy ones until their latency matched the failing one's error-inflated cost.
    const eps = [healthy(), healthy(), healthy(), { ...healthy(), baseMs: 50 }, { baseMs: 10, concurrency: 4, errorRate: 0.3, failFast: true }];
    const end = run(eps, 60, {}, 1000).at(-1) as adaptive.AdaptiveState;
    for (const k of ['e0', 'e1', 'e2']) {
      const rho = (1000 * share(end, k) * 10) / 1000 / 4;
      assert.ok(rho < 0.78, `${k} at utilisation ${rho.toFixed(2)} (share ${share(end, k).toFixed(3)})`);
    }
    assert.ok(share(end, 'e3') < 0.1 && share(end, 'e4') < 0.15, `bad shares ${share(end, 'e3')} ${share(end, 'e4')}`);
  });

  test('reaction speed: a latency spike on every endpoint (a start-up transient) is forgotten within a few steps', () => {
    let st = adaptive.initialState(KEYS);
    const all = (ms: number): Map<string, adaptive.Sample> => new Map(KEYS.map((k) => [k, { requests: 50, errors: 0, latencyMs: ms, inFlight: 1 }]));
    st = adaptive.step(st, all(750), KEYS);
    for (let i = 0; i < 5; i++) st = adaptive.step(st, all(40), KEYS);
    for (const k of KEYS) assert.ok((st.get(k)?.latencyMs ?? Infinity) < 80, `${k} still remembers ${st.get(k)?.latencyMs} ms`);
  });

  test('a 5x slower endpoint gets far less than its capacity share: its requests, all slow, would make the tail', () => {
    // 250 requests/s; four endpoints serve 100/s in 20 ms, one 20/s in 100 ms. Equal requests in
    // flight would give it a quarter of a fast one's share (~6 %): every one of those requests
    // takes 100 ms or more, above the p99 of the rest.
    const eps = [0, 1, 2, 3].map(() => ({ baseMs: 20, concurrency: 2, errorRate: 0 }));
    const end = run([...eps, { baseMs: 100, concurrency: 2, errorRate: 0 }], 60, {}, 250).at(-1) as adaptive.AdaptiveState;
    assert.ok(share(end, 'e4') < 0.035, `the slow endpoint's share ${share(end, 'e4').toFixed(3)}`);
  });

  test('an endpoint with a fifth of the capacity is not pulled back toward an equal share into overload', () => {
    // 250 requests/s; four endpoints serve 100/s, one 20/s: a share above 8 % saturates it.
    const small = { baseMs: 100, concurrency: 2, errorRate: 0 };
    const eps = [{ baseMs: 20, concurrency: 2, errorRate: 0 }, { baseMs: 20, concurrency: 2, errorRate: 0 }, { baseMs: 20, concurrency: 2, errorRate: 0 }, { baseMs: 20, concurrency: 2, errorRate: 0 }, small];
    const h = run(eps, 60, {}, 250);
    const late = h.slice(30).map((st) => share(st, 'e4'));
    assert.ok(Math.max(...late) < 0.06, `the small endpoint reached a share of ${Math.max(...late).toFixed(3)} (${(250 * Math.max(...late)).toFixed(0)}/s of its 20/s)`);
  });

  /** Shares of e2 when it stalls one step in four (a 150 ms sample where the others take 35 ms) until `stopAt`. */
  function stalling(opts: Partial<adaptive.AdaptiveOptions>, steps: number, stopAt = Infinity): number[] {
    let st = adaptive.initialState(KEYS);
    const out: number[] = [];
    for (let i = 0; i < steps; i++) {
      const samples = new Map(KEYS.map((k) => [k, { requests: 40, errors: 0, latencyMs: k === 'e2' && i % 4 === 3 && i < stopAt ? 150 : 35, inFlight: 1 }]));
      st = adaptive.step(st, samples, KEYS, opts);
      out.push(share(st, 'e2'));
    }
    return out;
  }

  test('a stall every 2 s is remembered until the next one: the stalling endpoint stays near its lower bound in between', () => {
    // bench/lb's e2: the peak EWMA alone forgets half the excess per step, so three steps after
    // a stall the endpoint looks nearly healthy and takes its share back just before the next.
    const mean = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
    const remembered = mean(stalling({}, 60).slice(20));
    const forgotten = mean(stalling({ stallFactor: Infinity }, 60).slice(20));
    assert.ok(forgotten > 0.06, `without the stall memory the baseline should keep a share (${forgotten})`);
    assert.ok(remembered < 0.03, `mean share between stalls ${remembered.toFixed(3)}`);
  });

  test('a stalling endpoint that stops stalling earns its share back', () => {
    const h = stalling({}, 100, 40);
    assert.ok(h[39] < 0.03);
    const back = h.findIndex((x, i) => i > 40 && x > 0.17);
    assert.ok(back !== -1 && back - 40 <= 30, `back to near-equal after ${back - 40} steps`);
  });

  test('an endpoint 5x slower unloaded goes to its lower bound (its floor, not only its cost)', () => {
    // bench/lb's e1: at cost^-2 alone it kept 4 % of 250 requests/s, half its capacity, and
    // queued now and then; every one of its requests is above the others' p99.
    const eps = [0, 1, 2, 3].map(() => ({ baseMs: 20, concurrency: 2, errorRate: 0 }));
    const slow = { baseMs: 100, concurrency: 2, errorRate: 0 };
    const withFloor = run([...eps, slow], 60, {}, 250).at(-1) as adaptive.AdaptiveState;
    const costOnly = run([...eps, slow], 60, { floorExponent: 0 }, 250).at(-1) as adaptive.AdaptiveState;
    assert.ok(share(costOnly, 'e4') > 0.025, `cost alone should leave it above its bound (${share(costOnly, 'e4')})`);
    assert.ok(share(withFloor, 'e4') < 0.021, `share ${share(withFloor, 'e4')}`);
  });

  test('a floor is taken from samples without errors: endpoints that fail fast do not make the healthy ones look slow', () => {
    // Three of five fail half their requests at once (1 ms): their mean latency is half the
    // healthy ones'. Taken as floors, the fleet's floor would halve and the healthy ones would
    // look twice slower unloaded than the failing ones.
    const ff = { baseMs: 10, concurrency: 4, errorRate: 0.5, failFast: true };
    const end = run([healthy(), healthy(), ff, ff, ff], 60).at(-1) as adaptive.AdaptiveState;
    for (const k of ['e2', 'e3', 'e4']) assert.ok(share(end, k) < 0.1, `${k} (failing) ${share(end, k)}`);
    assert.ok(share(end, 'e0') > 0.35, `healthy ${share(end, 'e0')}`);
  });

  test('the error penalty shrinks as the others queue: a failing endpoint keeps load the loaded healthy ones cannot take', () => {
    // bench/lb's second half: 300 requests/s, three endpoints of 100/s, one of 20/s, one failing
    // 20 % fast. A fixed penalty of ten median latencies (which grow with the queueing) cut the
    // failing one to a ninth of a share and loaded the healthy ones to 90 % of their capacity.
    const h = { baseMs: 20, concurrency: 2, errorRate: 0 };
    const eps = (): SimEndpoint[] => [h, { baseMs: 100, concurrency: 2, errorRate: 0 }, h, { ...h, errorRate: 0.2, failFast: true }, h];
    const absorbing = run(eps(), 80, {}, 300).at(-1) as adaptive.AdaptiveState;
    const fixed = run(eps(), 80, { errorAbsorb: 0 }, 300).at(-1) as adaptive.AdaptiveState;
    const rho = (st: adaptive.AdaptiveState): number => (300 * share(st, 'e0') * 20) / 1000 / 2;
    assert.ok(share(fixed, 'e3') < 0.15 && rho(fixed) > 0.8, `baseline: failing ${share(fixed, 'e3')}, healthy at ${rho(fixed)}`);
    assert.ok(share(absorbing, 'e3') > 0.17, `failing ${share(absorbing, 'e3')}`);
    assert.ok(rho(absorbing) < 0.8, `healthy at ${rho(absorbing).toFixed(2)} of capacity`);
    // Errors still count: the failing one gets less than a healthy one.
    assert.ok(share(absorbing, 'e3') < share(absorbing, 'e0') * 0.8);
  });

  test('reversion pulls comparable endpoints together, not a slow one back up toward an equal share', () => {
    const eps = [0, 1, 2, 3].map(() => ({ baseMs: 20, concurrency: 2, errorRate: 0 }));
    const slow = { baseMs: 100, concurrency: 2, errorRate: 0 };
    const opts = { floorExponent: 0 };
    const ranged = run([...eps, slow], 60, opts, 250).at(-1) as adaptive.AdaptiveState;
    const everywhere = run([...eps, slow], 60, { ...opts, reversionRange: Infinity }, 250).at(-1) as adaptive.AdaptiveState;
    assert.ok(share(everywhere, 'e4') > 0.04, `baseline ${share(everywhere, 'e4')}`);
    assert.ok(share(ranged, 'e4') < 0.032, `share ${share(ranged, 'e4')}`);
  });

  test('queueing noise of a loaded fleet moves shares little: a small gain (a stall seen in flight keeps a fast one, above)', () => {
    // Five equal endpoints near capacity: the mean latency of 500 ms of requests swings by half
    // from step to step. Every swing followed is load moved onto an endpoint already queueing.
    let seed = 5;
    const noise = (): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return 0.5 + seed / 2 ** 31;
    };
    const spread = (opts: Partial<adaptive.AdaptiveOptions>): number => {
      seed = 5;
      let st = adaptive.initialState(KEYS);
      let worst = 0;
      for (let i = 0; i < 300; i++) {
        st = adaptive.step(st, new Map(KEYS.map((k) => [k, { requests: 40, errors: 0, latencyMs: 40 * noise(), inFlight: 3 }])), KEYS, opts);
        if (i > 50) worst = Math.max(worst, ...KEYS.map((k) => Math.abs(Math.log(share(st, k) * KEYS.length))));
      }
      return worst;
    };
    const small = spread({});
    const large = spread({ gain: 0.35 });
    assert.ok(small < large, `largest log deviation from equal ${small} (gain 0.35: ${large})`);
    assert.ok(small < Math.log(1.5), `a share strayed ${Math.exp(small).toFixed(2)}x from equal (gain 0.35: ${Math.exp(large).toFixed(2)}x)`);
  });

  test('requests in flight in proportion to a large share are not a stall: only the stalled get the fast gain', () => {
    // An endpoint with 40 % of the load holds three requests in flight where the others hold one,
    // all at 30 ms (Little's law, no stall): more than twice the mean, yet no reason to move it
    // at the stall's speed, which shifts load onto the rest whenever a big endpoint is busy.
    const keys = ['a', 'b', 'c', 'd', 'e'];
    const shares = [0.4, 0.15, 0.15, 0.15, 0.15];
    const after = (opts: Partial<adaptive.AdaptiveOptions>): number => {
      const st: adaptive.AdaptiveState = new Map(keys.map((k, i) => [k, { share: shares[i], latencyMs: 30, floorMs: 20, errorRate: 0, inFlight: 0, stepSize: Math.log(2), direction: 0 }]));
      const samples = new Map(keys.map((k, i) => [k, { requests: 40, errors: 0, latencyMs: 30, inFlight: i === 0 ? 3 : 1 }]));
      return (adaptive.step(st, samples, keys, opts).get('a') as adaptive.EndpointState).share;
    };
    assert.ok(after({ acuteInFlightPerShare: 0 }) < 0.32, `baseline ${after({ acuteInFlightPerShare: 0 })}`);
    assert.ok(after({}) > 0.34, `share after one step ${after({})}`);
  });

  test('a sample without a latency (a tick without a probe reports 0 ms) moves the error rate, not the latency memories', () => {
    // The agent (src/agent/lb-loop.ts) counts completed connections and resets from conntrack
    // every tick but measures latency only with its probe; without a probe it reports 0 ms.
    let st = adaptive.initialState(KEYS);
    const tick = (latencyMs: number, errors: number): Map<string, adaptive.Sample> => new Map(KEYS.map((k) => [k, { requests: 10, errors, latencyMs, inFlight: 1 }]));
    for (let i = 0; i < 5; i++) st = adaptive.step(st, tick(20, 0), KEYS);
    const before = st.get('e0') as adaptive.EndpointState;
    st = adaptive.step(st, tick(0, 5), KEYS);
    const after = st.get('e0') as adaptive.EndpointState;
    assert.equal(after.latencyMs, before.latencyMs);
    assert.equal(after.floorMs, before.floorMs);
    assert.ok(after.errorRate > 0.2, `error rate ${after.errorRate}`);
  });

  test('errors count before any floor is known: when every sample has some errors the median latency stands in', () => {
    // Busy endpoints behind the agent see a reset now and then in every tick (conntrack), so no
    // sample is clean and no floor is taken; the penalty must not vanish with the floor.
    const eps = [0, 1, 2, 3].map(() => ({ ...healthy(), errorRate: 0.02 }));
    const end = run([...eps, { ...healthy(), errorRate: 0.3, failFast: true }], 30).at(-1) as adaptive.AdaptiveState;
    assert.equal(end.get('e0')?.floorMs, undefined);
    assert.ok(share(end, 'e4') < 0.1, `failing share ${share(end, 'e4')}`);
  });

  test('a stall is weighed against the fleet unloaded, not against the queueing of the loaded healthy endpoints', () => {
    // The healthy endpoints swing between 25 and 60 ms with their load; e2 takes 25 ms but
    // stalls every fourth step (120 ms). Beside 60 ms its remembered stall looked 2-3x worse and
    // kept it at 5 % of the requests (bench/lb); beside the 25 ms the fleet takes unloaded it is
    // far worse.
    const run2 = (opts: Partial<adaptive.AdaptiveOptions>): number => {
      let st = adaptive.initialState(KEYS);
      let sum = 0;
      for (let i = 0; i < 60; i++) {
        const lat = (k: string): number => (k === 'e2' ? (i % 4 === 3 ? 120 : 25) : i % 2 ? 60 : 25);
        st = adaptive.step(st, new Map(KEYS.map((k) => [k, { requests: 40, errors: 0, latencyMs: lat(k), inFlight: 1 }])), KEYS, opts);
        if (i >= 20) sum += share(st, 'e2');
      }
      return sum / 40;
    };
    const loadRelative = run2({ stallWeight: 0 });
    const unloaded = run2({});
    assert.ok(loadRelative > 0.05, `baseline ${loadRelative}`);
    assert.ok(unloaded < 0.03, `mean share of the stalling endpoint ${unloaded.toFixed(3)}`);
  });

  test('endpoints that join start at an equal share; those that leave are forgotten', () => {
    let st = adaptive.initialState(['a', 'b']);
    st = adaptive.step(st, new Map(), ['a', 'b', 'c', 'd']);
    assert.deepEqual([...st.keys()], ['a', 'b', 'c', 'd']);
    assert.ok([...st.values()].every((e) => Math.abs(e.share - 0.25) < 1e-9));
    st = adaptive.step(st, new Map(), ['c']);
    assert.deepEqual([...st.keys()], ['c']);
  });

  test('noise cannot walk equal endpoints apart: noisy equal latencies keep shares near equal', () => {
    // Three equal endpoints measured with ±30 % noise on one sample per step (the agent's
    // probes on a loaded machine): without reversion the shares random-walk to the bounds.
    let seed = 11;
    const noise = (): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return 0.7 + 0.6 * (seed / 2 ** 31);
    };
    const keys = ['a', 'b', 'c'];
    const spread = (reversion: number): number => {
      let st = adaptive.initialState(keys);
      seed = 11;
      let worst = 0;
      for (let i = 0; i < 400; i++) {
        st = adaptive.step(st, new Map(keys.map((k) => [k, { requests: 1, errors: 0, latencyMs: 10 * noise(), inFlight: 0 }])), keys, { reversion });
        if (i > 100) worst = Math.max(worst, ...keys.map((k) => (st.get(k) as adaptive.EndpointState).share));
      }
      return worst;
    };
    const without = spread(0);
    const withIt = spread(adaptive.DEFAULT_ADAPTIVE.reversion);
    assert.ok(withIt < without, `reversion ${withIt} vs none ${without}`);
    assert.ok(withIt < 0.52, `an equal endpoint reached a share of ${withIt}`);
  });
});

describe('adaptive controller and errors while the fleet queues', () => {
  test('a fast-failing endpoint loses share to a healthy one at the same latency, also while the fleet queues', () => {
    // Every endpoint answers in 150 ms (7x its unloaded 20 ms: the fleet queues); e4 resets 20 %
    // of its requests at once, so the mean of its completions is 120 ms. With the error penalty
    // shrunk by the queueing, it looked faster than the healthy ones and took their share.
    let st = adaptive.initialState(KEYS);
    const tick = (ms: number): Map<string, adaptive.Sample> =>
      new Map(KEYS.map((k) => [k, k === 'e4' ? { requests: 40, errors: 8, latencyMs: 0.8 * ms + 0.2 * 1, inFlight: 3 } : { requests: 40, errors: 0, latencyMs: ms, inFlight: 3 }]));
    for (let i = 0; i < 10; i++) st = adaptive.step(st, new Map(KEYS.map((k) => [k, { requests: 40, errors: 0, latencyMs: 20, inFlight: 1 }])), KEYS);
    for (let i = 0; i < 30; i++) st = adaptive.step(st, tick(150), KEYS);
    assert.ok(share(st, 'e4') < 0.85 * share(st, 'e0'), `failing ${share(st, 'e4').toFixed(3)} vs healthy ${share(st, 'e0').toFixed(3)}`);
  });
});

/**
 * Endpoints as queues that carry their backlog from step to step (the simulated endpoints above
 * have no memory: their latency follows their share of this step). Each serves `slots` requests
 * at a time in `serviceMs`, so it completes at most slots / serviceMs per second; below that its
 * requests in flight head for what a random stream of arrivals keeps there (waiting time of an
 * M/M/2 queue), half the way per step; above it the excess waits for the next step. Latency is
 * Little's: requests in flight over completions. One step is 500 ms, the controller's default.
 */
interface QueueEndpoint {
  serviceMs: number;
  slots: number;
}

interface QueueRun {
  history: adaptive.AdaptiveState[];
  /** Per step and endpoint: requests sent per second, requests in flight, latency (ms). */
  sent: number[][];
  inFlight: number[][];
  latency: number[][];
}

function runQueues(eps: readonly QueueEndpoint[], rate: (step: number) => number, steps: number, opts: Partial<adaptive.AdaptiveOptions> = {}): QueueRun {
  const STEP_S = 0.5;
  let state = adaptive.initialState(KEYS);
  const queue = eps.map(() => 0);
  const run: QueueRun = { history: [state], sent: [], inFlight: [], latency: [] };
  for (let s = 0; s < steps; s++) {
    const samples = new Map<string, adaptive.Sample>();
    const sent: number[] = [];
    const latency: number[] = [];
    eps.forEach((e, i) => {
      const arriving = rate(s) * STEP_S * share(state, KEYS[i]);
      const capacity = ((e.slots * 1000) / e.serviceMs) * STEP_S;
      const rho = Math.min(0.98, arriving / capacity);
      const steady = ((arriving / STEP_S) * e.serviceMs * (1 + rho ** 2 / (1 - rho ** 2))) / 1000;
      const served = Math.min(capacity, Math.max(0, arriving - (steady - queue[i]) / 2));
      const before = queue[i];
      queue[i] = before + arriving - served;
      const ms = served > 0 ? Math.max(e.serviceMs, (1000 * (before + queue[i])) / 2 / (served / STEP_S)) : 0;
      samples.set(KEYS[i], { requests: served, errors: 0, latencyMs: ms, inFlight: queue[i] });
      sent.push(arriving / STEP_S);
      latency.push(ms);
    });
    state = adaptive.step(state, samples, KEYS, opts);
    run.history.push(state);
    run.sent.push(sent);
    run.inFlight.push([...queue]);
    run.latency.push(latency);
  }
  return run;
}

describe('adaptive controller near the fleet capacity', () => {
  // bench/lb at 340 requests/s: the costs keep a 5x slower and a 3x slower endpoint near their
  // lower bounds, which asks the three healthy ones for more than the 100/s each can serve;
  // their latency shows the queue only as its requests complete. 320/s here (91 % of the
  // 353/s the five can serve), after 15 s at 200/s.
  const fleet: QueueEndpoint[] = [
    { serviceMs: 20, slots: 2 },
    { serviceMs: 100, slots: 2 },
    { serviceMs: 60, slots: 2 },
    { serviceMs: 20, slots: 2 },
    { serviceMs: 20, slots: 2 },
  ];
  const ramp = (step: number): number => (step < 30 ? 200 : 320);
  const unbounded = { headroom: Infinity, probe: Infinity };
  const healthy = [0, 3, 4];
  const late = <T>(xs: readonly T[]): T[] => xs.slice(60);

  test('an endpoint whose requests in flight and latency grow with its share does not keep gaining share', () => {
    const bounded = runQueues(fleet, ramp, 160);
    const baseline = runQueues(fleet, ramp, 160, unbounded);
    const worst = (r: QueueRun, of: (step: number[]) => number[]): number => Math.max(...late(r.latency).map((_, j) => Math.max(...of(late(r.sent)[j]), 0)));
    const worstLatency = (r: QueueRun): number => Math.max(...late(r.latency).flatMap((l) => healthy.map((i) => l[i])));
    assert.ok(worst(baseline, (x) => healthy.map((i) => x[i])) > 100, 'without capacity bounds the costs should ask a healthy endpoint for more than it serves');
    assert.ok(worstLatency(baseline) > 400, `baseline healthy latency ${worstLatency(baseline).toFixed(0)} ms`);
    // The five can serve 353/s, so 320/s leaves each at some 91 % of its capacity: no more.
    assert.ok(worst(bounded, (x) => healthy.map((i) => x[i])) < 95, `a healthy endpoint was sent ${worst(bounded, (x) => healthy.map((i) => x[i])).toFixed(0)}/s of its 100/s`);
    assert.ok(worstLatency(bounded) < 200, `healthy latency reached ${worstLatency(bounded).toFixed(0)} ms`);
    assertSumsToOne(bounded.history);
  });

  test('what the healthy endpoints cannot take goes to the slower ones, and nobody is starved', () => {
    const r = runQueues(fleet, ramp, 160);
    const mean = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
    const slow = mean(late(r.sent).map((x) => x[1] + x[2]));
    assert.ok(slow > 40, `the slower endpoints took ${slow.toFixed(0)}/s`);
    // …but not more than they serve (20/s and 33/s): their queues do not grow.
    assert.ok(late(r.inFlight).every((q) => q[1] < 15 && q[2] < 15), `slow queues ${JSON.stringify(r.inFlight.at(-1)?.map((q) => q.toFixed(1)))}`);
    for (const st of r.history) for (const k of KEYS) assert.ok(share(st, k) >= 0.1 / 5 - 1e-12, `${k} starved`);
  });

  test('capacity bounds settle: no oscillation', () => {
    const r = runQueues(fleet, ramp, 160);
    assert.ok(jitter(r.history, 40) < 0.01, `shares still move by ${jitter(r.history, 40).toFixed(3)} per step`);
  });

  test('at 60 % of the capacity the costs decide: the bounds change no share', () => {
    // From a cold start the 5x slower endpoint is sent 40/s and shows its capacity (20/s), so
    // its bound clips its first steps; after that nothing is bounded.
    const bounded = runQueues(fleet, () => 200, 80).history.at(-1) as adaptive.AdaptiveState;
    const baseline = runQueues(fleet, () => 200, 80, unbounded).history.at(-1) as adaptive.AdaptiveState;
    for (const k of KEYS) assert.ok(Math.abs(share(bounded, k) - share(baseline, k)) < 0.002, `${k}: ${share(bounded, k)} vs ${share(baseline, k)}`);
  });

  test('a stall says nothing of capacity: a stalling endpoint at a small share gets no capacity from its backlog', () => {
    // A stall that starts late in one step and holds the next: requests in flight at both ends
    // of the stalled step and a latency many times the floor, but next to no completions.
    let st = adaptive.initialState(KEYS);
    for (let i = 0; i < 40; i++) {
      const stalled = i % 4 === 3;
      st = adaptive.step(
        st,
        new Map(KEYS.map((k) => [k, k === 'e2' ? { requests: stalled ? 1 : 20, errors: 0, latencyMs: stalled ? 400 : 22, inFlight: stalled || i % 4 === 2 ? 8 : 1 } : { requests: 40, errors: 0, latencyMs: 22, inFlight: 1 }])),
        KEYS,
      );
      assert.equal(st.get('e2')?.capacity, undefined, `step ${i}: capacity ${st.get('e2')?.capacity}`);
    }
  });
});
