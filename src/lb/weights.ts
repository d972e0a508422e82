// The one function that decides how a Service port's new connections are spread:
// (endpoints, balancing config, health, adaptive factors, drained locations, the client's
// location) → an integer weight per endpoint. The kernel picks an endpoint with
// `numgen random mod TOTAL` over ranges sized by these weights, so the integers sum to TOTAL;
// for weighted and adaptive Services, with `numgen inc` over the slots of `interleave`.
//
// Order of the filters, each one written once here:
//   1. allowed-locations: a fence. Endpoints outside it never get a weight, even when every
//      endpoint inside is down (then the Service rejects).
//   2. health: endpoints failing active probes leave the rotation; if *all* of them fail,
//      all stay in (a probe can be wrong; rejecting everything is worse — Envoy's "panic").
//   3. drain: endpoints in drained locations get no new connections (established ones are
//      conntrack's and finish), unless that would leave nothing: a drain moves traffic, it
//      never turns a Service off.
//   4. location: a split (share per location; a location with nothing left spills its share
//      over to the others) or prefer-local (the client's location while it has endpoints).
//   5. per endpoint: equal, static weights (a group's weight is shared by the group's
//      remaining members, so a 90/10 split by version holds when a pod dies), times the
//      adaptive controller's factor.
// Weights that would all be 0 fall back to equal: a balancing setting never drops traffic.

import type { BalancingConfig, WeightEntry } from './config.js';
import type { Endpoint } from './endpoints.js';

/** Kernel weights of one Service port sum to this (a `numgen random mod 1000`). */
export const WEIGHT_TOTAL = 1000;

/**
 * Slots of an interleaved weight map (`numgen inc mod 100`): weighted and adaptive Services
 * take their endpoints in a fixed, smoothly interleaved order of this many slots.
 */
export const INTERLEAVE_SLOTS = 100;

export interface WeightInput {
  readonly endpoints: readonly Endpoint[];
  readonly config: BalancingConfig;
  /** By endpoint key; absent = healthy. */
  readonly health?: ReadonlyMap<string, boolean>;
  /** The adaptive controller's multipliers by endpoint key (absent = 1). Used in adaptive mode. */
  readonly adaptive?: ReadonlyMap<string, number>;
  /** Locations being drained. */
  readonly drained?: ReadonlySet<string>;
  /** The location of the node the client is on (for prefer-local). */
  readonly clientLocation?: string;
  readonly total?: number;
}

export interface WeightResult {
  /** By endpoint key; every endpoint of the input appears (0 = no new connections). */
  readonly weights: ReadonlyMap<string, number>;
  /** True when no endpoint may receive a connection: the kernel rejects. */
  readonly reject: boolean;
  /** Why the result is what it is, for `weir lb status`. */
  readonly notes: readonly string[];
}

function entryFor(e: Endpoint, entries: readonly WeightEntry[]): WeightEntry | undefined {
  const podName = e.pod?.slice(e.pod.indexOf('/') + 1);
  return (
    entries.find((w) => w.target.kind === 'pod' && w.target.name === podName) ??
    entries.find((w) => w.target.kind === 'label' && e.labels[w.target.key] === w.target.value)
  );
}

/** Static weight per endpoint among `eligible`: a label group's weight is shared by its members. */
function staticWeights(eligible: readonly Endpoint[], entries: readonly WeightEntry[] | undefined): Map<string, number> {
  const out = new Map<string, number>();
  if (!entries) {
    for (const e of eligible) out.set(e.key, 1);
    return out;
  }
  const members = new Map<WeightEntry, number>();
  const chosen = new Map<string, WeightEntry | undefined>();
  for (const e of eligible) {
    const entry = entryFor(e, entries);
    chosen.set(e.key, entry);
    if (entry) members.set(entry, (members.get(entry) ?? 0) + 1);
  }
  for (const e of eligible) {
    const entry = chosen.get(e.key);
    if (!entry) out.set(e.key, 0);
    else out.set(e.key, entry.target.kind === 'pod' ? entry.weight : entry.weight / (members.get(entry) ?? 1));
  }
  return out;
}

