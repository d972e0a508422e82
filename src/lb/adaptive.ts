// The adaptive weight controller: pure and stepwise. Each step takes what was measured per
// endpoint during the last interval (requests, errors, mean latency, requests in flight now)
// and returns new shares. The caller turns shares into kernel weights (computeWeights with
// the shares as adaptive factors) and applies them as element updates.
//
// Cost of an endpoint = (smoothed latency / (1 − error rate) + stall memory
//                        + smoothed error rate × error penalty)
//                       × (1 + max(0, in flight − 2 × mean in flight) / (mean in flight + 1)).
// An error costs 10 × the fleet's unloaded latency (the median of the endpoints' floors, the
// lowest latency each showed in a step without errors; at least errorPenaltyMs) while the
// others are idle, so a backend that fails fast looks *slow*, never fast; that shrinks as
// (floor / median latency)² while the others queue, when moving a failing endpoint's load onto
// them costs more than its errors. Its latency is that of its successes (the mean ÷ (1 − error
// rate)): fast failures must not make it look fast. Requests in flight react within one step
// to a stall (completions, and so latency samples, arrive only after it).
//
// Each endpoint heads for a share inversely proportional to its cost squared, and to the square
// of how much slower than the fleet's its floor (plus 0.3 of its stall memory: stalls are not
// load, so they are weighed against the fleet unloaded) is (bounded above: what an endpoint at its
// upper bound cannot take goes to the others in proportion): each step multiplies its share by
// exp(gain × ln(target / share)). With cost ≈ latency that is the split where every endpoint
// holds the same number of requests in flight (Little's law), the fixed point of
// least-requests-in-flight; a slow, stalling or failing endpoint heads for a small share (and
// the lower bound when its cost is far above the others'). The rule before, "equalise cost",
// loaded the fast endpoints until they were as slow as the bad ones' floor.
//
// Chosen on bench/lb's model (bench/lb-sim) and checked on bench/lb: the endpoints that matter
// most are the healthy ones running at 80 % of their capacity, whose latency over 500 ms swings
// by half from step to step. Every swing followed moves load onto an endpoint that is
// queueing, so the gain is small (0.1); a stall seen in flight, which is a fact and not noise,
// moves at 0.35.
//
// Capacity. Costs say where a request is best served, not how many an endpoint can take: near
// the fleet's capacity (bench/lb at 340 requests/s, 85 % of it) the costs kept the slow and the
// stalling endpoints at their floors and so asked the healthy ones for more than they can serve;
// their latency, which shows a queue only when its requests complete, told the controller
// seconds late, and load swung from one queue to the next (25 % within target where weighted
// round-robin served 70 %). So an endpoint that showed its capacity — requests waiting for it
// through a whole step (in flight at both ends, well above its busy slots, and its completions'
// latency a multiple of its own unloaded latency) while it completed at the most it ever did —
// is sent at most `headroom` (0.85) of that capacity, less what drains its backlog within
// drainMs; one of unknown capacity at most `probe` (2) × the most it ever completed (slow
// start: what the others cannot take is not dumped on an endpoint that may be as full). The
// rest goes to the others in proportion, the slow and stalling ones included, and when every
// endpoint is at its bound the bounds grow together: the split follows capacity, as weighted
// round-robin's does. At 60 % of the fleet's capacity no bound holds and nothing changes; a
// known capacity creeps up between saturations, so an endpoint that got faster is offered more.
//
// Guards, so that moving weight cannot itself cause harm:
//  - bounds: every share stays within [minFactor / N, maxFactor / N] (default 0.1× and 3× an
//    equal share): a failing endpoint keeps a trickle that measures its recovery, and no
//    endpoint is stampeded with the whole load; below that upper bound, an endpoint of known
//    capacity gets no more than its capacity bound (above) — at once, not damped: a queue is a
//    fact, not noise;
//  - damping: error rates are EWMA-smoothed, latency is a peak EWMA (up at once, down by
//    `peakDecay` (half the excess) per step, so a transient that hit every endpoint is
//    forgotten within a few steps), and a stall (a sample several times the endpoint's memory
//    and the fleet's floor) leaves a memory that fades by 15 % per step: a stall every 2 s is
//    still remembered at the next one, and an endpoint that stops stalling earns its share back
//    within some 10–15 s; a share changes by at most its own step size per step, which halves
//    every time the direction of change reverses and grows again (×1.5, up to ×maxStepRatio)
//    while it does not — so an endpoint whose latency swings with its load settles instead of
//    oscillating, whatever the slope of that swing; targets within the dead band of the share
//    leave it alone (no churn of kernel elements from noise);
//  - reversion: every share whose target is within reversionRange of an equal share moves a
//    little toward an equal share each step, so noise cannot walk equal endpoints apart; an
//    endpoint the costs put far below is not pulled back up toward a share it cannot take;
//  - stale data: an endpoint with no completed request in a step keeps its smoothed values,
//    its floor and its stall memory as they were.

