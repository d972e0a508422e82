// Raw (validated) manifests → the normalized Cluster model, applying the API server's
// defaulting exactly once, here.

import type {
  AdminNetworkPolicy,
  AdminPeer,
  AdminPort,
  AdminRule,
  AdminSubject,
  BaselineAdminNetworkPolicy,
  ContainerPort,
  LabelSelector,
  Labels,
  Namespace,
  NetworkPolicy,
  NetworkPolicyPeer,
  NetworkPolicyPort,
  NetworkPolicyRule,
  NamespacedPodSelector,
  Node,
  PolicyMode,
  Service,
  SourceRef,
} from '../model/cluster.js';
import type { z } from 'zod';
import { canonicalCIDR, hasHostBits, parseCIDR } from '../net/address.js';
import type {
  RawAdminEgressPeer,
  RawAdminIngressPeer,
  RawAdminNetworkPolicy,
  RawAdminPort,
  RawBaselineAdminNetworkPolicy,
  RawLabelSelector,
  RawNetworkPolicy,
  RawNetworkPolicyPeer,
  RawNetworkPolicyPort,
  RawPodSpec,
  RawVmiSpec,
  namespaceSchema,
  nodeSchema,
  serviceSchema,
} from './schema.js';
import { MODE_ANNOTATION } from './schema.js';

/**
 * A normalization remark (never an error: errors are caught by the schemas). A warning marks
 * what the API server would reject although its meaning is not in doubt; `weir lint` reports
 * those as errors (see API_REJECTED_CODES).
 */
export interface Remark {
  /** Default notice. */
  readonly severity?: 'warning' | 'notice';
  readonly code: string;
  readonly message: string;
  readonly path: readonly (string | number)[];
}

export const NAMESPACE_NAME_LABEL = 'kubernetes.io/metadata.name';

export function namespaceLabels(name: string, labels: Labels = {}): Labels {
  // The API server always sets this label to the namespace's name (NamespaceDefaultLabelName).
  return { ...labels, [NAMESPACE_NAME_LABEL]: name };
}

export function normalizeSelector(raw: RawLabelSelector): LabelSelector {
  return {
    ...(raw.matchLabels ? { matchLabels: { ...raw.matchLabels } } : {}),
    ...(raw.matchExpressions
      ? {
          matchExpressions: raw.matchExpressions.map((r) => ({
            key: r.key,
            operator: r.operator,
            ...(r.values ? { values: [...r.values] } : {}),
          })),
        }
      : {}),
  };
}

function modeOf(annotations: Readonly<Record<string, string>> | undefined): PolicyMode {
  return annotations?.[MODE_ANNOTATION] === 'audit' ? 'audit' : 'enforce';
}

// ------------------------------------------------------------------ NetworkPolicy

function normalizeCidr(text: string, path: (string | number)[], remarks: Remark[]): string {
  const c = parseCIDR(text);
  if (!c) return text; // unreachable: the schema rejected it
  if (hasHostBits(c)) {
    // Kubernetes parses ipBlock CIDRs with ParseCIDR, which keeps only the network part, so
    // "10.0.0.7/24" means 10.0.0.0/24 (API servers with strict CIDR validation reject it, and
    // ANP `networks` never accept it). The author may have meant a single host: a warning.
    remarks.push({
      severity: 'warning',
      code: 'cidr-host-bits',
      message: `CIDR "${text}" has host bits set; it is treated as ${canonicalCIDR(c)} (the masked network)`,
      path,
    });
  }
  return canonicalCIDR(c);
}

function normalizePeer(raw: RawNetworkPolicyPeer, path: (string | number)[], remarks: Remark[]): NetworkPolicyPeer {
  if (raw.ipBlock) {
    return {
      kind: 'ipBlock',
      ipBlock: {
        cidr: normalizeCidr(raw.ipBlock.cidr, [...path, 'ipBlock', 'cidr'], remarks),
        except: (raw.ipBlock.except ?? []).map((e, i) => normalizeCidr(e, [...path, 'ipBlock', 'except', i], remarks)),
      },
    };
  }
  return {
    kind: 'selector',
    ...(raw.podSelector ? { podSelector: normalizeSelector(raw.podSelector) } : {}),
    ...(raw.namespaceSelector ? { namespaceSelector: normalizeSelector(raw.namespaceSelector) } : {}),
  };
}

function normalizePort(raw: RawNetworkPolicyPort): NetworkPolicyPort {
  return {
    // NetworkPolicyPort.protocol: "If not specified, this field defaults to TCP."
    protocol: raw.protocol ?? 'TCP',
    ...(raw.port !== undefined ? { port: raw.port } : {}),
    ...(raw.endPort !== undefined ? { endPort: raw.endPort } : {}),
  };
}

