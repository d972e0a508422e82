// `weir lab probe` also probes Services, with real packets through the kernel's NAT: every
// pod connects to every Service's ClusterIP and port, and the external host to every
// NodePort on every node's address (externalTrafficPolicy Cluster masquerades, so the reply
// comes back through the node that translated it, wherever the endpoint is; Local uses the
// node's own endpoints and drops where there are none). One connection per cell: the kernel sends it to one
// endpoint, and the server that answers says which (its identity line), which is what lets
// `--compare` check a partly reachable Service without flakiness (see compare-services.ts).
//
// The targets come from the same Service model the agents render (src/lb over the lab's one
// join), so a probe goes to exactly the address and port the kernel translates.

import { allocate } from '../lb/allocate.js';
import { resolveServices, type ResolvedService } from '../lb/endpoints.js';
import type { Cluster } from '../model/cluster.js';
import { EXTERNAL_PEER, probeCells, type PortSpec, type ProbeCell, type ProberTarget, type ProbeResult } from './probe.js';
import type { LabState } from './state.js';
import { forEachLimit } from './topology.js';

export type ServiceFrontendKind = 'cluster-ip' | 'node-port';

export interface ServiceProbeTarget {
  /** `svc/ns/name` (ClusterIP) or `svc/ns/name@node-0` (that node's NodePort). */
  readonly id: string;
  /** `ns/name`. */
  readonly service: string;
  readonly frontend: ServiceFrontendKind;
  /** The node whose address a NodePort target is. */
  readonly node?: string;
  readonly ip: string;
  readonly ports: readonly { readonly port: number; readonly protocol: PortSpec['protocol']; readonly portIndex: number; readonly servicePort: number }[];
}

/** The Services of the lab's cluster as the agents resolve them. */
export function labServices(cluster: Cluster): readonly ResolvedService[] {
  return resolveServices(cluster, cluster.endpointSlices ?? [], allocate(cluster.services)).services;
}

/** `svc/ns/name` → `ns/name`, for `--to`. */
export function serviceOfTarget(id: string): string | undefined {
  const m = /^svc\/([^/@]+\/[^/@]+)(@.+)?$/.exec(id);
  return m?.[1];
}

/**
 * ClusterIP targets (probed from pods) and NodePort targets on every node (probed from the
 * external host). `services` (ns/name) narrows them; `ports` keeps the Service ports given
 * (by Service port number, also for NodePort targets). SCTP ports are left out (no SCTP here).
 */
export function serviceTargets(state: LabState, services: readonly ResolvedService[], opts: { readonly services?: readonly string[]; readonly ports?: readonly PortSpec[] } = {}): ServiceProbeTarget[] {
  const out: ServiceProbeTarget[] = [];
  const wanted = opts.services ? new Set(opts.services) : undefined;
  for (const s of services) {
    if (wanted && !wanted.has(s.key)) continue;
    if (s.address.kind !== 'virtual') continue;
    const ports = s.ports.filter(
      (p) => p.protocol !== 'SCTP' && (!opts.ports || opts.ports.some((q) => q.port === p.port && q.protocol === p.protocol)),
    );
    if (ports.length === 0) continue;
    out.push({
      id: `svc/${s.key}`,
      service: s.key,
      frontend: 'cluster-ip',
      ip: s.address.ip,
      ports: ports.map((p) => ({ port: p.port, protocol: p.protocol as PortSpec['protocol'], portIndex: p.index, servicePort: p.port })),
    });
    const nodePorts = ports.filter((p) => p.nodePort !== undefined);
    if (nodePorts.length === 0) continue;
    for (const n of state.nodes) {
      out.push({
        id: `svc/${s.key}@${n.name}`,
        service: s.key,
        frontend: 'node-port',
        node: n.name,
        ip: n.underlayIp,
        ports: nodePorts.map((p) => ({ port: p.nodePort as number, protocol: p.protocol as PortSpec['protocol'], portIndex: p.index, servicePort: p.port })),
      });
    }
  }
  return out;
}

/**
 * Probes the Service targets: ClusterIPs from every pod (or the pods in `from`), NodePorts
 * from the external host (when in `from`, or by default).
 */
export async function probeServices(
  state: LabState,
  targets: readonly ServiceProbeTarget[],
  opts: { readonly from?: readonly string[]; readonly timeoutMs?: number; readonly external?: boolean } = {},
): Promise<ProbeResult> {
  if (state.status !== 'up') throw new Error(`the lab in ${state.dir} is not up (status ${state.status})`);
  const started = Date.now();
  const timeoutMs = opts.timeoutMs ?? 1000;
  const sources = [
    ...state.pods.map((p) => ({ id: p.key, netns: p.netns, external: false })),
    ...(opts.external === false && !opts.from ? [] : [{ id: EXTERNAL_PEER, netns: state.external.netns, external: true }]),
  ].filter((s) => !opts.from || opts.from.includes(s.id));
  const cells: ProbeCell[] = [];
  await forEachLimit(sources, 32, async (src) => {
    const list: ProberTarget[] = [];
    for (const t of targets) {
      if ((t.frontend === 'node-port') !== src.external) continue;
      for (const p of t.ports) list.push({ id: String(list.length), to: t.id, ip: t.ip, port: p.port, protocol: p.protocol });
    }
    if (list.length === 0) return;
    cells.push(...(await probeCells(src, list, { timeoutMs, udpAttempts: 2, concurrency: 64 })));
  });
  const order = new Map([...sources.map((s, i) => [s.id, i] as const)]);
  const torder = new Map(targets.map((t, i) => [t.id, i] as const));
  cells.sort((a, b) => (order.get(a.from) ?? 0) - (order.get(b.from) ?? 0) || (torder.get(a.to) ?? 0) - (torder.get(b.to) ?? 0) || a.port - b.port || a.protocol.localeCompare(b.protocol));
  const ports = new Map<string, PortSpec>();
  for (const c of cells) ports.set(`${c.port}/${c.protocol}`, { port: c.port, protocol: c.protocol });
  return {
    from: sources.filter((s) => cells.some((c) => c.from === s.id)).map((s) => s.id),
    to: targets.filter((t) => cells.some((c) => c.to === t.id)).map((t) => t.id),
    ports: [...ports.values()].sort((a, b) => a.port - b.port || a.protocol.localeCompare(b.protocol)),
    cells,
    durationMs: Date.now() - started,
  };
}
