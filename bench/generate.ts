// A seeded generator of synthetic clusters for benchmarks: namespaces of 20 pods (5 workloads
// of 4 replicas), one NetworkPolicy per 2 pods with a realistic mix of selectors: default deny,
// same-namespace pod selectors, namespace selectors, both in one peer, matchExpressions, named
// ports, endPort ranges and ipBlock egress with except.

import type { Cluster, LabelSelector, Namespace, NetworkPolicy, NetworkPolicyRule, Pod, Workload } from '../src/model/cluster.js';
import { rng } from '../src/synthetic/random.js';


const TIERS = ['web', 'api', 'db', 'cache', 'worker'] as const;
const PORTS = {
  web: [{ name: 'http', port: 8080 }],
  api: [{ name: 'http', port: 8080 }, { name: 'grpc', port: 9000 }],
  db: [{ name: 'postgres', port: 5432 }],
  cache: [{ name: 'redis', port: 6379 }],
  worker: [{ name: 'metrics', port: 9090 }],
} as const;

export interface GenerateOptions {
  readonly pods: number;
  readonly seed?: number;
  readonly podsPerNamespace?: number;
  readonly replicas?: number;
  /** Policies per pod; the benchmark asks for 1 policy per 2 pods. */
  readonly policiesPerPod?: number;
}

export function generateCluster(opts: GenerateOptions): Cluster {
  const rand = rng(opts.seed ?? 42);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)];
  const perNs = opts.podsPerNamespace ?? 20;
  const replicas = opts.replicas ?? 4;
  const nsCount = Math.ceil(opts.pods / perNs);
  const namespaces: Namespace[] = [];
  const workloads: Workload[] = [];
  const pods: Pod[] = [];
  const policies: NetworkPolicy[] = [];
  let podIndex = 0;
  for (let n = 0; n < nsCount; n++) {
    const ns = `ns-${n}`;
    namespaces.push({
      name: ns,
      labels: { 'kubernetes.io/metadata.name': ns, team: `team-${n % 25}`, env: n % 3 === 0 ? 'prod' : 'dev' },
    });
    const perWorkload = Math.max(1, replicas);
    for (let w = 0; w * perWorkload < perNs && podIndex < opts.pods; w++) {
      const tier = TIERS[w % TIERS.length];
      const name = `${tier}-${w}`;
      const labels = { app: `${ns}-${name}`, tier };
      const ports = PORTS[tier].map((p) => ({ ...p, protocol: 'TCP' as const }));
      const key = `${ns}/${name}[Deployment]`;
      workloads.push({ namespace: ns, name, kind: 'Deployment', labels, ports, hostNetwork: false, replicas: perWorkload });
      for (let r = 0; r < perWorkload && podIndex < opts.pods; r++, podIndex++) {
        const ip = `10.${(podIndex >> 16) & 255}.${(podIndex >> 8) & 255}.${podIndex & 255}`;
        pods.push({ namespace: ns, name: `${name}-${r}`, labels, ports, hostNetwork: false, ip, workload: key });
      }
    }
  }
  const policyCount = Math.round(opts.pods * (opts.policiesPerPod ?? 0.5));
  const sel = (ls: Record<string, string>): LabelSelector => ({ matchLabels: ls });
  for (let i = 0; i < policyCount; i++) {
    const n = i % nsCount;
    const ns = `ns-${n}`;
    const kind = Math.floor(i / nsCount) % 8;
    const tier = pick(TIERS);
    const other = pick(TIERS);
    const base = { namespace: ns, name: `p-${i}`, mode: 'enforce' as const };
    let p: NetworkPolicy;
    const ingressOnly = (podSelector: LabelSelector, rules: NetworkPolicyRule[]): NetworkPolicy => ({
      ...base,
      podSelector,
      policyTypes: ['Ingress'],
      ingress: rules,
      egress: [],
    });
    switch (kind) {
      case 0: // default deny ingress for the namespace
        p = ingressOnly({}, []);
        break;
      case 1: // same-namespace tier to tier on a named port
        p = ingressOnly(sel({ tier }), [
          { peers: [{ kind: 'selector', podSelector: sel({ tier: other }) }], ports: [{ protocol: 'TCP', port: PORTS[tier][0].name }] },
        ]);
        break;
      case 2: // from a team's namespaces
        p = ingressOnly(sel({ tier }), [
          { peers: [{ kind: 'selector', namespaceSelector: sel({ team: `team-${Math.floor(rand() * 25)}` }) }], ports: [{ protocol: 'TCP', port: 8080 }] },
        ]);
        break;
      case 3: // namespaceSelector + podSelector in one peer
        p = ingressOnly(sel({ tier }), [
          {
            peers: [{ kind: 'selector', namespaceSelector: sel({ env: 'prod' }), podSelector: sel({ tier: other }) }],
            ports: [],
          },
        ]);
        break;
      case 4: // matchExpressions and an endPort range
        p = ingressOnly({ matchExpressions: [{ key: 'tier', operator: 'In', values: [tier, other] }] }, [
          {
            peers: [{ kind: 'selector', podSelector: { matchExpressions: [{ key: 'tier', operator: 'NotIn', values: ['db'] }] } }],
            ports: [{ protocol: 'TCP', port: 9000, endPort: 9100 }],
          },
        ]);
        break;
      case 5: // egress to DNS-like and to an external network with except
        p = {
          ...base,
          podSelector: sel({ tier }),
          policyTypes: ['Egress'],
          ingress: [],
          egress: [
            { peers: [{ kind: 'selector', namespaceSelector: {} }], ports: [{ protocol: 'UDP', port: 53 }, { protocol: 'TCP', port: 53 }] },
            { peers: [{ kind: 'ipBlock', ipBlock: { cidr: '203.0.113.0/24', except: ['203.0.113.128/25'] } }], ports: [{ protocol: 'TCP', port: 443 }] },
          ],
        };
        break;
      case 6: // a specific workload from another namespace
        p = ingressOnly(sel({ app: `${ns}-${tier}-${TIERS.indexOf(tier)}` }), [
          {
            peers: [{ kind: 'selector', namespaceSelector: sel({ 'kubernetes.io/metadata.name': `ns-${(n + 1) % nsCount}` }), podSelector: sel({ tier: other }) }],
            ports: [{ protocol: 'TCP', port: 8080 }],
          },
        ]);
        break;
      default: // ingress and egress together, within the namespace
        p = {
          ...base,
          podSelector: sel({ tier }),
          policyTypes: ['Ingress', 'Egress'],
          ingress: [{ peers: [{ kind: 'selector', podSelector: {} }], ports: [] }],
          egress: [{ peers: [{ kind: 'selector', podSelector: {} }], ports: [] }],
        };
    }
    policies.push(p);
  }
  return {
    namespaces,
    nodes: [],
    workloads,
    pods,
    services: [],
    networkPolicies: policies,
    adminNetworkPolicies: [],
  };
}