export function normalizeNetworkPolicy(raw: RawNetworkPolicy, namespace: string, source: SourceRef, remarks: Remark[]): NetworkPolicy {
  const spec = raw.spec;
  const rules = (dir: 'ingress' | 'egress', list: readonly { from?: RawNetworkPolicyPeer[]; to?: RawNetworkPolicyPeer[]; ports?: RawNetworkPolicyPort[] }[]): NetworkPolicyRule[] =>
    list.map((rule, i) => {
      const peerKey = dir === 'ingress' ? 'from' : 'to';
      return {
        peers: (rule[peerKey] ?? []).map((p, j) => normalizePeer(p, ['spec', dir, i, peerKey, j], remarks)),
        ports: (rule.ports ?? []).map(normalizePort),
      };
    });
  const ingress = rules('ingress', spec.ingress ?? []);
  const egress = rules('egress', spec.egress ?? []);

  // SetDefaults_NetworkPolicy: when policyTypes is empty (absent *or* []), it becomes
  // ["Ingress"], plus "Egress" if spec.egress has at least one rule.
  let policyTypes: ('Ingress' | 'Egress')[];
  if (spec.policyTypes && spec.policyTypes.length > 0) {
    // Keep a canonical order so equal policies compare equal.
    policyTypes = (['Ingress', 'Egress'] as const).filter((t) => spec.policyTypes?.includes(t));
  } else {
    policyTypes = egress.length > 0 ? ['Ingress', 'Egress'] : ['Ingress'];
  }
  for (const dir of ['ingress', 'egress'] as const) {
    const type = dir === 'ingress' ? 'Ingress' : 'Egress';
    if ((dir === 'ingress' ? ingress : egress).length > 0 && !policyTypes.includes(type)) {
      remarks.push({
        code: 'ignored-rules',
        message: `spec.${dir} has rules but policyTypes does not include ${type}; these rules have no effect`,
        path: ['spec', dir],
      });
    }
  }

  return {
    namespace,
    name: raw.metadata.name,
    podSelector: normalizeSelector(spec.podSelector ?? {}),
    policyTypes,
    ingress,
    egress,
    mode: modeOf(raw.metadata.annotations),
    source,
  };
}

// ---------------------------------------------------- AdminNetworkPolicy / Baseline

/**
 * `pods: { namespaceSelector, podSelector }`: both are required by the API. An omitted one is
 * the empty selector (all namespaces / all pods), as np-guard reads it, with a warning.
 */
function normalizeNamespacedPods(
  raw: { namespaceSelector?: RawLabelSelector; podSelector?: RawLabelSelector },
  path: (string | number)[],
  remarks: Remark[],
): NamespacedPodSelector {
  for (const field of ['namespaceSelector', 'podSelector'] as const) {
    if (raw[field] !== undefined) continue;
    remarks.push({
      severity: 'warning',
      code: 'anp-selector-missing',
      message: `pods.${field} is missing; the API server rejects it, weir reads it as {} (${field === 'podSelector' ? 'all pods' : 'all namespaces'})`,
      path: [...path, 'pods'],
    });
  }
  return { namespaceSelector: normalizeSelector(raw.namespaceSelector ?? {}), podSelector: normalizeSelector(raw.podSelector ?? {}) };
}

function normalizeSubject(raw: RawAdminNetworkPolicy['spec']['subject'], remarks: Remark[]): AdminSubject {
  if (raw.pods) return { pods: normalizeNamespacedPods(raw.pods, ['spec', 'subject'], remarks) };
  return { namespaces: normalizeSelector(raw.namespaces ?? {}) };
}

function normalizeAdminPeer(raw: RawAdminIngressPeer | RawAdminEgressPeer, path: (string | number)[], remarks: Remark[]): AdminPeer {
  if (raw.pods) return { kind: 'pods', pods: normalizeNamespacedPods(raw.pods, path, remarks) };
  if ('nodes' in raw && raw.nodes) return { kind: 'nodes', nodes: normalizeSelector(raw.nodes) };
  if ('networks' in raw && raw.networks) {
    return { kind: 'networks', networks: raw.networks.map((n, i) => normalizeCidr(n, [...path, 'networks', i], remarks)) };
  }
  return { kind: 'namespaces', namespaces: normalizeSelector(raw.namespaces ?? {}) };
}

function normalizeAdminPort(raw: RawAdminPort): AdminPort {
  // AdminNetworkPolicyPort: protocol "+kubebuilder:default=TCP".
  if (raw.portNumber) return { kind: 'portNumber', protocol: raw.portNumber.protocol ?? 'TCP', port: raw.portNumber.port };
  if (raw.portRange) {
    return { kind: 'portRange', protocol: raw.portRange.protocol ?? 'TCP', start: raw.portRange.start, end: raw.portRange.end };
  }
  return { kind: 'namedPort', name: raw.namedPort ?? '' };
}

type RawAdminRule = {
  name?: string;
  action: string;
  from?: (RawAdminIngressPeer | RawAdminEgressPeer)[];
  to?: (RawAdminIngressPeer | RawAdminEgressPeer)[];
  ports?: RawAdminPort[];
};

