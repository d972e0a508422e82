// The adaptive weight controller: pure and stepwise. Each step takes what was measured per
// endpoint during the last interval (requests, errors, mean latency, requests in flight now)
// and returns new shares. The caller turns shares into kernel weights (computeWeights with
// the shares as adaptive factors) and applies them as element updates.
//
// Cost of an endpoint = (smoothed latency + smoothed error rate × error penalty)
//                       × (1 + requests in flight / (mean in flight + 1))
// and its target share ∝ cost^-2. The error penalty is at least ten times the fleet's median
// latency, so a backend that fails fast looks *slow*, never fast. Requests in flight react
// within one step to a stall (completions, and so latency samples, arrive only after it).
//
// Guards, so that moving weight cannot itself cause harm:
//  - bounds: every share stays within [minFactor / N, maxFactor / N] (default 0.1× and 3× an
//    equal share): a failing endpoint keeps a trickle that measures its recovery, and no
//    endpoint is stampeded with the whole load;
//  - damping: measurements are EWMA-smoothed, a step moves only `gain` of the way to the
//    target, at most ×`maxStepRatio` or ÷`maxStepRatio` per step, and changes smaller than
//    the dead band are not made at all (no churn of kernel elements from noise);
//  - stale data: an endpoint with no completed request in a step keeps its smoothed values.

export interface Sample {
  /** Requests (connections) completed in the interval. */
  readonly requests: number;
  readonly errors: number;
  /** Mean latency of the completed requests, in ms (errors included). */
  readonly latencyMs: number;
  /** Requests in flight at the end of the interval. */
  readonly inFlight: number;
}

export interface EndpointState {
  /** Share of new connections, all shares summing to 1. */
  readonly share: number;
  readonly latencyMs?: number;
  readonly errorRate: number;
  readonly inFlight: number;
}

export type AdaptiveState = ReadonlyMap<string, EndpointState>;

export interface AdaptiveOptions {
  /** EWMA weight of a new sample (0–1]. */
  readonly smoothing: number;
  /** Fraction of the way to the target moved per step. */
  readonly gain: number;
  /** A share changes at most by this factor per step. */
  readonly maxStepRatio: number;
  /** Bounds as multiples of an equal share. */
  readonly minFactor: number;
  readonly maxFactor: number;
  /** Relative change below which a share is left alone. */
  readonly deadBand: number;
  /** Floor of the latency an error costs, in ms. */
  readonly errorPenaltyMs: number;
  /** Exponent of the cost in the target share. */
  readonly sharpness: number;
}

export const DEFAULT_ADAPTIVE: AdaptiveOptions = {
  smoothing: 0.4,
  gain: 0.5,
  maxStepRatio: 2,
  minFactor: 0.1,
  maxFactor: 3,
  deadBand: 0.05,
  errorPenaltyMs: 100,
  sharpness: 2,
};

/** Equal shares for a new set of endpoints. */
export function initialState(keys: readonly string[]): AdaptiveState {
  return new Map(keys.map((k) => [k, { share: 1 / keys.length, errorRate: 0, inFlight: 0 }]));
}

function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  if (s.length === 0) return 0;
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/**
 * Clamp shares into [lo, hi] and renormalise to sum 1 (water-filling: endpoints pinned at a
 * bound stay there while the others share what is left).
 */
export function clampShares(shares: ReadonlyMap<string, number>, lo: number, hi: number): Map<string, number> {
  const out = new Map(shares);
  const pinned = new Set<string>();
  for (let round = 0; round < shares.size + 1; round++) {
    const free = [...out.keys()].filter((k) => !pinned.has(k));
    const pinnedSum = [...pinned].reduce((s, k) => s + (out.get(k) ?? 0), 0);
    const freeSum = free.reduce((s, k) => s + (out.get(k) ?? 0), 0);
    const room = 1 - pinnedSum;
    if (free.length === 0) break;
    for (const k of free) out.set(k, freeSum > 0 ? ((out.get(k) ?? 0) / freeSum) * room : room / free.length);
    let changed = false;
    for (const k of free) {
      const v = out.get(k) ?? 0;
      if (v < lo) { out.set(k, lo); pinned.add(k); changed = true; }
      else if (v > hi) { out.set(k, hi); pinned.add(k); changed = true; }
    }
    if (!changed) break;
  }
  return out;
}

export function step(
  state: AdaptiveState,
  samples: ReadonlyMap<string, Sample>,
  keys: readonly string[],
  options: Partial<AdaptiveOptions> = {},
): AdaptiveState {
  const o = { ...DEFAULT_ADAPTIVE, ...options };
  const n = keys.length;
  if (n === 0) return new Map();
  // Endpoints come and go: new ones start at an equal share, gone ones are forgotten.
  const prev = new Map<string, EndpointState>();
  for (const k of keys) prev.set(k, state.get(k) ?? { share: 1 / n, errorRate: 0, inFlight: 0 });

  // 1. Smoothed measurements.
  const smoothed = new Map<string, EndpointState>();
  for (const k of keys) {
    const p = prev.get(k) as EndpointState;
    const s = samples.get(k);
    if (!s || s.requests <= 0) {
      smoothed.set(k, { ...p, inFlight: s ? s.inFlight : p.inFlight });
      continue;
    }
    const errorRate = Math.min(1, Math.max(0, s.errors / s.requests));
    const a = o.smoothing;
    smoothed.set(k, {
      share: p.share,
      latencyMs: p.latencyMs === undefined ? s.latencyMs : a * s.latencyMs + (1 - a) * p.latencyMs,
      errorRate: a * errorRate + (1 - a) * p.errorRate,
      inFlight: s.inFlight,
    });
  }

  // 2. Cost and target shares. Endpoints never measured take the fleet's median latency.
  const measured = [...smoothed.values()].flatMap((e) => (e.latencyMs !== undefined ? [e.latencyMs] : []));
  if (measured.length === 0) return smoothed;
  const med = median(measured);
  const penalty = Math.max(o.errorPenaltyMs, 10 * med);
  const meanInFlight = [...smoothed.values()].reduce((s, e) => s + e.inFlight, 0) / n;
  const inv = new Map<string, number>();
  for (const k of keys) {
    const e = smoothed.get(k) as EndpointState;
    const latency = Math.max(e.latencyMs ?? med, 0.01);
    const cost = (latency + e.errorRate * penalty) * (1 + e.inFlight / (meanInFlight + 1));
    inv.set(k, Math.pow(cost, -o.sharpness));
  }
  const lo = o.minFactor / n;
  const hi = Math.min(1, o.maxFactor / n);
  const target = clampShares(inv, lo, hi);

  // 3. Damped move toward the target.
  const moved = new Map<string, number>();
  for (const k of keys) {
    const cur = (smoothed.get(k) as EndpointState).share;
    const t = target.get(k) ?? cur;
    if (Math.abs(t - cur) < o.deadBand * cur) {
      moved.set(k, cur);
      continue;
    }
    const next = cur + o.gain * (t - cur);
    moved.set(k, Math.min(cur * o.maxStepRatio, Math.max(cur / o.maxStepRatio, next)));
  }
  const bounded = clampShares(moved, lo, hi);
  const out = new Map<string, EndpointState>();
  for (const k of keys) out.set(k, { ...(smoothed.get(k) as EndpointState), share: bounded.get(k) ?? 1 / n });
  return out;
}

/** Shares as adaptive factors for computeWeights (relative to an equal share). */
export function factors(state: AdaptiveState): Map<string, number> {
  const n = state.size;
  return new Map([...state].map(([k, e]) => [k, e.share * n]));
}
