// A synthetic cluster of N ClusterIP Services × M endpoints for the service NAT benchmarks
// (bench/lb-scale.ts, bench/dataplane.ts): Service i selects `app: a<i>`, its endpoints are M
// pods at 10.128.0.0/9 addresses (never routed: only the table's size matters), on one node.
// `measured` adds one more Service whose endpoints are the given real addresses.

import { emptyCluster, type Cluster, type Pod, type Service } from '../src/model/cluster.js';

export function serviceCluster(n: number, m: number, measured?: { ip: string; port: number; clusterIP: string; endpoints: readonly string[] }): Cluster {
  const services: Service[] = [];
  const pods: Pod[] = [];
  const svc = (name: string, app: string, port: number, clusterIP?: string): Service => ({
    namespace: 'ns',
    name,
    selector: { app },
    ports: [{ port, targetPort: port === 80 ? 8080 : port, protocol: 'TCP' }],
    ...(clusterIP ? { clusterIP } : {}),
    type: 'ClusterIP',
    sessionAffinity: 'None',
    internalTrafficPolicy: 'Cluster',
    annotations: {},
  });
  for (let i = 0; i < n; i++) {
    services.push(svc(`svc-${i}`, `a${i}`, 80));
    for (let j = 0; j < m; j++) {
      const k = i * m + j;
      pods.push({ namespace: 'ns', name: `p-${i}-${j}`, labels: { app: `a${i}` }, ports: [{ port: 8080, protocol: 'TCP' }], hostNetwork: false, ip: `10.${128 + (k >> 16)}.${(k >> 8) & 255}.${k & 255}`, node: 'node-0', workload: `ns/p-${i}-${j}[Pod]` });
    }
  }
  if (measured) {
    services.push(svc('measured', 'measured', measured.port, measured.clusterIP));
    measured.endpoints.forEach((ip, j) => pods.push({ namespace: 'ns', name: `measured-${j}`, labels: { app: 'measured' }, ports: [{ port: measured.port, protocol: 'TCP' }], hostNetwork: false, ip, node: 'node-0', workload: `ns/measured-${j}[Pod]` }));
  }
  return { ...emptyCluster(), services, pods, nodes: [{ name: 'node-0', labels: {}, ip: '172.31.255.10' }] };
}
