// One table, built by sections. A section (the policy filter today, service NAT next) declares
// its sets, maps, chains and counted reasons into a TableBuilder; the builder is the one place
// where they meet, so two sections cannot silently claim one name, and everything they declare
// ends up in one Ruleset, applied as one transaction.
//
// Adding a section is a contained change: a new file that implements `Section` (and, for its
// frequent changes, computes ElementChanges for the element-only fast path in elements.ts), and
// one entry in the list the caller renders.

import { ruleText, type Rule } from './nft.js';
import type { ReasonsTable } from './reasons.js';
import type { NftChain, NftSet, Ruleset } from './ruleset.js';

export interface Section {
  /** For error messages: which section declared what. */
  readonly name: string;
  /** Declares this section's objects into the table. Pure: no I/O. */
  render(table: TableBuilder): void;
}

export class TableBuilder {
  private readonly sets = new Map<string, NftSet>();
  private readonly chains = new Map<string, NftChain>();
  private readonly owners = new Map<string, string>();
  private readonly counted = new Set<number>();
  /** The section currently rendering (see renderTable). */
  section = '';

  private claim(name: string, what: string): void {
    const owner = this.owners.get(name);
    if (owner !== undefined && owner !== this.section) throw new Error(`nft ${what} ${name}: declared by section "${owner}" and by section "${this.section}"`);
    this.owners.set(name, this.section);
  }

  /** Declares a set or map (replacing this section's earlier declaration of it). */
  set(s: NftSet): string {
    this.claim(s.name, s.kind);
    this.sets.set(s.name, s);
    return s.name;
  }

  hasSet(name: string): boolean {
    return this.sets.has(name);
  }

  hasChain(name: string): boolean {
    return this.chains.has(name);
  }

  /**
   * Declares a chain, once: a second declaration under the same name is the same chain (names
   * are derived from content or from the object they stand for) and is ignored.
   */
  chain(name: string, rules: readonly Rule[], hook?: string): string {
    if (this.chains.has(name)) return name;
    this.claim(name, 'chain');
    this.chains.set(name, hook === undefined ? { name, rules: rules.map(ruleText) } : { name, hook, rules: rules.map(ruleText) });
    return name;
  }

  /** A chain declared already, as text (see chain()). */
  chainOf(name: string): NftChain | undefined {
    return this.chains.get(name);
  }

  /** Declares a chain already rendered to text (a cached one), once, as chain() does. */
  declare(chain: NftChain): string {
    if (this.chains.has(chain.name)) return chain.name;
    this.claim(chain.name, 'chain');
    this.chains.set(chain.name, chain);
    return chain.name;
  }

  /** A reason id whose hits a rule counts in the `hits` set. */
  count(id: number): void {
    this.counted.add(id);
  }

  build(reasons: ReasonsTable): Ruleset {
    const sorted = <T>(m: Map<string, T>): Map<string, T> => new Map([...m.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1)));
    return { sets: sorted(this.sets), chains: sorted(this.chains), counted: [...this.counted].sort((a, b) => a - b), reasons };
  }
}

/** Every section's objects, in one table. */
export function renderTable(sections: readonly Section[], reasons: ReasonsTable): Ruleset {
  const table = new TableBuilder();
  for (const s of sections) {
    table.section = s.name;
    s.render(table);
  }
  return table.build(reasons);
}
