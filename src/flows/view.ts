// The cluster as a node's flow records need it, kept from the same source events the agent
// enforces from (src/source): pods by address (namespace, name, workload, labels, node),
// Services by virtual address and port, and the engine's attribution of accepted connections.
// One path for every agent: the lab agent feeds it the lab source's events, the Kubernetes node
// agent the API's (pods on other nodes are known by address and labels, which is all a flow
// record needs of them).
//
// Incremental: an event changes one entry; the attribution memo (per engine state) and the
// Service address table are rebuilt lazily, on the first record after a change.

import type { Node, Service } from '../model/cluster.js';
import type { PolicyEngine } from '../policy/engine.js';
import { allocate, serviceKey } from '../lb/allocate.js';
import type { ClusterEvent } from '../source/types.js';
import { FlowAttribution, type AttributedPod, type AttributionStats } from './attribution.js';
import { identityOf, type PodInfo } from './enrich.js';

export interface FlowViewOptions {
  /** Kernel/engine disagreements (rate-limited to one line per 10 s here). */
  readonly log?: (line: string) => void;
}

interface ViewPod {
  readonly info: PodInfo;
  readonly placed: AttributedPod;
}

/** The Services' virtual addresses, allocated as the agents allocate them (src/lb/allocate.ts): `ip:port` → `namespace/name`. */
export function serviceAddresses(services: readonly Service[], nodeIps: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  if (services.length === 0) return out;
  const allocation = allocate(services);
  for (const s of services) {
    const key = serviceKey(s);
    const address = allocation.addresses.get(key);
    s.ports.forEach((p, i) => {
      if (address?.kind === 'virtual') out.set(`${address.ip}:${p.port}`, key);
      const nodePort = allocation.nodePorts.get(`${key}/${i}`);
      if (nodePort !== undefined) for (const ip of nodeIps) out.set(`${ip}:${nodePort}`, key);
    });
  }
  return out;
}

export function emptyAttributionStats(): AttributionStats {
  return { attributed: 0, evaluations: 0, otherNode: 0, nodeTraffic: 0, droppedElsewhere: 0, auditStarts: 0, auditOfDropped: 0, mismatches: 0 };
}

export function addAttributionStats(into: AttributionStats, from: AttributionStats): void {
  into.attributed += from.attributed;
  into.evaluations += from.evaluations;
  into.otherNode += from.otherNode;
  into.nodeTraffic += from.nodeTraffic;
  into.droppedElsewhere += from.droppedElsewhere;
  into.auditStarts += from.auditStarts;
  into.auditOfDropped += from.auditOfDropped;
  into.mismatches += from.mismatches;
  if (from.lastMismatch !== undefined) into.lastMismatch = from.lastMismatch;
}

export class FlowView {
  /** Pods by address; a hostNetwork pod has the node's address and is not listed (its traffic is the node's). */
  private readonly byIp = new Map<string, ViewPod>();
  private readonly placed = new Map<string, AttributedPod>();
  /** Pod key → its address here, so an update that moves the address or a delete finds the old entry. */
  private readonly ipOfKey = new Map<string, string>();
  private readonly services = new Map<string, Service>();
  private readonly nodes = new Map<string, Node>();
  private serviceTable: Map<string, string> | undefined;
  private current: FlowAttribution | undefined;
  private readonly retired = emptyAttributionStats();
  private lastLog = 0;
  /** Bumped on every change: caches keyed on the view (the enricher's) compare it. */
  version = 0;

  constructor(
    readonly engine: PolicyEngine,
    private readonly opts: FlowViewOptions = {},
  ) {}

  /** Source events, in order (the same batch the agent's engine took or is about to take). */
  apply(events: readonly ClusterEvent[]): void {
    if (events.length === 0) return;
    for (const e of events) {
      switch (e.kind) {
        case 'Pod': {
          const key = `${e.object.namespace}/${e.object.name}`;
          this.removePod(key);
          if (e.type === 'deleted') break;
          const p = e.object;
          if (p.ip === undefined || p.hostNetwork) break;
          const info: PodInfo = { ip: p.ip, namespace: p.namespace, name: p.name, workload: p.workload, labels: p.labels, identity: identityOf(p.namespace, p.labels) };
          const placed: AttributedPod = { key, ip: p.ip, node: p.node ?? '' };
          this.byIp.set(p.ip, { info, placed });
          this.placed.set(p.ip, placed);
          this.ipOfKey.set(key, p.ip);
          break;
        }
        case 'Service': {
          const key = serviceKey(e.object);
          if (e.type === 'deleted') this.services.delete(key);
          else this.services.set(key, e.object);
          this.serviceTable = undefined;
          break;
        }
        case 'Node':
          if (e.type === 'deleted') this.nodes.delete(e.object.name);
          else this.nodes.set(e.object.name, e.object);
          this.serviceTable = undefined;
          break;
        default:
          break;
      }
    }
    this.engineChanged();
  }

  private removePod(key: string): void {
    const ip = this.ipOfKey.get(key);
    if (ip === undefined) return;
    this.ipOfKey.delete(key);
    // Another pod may hold the address by now (an IP reused before the old pod's delete arrived).
    if (this.byIp.get(ip)?.placed.key === key) {
      this.byIp.delete(ip);
      this.placed.delete(ip);
    }
  }

  /** The engine took a batch: decisions and identity ids are recomputed from here on. */
  engineChanged(): void {
    if (this.current) addAttributionStats(this.retired, this.current.stats);
    this.current = undefined;
    this.version++;
  }

  /** The pod at `ip`, with the engine's identity id as of now. */
  pod(ip: string): PodInfo | undefined {
    const p = this.byIp.get(ip);
    if (!p) return undefined;
    const identityId = this.engine.identityOfPod(p.placed.key)?.id;
    return identityId !== undefined ? { ...p.info, identityId } : p.info;
  }

  /** `namespace/name` of the Service at a virtual address and port. */
  service(ip: string, port: number): string | undefined {
    this.serviceTable ??= serviceAddresses(
      [...this.services.values()],
      [...this.nodes.values()].flatMap((n) => (n.ip !== undefined ? [n.ip] : [])),
    );
    return this.serviceTable.get(`${ip}:${port}`);
  }

  /** The attribution for the engine's current state (a fresh memo after every change). */
  attribution(): FlowAttribution {
    this.current ??= new FlowAttribution(this.engine, {
      pods: this.placed,
      onMismatch: (m) => {
        // One line per 10 s at most: a systematic disagreement would otherwise flood the log.
        if (Date.now() - this.lastLog < 10_000) return;
        this.lastLog = Date.now();
        this.opts.log?.(`weir flows: kernel and engine disagree: ${m}`);
      },
    });
    return this.current;
  }

  /** Attribution counters summed over every engine state so far. */
  attributionStats(): AttributionStats {
    const s = { ...this.retired };
    if (this.current) addAttributionStats(s, this.current.stats);
    return s;
  }

  get size(): { pods: number; services: number } {
    return { pods: this.byIp.size, services: this.services.size };
  }
}