export function computeWeights(input: WeightInput): WeightResult {
  const { config } = input;
  const total = input.total ?? WEIGHT_TOTAL;
  const notes: string[] = [];
  const zero = (): Map<string, number> => new Map(input.endpoints.map((e) => [e.key, 0]));

  // 1. The fence.
  const fenced = config.allowedLocations
    ? input.endpoints.filter((e) => e.location !== undefined && config.allowedLocations?.has(e.location))
    : input.endpoints;
  if (fenced.length < input.endpoints.length) {
    notes.push(`${input.endpoints.length - fenced.length} endpoint(s) outside the allowed locations never receive connections`);
  }
  if (fenced.length === 0) {
    notes.push(input.endpoints.length === 0 ? 'no ready endpoint: connections are rejected' : 'no endpoint in an allowed location: connections are rejected');
    return { weights: zero(), reject: true, notes };
  }

  // 2. Health, with panic when nothing is healthy.
  let eligible: readonly Endpoint[] = fenced.filter((e) => input.health?.get(e.key) !== false);
  if (eligible.length === 0) {
    notes.push('every endpoint fails its health probe: all are kept in the rotation (panic mode)');
    eligible = fenced;
  }

  // 3. Drain.
  if (input.drained && input.drained.size > 0) {
    const drained = input.drained;
    const kept = eligible.filter((e) => e.location === undefined || !drained.has(e.location));
    if (kept.length === 0) notes.push('every remaining endpoint is in a drained location: the drain is not applied to this Service');
    else eligible = kept;
  }

  // 5 (computed before 4, which needs the per-endpoint weights): static × adaptive.
  const base = staticWeights(eligible, config.weights);
  if (config.mode === 'adaptive') {
    for (const e of eligible) base.set(e.key, (base.get(e.key) ?? 0) * (input.adaptive?.get(e.key) ?? 1));
  }

  // 4. Location.
  let real = new Map<string, number>();
  const byLocation = new Map<string, Endpoint[]>();
  for (const e of eligible) {
    const loc = e.location ?? '';
    const list = byLocation.get(loc) ?? [];
    list.push(e);
    byLocation.set(loc, list);
  }
  const sumOf = (list: readonly Endpoint[]): number => list.reduce((s, e) => s + (base.get(e.key) ?? 0), 0);
  if (config.split) {
    const present = [...config.split].filter(([loc, share]) => share > 0 && sumOf(byLocation.get(loc) ?? []) > 0);
    if (present.length === 0) {
      notes.push('no location of the split has an available endpoint: spread over all available endpoints');
      real = base;
    } else {
      const missing = [...config.split.keys()].filter((l) => !present.some(([p]) => p === l));
      if (missing.length > 0) notes.push(`location(s) ${missing.join(', ')} of the split have no available endpoint: their share spills over`);
      const shareSum = present.reduce((s, [, v]) => s + v, 0);
      for (const [loc, share] of present) {
        const list = byLocation.get(loc) ?? [];
        const sum = sumOf(list);
        for (const e of list) real.set(e.key, ((base.get(e.key) ?? 0) / sum) * (share / shareSum));
      }
    }
  } else if (config.preferLocal && input.clientLocation !== undefined) {
    const local = byLocation.get(input.clientLocation) ?? [];
    if (sumOf(local) > 0) {
      for (const e of local) real.set(e.key, base.get(e.key) ?? 0);
    } else {
      notes.push(`no available endpoint in the client's location ${input.clientLocation}: spilling over to the others`);
      real = base;
    }
  } else {
    real = base;
  }

  if ([...real.values()].every((w) => w <= 0)) {
    notes.push('the configured weights give every available endpoint 0: equal weights are used instead');
    real = new Map(eligible.map((e) => [e.key, 1]));
  }
  const weights = zero();
  for (const [k, v] of toIntegers(real, total)) weights.set(k, v);
  return { weights, reject: false, notes };
}

