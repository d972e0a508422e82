// The upstream NetworkPolicy e2e model (test/e2e/network/netpol): namespaces x, y, z with
// pods a, b, c; every pod serves TCP, UDP and SCTP on ports 80 and 81.

import type { Cluster, ContainerPort, Namespace, NetworkPolicy, Pod, Protocol } from '../../src/model/cluster.js';

export const NAMESPACES = ['x', 'y', 'z'] as const;
export const PODS = ['a', 'b', 'c'] as const;

export function modelPorts(protocols: readonly Protocol[] = ['TCP', 'UDP', 'SCTP']): ContainerPort[] {
  const out: ContainerPort[] = [];
  for (const port of [80, 81]) {
    for (const protocol of protocols) out.push({ name: `serve-${port}-${protocol.toLowerCase()}`, port, protocol });
  }
  return out;
}

export function modelNamespace(name: string, extra: Record<string, string> = {}): Namespace {
  return { name, labels: { ns: name, 'kubernetes.io/metadata.name': name, ...extra } };
}

/** Pod IPs follow 10.<ns index>.0.<pod index + 10>, so ipBlock scenarios can target them. */
export function modelPodIp(ns: string, pod: string): string {
  return `10.${NAMESPACES.indexOf(ns as (typeof NAMESPACES)[number]) + 1}.0.${PODS.indexOf(pod as (typeof PODS)[number]) + 10}`;
}

export function modelPod(ns: string, pod: string, labels?: Record<string, string>): Pod {
  return {
    namespace: ns,
    name: pod,
    labels: labels ?? { pod },
    ports: modelPorts(),
    hostNetwork: false,
    ip: modelPodIp(ns, pod),
    workload: `${ns}/${pod}[Pod]`,
  };
}

export function e2eModel(policies: NetworkPolicy[] = [], overrides: Partial<Cluster> = {}): Cluster {
  const pods: Pod[] = [];
  for (const ns of NAMESPACES) for (const p of PODS) pods.push(modelPod(ns, p));
  return {
    namespaces: NAMESPACES.map((n) => modelNamespace(n)),
    nodes: [],
    workloads: [],
    pods,
    services: [],
    networkPolicies: policies,
    adminNetworkPolicies: [],
    ...overrides,
  };
}

export function allPodKeys(): string[] {
  return NAMESPACES.flatMap((ns) => PODS.map((p) => `${ns}/${p}`));
}
