// The reasons table kept up to date event by event, for an agent that renders often: at 100k
// pods / 50k policies collecting the reasons afresh (collectReasons: every rule, every
// identity's programs, 100k keys hashed and sorted) took 0.8–2.8 s, more than the chains it
// feeds. Rule reasons change only with policies; an identity brings its default-deny reasons
// when it appears and takes them when it goes, so the ledger counts the references to every
// reason and assigns ids as ReasonRegistry does.
//
// Exactness: ReasonRegistry assigns ids in sorted key order, each key its hash or, on a
// collision, the next free id. Adding a key whose hash is free gives exactly the registry of
// the larger key set (no earlier key held that id, no later key's probe crossed it: it was
// free). Removing a key gives the registry of the smaller set unless some collided key probed
// across its id (that key would now stop earlier). Everything else — a new key that collides,
// a removal under a collided key's probe — reassigns every id from scratch, as
// ReasonRegistry would (`reassigned` counts it). At 100k keys in a 2^31 id space that is about
// one change in 20,000.

import type { PolicyEngine } from '../policy/engine.js';
import { baseReasons, hashId, ID_SPACE, identityReasons, reasonKey, type Reason, type ReasonIds, type ReasonsTable } from './reasons.js';

export class ReasonLedger implements ReasonIds {
  /** key → reason and how many references hold it (a rule, or an identity and direction). */
  private readonly reasons = new Map<string, { readonly reason: Reason; refs: number }>();
  private ids = new Map<string, number>();
  private owners = new Map<number, string>();
  /** id → reason, as the table holds them: the table is built from it in one call (see table). */
  private byId = new Map<number, Reason>();
  /** Keys whose id is not their hash (collided): few, checked on every removal. */
  private bumped = new Set<string>();
  /** Reason keys each identity holds a reference to. */
  private readonly byIdentity = new Map<number, readonly string[]>();
  private memo: ReasonsTable | undefined;
  /** Times every id was reassigned (a collision in the way of an incremental change). */
  reassigned = 0;

  /** The ledger of `engine` as it is now (what collectReasons collects). */
  constructor(engine: PolicyEngine) {
    for (const r of baseReasons(engine)) this.ref(reasonKey(r), r);
    for (const id of engine.cache.identities.keys()) this.identityAdded(engine, id, false);
    this.reassign();
    this.reassigned = 0;
  }

  /** An identity appeared: its default-deny reasons are referenced. */
  identityAdded(engine: PolicyEngine, identity: number, place = true): void {
    if (this.byIdentity.has(identity)) return;
    const keys: string[] = [];
    for (const r of identityReasons(engine, identity)) {
      const key = reasonKey(r);
      keys.push(key);
      if (this.ref(key, r) && place) this.place(key);
    }
    this.byIdentity.set(identity, keys);
  }

  /** An identity went: its references are dropped (with the reasons nothing else holds). */
  identityRemoved(identity: number): void {
    const keys = this.byIdentity.get(identity);
    if (!keys) return;
    this.byIdentity.delete(identity);
    for (const key of keys) {
      const e = this.reasons.get(key);
      if (!e || --e.refs > 0) continue;
      this.reasons.delete(key);
      this.unplace(key);
    }
  }

  id(r: Reason): number {
    const id = this.ids.get(reasonKey(r));
    if (id === undefined) throw new Error(`reason not registered: ${r.policy} ${r.rule} (${r.verdict})`);
    return id;
  }

  /**
   * id → reason, as ReasonRegistry's `table`; a new object after every change, the same one
   * until then. Built by Object.fromEntries from `byId`: at 110k reasons a quarter of the cost
   * of assigning the keys one by one (which was 15 % of an agent's CPU under churn).
   */
  get table(): ReasonsTable {
    return (this.memo ??= Object.fromEntries(this.byId) as ReasonsTable);
  }

  get size(): number {
    return this.ids.size;
  }

  /** One more reference; true when the key is new. */
  private ref(key: string, reason: Reason): boolean {
    const e = this.reasons.get(key);
    if (e) {
      e.refs++;
      return false;
    }
    this.reasons.set(key, { reason, refs: 1 });
    return true;
  }

  private place(key: string): void {
    const h = hashId(key);
    if (this.owners.has(h)) return this.reassign();
    this.ids.set(key, h);
    this.owners.set(h, key);
    this.byId.set(h, (this.reasons.get(key) as { reason: Reason }).reason);
    this.memo = undefined;
  }

  private unplace(key: string): void {
    const x = this.ids.get(key);
    if (x === undefined) return;
    for (const b of this.bumped) {
      const from = hashId(b);
      const to = this.ids.get(b) as number;
      // The probe of `b` went from its hash up to its id (wrapping at ID_SPACE).
      if (from <= to ? x >= from && x < to : x >= from || x < to) return this.reassign();
    }
    this.ids.delete(key);
    this.owners.delete(x);
    this.byId.delete(x);
    this.bumped.delete(key);
    this.memo = undefined;
  }

  /** ReasonRegistry's assignment, from scratch. */
  private reassign(): void {
    this.reassigned++;
    this.ids = new Map();
    this.owners = new Map();
    this.byId = new Map();
    this.bumped = new Set();
    for (const key of [...this.reasons.keys()].sort()) {
      const h = hashId(key);
      let id = h;
      while (this.owners.has(id)) id = id >= ID_SPACE ? 1 : id + 1;
      this.ids.set(key, id);
      this.owners.set(id, key);
      this.byId.set(id, (this.reasons.get(key) as { reason: Reason }).reason);
      if (id !== h) this.bumped.add(key);
    }
    this.memo = undefined;
  }
}
