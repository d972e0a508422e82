// The normalized cluster model every part of weir works on.
//
// The loader (src/load) validates raw Kubernetes manifests with zod schemas and turns them
// into these plain objects, applying the API server's defaulting (policyTypes, protocol TCP,
// namespace labels). The engine, the lab, the renderer and the analyzer only ever see this
// model, so defaulting happens in exactly one place.

export type Protocol = 'TCP' | 'UDP' | 'SCTP';
export const PROTOCOLS: readonly Protocol[] = ['TCP', 'UDP', 'SCTP'];

export type Labels = Readonly<Record<string, string>>;

export type SelectorOperator = 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';

export interface LabelSelectorRequirement {
  readonly key: string;
  readonly operator: SelectorOperator;
  readonly values?: readonly string[];
}

/** metav1.LabelSelector. `{}` (no requirements) selects everything. */
export interface LabelSelector {
  readonly matchLabels?: Labels;
  readonly matchExpressions?: readonly LabelSelectorRequirement[];
}

/** Where an object came from, for error messages and explanations. */
export interface SourceRef {
  readonly file: string;
  /** 1-based line of the document start, where known. */
  readonly line?: number;
}

export interface Namespace {
  readonly name: string;
  /** Always includes `kubernetes.io/metadata.name` (set by the loader, as the API server does). */
  readonly labels: Labels;
  /** True when the namespace was not declared and was created from a reference. */
  readonly implicit?: boolean;
  readonly source?: SourceRef;
}

export interface Node {
  readonly name: string;
  readonly labels: Labels;
  /** Node (host) IP, when known. */
  readonly ip?: string;
  readonly source?: SourceRef;
}

export interface ContainerPort {
  readonly name?: string;
  readonly port: number;
  readonly protocol: Protocol;
}

/** The workload kinds weir reads from manifests (KubeVirt's VMs run in virt-launcher pods). */
export type WorkloadKind =
  | 'Pod'
  | 'Deployment'
  | 'ReplicaSet'
  | 'StatefulSet'
  | 'DaemonSet'
  | 'Job'
  | 'CronJob'
  | 'ReplicationController'
  | 'VirtualMachine'
  | 'VirtualMachineInstance';

/**
 * A controller (or a bare Pod) whose pods share one pod template, or the owner that running
 * pods name in their ownerReferences.
 */
export interface Workload {
  readonly namespace: string;
  readonly name: string;
  /**
   * A WorkloadKind, or the kind of a controller known only from its pods' ownerReferences
   * (an Argo Rollout, an operator's custom resource).
   */
  readonly kind: string;
  /** Pod template labels (for an owner known from its pods: the first pod's labels). */
  readonly labels: Labels;
  readonly ports: readonly ContainerPort[];
  readonly hostNetwork: boolean;
  /** Pods the workload runs: `spec.replicas`, or the number of its pods in the input. */
  readonly replicas: number;
  readonly source?: SourceRef;
}

export interface Pod {
  readonly namespace: string;
  readonly name: string;
  readonly labels: Labels;
  readonly ports: readonly ContainerPort[];
  readonly hostNetwork: boolean;
  /** `status.podIP` or the address the lab assigned. */
  readonly ip?: string;
  /** Node the pod runs on, where known. */
  readonly node?: string;
  /** Owning workload key, `namespace/name[Kind]`. */
  readonly workload: string;
  /**
   * Identical replicas this pod stands for (absent: 1). Replicas made from one pod template
   * share labels, ports and identity, so the model keeps one representative and a count
   * instead of `spec.replicas` copies; whatever needs real pods (the lab) materialises them
   * with `materializeReplicas`.
   */
  readonly replicas?: number;
  readonly source?: SourceRef;
}

export interface ServicePort {
  readonly name?: string;
  readonly port: number;
  readonly targetPort: number | string;
  readonly protocol: Protocol;
  readonly nodePort?: number;
}

export interface Service {
  readonly namespace: string;
  readonly name: string;
  /** Absent selector: a service without selector (endpoints managed elsewhere). */
  readonly selector?: Labels;
  readonly ports: readonly ServicePort[];
  readonly clusterIP?: string;
  readonly type: 'ClusterIP' | 'NodePort' | 'LoadBalancer' | 'ExternalName';
  readonly sessionAffinity: 'None' | 'ClientIP';
  /** `sessionAffinityConfig.clientIP.timeoutSeconds`; defaulted to 10800 (3 h) with ClientIP. */
  readonly sessionAffinityTimeoutSeconds?: number;
  /** Defaulted to `Cluster`, as the API server does. */
  readonly internalTrafficPolicy: 'Cluster' | 'Local';
  /** Defaulted to `Cluster` for NodePort and LoadBalancer Services; absent for the others. */
  readonly externalTrafficPolicy?: 'Cluster' | 'Local';
  readonly annotations: Labels;
  readonly source?: SourceRef;
}

