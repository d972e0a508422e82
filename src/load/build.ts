// Validated objects (from any number of files) → one Cluster: duplicates, ownership,
// implicit namespaces, pod expansion, deterministic order.

import {
  workloadKey,
  type AdminNetworkPolicy,
  type BaselineAdminNetworkPolicy,
  type Cluster,
  type Namespace,
  type NetworkPolicy,
  type Node,
  type Pod,
  type Service,
  type SourceRef,
  type Workload,
} from '../model/cluster.js';
import { objectName, type Diagnostic } from '../model/diagnostics.js';
import { namespaceLabels } from './normalize.js';
import type { LoadedWorkload, ManifestObject } from './parse.js';

export interface LoadResult {
  readonly cluster: Cluster;
  readonly diagnostics: Diagnostic[];
}

function identity(o: ManifestObject): { kind: string; namespace?: string; name: string } {
  switch (o.kind) {
    case 'Workload':
      return { kind: o.value.kind, namespace: o.value.namespace, name: o.value.name };
    case 'Service':
    case 'NetworkPolicy':
      return { kind: o.kind, namespace: o.value.namespace, name: o.value.name };
    default:
      return { kind: o.kind, name: o.value.name };
  }
}

function where(source: SourceRef | undefined): string {
  if (!source) return 'elsewhere';
  return source.line !== undefined ? `${source.file}:${source.line}` : source.file;
}

function at(source: SourceRef | undefined): { file?: string; line?: number } {
  return {
    ...(source?.file !== undefined ? { file: source.file } : {}),
    ...(source?.line !== undefined ? { line: source.line } : {}),
  };
}

const byName = (a: { name: string }, b: { name: string }) => cmp(a.name, b.name);
const byNsName = (a: { namespace: string; name: string }, b: { namespace: string; name: string }) =>
  cmp(a.namespace, b.namespace) || cmp(a.name, b.name);
