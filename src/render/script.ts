// Ruleset → nft script text. One script is one transaction (`nft -f` commits a file
// atomically): either everything in it takes effect or nothing does.
//
// The full script replaces the table: `add table` + `delete table` + the new table, the
// idiom that works whether or not the table exists. The partial script diffs two rulesets
// and touches only what changed, in an order the kernel accepts inside one transaction:
// new objects first, then map elements that point at chains about to go, chain refills,
// element changes, and deletions last (a chain or set can only be deleted when nothing
// refers to it any more).

import { FAMILY, SOURCE_TABLE, TABLE } from './names.js';
import { patchedDifference } from './elements.js';
import { elementKey, isSourceChain, type ElementPatch, type NftChain, type NftSet, type Ruleset } from './ruleset.js';

const T = `${FAMILY} ${TABLE}`;
/** The source chains' table (names.ts, SOURCE_TABLE). */
const S = `${FAMILY} ${SOURCE_TABLE}`;
/** The table a set or chain lives in. */
const tableOf = (x: { readonly table?: 'src' }): string => (x.table === 'src' ? S : T);
/** Elements per `add element` command: keeps lines reasonable without costing parse time. */
const ELEMENT_CHUNK = 2000;

function setDecl(s: NftSet): string {
  // `typeof <expression>` where no named datatype fits (a `numgen` key, service NAT).
  const parts = [s.type.startsWith('typeof ') ? `${s.type};` : `type ${s.type};`];
  if (s.flags.length > 0) parts.push(`flags ${s.flags.join(',')};`);
  for (const e of s.extra) parts.push(`${e};`);
  return `${s.kind} ${s.name} { ${parts.join(' ')} }`;
}

function elementCommands(verb: 'add' | 'delete', s: NftSet, elements: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < elements.length; i += ELEMENT_CHUNK) {
    out.push(`${verb} element ${tableOf(s)} ${s.name} { ${elements.slice(i, i + ELEMENT_CHUNK).join(', ')} }`);
  }
  return out;
}

function chainDecl(c: NftChain): string {
  return c.hook ? `chain ${c.name} { ${c.hook} }` : `chain ${c.name} { }`;
}

/** One table's objects, after its `add table` + `delete table`. */
function tableLines(at: string, sets: readonly NftSet[], chains: readonly NftChain[], lines: string[]): void {
  lines.push(`table ${at} {`);
  // The kernel finds a set by name — for a rule that names it, and for every element command —
  // by walking the table's sets in creation order (nf_tables_api.c, nft_set_lookup), so the
  // order is chosen for those walks: the dynamic sets first (`hits` is named by a rule per
  // counted verdict, thousands; declared last it added 0.25 s to a full load of 10k pods),
  // then the sets every pod add or remove changes (`eg_pod`, `in_pod`: at 100k pods, a pod map
  // declared last of 24k sets cost a walk of the whole list per pod add), then the rest by size, largest first: a random
  // pod add touches a group set with a probability that grows with its membership.
  const bySize = (a: NftSet, b: NftSet): number => b.elements.length - a.elements.length || (a.name < b.name ? -1 : 1);
  for (const s of [...sets.filter((x) => x.dynamic), ...sets.filter((x) => !x.dynamic && x.hot), ...sets.filter((x) => !x.dynamic && !x.hot).sort(bySize)]) lines.push(`  ${setDecl(s)}`);
  for (const c of chains) if (!c.hook) lines.push(`  ${chainDecl(c)}`);
  lines.push('}');
  lines.push(`table ${at} {`);
  for (const c of chains) {
    if (c.hook) continue;
    lines.push(`  chain ${c.name} {`);
    for (const r of c.rules) lines.push(`    ${r}`);
    lines.push('  }');
  }
  lines.push('}');
  for (const s of sets) if (!s.dynamic) lines.push(...elementCommands('add', s, s.elements));
  // Base chains last: the hooks see a complete table (the transaction is atomic anyway, but
  // this keeps a half-read script harmless to a reader). By name, as a render declares them: a
  // patch appends the source chains it adds (elements.ts, ChainOverlay).
  lines.push(`table ${at} {`);
  for (const c of chains.filter((x) => x.hook).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    lines.push(`  chain ${c.name} {`, `    ${c.hook ?? ''}`);
    for (const r of c.rules) lines.push(`    ${r}`);
    lines.push('  }');
  }
  lines.push('}');
}

/**
 * Atomic replace of the whole table, and of the source chains' table (removed when the ruleset
 * has nothing in it). Chains are declared before anything refers to them.
 */
