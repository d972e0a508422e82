// How a balancing loop (src/agent/lb-loop.ts) shares what it measures with the other nodes and
// learns the drains: one interface, two ways.
//
//   - files (the lab, one host): `<dir>/lb-<node>.json` written, the other nodes' files read,
//     `<dir>/lb-drain.json` read (src/agent/lb-files.ts);
//   - a weir server (cluster mode, nodes share no directory): src/agent/lb-remote.ts.

import { readDrains, readLbStatuses, writeLbStatus } from './lb-files.js';
import type { LbNodeStatus } from './lb-status.js';

/** Another node's probes of its own endpoints. */
export interface PeerProbes {
  readonly node: string;
  /** When that node measured them, on this node's clock (ms since the epoch). */
  readonly measuredAt: number;
  readonly probes: LbNodeStatus['probes'];
}

export interface LbExchange {
  /** The drained locations; throws when they cannot be known (the loop then keeps the ones it had). */
  drains(): Promise<Set<string>>;
  /** The other nodes' probes (this node's own entry may be among them: the loop skips it). */
  peers(): Promise<readonly PeerProbes[]>;
  /** This node's status, for the other nodes and for `weir lb status`, the API and the dashboard. */
  publish(status: LbNodeStatus): Promise<void>;
  /** What could not be exchanged, in sentences (reported in the node's status). */
  problems(): readonly string[];
  close(): void;
}

export class FileExchange implements LbExchange {
  constructor(private readonly dir: string) {}

  drains(): Promise<Set<string>> {
    return readDrains(this.dir);
  }

  async peers(): Promise<readonly PeerProbes[]> {
    const { statuses } = await readLbStatuses(this.dir);
    return statuses.map((s) => ({ node: s.node, measuredAt: Date.parse(s.updatedAt), probes: s.probes }));
  }

  publish(status: LbNodeStatus): Promise<void> {
    return writeLbStatus(this.dir, status);
  }

  problems(): readonly string[] {
    return [];
  }

  close(): void {}
}
