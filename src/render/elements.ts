// The element-only fast path, for any section: most changes of a running cluster (a replica
// coming or going, an endpoint joining a service) change set and map elements only. A section
// turns such a change into ElementChanges; `patchElements` applies them to the last ruleset
// without re-rendering, and records them (ElementPatch) so that the applier sends exactly those
// `add element` / `delete element` commands instead of diffing sets of thousands of elements.

import { elementText, type Element } from './nft.js';
import type { NftSet, Ruleset } from './ruleset.js';

export interface ElementChange {
  readonly set: string;
  readonly element: Element;
  readonly add: boolean;
}

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

/** Whether `rs` holds the element (exactly: a map element with its value). */
export function hasElement(rs: Ruleset, set: string, element: Element): boolean {
  const elements = rs.sets.get(set)?.elements ?? [];
  const text = elementText(element);
  return elements[search(elements, text)] === text;
}

/**
 * `prev` with the element changes applied (changes to sets `prev` lacks are ignored; adding a
 * present element or removing an absent one is no change). Elements stay sorted: binary search,
 * no re-sort of sets with thousands of members for one pod.
 */
export function patchElements(prev: Ruleset, changes: Iterable<ElementChange>): Ruleset {
  const edits = new Map<string, { add: Set<string>; del: Set<string> }>();
  for (const c of changes) {
    if (!prev.sets.has(c.set)) continue;
    let e = edits.get(c.set);
    if (!e) edits.set(c.set, (e = { add: new Set(), del: new Set() }));
    (c.add ? e.add : e.del).add(elementText(c.element));
  }
  const sets = new Map(prev.sets);
  const added = new Map<string, string[]>();
  const removed = new Map<string, string[]>();
  for (const [name, e] of edits) {
    const old = prev.sets.get(name) as NftSet;
    const del = [...e.del].filter((x) => old.elements[search(old.elements, x)] === x);
    const next = del.length > 0 ? old.elements.filter((x) => !e.del.has(x)) : [...old.elements];
    const add: string[] = [];
    for (const x of e.add) {
      const at = search(next, x);
      if (next[at] !== x) {
        next.splice(at, 0, x);
        add.push(x);
      }
    }
    if (add.length === 0 && del.length === 0) continue;
    if (add.length > 0) added.set(name, add);
    if (del.length > 0) removed.set(name, del);
    sets.set(name, { ...old, elements: next });
  }
  return { sets, chains: prev.chains, counted: prev.counted, reasons: prev.reasons, patch: { base: prev, added, removed } };
}
