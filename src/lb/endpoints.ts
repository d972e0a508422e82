// A Service's endpoints, per Service port: the ready pods its selector matches (as the
// EndpointSlice controller computes them), plus the endpoints of the EndpointSlices that name
// it (all of them for a Service without selector; see src/lb/slices.ts for which count).
// Pure: the cluster model and the slices in, endpoints out.

import type { Cluster, Labels, Node, Pod, Protocol, Service } from '../model/cluster.js';
import { objectName, type Diagnostic } from '../model/diagnostics.js';
import type { EndpointSlice } from '../source/types.js';
import { parseIP } from '../net/address.js';
import { serviceKey, type Allocation, type ServiceAddress } from './allocate.js';
import { sliceEndpointsOfPort, slicesByService, slicesOfService } from './slices.js';

/** The node labels that give an endpoint its location, most specific first. */
export const LOCATION_LABEL = 'weir.dev/location';
export const ZONE_LABEL = 'topology.kubernetes.io/zone';
export const REGION_LABEL = 'topology.kubernetes.io/region';

export interface Endpoint {
  /** `ip:port`: unique within a Service port. */
  readonly key: string;
  readonly ip: string;
  readonly port: number;
  /** `namespace/name` of the pod, where known. */
  readonly pod?: string;
  readonly node?: string;
  readonly location?: string;
  /** The pod's labels (weight groups select on them); empty for slice endpoints without a pod. */
  readonly labels: Labels;
}

export interface ResolvedPort {
  readonly index: number;
  readonly name?: string;
  readonly port: number;
  readonly protocol: Protocol;
  readonly targetPort: number | string;
  readonly nodePort?: number;
  /** Ready endpoints, sorted by key. */
  readonly endpoints: readonly Endpoint[];
}

export interface ResolvedService {
  /** `namespace/name`. */
  readonly key: string;
  readonly namespace: string;
  readonly name: string;
  readonly type: Service['type'];
  readonly address: ServiceAddress;
  /** Present with `sessionAffinity: ClientIP`. */
  readonly affinityTimeoutSeconds?: number;
  readonly internalTrafficPolicy: 'Cluster' | 'Local';
  readonly externalTrafficPolicy: 'Cluster' | 'Local';
  readonly annotations: Labels;
  readonly ports: readonly ResolvedPort[];
  readonly service: Service;
}

export interface ResolveOptions {
  /**
   * Whether a pod is ready (`namespace/name`). Manifests carry no pod status, so by default
   * every pod with an address is taken as ready; the lab passes whether its server runs.
   */
  readonly isReady?: (pod: string) => boolean;
  /**
   * Where a Service with a selector gets its endpoints. `pods` (default: files and the lab,
   * which have no EndpointSlice controller): from the pods it selects, plus the slices of other
   * managers. `slices`: from its EndpointSlices only, the controller's included, as kube-proxy
   * reads a real cluster (the controller writes readiness, terminating and the pods' ports
   * there; pods on other nodes are known to a node agent by address and labels only).
   */
  readonly endpointsFrom?: 'pods' | 'slices';
}

/** An endpoint's location from its node's labels: `weir.dev/location`, else zone, else region. */
export function locationOf(labels: Labels | undefined): string | undefined {
  if (!labels) return undefined;
  return labels[LOCATION_LABEL] ?? labels[ZONE_LABEL] ?? labels[REGION_LABEL];
}

