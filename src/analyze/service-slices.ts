// The analyzer's view of a Service port's EndpointSlice endpoints: which of them are pods
// (policies apply to them after DNAT) and which are addresses outside the cluster's pods (then
// only the client's egress decides, judged against that address as an ipBlock peer would
// be). Which slices count and which of their endpoints are usable is src/lb/slices.ts, the
// same function that gives the kernel its endpoints.
//
// What an endpoint is must be certain, or every verdict through the port is UNKNOWN: a
// `targetRef` naming a pod the input does not have (its policies are unknown), or a pod whose
// known IP is not the slice's address (the kernel sends to the address; whose it is, is in
// doubt). An address with no targetRef that is no known pod's IP is external — as everywhere
// in weir, an ipBlock or a slice address matches a pod only when the pod's IP is known.

import { sliceEndpointsOfPort } from '../lb/slices.js';
import type { EndpointSlice, Pod, Service } from '../model/cluster.js';
import type { ServiceEndpointRef } from './services.js';

export interface PodIndex {
  readonly byName: ReadonlyMap<string, Pod>;
  /** Ordinary pods by IP (host-network pods share their node's address). */
  readonly byIp: ReadonlyMap<string, Pod>;
}

export function podIndex(pods: readonly Pod[]): PodIndex {
  const byName = new Map<string, Pod>();
  const byIp = new Map<string, Pod>();
  for (const p of pods) {
    byName.set(`${p.namespace}/${p.name}`, p);
    if (p.ip !== undefined && !p.hostNetwork) byIp.set(p.ip, p);
  }
  return { byName, byIp };
}

export interface SlicePortView {
  readonly endpoints: readonly ServiceEndpointRef[];
  readonly unresolved?: string;
  /** Why there is no endpoint, when there is none. */
  readonly emptyReason?: string;
}

/** Endpoints of Service port `index` from `own`, the slices that count for the Service. */
export function sliceEndpointRefs(service: Service, index: number, own: readonly EndpointSlice[], pods: PodIndex, family: 4 | 6 | undefined): SlicePortView {
  const sp = service.ports[index];
  const r = sliceEndpointsOfPort(service, index, own, family);
  if (r.unresolved !== undefined) return { endpoints: [], unresolved: r.unresolved };
  const endpoints: ServiceEndpointRef[] = [];
  for (const e of r.endpoints) {
    let pod: Pod | undefined;
    if (e.pod !== undefined) {
      pod = pods.byName.get(e.pod);
      if (!pod) return { endpoints: [], unresolved: `EndpointSlice ${e.slice} endpoint ${e.ip}: targetRef names pod ${e.pod}, which is not in the input, so the policies that apply to it are unknown` };
      if (pod.ip !== undefined && pod.ip !== e.ip) return { endpoints: [], unresolved: `EndpointSlice ${e.slice} endpoint ${e.ip}: targetRef names pod ${e.pod}, whose IP is ${pod.ip}; which endpoint receives the traffic is in doubt` };
    } else {
      pod = pods.byIp.get(e.ip);
    }
    const node = e.nodeName ?? pod?.node;
    endpoints.push({
      ...(pod ? { pod: `${pod.namespace}/${pod.name}` } : {}),
      ip: e.ip,
      workload: pod ? pod.workload : `${e.ip}[External]`,
      port: e.port,
      protocol: e.protocol,
      ...(node !== undefined ? { node } : {}),
    });
  }
  if (endpoints.length > 0) return { endpoints };
  const portText = sp?.name !== undefined ? `port "${sp.name}"` : `port ${sp?.port ?? index}`;
  const proto = sp?.protocol ?? 'TCP';
  if (r.notReady > 0) return { endpoints, emptyReason: `its EndpointSlices list ${r.notReady} endpoint(s) for ${portText} ${proto}, none ready` };
  if (own.every((s) => s.addressType === 'FQDN')) return { endpoints, emptyReason: 'its EndpointSlices are FQDN slices, which proxies do not forward to' };
  return { endpoints, emptyReason: `no EndpointSlice of it has a ${proto} port named "${sp?.name ?? ''}" with an endpoint` };
}
