// The kinds the Kubernetes source lists and watches, and where each is served. RBAC in
// deploy/base/rbac.yaml grants list/watch on exactly these (a test checks the two agree).

import type { SourceKind } from '../types.js';

export interface KubeKind {
  readonly kind: SourceKind;
  readonly group: string;
  readonly version: string;
  readonly plural: string;
  readonly namespaced: boolean;
  /** Served by a CustomResourceDefinition the cluster may not have (then: none exist). */
  readonly optional: boolean;
}

function k(kind: SourceKind, group: string, version: string, plural: string, namespaced: boolean, optional = false): KubeKind {
  return { kind, group, version, plural, namespaced, optional };
}

export const KUBE_KINDS: Readonly<Record<SourceKind, KubeKind>> = {
  Namespace: k('Namespace', '', 'v1', 'namespaces', false),
  Node: k('Node', '', 'v1', 'nodes', false),
  Pod: k('Pod', '', 'v1', 'pods', true),
  Service: k('Service', '', 'v1', 'services', true),
  EndpointSlice: k('EndpointSlice', 'discovery.k8s.io', 'v1', 'endpointslices', true),
  NetworkPolicy: k('NetworkPolicy', 'networking.k8s.io', 'v1', 'networkpolicies', true),
  AdminNetworkPolicy: k('AdminNetworkPolicy', 'policy.networking.k8s.io', 'v1alpha1', 'adminnetworkpolicies', false, true),
  BaselineAdminNetworkPolicy: k('BaselineAdminNetworkPolicy', 'policy.networking.k8s.io', 'v1alpha1', 'baselineadminnetworkpolicies', false, true),
};

export function apiVersionOfKind(k: KubeKind): string {
  return k.group === '' ? k.version : `${k.group}/${k.version}`;
}

/** The cluster-wide collection path: every namespace at once. */
export function collectionPathOf(k: KubeKind): string {
  return k.group === '' ? `/api/${k.version}/${k.plural}` : `/apis/${k.group}/${k.version}/${k.plural}`;
}
