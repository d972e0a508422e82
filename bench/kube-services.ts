// What `weir agent --services` adds to every source batch: `npx tsx bench/kube-services.ts
// [--pods 20000] [--services 2000] [--runs 5]`. The ClusterAgent hands the NodeAgent the
// source's snapshot (KubeSource.snapshot(): every kind sorted) and the NodeAgent plans the
// Service NAT section from it (planServices with endpoints from EndpointSlices). Prints the
// median of each over `runs`, in ms per batch. No kernel: the transaction is not included.

import { parseArgs } from 'node:util';
import { emptyCluster, type Cluster, type Pod, type Service } from '../src/model/cluster.js';
import { planServices } from '../src/render/services.js';
import { endpointSlicesOf } from '../src/source/endpoints.js';

const { values } = parseArgs({ options: { pods: { type: 'string', default: '20000' }, services: { type: 'string', default: '2000' }, runs: { type: 'string', default: '5' } } });
const PODS = Number(values.pods);
const SERVICES = Number(values.services);
const RUNS = Number(values.runs);

const pods: Pod[] = Array.from({ length: PODS }, (_, i) => ({
  namespace: `ns-${i % 50}`,
  name: `web-${i}`,
  labels: { app: `app-${i % SERVICES}` },
  ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
  hostNetwork: false,
  ip: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
  node: `node-${i % 100}`,
  workload: `ns-${i % 50}/web-${i}[Pod]`,
}));
const services: Service[] = Array.from({ length: SERVICES }, (_, i) => ({
  // A Service selects the pods of its own namespace: app-i lives in ns-(i % 50) as its pods do.
  namespace: `ns-${i % 50}`,
  name: `svc-${i}`,
  type: 'ClusterIP',
  clusterIP: `10.96.${(i >> 8) & 255}.${i & 255}`,
  selector: { app: `app-${i}` },
  ports: [{ name: 'http', port: 80, targetPort: 'http', protocol: 'TCP' }],
  sessionAffinity: 'None',
  internalTrafficPolicy: 'Cluster',
  annotations: {},
}));
const cluster: Cluster = { ...emptyCluster(), pods, services, nodes: Array.from({ length: 100 }, (_, i) => ({ name: `node-${i}`, labels: {}, ip: `192.168.${i >> 8}.${i & 255}` })) };
const slices = endpointSlicesOf(cluster);

const byNsName = (a: { namespace: string; name: string }, b: { namespace: string; name: string }): number => (a.namespace < b.namespace ? -1 : a.namespace > b.namespace ? 1 : a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

function median(fn: () => void): number {
  const xs: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    fn();
    xs.push(performance.now() - t0);
  }
  return xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
}

const snapshotMs = median(() => {
  [...pods].sort(byNsName);
  [...services].sort(byNsName);
  [...slices].sort(byNsName);
});
let endpoints = 0;
const planMs = median(() => {
  const input = planServices(cluster, slices, 'node-0', { endpointsFrom: 'slices' });
  endpoints = input.services.reduce((n, s) => n + s.ports.reduce((m, p) => m + p.endpoints.length, 0), 0);
});
process.stdout.write(`${PODS} pods, ${SERVICES} Services, ${slices.length} EndpointSlices, ${endpoints} endpoints\n`);
process.stdout.write(`snapshot (sort every kind): ${snapshotMs.toFixed(1)} ms per batch\n`);
process.stdout.write(`plan the Service NAT section (endpoints from slices): ${planMs.toFixed(1)} ms per batch\n`);