export interface Sample {
  /** Requests (connections) completed in the interval. */
  readonly requests: number;
  readonly errors: number;
  /**
   * Mean latency of the completed requests, in ms (errors included); 0 when nothing measured a
   * latency in the interval (then only the error rate and requests in flight are taken).
   */
  readonly latencyMs: number;
  /** Requests in flight at the end of the interval. */
  readonly inFlight: number;
}

export interface EndpointState {
  /** Share of new connections, all shares summing to 1. */
  readonly share: number;
  readonly latencyMs?: number;
  /** Remembered excess of intermittent stalls (ms), added to the latency in the cost. */
  readonly stallMs?: number;
  /** Lowest latency seen, rising slowly: what the endpoint takes unloaded. */
  readonly floorMs?: number;
  /**
   * Lowest latency seen in a step without errors, rising by minRise per step: its own time
   * without a queue, for telling queueing from service. The floor rises by a fiftieth of the gap
   * per step, and after a minute near capacity it was the queued latency itself.
   */
  readonly minMs?: number;
  readonly errorRate: number;
  readonly inFlight: number;
  /** The most requests per second (errors included) it completed in a step, slowly forgotten. */
  readonly peakRate?: number;
  /**
   * Requests per second it can complete: its peakRate when it last had requests waiting through
   * a whole step while completing at that rate (saturated), rising by capacityRise per step
   * since; undefined until then. Errors are counted as they come, so a share of fast failures
   * raises it as much as they take no service time.
   */
  readonly capacity?: number;
  /** Requests sent to it per second (completed + change of in flight), smoothed. */
  readonly arrivals?: number;
  /** Current largest change of ln(share) per step. */
  readonly stepSize: number;
  /** Direction of the last change: -1, 0 or 1. */
  readonly direction: number;
}

export type AdaptiveState = ReadonlyMap<string, EndpointState>;