function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Merges objects (in input order) into one Cluster. Later duplicates are dropped with an error. */
export function buildCluster(objects: readonly ManifestObject[]): LoadResult {
  const diagnostics: Diagnostic[] = [];

  // 1. Duplicates: the API server would reject the second create; keep the first.
  const seen = new Map<string, ManifestObject>();
  const unique: ManifestObject[] = [];
  for (const o of objects) {
    const id = identity(o);
    const key = `${id.kind}|${id.namespace ?? ''}|${id.name}`;
    const first = seen.get(key);
    if (first) {
      diagnostics.push({
        severity: 'error',
        code: 'duplicate-object',
        message: `duplicate ${id.kind}: already defined at ${where(first.value.source)}; the first definition is kept`,
        ...at(o.value.source),
        object: objectName(id.kind, id.name, id.namespace),
      });
      continue;
    }
    seen.set(key, o);
    unique.push(o);
  }

  // 2. Objects owned by a controller that is itself in the input (a Pod of a ReplicaSet of a
  //    Deployment, as in `kubectl get all -o yaml`) would count the same pods twice.
  const workloadsIn = new Set(
    unique.filter((o): o is LoadedWorkload => o.kind === 'Workload').map((o) => `${o.value.namespace}|${o.value.kind}|${o.value.name}`),
  );
  const workloads: LoadedWorkload[] = [];
  for (const o of unique) {
    if (o.kind !== 'Workload') continue;
    const owner = o.owners.find((r) => workloadsIn.has(`${o.value.namespace}|${r.kind}|${r.name}`));
    if (owner) {
      diagnostics.push({
        severity: 'notice',
        code: 'owned-by-controller',
        message: `owned by ${owner.kind} ${o.value.namespace}/${owner.name}, which is also in the input; counted through its owner`,
        ...at(o.value.source),
        object: objectName(o.value.kind, o.value.name, o.value.namespace),
      });
      continue;
    }
    workloads.push(o);
  }

  // 3. Pods: bare Pods keep their name; controllers get `<name>-<i>`.
  const pods: Pod[] = [];
  const podNames = new Map<string, Pod>();
  for (const w of workloads) {
    const v = w.value;
    const key = workloadKey(v.namespace, v.name, v.kind);
    for (let i = 0; i < v.replicas; i++) {
      const name = v.kind === 'Pod' ? v.name : `${v.name}-${i}`;
      const pod: Pod = {
        namespace: v.namespace,
        name,
        labels: v.labels,
        ports: v.ports,
        hostNetwork: v.hostNetwork,
        ...(w.podIP !== undefined ? { ip: w.podIP } : {}),
        ...(w.nodeName !== undefined ? { node: w.nodeName } : {}),
        workload: key,
        ...(v.source ? { source: v.source } : {}),
      };
      const clash = podNames.get(`${v.namespace}/${name}`);
      if (clash) {
        diagnostics.push({
          severity: 'warning',
          code: 'duplicate-pod',
          message: `pod name ${v.namespace}/${name} of ${key} is already used by ${clash.workload}; this pod is skipped`,
          ...at(v.source),
          object: objectName(v.kind, v.name, v.namespace),
        });
        continue;
      }
      podNames.set(`${v.namespace}/${name}`, pod);
      pods.push(pod);
    }
  }

  // 4. Collect the rest by kind.
  const namespaces: Namespace[] = [];
  const nodes: Node[] = [];
  const services: Service[] = [];
  const networkPolicies: NetworkPolicy[] = [];
  const adminNetworkPolicies: AdminNetworkPolicy[] = [];
  let baseline: BaselineAdminNetworkPolicy | undefined;
  for (const o of unique) {
    switch (o.kind) {
      case 'Namespace': namespaces.push(o.value); break;
      case 'Node': nodes.push(o.value); break;
      case 'Service': services.push(o.value); break;
      case 'NetworkPolicy': networkPolicies.push(o.value); break;
      case 'AdminNetworkPolicy': adminNetworkPolicies.push(o.value); break;
      case 'BaselineAdminNetworkPolicy': baseline = o.value; break;
      case 'Workload': break;
    }
  }

  // 5. Namespaces used but never declared exist implicitly, with the labels the API server
  //    would give them, so namespaceSelectors on kubernetes.io/metadata.name still work.
  const declared = new Set(namespaces.map((n) => n.name));
  const referencing: { namespace: string; source?: SourceRef; object: string }[] = [
    ...workloads.map((w) => ({ namespace: w.value.namespace, source: w.value.source, object: objectName(w.value.kind, w.value.name, w.value.namespace) })),
    ...services.map((s) => ({ namespace: s.namespace, source: s.source, object: objectName('Service', s.name, s.namespace) })),
    ...networkPolicies.map((p) => ({ namespace: p.namespace, source: p.source, object: objectName('NetworkPolicy', p.name, p.namespace) })),
  ];
  for (const r of referencing) {
    if (declared.has(r.namespace)) continue;
    declared.add(r.namespace);
    namespaces.push({ name: r.namespace, labels: namespaceLabels(r.namespace), implicit: true });
    diagnostics.push({
      severity: 'notice',
      code: 'implicit-namespace',
      message: `namespace "${r.namespace}" is used but not declared; created with only the label kubernetes.io/metadata.name=${r.namespace}`,
      ...at(r.source),
      object: r.object,
    });
  }

  const cluster: Cluster = {
    namespaces: namespaces.sort(byName),
    nodes: nodes.sort(byName),
    workloads: workloads.map((w): Workload => w.value).sort((a, b) => byNsName(a, b) || cmp(a.kind, b.kind)),
    pods: pods.sort(byNsName),
    services: services.sort(byNsName),
    networkPolicies: networkPolicies.sort(byNsName),
    // Equal priorities have no defined order in the API; name order keeps weir deterministic.
    adminNetworkPolicies: adminNetworkPolicies.sort((a, b) => a.priority - b.priority || byName(a, b)),
    ...(baseline ? { baselineAdminNetworkPolicy: baseline } : {}),
  };
  return { cluster, diagnostics };
}
