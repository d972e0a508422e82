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