export interface AdaptiveOptions {
  /** EWMA weight of a new sample (0–1]. */
  readonly smoothing: number;
  /** Fraction of ln(c̄ / cost) applied per step. */
  readonly gain: number;
  /**
   * The gain of an endpoint whose requests in flight show a stall now (more than twice the
   * fleet's mean): that is a fact of this step, not noise, and waiting costs every request sent
   * meanwhile.
   */
  readonly acuteGain: number;
  /**
   * Requests in flight per unit of share (Little: ∝ the latency of what is still waiting) above
   * which, times the fleet's median, excess requests in flight count as a stall for acuteGain.
   * Twice the mean in flight alone is common queueing noise of a loaded endpoint with a large
   * share; a stalled one holds many times its share's worth.
   */
  readonly acuteInFlightPerShare: number;
  /** Largest change factor of a share per step. */
  readonly maxStepRatio: number;
  /** Smallest step size (as a factor) that reversals can shrink to. */
  readonly minStepRatio: number;
  /** Factor applied to the step size when the direction reverses (1 = no damping). */
  readonly reversalDamping: number;
  /** Bounds as multiples of an equal share. */
  readonly minFactor: number;
  readonly maxFactor: number;
  /** Relative cost difference from the average below which a share is left alone. */
  readonly deadBand: number;
  /** Floor of the latency an error costs, in ms. */
  readonly errorPenaltyMs: number;
  /**
   * How the error penalty shrinks as the fleet queues: it is 10 × the fleet's unloaded latency
   * (median of the floors) × (floor / median latency)^errorAbsorb. With the others idle an
   * error costs ten unloaded requests; with them queueing, moving a failing endpoint's load onto
   * them costs more than its errors (bench/lb: with ten median latencies per error, which grow
   * with the queueing, a 20 %-failing endpoint was cut hard and the two healthy ones took 62 %
   * of the requests, their p50 21 → 32 ms).
   */
  readonly errorAbsorb: number;
  /** Fraction of the way from the floor to a higher sample taken per step. */
  readonly floorRise: number;
  /**
   * Peak latency memory (Finagle's and Linkerd's "peak EWMA"): a sample above the smoothed
   * latency is taken at once, one below pulls it down by this fraction per step. An endpoint
   * that stalls now and then stays expensive between its stalls instead of looking healthy
   * again one step later. 0: a plain EWMA with `smoothing`.
   */
  readonly peakDecay: number;
  /**
   * Stall memory: a sample more than `stallFactor` × the endpoint's remembered latency (a
   * stall, not a steady slowness nor its healing) leaves its excess in `stallMs`, of which
   * `stallDecay` is forgotten per step. The peak EWMA forgets half its excess per step: a
   * stall every 2 s (4 steps) was down to a sixteenth at the next one, and e2 of bench/lb kept
   * 12 % of the requests, a third of them outside the target. Infinity: no stall memory.
   */
  readonly stallFactor: number;
  readonly stallDecay: number;
  /**
   * Part of the stall memory counted as unloaded slowness beside the floor (for floorExponent):
   * a stall is not load, so it is compared with the fleet's unloaded latency, not with the
   * queueing latency of the loaded healthy endpoints, beside which a 400 ms stall every 2 s
   * looked only 2–3× worse (bench/lb: e2 kept 5.4 % of the requests, and the ones each stall
   * held made much of the p99, 201 ms; with 0.3, 3.1–3.3 % — p99 132 ms in one quiet run and
   * 322 ms in the next, where the healthy endpoints near capacity queued: the tail there
   * varies from run to run by more than this setting moves it). A stall every few steps delays
   * some 0.2–0.3 of the requests sent; 0.3.
   */
  readonly stallWeight: number;
  /**
   * Fraction of the (log) way back to an equal share taken by every endpoint per step, beside
   * its cost move: without it, noise that crosses the dead band walks the shares of equal
   * endpoints apart (a random walk has no way home). A truly slower endpoint settles a little
   * nearer an equal share than its cost alone would put it.
   */
  readonly reversion: number;
  /**
   * Reversion applies to an endpoint whose target is within this factor of an equal share.
   * bench/lb-sim: pulled toward 20 %, the stalling e2 kept 6 % where its cost asked for 2 %, and
   * its stalls made the tail; without reversion for the healthy ones, their shares wandered by
   * a third and each excursion queued one of them.
   */
  readonly reversionRange: number;
  /**
   * Targets are proportional to cost^-costExponent. 1: equal requests in flight (Little's law),
   * which still gives an endpoint 4× slower than a loaded fast one a quarter of its share — as
   * much as a 5× slower one's capacity allows, so it queues, and its requests (all slow) make
   * the tail; 2: a sixteenth, and a fast endpoint whose latency grows by 20 % under load loses
   * a third of its pull, which keeps it out of deep queueing.
   */
  readonly costExponent: number;
  /**
   * An endpoint whose unloaded latency (its floor) is k × the fleet's (the median floor) has its
   * pull divided by k^floorExponent besides its cost: it is slow for every request it gets,
   * not only when loaded. Floors are steady where latencies under load are noisy, so this sends
   * a 5× slower endpoint to its lower bound without amplifying the noise of the healthy ones
   * (a higher costExponent does both). bench/lb: e1 (100 ms where the rest take 20) kept 4 %
   * of the requests at costExponent 2, enough to queue it, and its queued requests made the tail.
   */
  readonly floorExponent: number;
  /** Time between steps (the interval the samples cover), ms: turns counts into rates. */
  readonly intervalMs: number;
  /** Utilisation of its measured capacity above which no endpoint is sent more. */
  readonly headroom: number;
  /**
   * Requests in flight at both ends of a step, in units of the endpoint's busy slots (its
   * completion rate × its unloaded latency minMs, Little), from which it counts as backlogged;
   * at least `backlogMin`. Its completions must also have taken this multiple of minMs.
   */
  readonly backlogFactor: number;
  readonly backlogMin: number;
  /** Growth of minMs per step. */
  readonly minRise: number;
  /** Fraction of peakRate forgotten per step. */
  readonly peakForget: number;
  /**
   * A backlogged step counts as saturation when the endpoint served at least this fraction of
   * its peak: one that stalls holds a backlog while serving nothing, which says nothing of its
   * capacity.
   */
  readonly saturatedServed: number;
  /** An endpoint of unknown capacity is sent at most this multiple of the most it completed. */
  readonly probe: number;
  /** Time within which requests waiting at an endpoint of known capacity are to be served, ms. */
  readonly drainMs: number;
  /**
   * Growth of a known capacity per step without saturation: an endpoint held below its bound
   * cannot show that it got faster, so the bound creeps up until it saturates again (or never
   * does, and stops mattering).
   */
  readonly capacityRise: number;
}