function normalizeAdminRules(dir: 'ingress' | 'egress', list: readonly RawAdminRule[] | undefined, remarks: Remark[]): AdminRule[] {
  const peerKey = dir === 'ingress' ? 'from' : 'to';
  return (list ?? []).map((r, i) => ({
    // Rule names are optional in the API; explanations need a handle, so use the rule's position.
    name: r.name ?? `${dir}[${i}]`,
    action: r.action as AdminRule['action'],
    peers: (r[peerKey] ?? []).map((p, j) => normalizeAdminPeer(p, ['spec', dir, i, peerKey, j], remarks)),
    ...(r.ports ? { ports: r.ports.map(normalizeAdminPort) } : {}),
  }));
}

export function normalizeAdminNetworkPolicy(raw: RawAdminNetworkPolicy, source: SourceRef, remarks: Remark[] = []): AdminNetworkPolicy {
  return {
    name: raw.metadata.name,
    priority: raw.spec.priority,
    subject: normalizeSubject(raw.spec.subject, remarks),
    ingress: normalizeAdminRules('ingress', raw.spec.ingress, remarks),
    egress: normalizeAdminRules('egress', raw.spec.egress, remarks),
    mode: modeOf(raw.metadata.annotations),
    source,
  };
}

export function normalizeBaselineAdminNetworkPolicy(raw: RawBaselineAdminNetworkPolicy, source: SourceRef, remarks: Remark[] = []): BaselineAdminNetworkPolicy {
  return {
    name: raw.metadata.name,
    subject: normalizeSubject(raw.spec.subject, remarks),
    ingress: normalizeAdminRules('ingress', raw.spec.ingress, remarks),
    egress: normalizeAdminRules('egress', raw.spec.egress, remarks),
    mode: modeOf(raw.metadata.annotations),
    source,
  };
}

// ------------------------------------------------------- workloads and the rest

/** The container ports of a pod spec; `path` is where the spec is in the object. */
export function containerPorts(spec: RawPodSpec | undefined, remarks: Remark[] = [], path: (string | number)[] = ['spec']): ContainerPort[] {
  const out: ContainerPort[] = [];
  (spec?.containers ?? []).forEach((c, i) => {
    (c.ports ?? []).forEach((p, j) => {
      if (p.containerPort === undefined) {
        // Required by the API; without a number the entry declares nothing a policy could use.
        remarks.push({
          severity: 'warning',
          code: 'container-port-missing',
          message: 'port entry without containerPort; the API server rejects it, weir skips the entry',
          path: [...path, 'containers', i, 'ports', j],
        });
        return;
      }
      out.push({ ...(p.name !== undefined ? { name: p.name } : {}), port: p.containerPort, protocol: p.protocol ?? 'TCP' });
    });
  });
  return out;
}

/** A KubeVirt VMI spec's declared interface ports (`spec.domain.devices.interfaces[].ports`). */
export function virtualMachinePorts(spec: RawVmiSpec | undefined): ContainerPort[] {
  const out: ContainerPort[] = [];
  for (const iface of spec?.domain?.devices?.interfaces ?? []) {
    for (const p of iface.ports ?? []) out.push({ ...(p.name !== undefined ? { name: p.name } : {}), port: p.port, protocol: p.protocol ?? 'TCP' });
  }
  return out;
}

export function normalizeNamespace(raw: z.infer<typeof namespaceSchema>, source: SourceRef): Namespace {
  return { name: raw.metadata.name, labels: namespaceLabels(raw.metadata.name, raw.metadata.labels), source };
}

export function normalizeNode(raw: z.infer<typeof nodeSchema>, source: SourceRef): Node {
  const addrs = raw.status?.addresses ?? [];
  const ip = (addrs.find((a) => a.type === 'InternalIP') ?? addrs.find((a) => a.type === 'ExternalIP'))?.address;
  return { name: raw.metadata.name, labels: { ...(raw.metadata.labels ?? {}) }, ...(ip ? { ip } : {}), source };
}

export function normalizeService(raw: z.infer<typeof serviceSchema>, namespace: string, source: SourceRef): Service {
  const spec = raw.spec ?? {};
  return {
    namespace,
    name: raw.metadata.name,
    ...(spec.selector ? { selector: { ...spec.selector } } : {}),
    ports: (spec.ports ?? []).map((p) => ({
      ...(p.name !== undefined ? { name: p.name } : {}),
      port: p.port,
      // ServicePort.targetPort: "If this is not specified, the value of the 'port' field is used."
      targetPort: p.targetPort ?? p.port,
      protocol: p.protocol ?? 'TCP',
      ...(p.nodePort !== undefined ? { nodePort: p.nodePort } : {}),
    })),
    ...(spec.clusterIP !== undefined ? { clusterIP: spec.clusterIP } : {}),
    type: spec.type ?? 'ClusterIP',
    sessionAffinity: spec.sessionAffinity ?? 'None',
    annotations: { ...(raw.metadata.annotations ?? {}) },
    source,
  };
}
