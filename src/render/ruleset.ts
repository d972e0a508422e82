// The desired-state model of one node's `inet weir` table: plain data that the renderer
// produces, the applier diffs against what it applied last, and tests inspect. Sets and maps
// hold their elements as canonical nft text, so diffs are set differences of strings.

import type { ReasonsTable } from './reasons.js';

export interface NftSet {
  readonly name: string;
  readonly kind: 'set' | 'map';
  /** `ipv4_addr`, `ipv4_addr . inet_proto . inet_service`, `ipv4_addr : verdict`, or `typeof <expr> : verdict`. */
  readonly type: string;
  readonly flags: readonly string[];
  /** Further declaration statements (`timeout 60s`, `counter`, `size 65536`). */
  readonly extra: readonly string[];
  /** Filled by the kernel (`update @set`): never diffed, never flushed by a partial sync. */
  readonly dynamic: boolean;
  /** Changed by every pod add or remove on the node (the pod maps): declared first, see fullScript. */
  readonly hot?: boolean;
  /** Sorted, unique. Map elements are `key : verdict`. */
  readonly elements: readonly string[];
  /** `src`: in the source chains' table (names.ts, SOURCE_TABLE); otherwise in `inet weir`. */
  readonly table?: 'src';
}

export interface NftChain {
  readonly name: string;
  /** Base chains: `type filter hook forward priority filter; policy accept;`. */
  readonly hook?: string;
  readonly rules: readonly string[];
  /** As NftSet.table. */
  readonly table?: 'src';
}

export interface RulesetStats {
  readonly rules: number;
  readonly chains: number;
  readonly sets: number;
  readonly elements: number;
  readonly counters: number;
}

/**
 * Element changes from `base` to the ruleset carrying it (set name → elements), recorded by
 * the element fast path (elements.ts) so that the applier need not diff sets of thousands of elements to find
 * the one it changed.
 */
export interface ElementPatch {
  readonly base: Ruleset;
  readonly added: ReadonlyMap<string, readonly string[]>;
  readonly removed: ReadonlyMap<string, readonly string[]>;
  /**
   * Source chains (isSourceChain: a pod veth's ingress check, which comes and goes with its
   * pod) deleted, then added: a name in both is a chain replaced. Elements stay the rest.
   */
  readonly chainsRemoved?: readonly string[];
  readonly chainsAdded?: readonly NftChain[];
}

export interface Ruleset {
  readonly sets: ReadonlyMap<string, NftSet>;
  readonly chains: ReadonlyMap<string, NftChain>;
  /** Reason ids counted in the `hits` set, sorted. */
  readonly counted: readonly number[];
  /** The cluster-wide reasons table (identical on every node). */
  readonly reasons: ReasonsTable;
  /** Set only on a ruleset patched from another (see ElementPatch). */
  readonly patch?: ElementPatch;
}

/**
 * The hook of a source chain: a pod veth's ingress check (src/render/filter.ts), the only base
 * chain that an element patch or a partial sync adds and removes. Source chains live in the
 * source chains' table (`table: 'src'`), with what records their drops.
 */
export const SOURCE_HOOK_PREFIX = 'type filter hook ingress device ';

export function isSourceChain(c: NftChain): boolean {
  return c.table === 'src' && c.hook !== undefined && c.hook.startsWith(SOURCE_HOOK_PREFIX);
}

const stats = new WeakMap<Ruleset, RulesetStats>();

/** Element counts of sets that know theirs without merging their elements (patched sets, elements.ts). */
export const elementCounts = new WeakMap<NftSet, number>();

export function rulesetStats(rs: Ruleset): RulesetStats {
  const known = stats.get(rs);
  if (known) return known;
  let rules = 0;
  let elements = 0;
  for (const c of rs.chains.values()) rules += c.rules.length;
  for (const s of rs.sets.values()) elements += elementCounts.get(s) ?? s.elements.length;
  const result = { rules, chains: rs.chains.size, sets: rs.sets.size, elements, counters: rs.counted.length };
  stats.set(rs, result);
  return result;
}

/** Records the stats of a ruleset derived from another (an element patch knows its delta: no scan). */
export function rememberStats(rs: Ruleset, s: RulesetStats): void {
  stats.set(rs, s);
}

/** The key part of a set or map element (`10.0.0.1 : goto eg_x` → `10.0.0.1`). */
export function elementKey(set: NftSet, element: string): string {
  if (set.kind !== 'map') return element;
  const i = element.indexOf(' : ');
  return i < 0 ? element : element.slice(0, i);
}