export const DEFAULT_ADAPTIVE: AdaptiveOptions = {
  smoothing: 0.5,
  gain: 0.1,
  acuteGain: 0.35,
  acuteInFlightPerShare: 4,
  maxStepRatio: 2,
  minStepRatio: 1.02,
  reversalDamping: 0.5,
  minFactor: 0.1,
  maxFactor: 3,
  deadBand: 0.1,
  errorPenaltyMs: 100,
  errorAbsorb: 2,
  floorRise: 0.02,
  peakDecay: 0.5,
  stallFactor: 3,
  stallDecay: 0.15,
  stallWeight: 0.3,
  reversion: 0.1,
  reversionRange: 3,
  costExponent: 2,
  floorExponent: 2,
  intervalMs: 500,
  headroom: 0.85,
  backlogFactor: 2,
  backlogMin: 3,
  minRise: 0.001,
  peakForget: 0.001,
  saturatedServed: 0.8,
  capacityRise: 0.005,
  drainMs: 1000,
  probe: 2,
};

function fresh(share: number): EndpointState {
  return { share, errorRate: 0, inFlight: 0, stepSize: Math.log(DEFAULT_ADAPTIVE.maxStepRatio), direction: 0 };
}

/** Equal shares for a new set of endpoints. */
export function initialState(keys: readonly string[]): AdaptiveState {
  return new Map(keys.map((k) => [k, fresh(1 / keys.length)]));
}

function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  if (s.length === 0) return 0;
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/**
 * Scale shares by one factor λ and clamp each into [lo, hi] (hi: one for all, or per endpoint)
 * so that they sum to 1: the λ is found by bisection (Σ clamp(λ·s) grows with λ). Endpoints at a
 * bound stay there while the others keep their proportions. Needs n·lo ≤ 1 ≤ Σ hi.
 */
