// The Kubernetes upstream NetworkPolicy e2e model (test/e2e/network/netpol): namespaces
// x, y, z with pods a, b, c, labels pod=<name> and ns=<name>, every pod serving TCP and UDP
// on 80 and 81. The ground truth the lab is tested with, and `weir lab up --e2e-model`.

import { type Cluster, type ContainerPort, type Pod, emptyCluster, workloadKey } from '../model/cluster.js';

export interface E2eModelOptions {
  readonly namespaces?: readonly string[];
  readonly pods?: readonly string[];
  readonly ports?: readonly number[];
  readonly protocols?: readonly ('TCP' | 'UDP' | 'SCTP')[];
}

export function upstreamE2eCluster(opts: E2eModelOptions = {}): Cluster {
  const namespaces = opts.namespaces ?? ['x', 'y', 'z'];
  const podNames = opts.pods ?? ['a', 'b', 'c'];
  const ports: ContainerPort[] = (opts.ports ?? [80, 81]).flatMap((port) =>
    (opts.protocols ?? ['TCP', 'UDP']).map((protocol) => ({ name: `serve-${port}-${protocol.toLowerCase()}`, port, protocol })),
  );
  const pods: Pod[] = namespaces.flatMap((namespace) =>
    podNames.map((name) => ({
      namespace,
      name,
      labels: { pod: name },
      ports,
      hostNetwork: false,
      workload: workloadKey(namespace, name, 'Pod'),
    })),
  );
  return {
    ...emptyCluster(),
    namespaces: namespaces.map((name) => ({ name, labels: { ns: name, 'kubernetes.io/metadata.name': name } })),
    workloads: pods.map((p) => ({
      namespace: p.namespace,
      name: p.name,
      kind: 'Pod' as const,
      labels: p.labels,
      ports: p.ports,
      hostNetwork: false,
      replicas: 1,
    })),
    pods,
  };
}
