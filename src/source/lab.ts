// The lab source: the lab's desired manifests (`<dir>/desired/`, kept by `weir lab apply`)
// joined with its state file (IPAM: pods, addresses, nodes) by the one join, src/lab/cluster.ts.
// The agents, `lab probe --compare`, `lab status` and the visibility server all read the lab
// through it, so a `lab apply` that relabels a Node reaches every one of them.
//
// Every read is diffed against the previous one (src/source/diff.ts): consumers receive
// per-object events. `generation` is the desired generation read *before* the manifests of
// the batch being delivered (whatever they contain is at least that generation), which is
// what an agent reports so `lab apply` knows when its change is enforced. A batch is delivered
// whenever the generation moves, even an empty one.

import { join } from 'node:path';
import { loadManifests } from '../load/index.js';
import { emptyCluster, type Cluster } from '../model/cluster.js';
import type { Diagnostic } from '../model/diagnostics.js';
import { labCluster } from '../lab/cluster.js';
import { DESIRED_FILE, desiredDir, loadDesired, readDesiredGeneration } from '../lab/desired.js';
import { readState, STATE_FILE, type LabState } from '../lab/state.js';
import { diffSnapshots, EMPTY_SNAPSHOT } from './diff.js';
import { snapshotOfCluster } from './files.js';
import type { ClusterEvent, ClusterSnapshot, ClusterSource, ClusterSourceHandlers } from './types.js';
import { FileWatch } from './watch.js';

/** The snapshot of a lab: `desired` joined with `state` (no state: the desired objects without pods or nodes). */
export function labSnapshot(state: Pick<LabState, 'namespaces' | 'nodes' | 'pods'> | undefined, desired: Cluster): ClusterSnapshot {
  return snapshotOfCluster(labCluster(desired, state ?? { namespaces: [], nodes: [], pods: [] }));
}

export interface LabSourceOptions {
  /** The lab directory (state.json, desired/). */
  readonly dir: string;
  /** Manifest files or folders to use instead of the lab's desired state. */
  readonly manifests?: readonly string[];
  /** Re-read when the state or the desired manifests change (default false). */
  readonly watch?: boolean;
  /** Poll period of the watch (default 200 ms). */
  readonly pollMs?: number;
}

/** What one read of the lab found, besides the events. */
export interface LabRead {
  readonly state: LabState | undefined;
  readonly generation: number | undefined;
  readonly diagnostics: readonly Diagnostic[];
  readonly events: readonly ClusterEvent[];
}

export class LabSource implements ClusterSource {
  readonly description: string;
  private current: ClusterSnapshot = EMPTY_SNAPSHOT;
  private lastState: LabState | undefined;
  private lastGeneration: number | undefined;
  private lastDiagnostics: readonly Diagnostic[] = [];
  private handlers: ClusterSourceHandlers | undefined;
  private watcher: FileWatch | undefined;
  private reads = 0;
  private lastRead: LabRead = { state: undefined, generation: undefined, diagnostics: [], events: [] };

  constructor(private readonly opts: LabSourceOptions) {
    this.description = `lab ${opts.dir}`;
  }

  async start(handlers: ClusterSourceHandlers): Promise<void> {
    this.handlers = handlers;
    await this.read(true);
    handlers.onSynced?.();
    if (!this.opts.watch) return;
    const dir = this.opts.dir;
    const inputs = new Set([STATE_FILE, DESIRED_FILE, 'desired']);
    this.watcher = new FileWatch({
      paths: () => [join(dir, STATE_FILE), join(dir, DESIRED_FILE), desiredDir(dir), ...(this.opts.manifests ?? [])],
      watchDirs: [dir, desiredDir(dir)],
      // The lab directory also holds the agents' and the server's own outputs.
      ignore: (name) => !inputs.has(name) && !name.endsWith('.yaml') && name !== '.generation',
      pollMs: this.opts.pollMs,
      reload: () => this.read(false).then(() => undefined),
      onError: (e) => this.handlers?.onError?.(e),
    });
    await this.watcher.start();
  }

  /**
   * Re-reads the lab now and delivers what changed; resolves once delivered. While watching,
   * the read goes through the watch's queue, so reads never overlap or deliver out of order.
   */
  async refresh(): Promise<LabRead> {
    if (!this.watcher) return this.read(false);
    const before = this.reads;
    await this.watcher.trigger();
    return this.reads > before ? this.lastRead : this.read(false);
  }

  private async read(initial: boolean): Promise<LabRead> {
    let state: LabState | undefined;
    try {
      state = await readState(this.opts.dir);
    } catch (e) {
      // An invalid state file: keep what was delivered (never guess), say why.
      const error = e instanceof Error ? e : new Error(String(e));
      this.handlers?.onError?.(error);
      if (initial) this.handlers?.onEvents([]);
      return { state: this.lastState, generation: this.lastGeneration, diagnostics: this.lastDiagnostics, events: [] };
    }
    // Read before the manifests: whatever they contain is at least this generation.
    const generation = await readDesiredGeneration(this.opts.dir);
    let desired: { cluster: Cluster; diagnostics: Diagnostic[] };
    if (this.opts.manifests) desired = await loadManifests([...this.opts.manifests]);
    else {
      const loaded = await loadDesired(this.opts.dir);
      desired = loaded.present ? loaded : { cluster: emptyCluster(), diagnostics: [] };
    }
    const next = labSnapshot(state, desired.cluster);
    const events = diffSnapshots(this.current, next);
    const moved = generation !== this.lastGeneration;
    this.current = next;
    this.lastState = state;
    this.lastGeneration = generation;
    this.lastDiagnostics = desired.diagnostics;
    this.handlers?.onDiagnostics?.(desired.diagnostics);
    this.reads++;
    this.lastRead = { state, generation, diagnostics: desired.diagnostics, events };
    // A new generation with no object change (`lab apply` of unchanged objects) is still
    // delivered, as an empty batch: an agent reports the generation it enforces.
    if (initial || events.length > 0 || moved) this.handlers?.onEvents(events);
    return this.lastRead;
  }

  /** The lab state of the last read (pod interfaces, node namespaces: what only the lab knows). */
  state(): LabState | undefined {
    return this.lastState;
  }

  /** The desired generation of the last read (see the file comment). */
  generation(): number | undefined {
    return this.lastGeneration;
  }

  diagnostics(): readonly Diagnostic[] {
    return this.lastDiagnostics;
  }

  async stop(): Promise<void> {
    await this.watcher?.stop();
    this.watcher = undefined;
    this.handlers = undefined;
  }

  snapshot(): ClusterSnapshot {
    return this.current;
  }
}
