// The element-only fast path, for any section: most changes of a running cluster (a replica
// coming or going, an endpoint joining a service) change set and map elements only. A section
// turns such a change into ElementChanges; `patchElements` applies them to the last ruleset
// without re-rendering, and records them (ElementPatch) so that the applier sends exactly those
// `add element` / `delete element` commands instead of diffing sets of thousands of elements.
//
// A patch costs what it changes, not what the table holds: at 100k pods a pod is a member of
// sets of up to 100k elements, in a table of ~24k sets, and copying those per pod add cost more
// than the 10 ms a pod add may take. So a patched ruleset shares everything with the one it was
// patched from: its set map is the last full map plus the sets patches replaced (Overlay), and a
// patched set is its last full element list plus the elements added and removed since (Delta),
// both composed — never stacked — so a lookup stays one level deep whatever the number of
// patches. A set's sorted `elements` are merged only when someone reads them (a diff, a full
// script, a test), once; after COMPACT changes the next patch merges them itself.

import { elementText, type Element } from './nft.js';
import { elementCounts, isSourceChain, rememberStats, rulesetStats, type NftChain, type NftSet, type Ruleset } from './ruleset.js';

export interface ElementChange {
  readonly set: string;
  readonly element: Element;
  readonly add: boolean;
}

/** Changes carried by a set (or sets carried by a map) before they are merged into a plain copy. */
const COMPACT = 512;

