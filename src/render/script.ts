// Ruleset → nft script text. One script is one transaction (`nft -f` commits a file
// atomically): either everything in it takes effect or nothing does.
//
// The full script replaces the table: `add table` + `delete table` + the new table, the
// idiom that works whether or not the table exists. The partial script diffs two rulesets
// and touches only what changed, in an order the kernel accepts inside one transaction:
// new objects first, then map elements that point at chains about to go, chain refills,
// element changes, and deletions last (a chain or set can only be deleted when nothing
// refers to it any more).

import { FAMILY, TABLE } from './names.js';
import { patchedDifference } from './elements.js';
import { elementKey, type ElementPatch, type NftChain, type NftSet, type Ruleset } from './ruleset.js';

const T = `${FAMILY} ${TABLE}`;
/** Elements per `add element` command: keeps lines reasonable without costing parse time. */
const ELEMENT_CHUNK = 2000;

function setDecl(s: NftSet): string {
  // `typeof <expression>` where no named datatype fits (a `numgen` key, service NAT).
  const parts = [s.type.startsWith('typeof ') ? `${s.type};` : `type ${s.type};`];
  if (s.flags.length > 0) parts.push(`flags ${s.flags.join(',')};`);
  for (const e of s.extra) parts.push(`${e};`);
  return `${s.kind} ${s.name} { ${parts.join(' ')} }`;
}

function elementCommands(verb: 'add' | 'delete', set: string, elements: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < elements.length; i += ELEMENT_CHUNK) {
    out.push(`${verb} element ${T} ${set} { ${elements.slice(i, i + ELEMENT_CHUNK).join(', ')} }`);
  }
  return out;
}

function chainDecl(c: NftChain): string {
  return c.hook ? `chain ${c.name} { ${c.hook} }` : `chain ${c.name} { }`;
}

/** Atomic replace of the whole table. Chains are declared before anything refers to them. */
export function fullScript(rs: Ruleset): string {
  const lines: string[] = [`add table ${T}`, `delete table ${T}`, `table ${T} {`];
  // The kernel finds a set by name — for a rule that names it, and for every element command —
  // by walking the table's sets in creation order (nf_tables_api.c, nft_set_lookup), so the
  // order is chosen for those walks: the dynamic sets first (`hits` is named by a rule per
  // counted verdict, thousands; declared last it added 0.25 s to a full load of 10k pods),
  // then the sets every pod add or remove changes (`eg_pod`, `in_pod`: at 100k pods, a pod map
  // declared last of 24k sets cost a walk of the whole list per pod add), then the rest by size, largest first: a random
  // pod add touches a group set with a probability that grows with its membership.
  const sets = [...rs.sets.values()];
  const bySize = (a: NftSet, b: NftSet): number => b.elements.length - a.elements.length || (a.name < b.name ? -1 : 1);
  for (const s of [...sets.filter((x) => x.dynamic), ...sets.filter((x) => !x.dynamic && x.hot), ...sets.filter((x) => !x.dynamic && !x.hot).sort(bySize)]) lines.push(`  ${setDecl(s)}`);
  for (const c of rs.chains.values()) if (!c.hook) lines.push(`  ${chainDecl(c)}`);
  lines.push('}');
  lines.push(`table ${T} {`);
  for (const c of rs.chains.values()) {
    if (c.hook) continue;
    lines.push(`  chain ${c.name} {`);
    for (const r of c.rules) lines.push(`    ${r}`);
    lines.push('  }');
  }
  lines.push('}');
  for (const s of rs.sets.values()) if (!s.dynamic) lines.push(...elementCommands('add', s.name, s.elements));
  // Base chains last: the hooks see a complete table (the transaction is atomic anyway, but
  // this keeps a half-read script harmless to a reader).
  lines.push(`table ${T} {`);
  for (const c of rs.chains.values()) {
    if (!c.hook) continue;
    lines.push(`  chain ${c.name} {`, `    ${c.hook}`);
    for (const r of c.rules) lines.push(`    ${r}`);
    lines.push('  }');
  }
  lines.push('}');
  return `${lines.join('\n')}\n`;
}

/**
 * The script of an element patch (see ElementPatch): map keys are deleted before new ones are
 * added (a changed verdict is delete + add), plain set elements added before others go.
 */
export function patchScript(next: Ruleset, patch: ElementPatch): PartialScript {
  const lines: string[] = [];
  let elementsAdded = 0;
  let elementsRemoved = 0;
  for (const [name, els] of patch.removed) {
    const s = next.sets.get(name);
    if (!s) continue;
    elementsRemoved += els.length;
    lines.push(...elementCommands('delete', name, els.map((e) => elementKey(s, e))));
  }
  for (const [name, els] of patch.added) {
    elementsAdded += els.length;
    lines.push(...elementCommands('add', name, els));
  }
  return {
    script: lines.length > 0 ? `${lines.join('\n')}\n` : '',
    summary: { chainsAdded: 0, chainsChanged: 0, chainsRemoved: 0, setsAdded: 0, setsRemoved: 0, elementsAdded, elementsRemoved, narrowed: lines.length > 0 },
  };
}

