// The files source: manifests on disk (the loader, with its defaulting; workloads' replicas
// delivered as pods), optionally watched. Every read is diffed against the previous one, so a
// consumer receives per-object events, exactly as it would from the Kubernetes API.

import { stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { loadManifests, type LoadOptions } from '../load/index.js';
import { materializeReplicas, type Cluster } from '../model/cluster.js';
import type { Diagnostic } from '../model/diagnostics.js';
import { diffSnapshots, EMPTY_SNAPSHOT } from './diff.js';
import { endpointSlicesOf } from './endpoints.js';
import type { ClusterEvent, ClusterSnapshot, ClusterSource, ClusterSourceHandlers } from './types.js';
import { FileWatch } from './watch.js';

/**
 * A cluster as a source snapshot: the cluster plus its EndpointSlices — those the controller
 * would derive from its Services' selectors, and those the manifests declare (passed through,
 * as the API would deliver them; a declared one whose name a derived one already has is left
 * out, since a source delivers one object per name).
 */
export function snapshotOfCluster(cluster: Cluster): ClusterSnapshot {
  const derived = endpointSlicesOf(cluster);
  const declared = cluster.endpointSlices ?? [];
  if (declared.length === 0) return { cluster, endpointSlices: derived };
  const names = new Set(derived.map((s) => `${s.namespace}/${s.name}`));
  return { cluster, endpointSlices: [...derived, ...declared.filter((s) => !names.has(`${s.namespace}/${s.name}`))] };
}

/** Pods a files source materialises from replica counts before it keeps one pod per workload (with its count). */
export const FILES_MAX_PODS = 100_000;

export interface FilesSourceOptions {
  /** Re-read when a file changes (default false: one snapshot, then nothing). */
  readonly watch?: boolean;
  /** Poll period of the watch (default 200 ms). */
  readonly pollMs?: number;
  readonly load?: LoadOptions;
  /**
   * The loader keeps one pod per replicated workload with a count (`Pod.replicas`); a source
   * delivers every replica as its own Pod event (`web-0`, `web-1`, …), as the Kubernetes API
   * would, up to this many pods (default FILES_MAX_PODS). Above it the counts are kept and
   * `onError` says so.
   */
  readonly maxPods?: number;
}

export class FilesSource implements ClusterSource {
  readonly description: string;
  private current: ClusterSnapshot = EMPTY_SNAPSHOT;
  private lastDiagnostics: readonly Diagnostic[] = [];
  private handlers: ClusterSourceHandlers | undefined;
  private watcher: FileWatch | undefined;
  private reads = 0;
  private lastEvents: readonly ClusterEvent[] = [];

  constructor(
    readonly paths: readonly string[],
    private readonly opts: FilesSourceOptions = {},
  ) {
    this.description = `files ${paths.join(' ')}`;
  }

  async start(handlers: ClusterSourceHandlers): Promise<void> {
    this.handlers = handlers;
    await this.read(true);
    handlers.onSynced?.();
    if (!this.opts.watch) return;
    const dirs: string[] = [];
    for (const p of this.paths) {
      const s = await stat(p).catch(() => undefined);
      dirs.push(s?.isDirectory() ? p : dirname(p));
    }
    this.watcher = new FileWatch({
      paths: () => this.paths,
      watchDirs: [...new Set(dirs)],
      pollMs: this.opts.pollMs,
      reload: () => this.read(false).then(() => undefined),
      onError: (e) => this.handlers?.onError?.(e),
    });
    await this.watcher.start();
  }

  /** Re-reads the files now and delivers what changed; resolves once delivered. */
  async refresh(): Promise<readonly ClusterEvent[]> {
    if (!this.watcher) return this.read(false);
    // Through the watch's queue, so reads never overlap.
    const before = this.reads;
    await this.watcher.trigger();
    return this.reads === before ? this.read(false) : this.lastEvents;
  }

  private async read(initial: boolean): Promise<readonly ClusterEvent[]> {
    const loaded = await loadManifests([...this.paths], this.opts.load);
    let cluster = loaded.cluster;
    try {
      cluster = { ...cluster, pods: materializeReplicas(cluster.pods, this.opts.maxPods ?? FILES_MAX_PODS) };
    } catch (e) {
      if (!(e instanceof RangeError)) throw e;
      this.handlers?.onError?.(new Error(`${this.description}: ${e.message}; pods are delivered one per workload, with their replica count`));
    }
    const next = snapshotOfCluster(cluster);
    const events = diffSnapshots(this.current, next);
    this.current = next;
    this.lastDiagnostics = loaded.diagnostics;
    this.handlers?.onDiagnostics?.(loaded.diagnostics);
    this.reads++;
    this.lastEvents = events;
    if (initial || events.length > 0) this.handlers?.onEvents(events);
    return events;
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