export function clampShares(shares: ReadonlyMap<string, number>, lo: number, hi: number | ReadonlyMap<string, number>): Map<string, number> {
  const entries = [...shares];
  const top = (k: string): number => (typeof hi === 'number' ? hi : (hi.get(k) ?? 1));
  const at = (lambda: number): number => entries.reduce((s, [k, v]) => s + Math.min(top(k), Math.max(lo, v * lambda)), 0);
  const positive = entries.map(([, v]) => v).filter((v) => v > 0);
  if (positive.length === 0) return new Map(entries.map(([k]) => [k, 1 / entries.length]));
  let a = 0;
  let b = Math.max(...entries.map(([k]) => top(k))) / Math.min(...positive);
  for (let i = 0; i < 200 && b - a > 1e-15 * b; i++) {
    const m = (a + b) / 2;
    if (at(m) < 1) a = m;
    else b = m;
  }
  const out = new Map(entries.map(([k, v]) => [k, Math.min(top(k), Math.max(lo, v * b))]));
  // Bisection leaves a rounding residue; put it on the free endpoints so the sum is exact.
  const sum = [...out.values()].reduce((s, v) => s + v, 0);
  const free = [...out].filter(([k, v]) => v > lo && v < top(k));
  if (free.length > 0) {
    const freeSum = free.reduce((s, [, v]) => s + v, 0);
    for (const [k, v] of free) out.set(k, v + ((1 - sum) * v) / freeSum);
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
  const known = keys.filter((k) => state.has(k));
  const knownSum = known.reduce((s, k) => s + (state.get(k)?.share ?? 0), 0);
  const room = known.length / n;
  for (const k of keys) {
    const old = state.get(k);
    prev.set(k, old ? { ...old, share: knownSum > 0 ? (old.share / knownSum) * room : 1 / n } : fresh(1 / n));
  }

  // 1. Smoothed measurements. A stall is judged against the endpoint's own memory and the
  // fleet's unloaded latency: an endpoint that is slow all along has no stalls.
  const fleetFloor = median(keys.flatMap((x) => (prev.get(x)?.floorMs !== undefined ? [prev.get(x)?.floorMs as number] : [])));
  const smoothed = new Map<string, EndpointState>();
  for (const k of keys) {
    const p0 = prev.get(k) as EndpointState;
    const s = samples.get(k);
    const p = s ? { ...p0, ...load(p0, s, o) } : p0;
    if (!s || s.requests <= 0) {
      smoothed.set(k, { ...p, inFlight: s ? s.inFlight : p.inFlight });
      continue;
    }
    const errorRate = Math.min(1, Math.max(0, s.errors / s.requests));
    const a = o.smoothing;
    if (!(s.latencyMs > 0)) {
      // Requests counted but no latency measured (the agent's tick without a probe reports 0):
      // the error rate moves, the latency memories stay. Taken as 0 ms, the endpoint would look
      // fast and its floor would zero the fleet's, and with it the error penalty.
      smoothed.set(k, { ...p, errorRate: a * errorRate + (1 - a) * p.errorRate, inFlight: s.inFlight });
      continue;
    }
    const kept = (p.stallMs ?? 0) * (1 - o.stallDecay);
    const stalled = p.latencyMs !== undefined && s.latencyMs > o.stallFactor * Math.max(p.latencyMs, fleetFloor);
    const stallMs = stalled ? Math.max(kept, s.latencyMs - (p.latencyMs as number)) : kept;
    smoothed.set(k, {
      ...p,
      stallMs,
      // Only a sample without errors moves the floor: a reset returns at once, and an endpoint
      // that fails fast would otherwise look fast unloaded.
      floorMs: s.errors > 0 ? p.floorMs : p.floorMs === undefined || s.latencyMs < p.floorMs ? s.latencyMs : p.floorMs + o.floorRise * (s.latencyMs - p.floorMs),
      minMs: s.errors > 0 ? p.minMs : p.minMs === undefined || s.latencyMs < p.minMs * (1 + o.minRise) ? s.latencyMs : p.minMs * (1 + o.minRise),
      latencyMs:
        p.latencyMs === undefined
          ? s.latencyMs
          : o.peakDecay > 0
            ? s.latencyMs > p.latencyMs
              ? s.latencyMs
              : p.latencyMs + o.peakDecay * (s.latencyMs - p.latencyMs)
            : a * s.latencyMs + (1 - a) * p.latencyMs,
      errorRate: a * errorRate + (1 - a) * p.errorRate,
      inFlight: s.inFlight,
    });
  }

  // 2. Cost per endpoint. Endpoints never measured take the fleet's median latency.
  const measured = [...smoothed.values()].flatMap((e) => (e.latencyMs !== undefined ? [e.latencyMs] : []));
  if (measured.length === 0) return smoothed;
  const med = median(measured);
  // No floor yet (every sample so far had errors): the median latency stands in, unscaled.
  const floors = [...smoothed.values()].flatMap((e) => (e.floorMs !== undefined ? [e.floorMs] : []));
  const floor = floors.length > 0 ? median(floors) : 0;
  const penalty = floor > 0 ? Math.max(o.errorPenaltyMs, 10 * floor) * Math.min(1, floor / med) ** o.errorAbsorb : Math.max(o.errorPenaltyMs, 10 * med);
  const meanInFlight = [...smoothed.values()].reduce((s, e) => s + e.inFlight, 0) / n;
  const cost = new Map<string, number>();
  const acute = new Set<string>();
  const perShare = median([...smoothed.values()].map((e) => e.inFlight / Math.max(e.share, 1e-9)));
  for (const k of keys) {
    const e = smoothed.get(k) as EndpointState;
    // The latency of its successes: fast failures (resets) pull the mean of an endpoint's
    // completions down, and with the error penalty shrunk by the others' queueing, an endpoint
    // failing 20 % looked faster than the healthy ones exactly when they were loaded (bench/lb
    // at 340 requests/s sent it 107/s, above its capacity). Slow failures make it look slower
    // still, which is no harm.
    const latency = Math.max(e.latencyMs ?? med, 0.01) / Math.max(0.05, 1 - e.errorRate) + (e.stallMs ?? 0);
    // Requests in flight beyond twice the fleet's mean: a stall, seen before its completions
    // arrive. Within that, the measured latency already carries the queueing, and counting
    // in-flight requests again would push load onto slow endpoints whenever fast ones are busy.
    const excess = Math.max(0, e.inFlight - 2 * meanInFlight);
    if (excess > 0 && e.inFlight / Math.max(e.share, 1e-9) > o.acuteInFlightPerShare * perShare) acute.add(k);
    cost.set(k, (latency + e.errorRate * penalty) * (1 + excess / (meanInFlight + 1)));
  }
  // The share each endpoint heads for: inversely proportional to its cost. With cost ≈ latency
  // that is the split where every endpoint holds the same number of requests in flight
  // (Little: in flight = rate × latency), the fixed point of least-requests-in-flight. Equalising
  // latency instead (heading for the share-weighted mean cost) loads the fast endpoints until
  // they are as slow as the slow ones' floor: with a 5× slower endpoint at its lower bound and a
  // stalling one remembered at its peak, that saturates the fast ones (bench/lb: p50 32 ms).
  // The targets respect the upper bound (what an endpoint at it cannot take goes to the others
  // in proportion); below the lower bound a target stays, so a dead endpoint heads for the floor.
  const pull = (k: string): number => {
    const e = smoothed.get(k) as EndpointState;
    const slower = e.floorMs !== undefined && floor > 0 ? Math.max(1, (e.floorMs + o.stallWeight * (e.stallMs ?? 0)) / floor) : 1;
    return (cost.get(k) as number) ** -o.costExponent * slower ** -o.floorExponent;
  };
  const inverse = keys.reduce((s, k) => s + pull(k), 0);
  const lo = o.minFactor / n;
  const hi = Math.min(1, o.maxFactor / n);
  const tops = capacityBounds(smoothed, keys, lo, hi, o);
  const target = clampShares(new Map(keys.map((k) => [k, pull(k) / inverse])), 0, tops);

  // 3. Damped multiplicative move.
  const maxStep = Math.log(o.maxStepRatio);
  const minStep = Math.log(o.minStepRatio);
  const moved = new Map<string, number>();
  // Reversion applies among comparable endpoints only (target within reversionRange of an
  // equal share): there it keeps noise from walking equal shares apart; an endpoint the costs
  // put far below an equal share is not pulled back toward a share it cannot take.
  const comparable = (k: string): boolean => Math.abs(Math.log((target.get(k) as number) * n)) < Math.log(o.reversionRange);
  const steps = new Map<string, { stepSize: number; direction: number }>();
  for (const k of keys) {
    const e = smoothed.get(k) as EndpointState;
    const r = Math.log((target.get(k) as number) / e.share);
    const home = o.reversion * Math.log(1 / n / e.share);
    if (Math.abs(r) < Math.log(1 + o.deadBand)) {
      moved.set(k, e.share * Math.exp(comparable(k) ? home : 0));
      steps.set(k, { stepSize: e.stepSize, direction: e.direction });
      continue;
    }
    const direction = Math.sign(r);
    const stepSize =
      e.direction === -direction
        ? Math.max(minStep, e.stepSize * o.reversalDamping)
        : e.direction === direction
          ? Math.min(maxStep, e.stepSize * 1.5)
          : e.stepSize;
    const gain = acute.has(k) ? o.acuteGain : o.gain;
    const delta = Math.max(-stepSize, Math.min(stepSize, gain * r));
    moved.set(k, e.share * Math.exp(delta + (comparable(k) ? home : 0)));
    steps.set(k, { stepSize, direction });
  }
  const bounded = clampShares(moved, lo, tops);
  const out = new Map<string, EndpointState>();
  for (const k of keys) {
    out.set(k, { ...(smoothed.get(k) as EndpointState), ...(steps.get(k) as { stepSize: number; direction: number }), share: bounded.get(k) ?? 1 / n });
  }
  return out;
}

/**
 * What a step says of an endpoint's capacity and of the requests sent to it. What it completed
 * in a step is a lower bound of its capacity; requests waiting for it through the whole step (in
 * flight at both ends, well above its busy slots: completion rate × unloaded latency, Little)
 * while it completed at its peak say that the peak is its capacity. A backlog while it completed
 * little (a stall) says nothing of it.
 */
function load(p: EndpointState, s: Sample, o: AdaptiveOptions): Pick<EndpointState, 'peakRate' | 'capacity' | 'arrivals'> {
  const perSecond = 1000 / o.intervalMs;
  const served = Math.max(0, s.requests) * perSecond;
  const peakRate = Math.max(served, (p.peakRate ?? 0) * (1 - o.peakForget));
  const unloaded = p.minMs ?? p.floorMs ?? p.latencyMs ?? (s.latencyMs > 0 ? s.latencyMs : 0);
  const busy = (served * unloaded) / 1000;
  const backlogged = Math.min(p.inFlight, s.inFlight) >= Math.max(o.backlogMin, o.backlogFactor * busy);
  // Requests queued through the step also waited: a short burst at either end does not make
  // the mean latency of the step's completions several times the unloaded one.
  const waited = unloaded > 0 && s.latencyMs >= o.backlogFactor * unloaded;
  const saturated = backlogged && waited && served > 0 && served >= o.saturatedServed * peakRate;
  // A queue that grew through the step says it got more than it could serve: no probing up.
  const growing = Math.min(p.inFlight, s.inFlight) >= o.backlogMin && s.inFlight > p.inFlight;
  const capacity = saturated ? peakRate : p.capacity === undefined ? undefined : Math.max(served, growing ? p.capacity : p.capacity * (1 + o.capacityRise));
  const now = Math.max(0, s.requests + s.inFlight - p.inFlight) * perSecond;
  return { peakRate, capacity, arrivals: p.arrivals === undefined ? now : o.smoothing * now + (1 - o.smoothing) * p.arrivals };
}

/**
 * Upper bound of each share: `headroom` of its capacity (as a share of the requests sent now),
 * less what drains its backlog within drainMs. Endpoints of unknown capacity are bounded by
 * `probe` × the most they completed, or not at all. When the bounds cannot hold all the
 * requests, their capacity parts grow together (the split then follows capacity, as weighted
 * round-robin's does) while the drains stay: the others take a queued endpoint's backlog.
 */
function capacityBounds(state: ReadonlyMap<string, EndpointState>, keys: readonly string[], lo: number, hi: number, o: AdaptiveOptions): Map<string, number> {
  const offered = keys.reduce((s, k) => s + (state.get(k)?.arrivals ?? 0), 0);
  if (!(offered > 0)) return new Map(keys.map((k) => [k, hi]));
  const part = new Map(
    keys.map((k) => {
      const e = state.get(k) as EndpointState;
      // Of unknown capacity: at most `probe` × the most it ever completed, so what the others
      // cannot take is not dumped on an endpoint that may be as full; the bound grows with what
      // it serves (slow start).
      if (e.capacity === undefined) return [k, { scaled: e.peakRate !== undefined && e.peakRate > 0 ? (o.probe * e.peakRate) / offered : Infinity, drain: 0 }];
      // Requests waiting beyond its busy slots are drained within drainMs: sending it its
      // capacity would leave a backlog that formed before it was known for seconds.
      const backlog = Math.max(0, e.inFlight - (e.capacity * (e.minMs ?? e.floorMs ?? e.latencyMs ?? 0)) / 1000);
      return [k, { scaled: (o.headroom * e.capacity) / offered, drain: (backlog * 1000) / o.drainMs / offered }];
    }),
  );
  const bound = (k: string, grow: number): number => {
    const { scaled, drain } = part.get(k) as { scaled: number; drain: number };
    return Math.max(lo, Math.min(hi, grow * scaled - drain));
  };
  const sum = (grow: number): number => keys.reduce((s, k) => s + bound(k, grow), 0);
  let grow = 1;
  if (sum(1) < 1) {
    const finite = [...part.values()].filter((x) => Number.isFinite(x.scaled) && x.scaled > 0);
    let b = finite.length > 0 ? Math.max(...finite.map((x) => (hi + x.drain) / x.scaled)) : 1;
    if (sum(b) < 1) return new Map(keys.map((k) => [k, hi]));
    for (let i = 0; i < 100 && b - grow > 1e-12 * b; i++) {
      const m = (grow + b) / 2;
      if (sum(m) < 1) grow = m;
      else b = m;
    }
    grow = b;
  }
  return new Map(keys.map((k) => [k, bound(k, grow)]));
}

/** Shares as adaptive factors for computeWeights (relative to an equal share). */
export function factors(state: AdaptiveState): Map<string, number> {
  const n = state.size;
  return new Map([...state].map(([k, e]) => [k, e.share * n]));
}
