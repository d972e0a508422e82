// The resources the test API server serves, written once: discovery (`/api/v1`,
// `/apis/<group>/<version>`), URL routing and storage all read this table.

export interface ApiResource {
  /** API group; '' is the core (legacy) group served under /api. */
  readonly group: string;
  readonly version: string;
  readonly kind: string;
  readonly plural: string;
  readonly singular: string;
  readonly namespaced: boolean;
  readonly shortNames: readonly string[];
  /** Served from a CustomResourceDefinition in a real cluster (lists carry kind/apiVersion per item). */
  readonly custom: boolean;
}

function res(group: string, version: string, kind: string, plural: string, namespaced: boolean, shortNames: string[] = [], custom = false): ApiResource {
  return { group, version, kind, plural, singular: kind.toLowerCase(), namespaced, shortNames, custom };
}

export const API_RESOURCES: readonly ApiResource[] = [
  res('', 'v1', 'Namespace', 'namespaces', false, ['ns']),
  res('', 'v1', 'Node', 'nodes', false, ['no']),
  res('', 'v1', 'Pod', 'pods', true, ['po']),
  res('', 'v1', 'Service', 'services', true, ['svc']),
  // Events are stored so that an agent's "create Event" can be tested; nothing watches them.
  res('', 'v1', 'Event', 'events', true, ['ev']),
  res('discovery.k8s.io', 'v1', 'EndpointSlice', 'endpointslices', true),
  res('networking.k8s.io', 'v1', 'NetworkPolicy', 'networkpolicies', true, ['netpol']),
  res('policy.networking.k8s.io', 'v1alpha1', 'AdminNetworkPolicy', 'adminnetworkpolicies', false, ['anp'], true),
  res('policy.networking.k8s.io', 'v1alpha1', 'BaselineAdminNetworkPolicy', 'baselineadminnetworkpolicies', false, ['banp'], true),
];

export function apiVersionOf(r: ApiResource): string {
  return r.group === '' ? r.version : `${r.group}/${r.version}`;
}

/** Every group/version served, in discovery order. */
export function groupVersions(): { group: string; version: string }[] {
  const seen = new Map<string, { group: string; version: string }>();
  for (const r of API_RESOURCES) seen.set(`${r.group}/${r.version}`, { group: r.group, version: r.version });
  return [...seen.values()];
}

export function resourceByKind(apiVersion: string, kind: string): ApiResource | undefined {
  return API_RESOURCES.find((r) => r.kind === kind && apiVersionOf(r) === apiVersion);
}

export function resourceByPath(group: string, version: string, plural: string): ApiResource | undefined {
  return API_RESOURCES.find((r) => r.group === group && r.version === version && r.plural === plural);
}

/** The collection path of a resource, optionally inside a namespace. */
export function collectionPath(r: ApiResource, namespace?: string): string {
  const base = r.group === '' ? `/api/${r.version}` : `/apis/${r.group}/${r.version}`;
  return r.namespaced && namespace !== undefined ? `${base}/namespaces/${namespace}/${r.plural}` : `${base}/${r.plural}`;
}
