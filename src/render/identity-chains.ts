// Identity chains kept between renders, for an agent that renders its node's chains on every
// batch that brings or takes a local identity (the chains path, RenderReuse). At 100k pods /
// 50k policies a node's ~1,000 identities took ~60 ms of such a batch to render again (their
// rules, names hashed, reasons looked up), when one or two of them had changed: with this cache
// a render costs what it touches.
//
// An identity's chain (eg_/in_<identity>) and the chains it reaches (ANP, BANP, audit and
// NetworkPolicy chains) follow from:
//   - the identity itself (its ports resolve ingress named ports): the same Identity object;
//   - its programs (enforce and full) in that direction: the same DirectionProgram objects —
//     the engine builds new ones whenever a policy that selects the identity comes, goes or
//     changes (PolicyEngine.attach), and compiled rules never change in place;
//   - the reason ids written into its rules: the same ReasonIds object with no reassignment
//     since (ReasonLedger.reassigned), else every id is checked again;
//   - whether each NetworkPolicy chain it uses was inlined (one user on the node) or shared:
//     the same decision, checked against this render's count of users;
//   - group set names, which are fixed per group id (selector-cache ids are never reused).
// An entry whose inputs are all unchanged is replayed (its chains declared as text, its sets
// and counted reasons declared again, so that the table is exactly what rendering would give);
// any other is rendered and recorded. Entries of identities that a render did not ask for are
// dropped after it (an identity that left the node takes its chains with it).

import type { Identity } from '../policy/cache.js';
import type { CompiledRule, Direction, DirectionProgram, PortSpec } from '../policy/rules.js';
import type { Reason, ReasonIds } from './reasons.js';
import type { NftChain } from './ruleset.js';

type NamedSpec = Extract<PortSpec, { kind: 'named' }>;

/** What rendering one identity chain declared into the table, and what it was computed from. */
export interface ChainRecord {
  readonly identity: Identity;
  readonly enforce: DirectionProgram;
  readonly full: DirectionProgram;
  readonly reasons: ReasonIds;
  /** ReasonLedger.reassigned when recorded (undefined: the ids source does not say). */
  readonly reassigned: number | undefined;
  /** The identity chain's name; undefined: nothing applies (no chain, policy accept). */
  readonly result: string | undefined;
  /** Every chain the identity chain declared or reached, the identity chain included. */
  readonly chains: NftChain[];
  /** Selector-cache groups whose sets its rules name. */
  readonly groups: Set<number>;
  /** Named-port sets its rules name (egress named ports). */
  readonly named: { rule: CompiledRule; specs: readonly NamedSpec[] }[];
  /** Reason ids its rules count in `hits`. */
  readonly counted: Set<number>;
  /** Reasons whose ids are written into its rules, with those ids. */
  readonly ids: Map<Reason, number>;
  /** NetworkPolicy chain name → whether it was inlined (one user on the node). */
  readonly inlined: Map<string, boolean>;
}

/** The NetworkPolicy chain names an identity's enforce program uses (planning the sharing). */
interface PlanRecord {
  readonly identity: Identity;
  readonly enforce: DirectionProgram;
  readonly names: readonly string[];
}

const slot = (identity: Identity, direction: Direction): string => `${direction}\u0000${identity.id}`;

/** The reassignment count of a ReasonLedger (other ReasonIds do not reassign: undefined). */
function reassignedOf(reasons: ReasonIds): number | undefined {
  const n = (reasons as { reassigned?: unknown }).reassigned;
  return typeof n === 'number' ? n : undefined;
}

export class IdentityChainCache {
  private entries = new Map<string, ChainRecord>();
  private plans = new Map<string, PlanRecord>();
  private used = new Set<string>();
  /** Of the last render: identity chains rendered, and replayed from the cache (`direction id`). */
  rendered: string[] = [];
  replayed = 0;

  /** Starts a render: nothing used yet. */
  begin(): void {
    this.used = new Set();
    this.rendered = [];
    this.replayed = 0;
  }

  /** Ends a render: entries it did not use go. */
  end(): void {
    for (const key of this.entries.keys()) if (!this.used.has(key)) this.entries.delete(key);
    for (const key of this.plans.keys()) if (!this.used.has(key)) this.plans.delete(key);
  }

  clear(): void {
    this.entries.clear();
    this.plans.clear();
  }

  /** Identity chains held (`direction id`), for tests. */
  get size(): number {
    return this.entries.size;
  }

  has(identity: number, direction: Direction): boolean {
    return this.entries.has(`${direction}\u0000${identity}`);
  }

  plan(identity: Identity, direction: Direction, enforce: DirectionProgram): readonly string[] | undefined {
    const key = slot(identity, direction);
    this.used.add(key);
    const p = this.plans.get(key);
    return p && p.identity === identity && p.enforce === enforce ? p.names : undefined;
  }

  rememberPlan(identity: Identity, direction: Direction, enforce: DirectionProgram, names: readonly string[]): void {
    this.plans.set(slot(identity, direction), { identity, enforce, names });
  }

  /**
   * The record of the identity chain when every input it was rendered from is unchanged
   * (`inlinedNow`: this render's decision for a NetworkPolicy chain).
   */
  lookup(identity: Identity, direction: Direction, enforce: DirectionProgram, full: DirectionProgram, reasons: ReasonIds, inlinedNow: (name: string) => boolean): ChainRecord | undefined {
    const key = slot(identity, direction);
    this.used.add(key);
    const e = this.entries.get(key);
    if (!e || e.identity !== identity || e.enforce !== enforce || e.full !== full) return undefined;
    for (const [name, inlined] of e.inlined) if (inlinedNow(name) !== inlined) return undefined;
    if (e.reasons !== reasons || e.reassigned === undefined || e.reassigned !== reassignedOf(reasons)) {
      for (const [r, id] of e.ids) {
        try {
          if (reasons.id(r) !== id) return undefined;
        } catch {
          return undefined;
        }
      }
      // Still right under the current ids: valid until they are reassigned again.
      this.entries.set(key, { ...e, reasons, reassigned: reassignedOf(reasons) });
    }
    this.replayed++;
    return e;
  }

  /** An empty record to fill while rendering the identity chain. */
  start(identity: Identity, enforce: DirectionProgram, full: DirectionProgram, reasons: ReasonIds): ChainRecord {
    return { identity, enforce, full, reasons, reassigned: reassignedOf(reasons), result: undefined, chains: [], groups: new Set(), named: [], counted: new Set(), ids: new Map(), inlined: new Map() };
  }

  store(direction: Direction, record: ChainRecord): void {
    this.rendered.push(`${direction} ${record.identity.id}`);
    this.entries.set(slot(record.identity, direction), record);
  }
}