function search(xs: readonly string[], x: string): number {
  let lo = 0;
  let hi = xs.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (xs[mid] < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

const sortedHas = (xs: readonly string[], x: string): boolean => xs[search(xs, x)] === x;

/** A patched set's elements: `root` (sorted) without `del`, with `add` (disjoint from root). */
interface Delta {
  readonly root: readonly string[];
  readonly add: ReadonlySet<string>;
  readonly del: ReadonlySet<string>;
}

const deltas = new WeakMap<NftSet, Delta>();

/**
 * The set a patch made each patched set from, and the elements it added and removed (sorted):
 * a diff against that set reads them here, also when the patch merged the set into a plain
 * copy (a 100k-element group set crosses COMPACT every few hundred churn events; comparing
 * its lists then cost ~50 ms).
 */
const steps = new WeakMap<NftSet, { readonly from: number; readonly added: readonly string[]; readonly removed: readonly string[] }>();

/**
 * A serial number per set object: a step names the set it came from by number, so that it does
 * not keep it alive (each version would hold the one before: every compacted copy of a large set
 * since the agent started).
 */
const serials = new WeakMap<NftSet, number>();
let nextSerial = 1;

function serialOf(set: NftSet): number {
  let n = serials.get(set);
  if (n === undefined) serials.set(set, (n = nextSerial++));
  return n;
}

function merged(d: Delta): string[] {
  const kept = d.del.size > 0 ? d.root.filter((x) => !d.del.has(x)) : [...d.root];
  if (d.add.size === 0) return kept;
  const extra = [...d.add].sort();
  const out: string[] = new Array<string>(kept.length + extra.length);
  let i = 0;
  let j = 0;
  let k = 0;
  while (i < kept.length && j < extra.length) out[k++] = kept[i] < extra[j] ? kept[i++] : extra[j++];
  while (i < kept.length) out[k++] = kept[i++];
  while (j < extra.length) out[k++] = extra[j++];
  return out;
}

function setHas(set: NftSet, text: string): boolean {
  const d = deltas.get(set);
  if (!d) return sortedHas(set.elements, text);
  if (d.add.has(text)) return true;
  return !d.del.has(text) && sortedHas(d.root, text);
}

/** `old` with elements added and removed (each known to change it), sharing `old`'s storage. */
function patchedSet(old: NftSet, added: readonly string[], removed: readonly string[]): NftSet {
  const prev = deltas.get(old);
  const root = prev ? prev.root : old.elements;
  const add = new Set(prev?.add);
  const del = new Set(prev?.del);
  for (const x of removed) if (!add.delete(x)) del.add(x);
  for (const x of added) if (!del.delete(x)) add.add(x);
  const d: Delta = { root, add, del };
  const shape = { name: old.name, kind: old.kind, type: old.type, flags: old.flags, extra: old.extra, dynamic: old.dynamic, ...(old.hot ? { hot: true } : {}), ...(old.table ? { table: old.table } : {}) };
  if (add.size + del.size > COMPACT) return { ...shape, elements: merged(d) };
  let memo: readonly string[] | undefined;
  const set: NftSet = {
    ...shape,
    get elements(): readonly string[] {
      return (memo ??= merged(d));
    },
  };
  deltas.set(set, d);
  elementCounts.set(set, root.length - del.size + add.size);
  return set;
}

const NONE: ReadonlySet<string> = new Set();

/**
 * The elements added to and removed from `prev` to make `next`, when `next` was patched from
 * it (both patches of one full list): read from the patches, not by comparing the lists (a
 * render that reuses patched sets is diffed this way; see RenderReuse). Undefined otherwise.
 */
export function patchedDifference(prev: NftSet, next: NftSet): { added: string[]; removed: string[] } | undefined {
  const step = steps.get(next);
  if (step && step.from === serials.get(prev)) return { added: [...step.added], removed: [...step.removed] };
  const d = deltas.get(next);
  if (!d) return undefined;
  const p = deltas.get(prev);
  if ((p ? p.root : prev.elements) !== d.root) return undefined;
  const pAdd = p?.add ?? NONE;
  const pDel = p?.del ?? NONE;
  const added = [...[...d.add].filter((x) => !pAdd.has(x)), ...[...pDel].filter((x) => !d.del.has(x))].sort();
  const removed = [...[...d.del].filter((x) => !pDel.has(x)), ...[...pAdd].filter((x) => !d.add.has(x))].sort();
  return { added, removed };
}

/** The sets of a patched ruleset: the last full map, with the sets patches replaced. */
class Overlay implements ReadonlyMap<string, NftSet> {
  constructor(
    readonly root: ReadonlyMap<string, NftSet>,
    readonly replaced: ReadonlyMap<string, NftSet>,
  ) {}
  get size(): number {
    return this.root.size;
  }
  get(name: string): NftSet | undefined {
    return this.replaced.get(name) ?? this.root.get(name);
  }
  has(name: string): boolean {
    return this.root.has(name);
  }
  *entries(): MapIterator<[string, NftSet]> {
    for (const [name, s] of this.root) yield [name, this.replaced.get(name) ?? s];
  }
  *keys(): MapIterator<string> {
    yield* this.root.keys();
  }
  *values(): MapIterator<NftSet> {
    for (const [, s] of this.entries()) yield s;
  }
  [Symbol.iterator](): MapIterator<[string, NftSet]> {
    return this.entries();
  }
  forEach(fn: (value: NftSet, key: string, map: ReadonlyMap<string, NftSet>) => void): void {
    for (const [k, v] of this.entries()) fn(v, k, this);
  }
}

function withSets(prev: ReadonlyMap<string, NftSet>, changed: ReadonlyMap<string, NftSet>): ReadonlyMap<string, NftSet> {
  const root = prev instanceof Overlay ? prev.root : prev;
  const replaced = new Map(prev instanceof Overlay ? prev.replaced : []);
  for (const [name, s] of changed) replaced.set(name, s);
  if (replaced.size <= COMPACT) return new Overlay(root, replaced);
  return new Map([...root].map(([name, s]) => [name, replaced.get(name) ?? s]));
}

/**
 * The chains of a patched ruleset that added or removed source chains: the last full map, less
 * the names removed, with the chains added (disjoint from the removed names). Composed, never
 * stacked, as Overlay; a handful of chains per pod add, against thousands in the map.
 */
class ChainOverlay implements ReadonlyMap<string, NftChain> {
  readonly size: number;
  constructor(
    readonly root: ReadonlyMap<string, NftChain>,
    readonly added: ReadonlyMap<string, NftChain>,
    readonly removed: ReadonlySet<string>,
  ) {
    let n = root.size;
    for (const k of added.keys()) if (!root.has(k) || removed.has(k)) n++;
    for (const k of removed) if (root.has(k)) n--;
    this.size = n;
  }
  get(name: string): NftChain | undefined {
    return this.added.get(name) ?? (this.removed.has(name) ? undefined : this.root.get(name));
  }
  has(name: string): boolean {
    return this.get(name) !== undefined;
  }
  *entries(): MapIterator<[string, NftChain]> {
    for (const [name, c] of this.root) if (!this.removed.has(name) && !this.added.has(name)) yield [name, c];
    yield* this.added.entries();
  }
  *keys(): MapIterator<string> {
    for (const [name] of this.entries()) yield name;
  }
  *values(): MapIterator<NftChain> {
    for (const [, c] of this.entries()) yield c;
  }
  [Symbol.iterator](): MapIterator<[string, NftChain]> {
    return this.entries();
  }
  forEach(fn: (value: NftChain, key: string, map: ReadonlyMap<string, NftChain>) => void): void {
    for (const [k, v] of this.entries()) fn(v, k, this);
  }
}

/** `prev` less `removed`, with `added` (a name in both: replaced). */
function withChains(prev: ReadonlyMap<string, NftChain>, removed: readonly string[], added: readonly NftChain[]): ReadonlyMap<string, NftChain> {
  const root = prev instanceof ChainOverlay ? prev.root : prev;
  const add = new Map(prev instanceof ChainOverlay ? prev.added : []);
  const del = new Set(prev instanceof ChainOverlay ? prev.removed : []);
  for (const name of removed) {
    add.delete(name);
    if (root.has(name)) del.add(name);
  }
  for (const c of added) add.set(c.name, c);
  if (add.size + del.size <= COMPACT) return new ChainOverlay(root, add, del);
  return new Map([...new ChainOverlay(root, add, del)].sort((a, b) => (a[0] < b[0] ? -1 : 1)));
}

/** Source chains to remove and add (see ElementPatch); the patch records what they changed. */
export interface ChainChange {
  readonly removed: readonly string[];
  readonly added: readonly NftChain[];
}

const sameChain = (a: NftChain, b: NftChain): boolean => a.hook === b.hook && a.rules.length === b.rules.length && a.rules.every((r, i) => r === b.rules[i]);

/** Whether `rs` holds the element (exactly: a map element with its value). */
export function hasElement(rs: Ruleset, set: string, element: Element): boolean {
  return hasElementText(rs, set, elementText(element));
}

/** hasElement, for an element already in nft text. */
export function hasElementText(rs: Ruleset, set: string, text: string): boolean {
  const s = rs.sets.get(set);
  return s !== undefined && setHas(s, text);
}

/**
 * `prev` with the element changes applied (changes to sets `prev` lacks are ignored; adding a
 * present element or removing an absent one is no change). Costs what changes: no set is
 * copied or scanned (see the top of this file).
 */
export function patchElements(prev: Ruleset, changes: Iterable<ElementChange>, chains?: ChainChange): Ruleset {
  const edits = new Map<string, { add: Set<string>; del: Set<string> }>();
  for (const c of changes) {
    if (!prev.sets.has(c.set)) continue;
    let e = edits.get(c.set);
    if (!e) edits.set(c.set, (e = { add: new Set(), del: new Set() }));
    const text = elementText(c.element);
    // The last change of an element wins (a remove and an add of one element in one patch).
    (c.add ? e.del : e.add).delete(text);
    (c.add ? e.add : e.del).add(text);
  }
  const changed = new Map<string, NftSet>();
  const added = new Map<string, string[]>();
  const removed = new Map<string, string[]>();
  let delta = 0;
  for (const [name, e] of edits) {
    const old = prev.sets.get(name) as NftSet;
    const add = [...e.add].filter((x) => !setHas(old, x)).sort();
    const del = [...e.del].filter((x) => setHas(old, x)).sort();
    if (add.length === 0 && del.length === 0) continue;
    if (add.length > 0) added.set(name, add);
    if (del.length > 0) removed.set(name, del);
    const set = patchedSet(old, add, del);
    steps.set(set, { from: serialOf(old), added: add, removed: del });
    changed.set(name, set);
    delta += add.length - del.length;
  }
  // Source chains only (they come and go with their pods); a removal of a chain `prev` lacks,
  // or an add of one it holds as is, is no change.
  const chainsRemoved: string[] = [];
  const chainsAdded: NftChain[] = [];
  const gone = new Set(chains?.removed.filter((n) => prev.chains.has(n)));
  for (const c of chains?.added ?? []) {
    if (!isSourceChain(c)) throw new Error(`patchElements: ${c.name} is not a source chain`);
    const old = prev.chains.get(c.name);
    if (old && !gone.has(c.name) && sameChain(old, c)) continue;
    if (old) gone.add(c.name);
    chainsAdded.push(c);
  }
  for (const name of gone) {
    const old = prev.chains.get(name);
    if (old && !isSourceChain(old)) throw new Error(`patchElements: ${name} is not a source chain`);
    chainsRemoved.push(name);
  }
  let rules = 0;
  for (const name of chainsRemoved) rules -= prev.chains.get(name)?.rules.length ?? 0;
  for (const c of chainsAdded) rules += c.rules.length;
  const chainsOut = chainsRemoved.length + chainsAdded.length > 0 ? withChains(prev.chains, chainsRemoved, chainsAdded) : prev.chains;
  const next: Ruleset = {
    sets: changed.size > 0 ? withSets(prev.sets, changed) : prev.sets,
    chains: chainsOut,
    counted: prev.counted,
    reasons: prev.reasons,
    patch: { base: prev, added, removed, ...(chainsRemoved.length > 0 ? { chainsRemoved } : {}), ...(chainsAdded.length > 0 ? { chainsAdded } : {}) },
  };
  const stats = rulesetStats(prev);
  rememberStats(next, { ...stats, elements: stats.elements + delta, chains: chainsOut.size, rules: stats.rules + rules });
  return next;
}

/**
 * `second` (a patch of `first`) as one patch of what `first` was patched from: an element added
 * by one and removed by the other is no change. For two sections patched in turn (a pod's
 * policy elements, then the endpoints it moves), applied as one transaction.
 */
export function chainPatches(first: Ruleset, second: Ruleset): Ruleset {
  if (!first.patch || second.patch?.base !== first) throw new Error('chainPatches: the second ruleset is not a patch of the first');
  const a = first.patch;
  const b = second.patch;
  const names = new Set([...a.added.keys(), ...a.removed.keys(), ...b.added.keys(), ...b.removed.keys()]);
  const added = new Map<string, string[]>();
  const removed = new Map<string, string[]>();
  for (const name of names) {
    const a1 = new Set(a.added.get(name));
    const r1 = new Set(a.removed.get(name));
    const a2 = new Set(b.added.get(name));
    const r2 = new Set(b.removed.get(name));
    const add = [...[...a1].filter((x) => !r2.has(x)), ...[...a2].filter((x) => !r1.has(x))].sort();
    const del = [...[...r1].filter((x) => !a2.has(x)), ...[...r2].filter((x) => !a1.has(x))].sort();
    if (add.length > 0) added.set(name, add);
    if (del.length > 0) removed.set(name, del);
  }
  // Source chains: the first patch's changes, then the second's (a chain the first added and
  // the second removed was never there, unless it replaced one the base held).
  const chainsRemoved = [...(a.chainsRemoved ?? [])];
  const chainsAdded = new Map((a.chainsAdded ?? []).map((c) => [c.name, c]));
  for (const name of b.chainsRemoved ?? []) {
    if (chainsAdded.delete(name) && !chainsRemoved.includes(name) && !a.base.chains.has(name)) continue;
    if (!chainsRemoved.includes(name)) chainsRemoved.push(name);
  }
  for (const c of b.chainsAdded ?? []) chainsAdded.set(c.name, c);
  const chainParts = { ...(chainsRemoved.length > 0 ? { chainsRemoved } : {}), ...(chainsAdded.size > 0 ? { chainsAdded: [...chainsAdded.values()] } : {}) };
  const out: Ruleset = { sets: second.sets, chains: second.chains, counted: second.counted, reasons: second.reasons, patch: { base: a.base, added, removed, ...chainParts } };
  rememberStats(out, rulesetStats(second));
  return out;
}
