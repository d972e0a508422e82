// Validated objects (from any number of files) → one Cluster: duplicates, ownership,
// implicit namespaces, pods, deterministic order.
//
// Pods come from two places. A running Pod (as in a dump of a live cluster) is one pod of its
// own; when it names a managing controller in its ownerReferences it is grouped into that
// workload, named as np-guard's netpol-analyzer names it (`ns/<replicaset>[ReplicaSet]`,
// `ns/<name>[DaemonSet]`, ...), and where the controller object is itself in the input the
// chain is followed up (ReplicaSet → Deployment, Job → CronJob, VMI → VirtualMachine). A
// controller without running pods in the input stands for its template's pods: replicas
// share labels, ports and identity, so the model keeps one representative pod and a count.

import {
  replicaName,
  workloadKey,
  type AdminNetworkPolicy,
  type BaselineAdminNetworkPolicy,
  type Cluster,
  type EndpointSlice,
  type LabelSelector,
  type Namespace,
  type NetworkPolicy,
  type Node,
  type Pod,
  type Service,
  type SourceRef,
  type Workload,
} from '../model/cluster.js';
import { objectName, type Diagnostic } from '../model/diagnostics.js';
import { checkEndpointSlices } from './endpointslice.js';
import { namespaceLabels } from './normalize.js';
import type { LoadedWorkload, ManifestObject, OwnerRef } from './parse.js';

export interface LoadResult {
  readonly cluster: Cluster;
  readonly diagnostics: Diagnostic[];
}