export function fullScript(rs: Ruleset): string {
  const lines: string[] = [`add table ${T}`, `delete table ${T}`];
  const sets = [...rs.sets.values()];
  const chains = [...rs.chains.values()];
  tableLines(T, sets.filter((x) => x.table !== 'src'), chains.filter((x) => x.table !== 'src'), lines);
  lines.push(`add table ${S}`, `delete table ${S}`);
  const srcSets = sets.filter((x) => x.table === 'src');
  const srcChains = chains.filter((x) => x.table === 'src');
  if (srcSets.length + srcChains.length > 0) tableLines(S, srcSets, srcChains, lines);
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
  for (const name of patch.chainsRemoved ?? []) lines.push(`delete chain ${S} ${name}`);
  for (const [name, els] of patch.removed) {
    const s = next.sets.get(name);
    if (!s) continue;
    elementsRemoved += els.length;
    lines.push(...elementCommands('delete', s, els.map((e) => elementKey(s, e))));
  }
  for (const [name, els] of patch.added) {
    const s = next.sets.get(name);
    if (!s) continue;
    elementsAdded += els.length;
    lines.push(...elementCommands('add', s, els));
  }
  if (patch.chainsAdded?.length) lines.push(`add table ${S}`);
  for (const c of patch.chainsAdded ?? []) {
    lines.push(`add chain ${S} ${c.name} { ${c.hook ?? ''} }`);
    for (const r of c.rules) lines.push(`add rule ${S} ${c.name} ${r}`);
  }
  return {
    script: lines.length > 0 ? `${lines.join('\n')}\n` : '',
    summary: { chainsAdded: patch.chainsAdded?.length ?? 0, chainsChanged: 0, chainsRemoved: patch.chainsRemoved?.length ?? 0, setsAdded: 0, setsRemoved: 0, elementsAdded, elementsRemoved, narrowed: lines.length > 0 },
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
 * replace can get there (a set's type or flags, or a base chain's hook, changed; a base chain
 * other than a source chain added or removed). An empty script means nothing to do.
 */
export function diffScript(prev: Ruleset, next: Ruleset): PartialScript | undefined {
  for (const [name, s] of next.sets) {
    const old = prev.sets.get(name);
    if (old && (old.type !== s.type || old.kind !== s.kind || old.flags.join() !== s.flags.join() || old.extra.join() !== s.extra.join() || old.table !== s.table)) return undefined;
  }
  for (const [name, c] of next.chains) {
    const old = prev.chains.get(name);
    if ((old?.hook ?? c.hook) !== c.hook || (old !== undefined && old.table !== c.table) || (old === undefined && c.hook && !isSourceChain(c))) return undefined;
  }
  for (const [name, c] of prev.chains) if (c.hook && !isSourceChain(c) && !next.chains.has(name)) return undefined;

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
  // The source chains' table first, when anything goes into it (it may not exist).
  const intoSource = (): void => {
    if (head[0] !== `add table ${S}`) head.unshift(`add table ${S}`);
  };

  for (const [name, s] of next.sets) {
    const old = prev.sets.get(name);
    if (old === s) continue; // untouched by a patch: nothing to compare
    if (!old) {
      if (s.table === 'src') intoSource();
      head.push(`add ${setDecl(s).replace(/^(set|map) /, `$1 ${tableOf(s)} `)}`);
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
      mapDeletes.push(...elementCommands('delete', s, removed.map((e) => elementKey(s, e))));
      elementAdds.push(...elementCommands('add', s, added));
    } else {
      elementAdds.push(...elementCommands('add', s, added));
      elementDeletes.push(...elementCommands('delete', s, removed));
    }
  }

  for (const [name, c] of next.chains) {
    const old = prev.chains.get(name);
    if (old === c || (old && sameRules(old, c))) continue;
    const at = tableOf(c);
    if (!old) {
      if (at === S) intoSource();
      head.push(c.hook ? `add chain ${at} ${name} { ${c.hook} }` : `add chain ${at} ${name}`);
      chainsAdded++;
    } else {
      flushes.push(`flush chain ${at} ${name}`);
      chainsChanged++;
    }
    for (const r of c.rules) refills.push(`add rule ${at} ${name} ${r}`);
  }

  const removedChains = [...prev.chains.values()].filter((c) => !next.chains.has(c.name));
  // Flush every chain that goes before deleting any: they may jump to one another.
  for (const c of removedChains) flushes.push(`flush chain ${tableOf(c)} ${c.name}`);
  for (const c of removedChains) tail.push(`delete chain ${tableOf(c)} ${c.name}`);
  const removedSets = [...prev.sets.keys()].filter((n) => !next.sets.has(n));
  for (const n of removedSets) {
    const old = prev.sets.get(n);
    tail.push(`delete ${old?.kind ?? 'set'} ${old ? tableOf(old) : T} ${n}`);
  }

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
