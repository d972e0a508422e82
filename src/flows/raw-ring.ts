// The agent's raw records, node-local and bounded (Hubble keeps a ring buffer per node the same
// way): the server stores aggregates and samples, and asks the agents for everything else.
import { matchesFilter, type FlowFilter } from './filter.js';
import type { FlowRecord } from './record.js';
import type { StoredFlow } from './store.js';

export const DEFAULT_RING_SIZE = 100_000;

export class RawFlowRing {
  private readonly ring: (StoredFlow | undefined)[];
  private next = 0;
  private id = 0;

  constructor(readonly capacity = DEFAULT_RING_SIZE) {
    this.ring = new Array<StoredFlow | undefined>(capacity);
  }

  add(records: readonly FlowRecord[]): void {
    for (const r of records) {
      this.ring[this.next] = { ...r, id: ++this.id };
      this.next = (this.next + 1) % this.capacity;
    }
  }

  get size(): number {
    return Math.min(this.id, this.capacity);
  }

  /** Newest first, as the server's store answers. */
  query(f: FlowFilter): StoredFlow[] {
    const out: StoredFlow[] = [];
    for (let i = 1; i <= this.capacity && out.length < f.limit; i++) {
      const r = this.ring[(this.next - i + this.capacity) % this.capacity];
      if (r === undefined) break;
      if (matchesFilter(r, f)) out.push(r);
    }
    return out;
  }
}