export interface DiffSummary {
  readonly chainsAdded: number;
  readonly chainsChanged: number;
  readonly chainsRemoved: number;
  readonly setsAdded: number;
  readonly setsRemoved: number;
  readonly elementsAdded: number;
  readonly elementsRemoved: number;
  /** True when something that was allowed may no longer be: the cue for a conntrack sweep. */
  readonly narrowed: boolean;
}

export interface PartialScript {
  readonly script: string;
  readonly summary: DiffSummary;
}

function sameRules(a: NftChain, b: NftChain): boolean {
  return a.rules.length === b.rules.length && a.rules.every((r, i) => r === b.rules[i]);
}

/**
 * The partial sync from `prev` (what the kernel holds) to `next`, or undefined when only a full
 * replace can get there (a set's type or flags, or a base chain's hook, changed). An empty
 * script means nothing to do.
 */
export function diffScript(prev: Ruleset, next: Ruleset): PartialScript | undefined {
  for (const [name, s] of next.sets) {
    const old = prev.sets.get(name);
    if (old && (old.type !== s.type || old.kind !== s.kind || old.flags.join() !== s.flags.join() || old.extra.join() !== s.extra.join())) return undefined;
  }
  for (const [name, c] of next.chains) {
    const old = prev.chains.get(name);
    if ((old?.hook ?? c.hook) !== c.hook || (old === undefined && c.hook)) return undefined;
  }
  for (const [name, c] of prev.chains) if (c.hook && !next.chains.has(name)) return undefined;

  const head: string[] = [];
  const mapDeletes: string[] = [];
  const flushes: string[] = [];
  const refills: string[] = [];
  const elementAdds: string[] = [];
  const elementDeletes: string[] = [];
  const tail: string[] = [];
  let chainsAdded = 0;
  let chainsChanged = 0;
  let elementsAdded = 0;
  let elementsRemoved = 0;
  let setsAdded = 0;


  for (const [name, s] of next.sets) {
    const old = prev.sets.get(name);
    if (old === s) continue; // untouched by a patch: nothing to compare
    if (!old) {
      head.push(`add ${setDecl(s).replace(/^(set|map) /, `$1 ${T} `)}`);
      setsAdded++;
    }
    if (s.dynamic) continue;
    // A set patched from the one applied (a render that reused it) knows what changed.
    const known = old ? patchedDifference(old, s) : undefined;
    let added: string[];
    let removed: string[];
    if (known) ({ added, removed } = known);
    else {
      const had = new Set(old?.elements ?? []);
      const want = new Set(s.elements);
      added = s.elements.filter((e) => !had.has(e));
      removed = (old?.elements ?? []).filter((e) => !want.has(e));
    }
    elementsAdded += added.length;
    elementsRemoved += removed.length;
    if (s.kind === 'map') {
      // A changed verdict is delete + add of the key, before the chains it named may go.
      mapDeletes.push(...elementCommands('delete', name, removed.map((e) => elementKey(s, e))));
      elementAdds.push(...elementCommands('add', name, added));
    } else {
      elementAdds.push(...elementCommands('add', name, added));
      elementDeletes.push(...elementCommands('delete', name, removed));
    }
  }

  for (const [name, c] of next.chains) {
    const old = prev.chains.get(name);
    if (old === c || (old && sameRules(old, c))) continue;
    if (!old) {
      head.push(`add chain ${T} ${name}`);
      chainsAdded++;
    } else {
      flushes.push(`flush chain ${T} ${name}`);
      chainsChanged++;
    }
    for (const r of c.rules) refills.push(`add rule ${T} ${name} ${r}`);
  }

  const removedChains = [...prev.chains.keys()].filter((n) => !next.chains.has(n));
  // Flush every chain that goes before deleting any: they may jump to one another.
  for (const n of removedChains) flushes.push(`flush chain ${T} ${n}`);
  for (const n of removedChains) tail.push(`delete chain ${T} ${n}`);
  const removedSets = [...prev.sets.keys()].filter((n) => !next.sets.has(n));
  for (const n of removedSets) tail.push(`delete ${prev.sets.get(n)?.kind ?? 'set'} ${T} ${n}`);

  const lines = [...head, ...mapDeletes, ...flushes, ...refills, ...elementAdds, ...elementDeletes, ...tail];
  // Any change may narrow what is allowed (a new chain behind a new map element isolates a pod,
  // a new element joins a denied group), so every non-empty diff counts.
  const narrowed = lines.length > 0;
  return {
    script: lines.length > 0 ? `${lines.join('\n')}\n` : '',
    summary: {
      chainsAdded,
      chainsChanged,
      chainsRemoved: removedChains.length,
      setsAdded,
      setsRemoved: removedSets.length,
      elementsAdded,
      elementsRemoved,
      narrowed,
    },
  };
}