/**
 * A discovery.k8s.io/v1 EndpointSlice, reduced to what load balancing and the analyzer need.
 * Manifests declare them for Services without a selector (external databases, a dump of a real
 * cluster); the files and lab sources add the ones Kubernetes' EndpointSlice controller would
 * publish for Services with a selector (src/source/endpoints.ts); the Kubernetes source
 * delivers the real ones.
 */
export interface EndpointSlice {
  readonly namespace: string;
  readonly name: string;
  /** `kubernetes.io/service-name` label: the Service this slice belongs to. */
  readonly service: string;
  /** `endpointslice.kubernetes.io/managed-by` label, where set. */
  readonly managedBy?: string;
  readonly addressType: 'IPv4' | 'IPv6' | 'FQDN';
  /** Ports with a number (a port without one means "all ports", which no proxy forwards to). */
  readonly ports: readonly { readonly name?: string; readonly port: number; readonly protocol: Protocol }[];
  readonly endpoints: readonly {
    readonly addresses: readonly string[];
    /** Conditions with the API's nil meanings applied: ready and serving true, terminating false. */
    readonly ready: boolean;
    readonly serving?: boolean;
    readonly terminating?: boolean;
    readonly nodeName?: string;
    readonly zone?: string;
    /** `targetRef` of a pod endpoint, `namespace/name`. */
    readonly pod?: string;
  }[];
  /**
   * The slice is invalid (the API server would reject it): its endpoints are unknown, so it
   * gives none to the kernel and every verdict through its Service is UNKNOWN.
   */
  readonly doubt?: Doubt;
  readonly source?: SourceRef;
}

// ---------------------------------------------------------------- doubt

/**
 * A part of a policy whose meaning is in doubt: the API server would reject a field of it
 * (an invalid selector operator, `endPort < port`, an ANP priority out of range, ...). weir
 * never lets such a part fail open: the loader keeps what is certain, widens the doubtful part
 * to everything it might mean, and marks it; the engine enforces the certain part and denies
 * what the doubtful part might decide, and the analyzer reports every verdict it could change
 * as UNKNOWN.
 */
export interface Doubt {
  /** `Kind ns/name field`, e.g. `NetworkPolicy shop/deny spec.podSelector.matchExpressions[0].operator`. */
  readonly reason: string;
}

/** A rule in doubt: it may match anything its widened peers and ports match, or nothing. */
export interface RuleDoubt extends Doubt {
  /** The action itself is invalid: the rule may allow, deny or pass. */
  readonly anyAction?: boolean;
  /** The peers are invalid: the rule may match any peer (the rule's `peers` are then empty). */
  readonly anyPeer?: boolean;
}

// ---------------------------------------------------------------- NetworkPolicy

export interface IPBlock {
  readonly cidr: string;
  readonly except: readonly string[];
}

/**
 * networking.k8s.io/v1 NetworkPolicyPeer. Exactly one of `selector` or `ipBlock` forms.
 * In the selector form, an absent namespaceSelector means "the policy's namespace" and an
 * absent podSelector means "all pods" — which is different from an empty `{}` selector on
 * namespaceSelector ("all namespaces").
 */
export type NetworkPolicyPeer =
  | { readonly kind: 'selector'; readonly podSelector?: LabelSelector; readonly namespaceSelector?: LabelSelector }
  | { readonly kind: 'ipBlock'; readonly ipBlock: IPBlock };

export interface NetworkPolicyPort {
  readonly protocol: Protocol;
  /** Absent: all ports of the protocol. A string is a named container port. */
  readonly port?: number | string;
  readonly endPort?: number;
}

export interface NetworkPolicyRule {
  /** Empty: matches all peers (the API's "empty or missing from/to"). */
  readonly peers: readonly NetworkPolicyPeer[];
  /** Empty: matches all ports and protocols. */
  readonly ports: readonly NetworkPolicyPort[];
  /** The rule is invalid: it allows nothing for sure, and may allow what its widened form matches. */
  readonly doubt?: RuleDoubt;
}

export type PolicyMode = 'enforce' | 'audit';

export interface NetworkPolicy {
  readonly namespace: string;
  readonly name: string;
  readonly podSelector: LabelSelector;
  /** Already defaulted as the API server does. */
  readonly policyTypes: readonly ('Ingress' | 'Egress')[];
  readonly ingress: readonly NetworkPolicyRule[];
  readonly egress: readonly NetworkPolicyRule[];
  /** From annotation `weir.dev/mode`; default enforce. */
  readonly mode: PolicyMode;
  /**
   * Whether the policy applies at all is in doubt (invalid podSelector, policyTypes or mode):
   * `podSelector`/`policyTypes` hold the widened form (every pod it might select).
   */
  readonly doubt?: Doubt;
  readonly source?: SourceRef;
}

