// The identities of a node's local pods with their pod counts, as the agent status reports them
// (status.ts `identities`), kept up to date per pod event instead of recounted: at 100k pods a
// recount (every local pod's identity looked up, the list sorted) cost more per pod add than
// the kernel change itself. Entries are never mutated: a changed count is a new entry in a new
// list, so a status handed out earlier keeps what it said.

import type { Identity } from '../policy/cache.js';
import type { AgentStatus } from './status.js';

export type IdentityEntry = NonNullable<AgentStatus['identities']>[number];

export class LocalIdentities {
  /** Sorted by id. */
  private entries: readonly IdentityEntry[] = [];

  private at(id: number): number {
    let lo = 0;
    let hi = this.entries.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.entries[mid].id < id) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Recounts from scratch (a batch or full sync). */
  reset(identities: Iterable<Identity | undefined>): void {
    const byId = new Map<number, IdentityEntry>();
    for (const id of identities) {
      if (!id) continue;
      const e = byId.get(id.id);
      byId.set(id.id, { id: id.id, namespace: id.namespace, labels: { ...id.labels }, pods: (e?.pods ?? 0) + 1 });
    }
    this.entries = [...byId.values()].sort((a, b) => a.id - b.id);
  }

  /** One local pod of `identity` more (`by` 1) or fewer (`by` -1). */
  change(identity: Identity, by: 1 | -1): void {
    const i = this.at(identity.id);
    const old = this.entries[i]?.id === identity.id ? this.entries[i] : undefined;
    const pods = (old?.pods ?? 0) + by;
    const next = this.entries.slice();
    if (pods <= 0) {
      if (old) next.splice(i, 1);
    } else if (old) next[i] = { ...old, pods };
    else next.splice(i, 0, { id: identity.id, namespace: identity.namespace, labels: { ...identity.labels }, pods });
    this.entries = next;
  }

  list(): readonly IdentityEntry[] {
    return this.entries;
  }
}
