// A Service's endpoints from EndpointSlices, as kube-proxy reads them (pkg/proxy's
// EndpointSliceCache and CategorizeEndpoints), shared by load balancing (what the kernel is
// given) and the analyzer (what it judges), so the two cannot disagree.
//
//   - Every slice labelled `kubernetes.io/service-name: <service>` in the Service's namespace
//     counts, whoever manages it ("multiple entities can manage EndpointSlices without
//     interfering"; kube-proxy merges them all), except, for a Service with a selector, the
//     EndpointSlice controller's own slices (`endpointslice.kubernetes.io/managed-by:
//     endpointslice-controller.k8s.io`): weir derives those from the pods itself, and the
//     controller rewrites any declared copy from the selector anyway.
//   - A slice port serves the Service port with the same name and protocol (both names empty
//     for a single unnamed port). A port without a number is skipped, as kube-proxy does.
//   - Only IPv4 and IPv6 slices; FQDN slices are not proxied ("EndpointSlice address type not
//     supported by kube-proxy"). Of an endpoint's addresses the first is used ("these are all
//     assumed to be fungible and clients may choose to only use the first element").
//   - Usable endpoints are the ready ones; when none is ready anywhere, the serving and
//     terminating ones (kube-proxy's fallback, so a rolling restart does not drop traffic).
//
// Pure: the Service and the slices in, endpoints out.

import type { EndpointSlice, Protocol, Service } from '../model/cluster.js';
import { parseIP } from '../net/address.js';
import { SLICE_CONTROLLER } from '../load/endpointslice.js';

export interface SliceEndpoint {
  /** The endpoint's first address. */
  readonly ip: string;
  readonly port: number;
  readonly protocol: Protocol;
  /** `namespace/name` of the slice that declares it. */
  readonly slice: string;
  readonly nodeName?: string;
  readonly zone?: string;
  /** `targetRef` of a pod endpoint, `namespace/name`. */
  readonly pod?: string;
}

export interface SlicePortEndpoints {
  /** Usable endpoints, unique by address and port, sorted. */
  readonly endpoints: readonly SliceEndpoint[];
  /** Set when the slices cannot say which endpoints there are (an invalid slice, ambiguous ports). */
  readonly unresolved?: string;
  /** Endpoints the slices list for the port but that are not usable (not ready, not serving). */
  readonly notReady: number;
}

/** True when the slice is the EndpointSlice controller's own for a Service with a selector. */
export function controllerSliceOfSelectorService(service: Service, slice: EndpointSlice): boolean {
  return service.selector !== undefined && slice.managedBy === SLICE_CONTROLLER;
}

/**
 * The slices that give `service` endpoints (see the header), in their given order;
 * `withController`: the EndpointSlice controller's too (slices are the only source of endpoints).
 */
export function slicesOfService(service: Service, slices: readonly EndpointSlice[], withController = false): EndpointSlice[] {
  if (service.type === 'ExternalName') return [];
  return slices.filter((s) => s.namespace === service.namespace && s.service === service.name && (withController || !controllerSliceOfSelectorService(service, s)));
}

/** Slices grouped by `namespace/service`, for callers that look up many Services. */
export function slicesByService(slices: readonly EndpointSlice[]): Map<string, EndpointSlice[]> {
  const out = new Map<string, EndpointSlice[]>();
  for (const s of slices) {
    const k = `${s.namespace}/${s.service}`;
    const list = out.get(k);
    if (list) list.push(s);
    else out.set(k, [s]);
  }
  return out;
}

/**
 * The endpoints of Service port `index` from `own` (the slices of `slicesOfService`).
 * `family`: the address family of the Service's ClusterIP; endpoints of the other family
 * are not proxied (kube-proxy drops them with an event).
 */
export function sliceEndpointsOfPort(service: Service, index: number, own: readonly EndpointSlice[], family?: 4 | 6): SlicePortEndpoints {
  const sp = service.ports[index];
  if (!sp) return { endpoints: [], notReady: 0 };
  const name = sp.name ?? '';
  const doubts = own.flatMap((s) => (s.doubt ? [s.doubt.reason] : []));
  if (doubts.length > 0) return { endpoints: [], notReady: 0, unresolved: doubts.join('; ') };
  const twin = service.ports.findIndex((p, i) => i !== index && (p.name ?? '') === name && p.protocol === sp.protocol);
  if (twin !== -1) {
    return {
      endpoints: [],
      notReady: 0,
      unresolved: `Service ${service.namespace}/${service.name} spec.ports[${index}] and spec.ports[${twin}] share the name "${name}" and protocol ${sp.protocol}, so a slice port cannot say which of them it serves (the API server requires names on a Service with several ports)`,
    };
  }
  const usable: (SliceEndpoint & { ready: boolean; fallback: boolean })[] = [];
  for (const s of own) {
    if (s.addressType === 'FQDN') continue;
    const slicePort = s.ports.find((p) => (p.name ?? '') === name && p.protocol === sp.protocol);
    if (!slicePort) continue;
    for (const ep of s.endpoints) {
      const ip = ep.addresses[0];
      if (ip === undefined) continue;
      const parsed = parseIP(ip);
      if (!parsed || (family !== undefined && parsed.family !== family)) continue;
      usable.push({
        ip,
        port: slicePort.port,
        protocol: sp.protocol,
        slice: `${s.namespace}/${s.name}`,
        ...(ep.nodeName !== undefined ? { nodeName: ep.nodeName } : {}),
        ...(ep.zone !== undefined ? { zone: ep.zone } : {}),
        ...(ep.pod !== undefined ? { pod: ep.pod } : {}),
        ready: ep.ready,
        fallback: (ep.serving ?? ep.ready) && (ep.terminating ?? false),
      });
    }
  }
  const anyReady = usable.some((e) => e.ready);
  const chosen = usable.filter((e) => (anyReady ? e.ready : e.fallback));
  const seen = new Map<string, SliceEndpoint>();
  for (const { ready: _r, fallback: _f, ...e } of chosen) {
    const key = `${e.ip}:${e.port}`;
    if (!seen.has(key)) seen.set(key, e);
  }
  const endpoints = [...seen.values()].sort((a, b) => {
    const x = `${a.ip}:${a.port}`;
    const y = `${b.ip}:${b.port}`;
    return x < y ? -1 : x > y ? 1 : 0;
  });
  return { endpoints, notReady: usable.length - chosen.length };
}
