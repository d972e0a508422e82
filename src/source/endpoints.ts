// EndpointSlices for sources that have none of their own (files, the lab): what Kubernetes'
// EndpointSlice controller would publish for each Service with a selector, so load balancing
// reads one shape whatever the source. A Kubernetes API source delivers the real slices.
//
// As the controller does: a Service without selector gets no slice (its endpoints are managed
// elsewhere); the pods of the Service's namespace whose labels match the selector and that
// have an address are its endpoints; a named targetPort is resolved per pod, and pods that
// resolve the ports differently go into different slices (a slice has one port list).

import { createHash } from 'node:crypto';
import type { Cluster, Pod, Service } from '../model/cluster.js';
import { SLICE_CONTROLLER } from '../load/endpointslice.js';
import type { EndpointSlice } from './types.js';

type SlicePort = EndpointSlice['ports'][number];

function selects(selector: Readonly<Record<string, string>>, labels: Readonly<Record<string, string>>): boolean {
  for (const k in selector) if (labels[k] !== selector[k]) return false;
  return true;
}

/** The Service's ports as this pod serves them; a named targetPort the pod lacks is left out. */
function resolvedPorts(service: Service, pod: Pod): SlicePort[] {
  const out: SlicePort[] = [];
  for (const sp of service.ports) {
    let port: number | undefined;
    if (typeof sp.targetPort === 'number') port = sp.targetPort;
    else port = pod.ports.find((p) => p.name === sp.targetPort && p.protocol === sp.protocol)?.port;
    if (port === undefined) continue;
    out.push({ ...(sp.name !== undefined ? { name: sp.name } : {}), port, protocol: sp.protocol });
  }
  return out;
}

function portsSignature(ports: readonly SlicePort[]): string {
  return ports.map((p) => `${p.name ?? ''}:${p.port}/${p.protocol}`).join(',');
}

/** One Service's slices, named `<service>-<hash of address type and ports>` (stable across runs). */
export function endpointSlicesOfService(service: Service, pods: readonly Pod[]): EndpointSlice[] {
  if (service.selector === undefined || service.type === 'ExternalName') return [];
  const groups = new Map<string, { addressType: 'IPv4' | 'IPv6'; ports: SlicePort[]; pods: Pod[] }>();
  for (const pod of pods) {
    if (pod.namespace !== service.namespace || pod.ip === undefined || !selects(service.selector, pod.labels)) continue;
    const addressType = pod.ip.includes(':') ? 'IPv6' : 'IPv4';
    const ports = resolvedPorts(service, pod);
    const sig = `${addressType}|${portsSignature(ports)}`;
    let g = groups.get(sig);
    if (!g) groups.set(sig, (g = { addressType, ports, pods: [] }));
    g.pods.push(pod);
  }
  const slices: EndpointSlice[] = [];
  for (const [sig, g] of [...groups].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const hash = createHash('sha256').update(sig).digest('hex').slice(0, 5);
    g.pods.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    slices.push({
      namespace: service.namespace,
      name: `${service.name}-${hash}`,
      service: service.name,
      managedBy: SLICE_CONTROLLER,
      addressType: g.addressType,
      ports: g.ports,
      endpoints: g.pods.map((p) => ({
        addresses: [p.ip as string],
        ready: true,
        serving: true,
        terminating: false,
        ...(p.node !== undefined ? { nodeName: p.node } : {}),
        pod: `${p.namespace}/${p.name}`,
      })),
    });
  }
  return slices;
}

/** Every Service's slices, in Service order. Pods are indexed by namespace once. */
export function endpointSlicesOf(cluster: Pick<Cluster, 'services' | 'pods'>): EndpointSlice[] {
  if (cluster.services.length === 0) return [];
  const byNamespace = new Map<string, Pod[]>();
  for (const p of cluster.pods) {
    let list = byNamespace.get(p.namespace);
    if (!list) byNamespace.set(p.namespace, (list = []));
    list.push(p);
  }
  return cluster.services.flatMap((s) => endpointSlicesOfService(s, byNamespace.get(s.namespace) ?? []));
}