/**
 * Largest-remainder rounding of positive reals to integers summing to `total`, every positive
 * real getting at least 1 (so no endpoint that should get traffic is rounded to starvation).
 */
export function toIntegers(real: ReadonlyMap<string, number>, total: number): Map<string, number> {
  const keys = [...real.keys()].sort();
  const positive = keys.filter((k) => (real.get(k) ?? 0) > 0);
  const out = new Map<string, number>(keys.map((k) => [k, 0]));
  if (positive.length === 0) return out;
  if (positive.length > total) throw new Error(`${positive.length} endpoints cannot share a weight total of ${total}`);
  const sum = positive.reduce((s, k) => s + (real.get(k) ?? 0), 0);
  const exact = positive.map((k) => ({ k, x: ((real.get(k) ?? 0) / sum) * total }));
  let given = 0;
  for (const e of exact) {
    const n = Math.floor(e.x);
    out.set(e.k, n);
    given += n;
  }
  const byRemainder = [...exact].sort((a, b) => b.x - Math.floor(b.x) - (a.x - Math.floor(a.x)) || (a.k < b.k ? -1 : 1));
  for (let i = 0; given < total; i++, given++) {
    const k = byRemainder[i % byRemainder.length].k;
    out.set(k, (out.get(k) ?? 0) + 1);
  }
  // A positive weight rounded to 0 would starve its endpoint: give it 1, taken from the largest.
  for (const k of positive) {
    if ((out.get(k) ?? 0) > 0) continue;
    const largest = positive.reduce((m, x) => ((out.get(x) ?? 0) > (out.get(m) ?? 0) ? x : m), positive[0]);
    out.set(largest, (out.get(largest) ?? 0) - 1);
    out.set(k, 1);
  }
  return out;
}

/**
 * The endpoint of each of `slots` slots, for a `numgen inc mod <slots>` map: the weights
 * (integers, any total) scaled to `slots` (every positive weight keeps at least one slot) and
 * laid out in smooth weighted round-robin order (nginx's: each slot goes to the endpoint
 * furthest behind its share), so consecutive new connections are spread as evenly as the
 * weights allow. Weighted *random* choice sends runs of connections to one endpoint by chance,
 * and near capacity those runs are what queues. Undefined when more endpoints have a weight
 * than there are slots (the caller keeps weighted random). Ties go to the first key in order.
 */
export function interleave(weights: ReadonlyMap<string, number>, slots: number = INTERLEAVE_SLOTS): string[] | undefined {
  const positive = new Map([...weights].filter(([, w]) => w > 0));
  if (positive.size === 0 || positive.size > slots) return undefined;
  const scaled = [...toIntegers(positive, slots)].filter(([, w]) => w > 0).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const current = scaled.map(() => 0);
  const out: string[] = [];
  for (let slot = 0; slot < slots; slot++) {
    let best = 0;
    for (let i = 0; i < scaled.length; i++) {
      current[i] += scaled[i][1];
      if (current[i] > current[best]) best = i;
    }
    current[best] -= slots;
    out.push(scaled[best][0]);
  }
  return out;
}

/**
 * `interleave`'s slots as runs of one endpoint, in slot order (`a a b a` → 0–1 a, 2 b, 3 a):
 * the elements of an interleaved weight map, `0-1 : a, 2 : b, 3 : a`.
 */
export function slotRuns(slots: readonly string[]): { from: number; to: number; key: string }[] {
  const out: { from: number; to: number; key: string }[] = [];
  for (let from = 0; from < slots.length; ) {
    let to = from;
    while (to + 1 < slots.length && slots[to + 1] === slots[from]) to++;
    out.push({ from, to, key: slots[from] });
    from = to + 1;
  }
  return out;
}