// ------------------------------------------------- AdminNetworkPolicy / Baseline

export interface NamespacedPodSelector {
  readonly namespaceSelector: LabelSelector;
  readonly podSelector: LabelSelector;
}

export type AdminSubject =
  | { readonly namespaces: LabelSelector; readonly pods?: undefined }
  | { readonly pods: NamespacedPodSelector; readonly namespaces?: undefined };

export type AdminPeer =
  | { readonly kind: 'namespaces'; readonly namespaces: LabelSelector }
  | { readonly kind: 'pods'; readonly pods: NamespacedPodSelector }
  | { readonly kind: 'nodes'; readonly nodes: LabelSelector }
  | { readonly kind: 'networks'; readonly networks: readonly string[] };

export type AdminPort =
  | { readonly kind: 'portNumber'; readonly protocol: Protocol; readonly port: number }
  | { readonly kind: 'namedPort'; readonly name: string }
  | { readonly kind: 'portRange'; readonly protocol: Protocol; readonly start: number; readonly end: number };

export type AdminAction = 'Allow' | 'Deny' | 'Pass';

export interface AdminRule {
  readonly name: string;
  readonly action: AdminAction;
  readonly peers: readonly AdminPeer[];
  /** Absent: the rule does not filter by port. */
  readonly ports?: readonly AdminPort[];
  /** The rule is invalid; `action` is then Deny when `doubt.anyAction`, peers empty when `doubt.anyPeer`. */
  readonly doubt?: RuleDoubt;
}

/** What AdminNetworkPolicy and BaselineAdminNetworkPolicy share. */
export interface AdminPolicySpec {
  readonly name: string;
  readonly subject: AdminSubject;
  readonly ingress: readonly AdminRule[];
  readonly egress: readonly AdminRule[];
  readonly mode: PolicyMode;
  /**
   * Whether the policy applies (invalid subject or mode) or where it stands (invalid priority,
   * then -1: before every other) is in doubt; `subject` holds the widened form.
   */
  readonly doubt?: Doubt;
  readonly source?: SourceRef;
}

export interface AdminNetworkPolicy extends AdminPolicySpec {
  readonly priority: number;
}

/**
 * The singleton BaselineAdminNetworkPolicy (named `default`): no priority, and actions are
 * Allow or Deny only (the loader refuses Pass).
 */
export type BaselineAdminNetworkPolicy = AdminPolicySpec;

export interface Cluster {
  readonly namespaces: readonly Namespace[];
  readonly nodes: readonly Node[];
  readonly workloads: readonly Workload[];
  readonly pods: readonly Pod[];
  readonly services: readonly Service[];
  /**
   * EndpointSlices declared in the manifests (absent: none). Sources add the ones the
   * EndpointSlice controller would derive from selectors in their snapshots, not here.
   */
  readonly endpointSlices?: readonly EndpointSlice[];
  readonly networkPolicies: readonly NetworkPolicy[];
  readonly adminNetworkPolicies: readonly AdminNetworkPolicy[];
  readonly baselineAdminNetworkPolicy?: BaselineAdminNetworkPolicy;
}

export function emptyCluster(): Cluster {
  return {
    namespaces: [],
    nodes: [],
    workloads: [],
    pods: [],
    services: [],
    networkPolicies: [],
    adminNetworkPolicies: [],
  };
}

export function workloadKey(namespace: string, name: string, kind: string): string {
  return `${namespace}/${name}[${kind}]`;
}

/** The name of replica `i` of a templated workload, as the loader names its representative (`<name>-0`). */
export function replicaName(workload: string, i: number): string {
  return `${workload}-${i}`;
}

/**
 * Pods with a replica count as that many real pods: the representative `<w>-0` and `<w>-1` …
 * `<w>-(n-1)`. Throws a RangeError naming the workload when the total would pass `limit`,
 * before allocating anything.
 */
export function materializeReplicas(pods: readonly Pod[], limit: number): Pod[] {
  let total = 0;
  for (const p of pods) {
    total += p.replicas ?? 1;
    if (total > limit) {
      throw new RangeError(`${p.workload} asks for ${p.replicas ?? 1} replicas: more than ${limit} pods in all; lower spec.replicas`);
    }
  }
  const out: Pod[] = [];
  for (const p of pods) {
    const n = p.replicas ?? 1;
    const { replicas: _count, ...one } = p;
    out.push(one);
    const base = p.name.endsWith('-0') ? p.name.slice(0, -2) : p.name;
    for (let i = 1; i < n; i++) out.push({ ...one, name: replicaName(base, i) });
  }
  return out;
}