function identity(o: ManifestObject): { kind: string; namespace?: string; name: string } {
  switch (o.kind) {
    case 'Workload':
      return { kind: o.value.kind, namespace: o.value.namespace, name: o.value.name };
    case 'Service':
    case 'EndpointSlice':
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

const wkey = (ns: string, kind: string, name: string) => `${ns}|${kind}|${name}`;

/** Resolves pods' and controllers' managing controllers against the objects in the input. */
class Owners {
  private readonly byKey = new Map<string, LoadedWorkload>();
  private readonly kindsByName = new Map<string, string[]>();

  constructor(workloads: readonly LoadedWorkload[]) {
    for (const w of workloads) {
      const v = w.value;
      this.byKey.set(wkey(v.namespace, v.kind, v.name), w);
      const k = `${v.namespace}|${v.name}`;
      this.kindsByName.set(k, [...(this.kindsByName.get(k) ?? []), v.kind]);
    }
  }

  get(ns: string, ref: { kind: string; name: string }): LoadedWorkload | undefined {
    return this.byKey.get(wkey(ns, ref.kind, ref.name));
  }

  /**
   * The managing controller: the ownerReferences entry with `controller: true`, as np-guard
   * reads it (a Node owns static pods, which stay pods of their own). A reference without a
   * kind takes the kind of the one object of that name in the input; failing that, the kind
   * np-guard gives an owner without kind, `Pod` (so its pods are `ns/<owner>[Pod]` in both).
   */
  controllerOf(w: LoadedWorkload): OwnerRef | undefined {
    const ref = w.owners.find((o) => o.controller);
    if (!ref || ref.kind === 'Node') return undefined;
    if (ref.kind !== '') return ref;
    const kinds = (this.kindsByName.get(`${w.value.namespace}|${ref.name}`) ?? []).filter((k) => k !== w.value.kind || ref.name !== w.value.name);
    return { ...ref, kind: kinds.length === 1 ? kinds[0] : 'Pod' };
  }

  /**
   * The topmost owner, following controllers while they are in the input (loops stop), and
   * the objects of the input passed on the way (they are represented by the instance).
   */
  root(w: LoadedWorkload): { kind: string; name: string; object?: LoadedWorkload; chain: LoadedWorkload[] } | undefined {
    let ref = this.controllerOf(w);
    if (!ref) return undefined;
    const ns = w.value.namespace;
    const chain: LoadedWorkload[] = [];
    for (;;) {
      const obj = this.byKey.get(wkey(ns, ref.kind, ref.name));
      if (!obj || obj === w || chain.includes(obj)) return { kind: ref.kind, name: ref.name, chain };
      chain.push(obj);
      const next = this.controllerOf(obj);
      if (!next) return { kind: ref.kind, name: ref.name, object: obj, chain };
      ref = next;
    }
  }
}

/** Label keys the policies' pod selectors look at (np-guard refuses pods of one owner that differ there). */
function selectorKeys(
  networkPolicies: readonly NetworkPolicy[],
  admin: readonly (AdminNetworkPolicy | BaselineAdminNetworkPolicy)[],
): Set<string> {
  const keys = new Set<string>();
  const add = (s: LabelSelector | undefined) => {
    for (const k of Object.keys(s?.matchLabels ?? {})) keys.add(k);
    for (const r of s?.matchExpressions ?? []) keys.add(r.key);
  };
  for (const p of networkPolicies) {
    add(p.podSelector);
    for (const r of [...p.ingress, ...p.egress]) for (const peer of r.peers) if (peer.kind === 'selector') add(peer.podSelector);
  }
  for (const p of admin) {
    if (p.subject.pods) add(p.subject.pods.podSelector);
    for (const r of [...p.ingress, ...p.egress]) for (const peer of r.peers) if (peer.kind === 'pods') add(peer.pods.podSelector);
  }
  return keys;
}

/** First label that differs between two label sets among `keys`: [key, a's value, b's value]. */
function differingLabel(a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>, keys: ReadonlySet<string>): [string, string | undefined, string | undefined] | undefined {
  let same = true;
  for (const k in a) if (a[k] !== b[k]) same = false;
  for (const k in b) if (!(k in a)) same = false;
  if (same) return undefined;
  for (const k of [...new Set([...Object.keys(a), ...Object.keys(b)])].sort()) {
    if (a[k] !== b[k] && keys.has(k)) return [k, a[k], b[k]];
  }
  return undefined;
}

const showLabel = (k: string, v: string | undefined) => (v === undefined ? `no label ${k}` : `${k}=${v}`);

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

  // 2. Collect by kind.
  const loaded: LoadedWorkload[] = [];
  const namespaces: Namespace[] = [];
  const nodes: Node[] = [];
  const services: Service[] = [];
  const endpointSlices: EndpointSlice[] = [];
  const networkPolicies: NetworkPolicy[] = [];
  const adminNetworkPolicies: AdminNetworkPolicy[] = [];
  let baseline: BaselineAdminNetworkPolicy | undefined;
  for (const o of unique) {
    switch (o.kind) {
      case 'Namespace': namespaces.push(o.value); break;
      case 'Node': nodes.push(o.value); break;
      case 'Service': services.push(o.value); break;
      case 'EndpointSlice': endpointSlices.push(o.value); break;
      case 'NetworkPolicy': networkPolicies.push(o.value); break;
      case 'AdminNetworkPolicy': adminNetworkPolicies.push(o.value); break;
      case 'BaselineAdminNetworkPolicy': baseline = o.value; break;
      case 'Workload': loaded.push(o); break;
    }
  }
  const owners = new Owners(loaded);

  // 3. Running instances (Pods, VMIs) grouped by their topmost owner. An instance that owns
  //    running instances of its own (a VMI and its virt-launcher pod) is seen through them.
  const instanceOwners = new Set<string>();
  for (const w of loaded) {
    const c = w.instance ? owners.controllerOf(w) : undefined;
    if (c) instanceOwners.add(wkey(w.value.namespace, c.kind, c.name));
  }
  interface Group {
    readonly namespace: string;
    readonly kind: string;
    readonly name: string;
    readonly object?: LoadedWorkload;
    readonly instances: LoadedWorkload[];
  }
  const groups = new Map<string, Group>();
  const materialised = new Set<LoadedWorkload>();
  for (const w of loaded) {
    if (!w.instance) continue;
    const v = w.value;
    if (instanceOwners.size > 0 && instanceOwners.has(wkey(v.namespace, v.kind, v.name))) continue;
    const root = owners.root(w) ?? { kind: v.kind, name: v.name, object: undefined, chain: [] };
    const key = workloadKey(v.namespace, root.name, root.kind);
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { namespace: v.namespace, kind: root.kind, name: root.name, ...(root.object ? { object: root.object } : {}), instances: [] }));
    g.instances.push(w);
    for (const o of root.chain) materialised.add(o);
  }

  // 4. Controllers owned by a controller that is itself in the input (a ReplicaSet of a
  //    Deployment, as in `kubectl get all -o yaml`) would count the same pods twice.
  const templates: LoadedWorkload[] = [];
  for (const w of loaded) {
    if (w.instance) continue;
    const c = owners.controllerOf(w);
    const owner = c && owners.get(w.value.namespace, c);
    if (c && owner) {
      diagnostics.push({
        severity: 'notice',
        code: 'owned-by-controller',
        message: `owned by ${c.kind} ${w.value.namespace}/${c.name}, which is also in the input; counted through its owner`,
        ...at(w.value.source),
        object: objectName(w.value.kind, w.value.name, w.value.namespace),
      });
      continue;
    }
    templates.push(w);
  }

  // 5. Pods: instances keep their name and labels; a controller without running pods in the
  //    input has one representative `<name>-0` standing for all its replicas.
  const pods: Pod[] = [];
  const workloads: Workload[] = [];
  const podNames = new Map<string, Pod>();
  /** A pod of workload `key` from a loaded object; the object's own name when it is an instance. */
  const addPod = (w: LoadedWorkload, key: string, name: string, replicas: number) => {
    const v = w.value;
    const podKey = `${v.namespace}/${name}`;
    const clash = podNames.get(podKey);
    if (clash) {
      diagnostics.push({
        severity: 'warning',
        code: 'duplicate-pod',
        message: `pod name ${podKey} of ${key} is already used by ${clash.workload}; this pod is skipped`,
        ...at(v.source),
        object: objectName(v.kind, v.name, v.namespace),
      });
      return;
    }
    // Built field by field: optional fields stay absent (a 100k-pod dump makes this hot).
    const pod: { -readonly [K in keyof Pod]: Pod[K] } = { namespace: v.namespace, name, labels: v.labels, ports: v.ports, hostNetwork: v.hostNetwork, workload: key };
    if (w.instance && w.podIP !== undefined) pod.ip = w.podIP;
    if (w.nodeName !== undefined) pod.node = w.nodeName;
    if (replicas > 1) pod.replicas = replicas;
    if (v.source) pod.source = v.source;
    podNames.set(podKey, pod);
    pods.push(pod);
  };
  const keys = selectorKeys(networkPolicies, [...adminNetworkPolicies, ...(baseline ? [baseline] : [])]);
  for (const [key, g] of groups) {
    const first = g.instances[0];
    for (const w of g.instances) addPod(w, key, w.value.name, 1);
    // np-guard refuses pods of one owner whose labels differ where a policy selector looks;
    // weir keeps each pod's own labels (the connectivity list then names the pods one by one
    // where their connectivity differs) and says so.
    for (const w of g.instances.slice(1)) {
      const d = differingLabel(first.value.labels, w.value.labels, keys);
      if (!d) continue;
      const [k, a, b] = d;
      diagnostics.push({
        severity: 'warning',
        code: 'owner-labels-differ',
        message:
          `pods ${g.namespace}/${first.value.name} (${showLabel(k, a)}) and ${g.namespace}/${w.value.name} (${showLabel(k, b)}) of ${g.kind} ${g.namespace}/${g.name} ` +
          `have different labels that policy selectors use; np-guard refuses such input, weir keeps each pod's labels and lists the pods one by one where their connectivity differs`,
        ...at(w.value.source),
        object: objectName(g.kind, g.name, g.namespace),
      });
      break;
    }
    const base = g.object?.value ?? first.value;
    workloads.push({
      namespace: g.namespace,
      name: g.name,
      kind: g.kind,
      labels: base.labels,
      ports: base.ports,
      hostNetwork: base.hostNetwork,
      replicas: g.instances.length,
      ...(base.source ? { source: base.source } : {}),
    });
  }
  for (const w of templates) {
    if (materialised.has(w)) continue;
    const v = w.value;
    workloads.push(v);
    if (v.replicas === 0) continue;
    addPod(w, workloadKey(v.namespace, v.name, v.kind), replicaName(v.name, 0), v.replicas);
  }

  // 6. Namespaces used but never declared exist implicitly, with the labels the API server
  //    would give them, so namespaceSelectors on kubernetes.io/metadata.name still work.
  const declared = new Set(namespaces.map((n) => n.name));
  const referencing: { namespace: string; source?: SourceRef; object: string }[] = [
    ...workloads.map((w) => ({ namespace: w.namespace, source: w.source, object: objectName(w.kind, w.name, w.namespace) })),
    ...services.map((s) => ({ namespace: s.namespace, source: s.source, object: objectName('Service', s.name, s.namespace) })),
    ...endpointSlices.map((s) => ({ namespace: s.namespace, source: s.source, object: objectName('EndpointSlice', s.name, s.namespace) })),
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

  // 7. EndpointSlices joined to their Services.
  diagnostics.push(...checkEndpointSlices(services, endpointSlices));

  const cluster: Cluster = {
    namespaces: namespaces.sort(byName),
    nodes: nodes.sort(byName),
    workloads: workloads.sort((a, b) => byNsName(a, b) || cmp(a.kind, b.kind)),
    pods: pods.sort(byNsName),
    services: services.sort(byNsName),
    ...(endpointSlices.length > 0 ? { endpointSlices: endpointSlices.sort(byNsName) } : {}),
    networkPolicies: networkPolicies.sort(byNsName),
    // Equal priorities have no defined order in the API; name order keeps weir deterministic.
    adminNetworkPolicies: adminNetworkPolicies.sort((a, b) => a.priority - b.priority || byName(a, b)),
    ...(baseline ? { baselineAdminNetworkPolicy: baseline } : {}),
  };
  return { cluster, diagnostics };
}