function matchesServiceSelector(selector: Labels, labels: Labels): boolean {
  // A Service selector is a plain map: every pair must be present. (An empty map would
  // select every pod of the namespace; the API server keeps such a Service selector-less.)
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

function diag(s: Service, code: string, field: string, message: string): Diagnostic {
  return {
    severity: 'warning',
    code,
    message,
    object: objectName('Service', s.name, s.namespace),
    field,
    ...(s.source ? { file: s.source.file, ...(s.source.line !== undefined ? { line: s.source.line } : {}) } : {}),
  };
}

/** The container port a Service port's targetPort names on one pod (undefined: none). */
export function resolveTargetPort(pod: Pod, targetPort: number | string, protocol: Protocol): number | undefined {
  if (typeof targetPort === 'number') return targetPort;
  return pod.ports.find((p) => p.name === targetPort && p.protocol === protocol)?.port;
}

function byKey(a: Endpoint, b: Endpoint): number {
  return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
}

export function resolveServices(
  cluster: Cluster,
  slices: readonly EndpointSlice[],
  allocation: Allocation,
  opts: ResolveOptions = {},
): { readonly services: readonly ResolvedService[]; readonly diagnostics: readonly Diagnostic[] } {
  const nodes = new Map<string, Node>(cluster.nodes.map((n) => [n.name, n]));
  const podsByNs = new Map<string, Pod[]>();
  // Pods by namespace and label pair: a selector looks only at the pods carrying its first
  // pair, not at the whole namespace (10k Services over 50k pods).
  const byPair = new Map<string, Pod[]>();
  // From slices only, no selector is evaluated: the indexes for selectors are not built.
  for (const p of opts.endpointsFrom === 'slices' ? [] : cluster.pods) {
    const list = podsByNs.get(p.namespace) ?? [];
    list.push(p);
    podsByNs.set(p.namespace, list);
    for (const [k, v] of Object.entries(p.labels)) {
      const key = `${p.namespace}\u0000${k}\u0000${v}`;
      const l = byPair.get(key) ?? [];
      l.push(p);
      byPair.set(key, l);
    }
  }
  const slicesBySvc = slicesByService(slices);
  const podsByName = new Map<string, Pod>();
  const podsByIp = new Map<string, Pod>();
  for (const p of cluster.pods) {
    podsByName.set(`${p.namespace}/${p.name}`, p);
    if (p.ip !== undefined && !p.hostNetwork) podsByIp.set(p.ip, p);
  }
  const isReady = opts.isReady ?? (() => true);
  const diagnostics: Diagnostic[] = [];
  const services: ResolvedService[] = [];

  for (const s of cluster.services) {
    const key = serviceKey(s);
    let ports: ResolvedPort[];
    const fromSlices = opts.endpointsFrom === 'slices';
    if (s.selector !== undefined && !fromSlices) {
      const selector = s.selector;
      const first = Object.entries(selector)[0];
      const candidates = first ? (byPair.get(`${s.namespace}\u0000${first[0]}\u0000${first[1]}`) ?? []) : (podsByNs.get(s.namespace) ?? []);
      const selected = candidates.filter((p) => matchesServiceSelector(selector, p.labels));
      if (selected.length === 0) {
        diagnostics.push(diag(s, 'service-selects-nothing', 'spec.selector',
          `selector matches no pod in namespace ${s.namespace}; the Service has no endpoints and rejects connections`));
      }
      ports = s.ports.map((sp, index) => {
        const endpoints: Endpoint[] = [];
        let resolvedAnywhere = false;
        for (const pod of selected) {
          const port = resolveTargetPort(pod, sp.targetPort, sp.protocol);
          if (port === undefined) continue;
          resolvedAnywhere = true;
          if (pod.ip === undefined || !isReady(`${pod.namespace}/${pod.name}`)) continue;
          const node = pod.node !== undefined ? nodes.get(pod.node) : undefined;
          const location = locationOf(node?.labels);
          endpoints.push({
            key: `${pod.ip}:${port}`,
            ip: pod.ip,
            port,
            pod: `${pod.namespace}/${pod.name}`,
            ...(pod.node !== undefined ? { node: pod.node } : {}),
            ...(location !== undefined ? { location } : {}),
            labels: pod.labels,
          });
        }
        if (typeof sp.targetPort === 'string' && selected.length > 0 && !resolvedAnywhere) {
          diagnostics.push(diag(s, 'service-port-name-unresolved', `spec.ports[${index}].targetPort`,
            `no selected pod has a ${sp.protocol} container port named "${sp.targetPort}"; this Service port has no endpoints`));
        }
        return portOf(sp, index, endpoints);
      });
    } else {
      ports = s.ports.map((sp, index) => portOf(sp, index, []));
    }
    // EndpointSlices (src/lb/slices.ts): all of a Service without selector; for one with a
    // selector, those of other managers, merged with the pods' as kube-proxy merges them.
    const own = slicesOfService(s, slicesBySvc.get(key) ?? [], fromSlices);
    if (own.length > 0) {
      const address = allocation.addresses.get(key);
      const family = address?.kind === 'virtual' ? parseIP(address.ip)?.family : undefined;
      ports = ports.map((p) => {
        const fromSlices = sliceEndpointsOfPort(s, p.index, own, family).endpoints.map((e): Endpoint => {
          const pod = (e.pod !== undefined ? podsByName.get(e.pod) : undefined) ?? podsByIp.get(e.ip);
          const nodeName = e.nodeName ?? pod?.node;
          const node = nodeName !== undefined ? nodes.get(nodeName) : undefined;
          const location = locationOf(node?.labels) ?? e.zone;
          const podName = e.pod ?? (pod ? `${pod.namespace}/${pod.name}` : undefined);
          return {
            key: `${e.ip}:${e.port}`,
            ip: e.ip,
            port: e.port,
            ...(podName !== undefined ? { pod: podName } : {}),
            ...(nodeName !== undefined ? { node: nodeName } : {}),
            ...(location !== undefined ? { location } : {}),
            labels: pod?.labels ?? {},
          };
        });
        return fromSlices.length > 0 ? { ...p, endpoints: dedupe([...p.endpoints, ...fromSlices]).sort(byKey) } : p;
      });
    }
    services.push({
      key,
      namespace: s.namespace,
      name: s.name,
      type: s.type,
      address: allocation.addresses.get(key) ?? { kind: 'none' },
      ...(s.sessionAffinity === 'ClientIP' ? { affinityTimeoutSeconds: s.sessionAffinityTimeoutSeconds ?? 10800 } : {}),
      internalTrafficPolicy: s.internalTrafficPolicy,
      externalTrafficPolicy: s.externalTrafficPolicy ?? 'Cluster',
      annotations: s.annotations,
      ports: ports.map((p) => {
        const nodePort = allocation.nodePorts.get(`${key}/${p.index}`);
        return nodePort !== undefined ? { ...p, nodePort } : p;
      }),
      service: s,
    });
  }
  return { services, diagnostics };
}

function portOf(sp: Service['ports'][number], index: number, endpoints: Endpoint[]): ResolvedPort {
  return {
    index,
    ...(sp.name !== undefined ? { name: sp.name } : {}),
    port: sp.port,
    protocol: sp.protocol,
    targetPort: sp.targetPort,
    endpoints: endpoints.sort(byKey),
  };
}

function dedupe(endpoints: Endpoint[]): Endpoint[] {
  const seen = new Map<string, Endpoint>();
  for (const e of endpoints) if (!seen.has(e.key)) seen.set(e.key, e);
  return [...seen.values()];
}

/** Which frontend a packet arrived on: the ClusterIP (in-cluster) or a NodePort (external). */
export type Frontend = 'cluster' | 'node-port';

/**
 * The endpoints one node may use for one frontend of a port. With the traffic policy `Local`
 * only endpoints on that node; when there are none, none at all (the upstream rule: "if there
 * are no node-local endpoints, traffic is dropped", so the kernel rejects).
 */
export function endpointsForNode(svc: ResolvedService, port: ResolvedPort, frontend: Frontend, node: string): readonly Endpoint[] {
  const policy = frontend === 'cluster' ? svc.internalTrafficPolicy : svc.externalTrafficPolicy;
  return policy === 'Local' ? port.endpoints.filter((e) => e.node === node) : port.endpoints;
}
