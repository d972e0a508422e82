// The one lab → cluster join: what the cluster *is* while a lab runs. Every consumer — the
// agents, `lab probe --compare`, `lab status`, the visibility server, the lab's own planning —
// reads the lab through this function (directly or through src/source/lab.ts), so a change
// that reaches one reaches all of them.
//
// Who is authoritative for what:
//   - pods: the lab state (its IPAM decides addresses and nodes; `lab apply` updates labels
//     there), so the engine sees exactly the pods that exist, with their addresses;
//   - nodes: the lab state says which nodes exist (names, addresses); their labels are the
//     desired Node object's when there is one (so `lab apply` of a relabelled Node reaches
//     ANP `nodes` peers at once), else what the lab recorded at `up`; `kubernetes.io/hostname`
//     is always the node's name, as the kubelet sets it;
//   - namespaces: the desired manifests, plus those only the state knows (a pod applied before
//     its namespace);
//   - policies, services, workloads: the desired manifests.

import type { Cluster, Namespace, Node, Pod } from '../model/cluster.js';
import type { LabNode, LabPod, LabState } from './state.js';

export const HOSTNAME_LABEL = 'kubernetes.io/hostname';

export function podOfLab(p: LabPod): Pod {
  return { namespace: p.namespace, name: p.name, labels: p.labels, ports: p.ports, hostNetwork: false, ip: p.ip, node: p.node, workload: p.workload };
}

export function nodeOfLab(n: LabNode, declared: Node | undefined): Node {
  const labels = declared ? { ...declared.labels, [HOSTNAME_LABEL]: n.name } : n.labels;
  return { name: n.name, labels, ip: n.underlayIp };
}

/** The cluster the lab runs: `desired` (the manifests) joined with `state` (what exists). */
export function labCluster(desired: Cluster, state: Pick<LabState, 'namespaces' | 'nodes' | 'pods'>): Cluster {
  const declared = new Set(desired.namespaces.map((n) => n.name));
  const namespaces: Namespace[] = [...desired.namespaces];
  for (const n of state.namespaces) if (!declared.has(n.name)) namespaces.push({ name: n.name, labels: n.labels });
  const nodes = new Map(desired.nodes.map((n) => [n.name, n]));
  return {
    ...desired,
    namespaces,
    nodes: state.nodes.map((n) => nodeOfLab(n, nodes.get(n.name))),
    pods: state.pods.map(podOfLab),
  };
}
