// Checks shared by the tests of weir's two ways to install on a cluster — the kustomize
// manifests (test/install.test.ts) and the Helm chart (test/helm.test.ts): objects by id, the
// permissions RBAC grants against what the Kubernetes source reads, and names that must
// resolve to another object of the same install.

import type { Manifest } from '../../src/install/index.js';
import { CLUSTER_SCOPED, containersOf } from '../../src/install/index.js';
import { KUBE_KINDS } from '../../src/source/kube/index.js';

export function manifestId(o: Manifest): string {
  return `${o.kind} ${o.metadata.namespace ?? ''}/${o.metadata.name}`;
}

export function byId(objects: readonly Manifest[]): Map<string, Manifest> {
  return new Map(objects.map((o) => [manifestId(o), o]));
}

interface PolicyRule {
  readonly apiGroups: string[];
  readonly resources: string[];
  readonly verbs: string[];
}

/** Every `verb group/resource` the ClusterRoles and Roles grant, and the roles using a wildcard. */
export function grantedPermissions(objects: readonly Manifest[]): { granted: string[]; wildcards: string[] } {
  const granted = new Set<string>();
  const wildcards: string[] = [];
  for (const role of objects.filter((o) => o.kind === 'ClusterRole' || o.kind === 'Role')) {
    for (const rule of role.rules as PolicyRule[]) {
      if (rule.verbs.includes('*') || rule.resources.includes('*') || rule.apiGroups.includes('*')) wildcards.push(role.metadata.name);
      for (const g of rule.apiGroups) for (const r of rule.resources) for (const v of rule.verbs) granted.add(`${v} ${g}/${r}`);
    }
  }
  return { granted: [...granted].sort(), wildcards };
}

/** Least privilege: list and watch on exactly the kinds the Kubernetes source reads, create on Events. */
export function sourcePermissions(): string[] {
  const wanted = new Set<string>();
  for (const k of Object.values(KUBE_KINDS)) for (const v of ['list', 'watch']) wanted.add(`${v} ${k.group}/${k.plural}`);
  wanted.add('create /events');
  wanted.add('create events.k8s.io/events');
  return [...wanted].sort();
}

/** `service account → role` of every ClusterRoleBinding, sorted. */
export function clusterRoleBindings(objects: readonly Manifest[]): string[] {
  return objects
    .filter((o) => o.kind === 'ClusterRoleBinding')
    .map((b) => `${(b.subjects as { name: string }[])[0].name} → ${(b.roleRef as { name: string }).name}`)
    .sort();
}

interface PodSpec {
  serviceAccountName?: string;
  volumes?: { name: string; configMap?: { name: string }; secret?: { secretName: string } }[];
  containers: { env?: { name: string; valueFrom?: { configMapKeyRef?: { name: string; key: string } } }[] }[];
}

/**
 * Names that do not resolve within the install: a binding's role or service account, a pod's
 * service account, ConfigMap (volume or env) and ConfigMap key. Secrets listed in `external` are
 * the user's to create.
 */
export function danglingReferences(objects: readonly Manifest[], external: readonly string[] = []): string[] {
  const ids = new Set(objects.map(manifestId));
  const has = (kind: string, namespace: string | undefined, name: string) => ids.has(`${kind} ${CLUSTER_SCOPED.has(kind) ? '' : (namespace ?? '')}/${name}`);
  const out: string[] = [];
  for (const o of objects) {
    const ns = o.metadata.namespace;
    if (o.kind === 'ClusterRoleBinding' || o.kind === 'RoleBinding') {
      const ref = o.roleRef as { kind: string; name: string };
      if (!has(ref.kind, ns, ref.name)) out.push(`${manifestId(o)}: roleRef ${ref.kind} ${ref.name}`);
      for (const s of o.subjects as { kind: string; name: string; namespace?: string }[]) {
        if (s.kind === 'ServiceAccount' && !has('ServiceAccount', s.namespace, s.name)) out.push(`${manifestId(o)}: subject ServiceAccount ${s.namespace ?? ''}/${s.name}`);
      }
    }
    if (containersOf(o).length === 0) continue;
    const pod = (o.spec as { template: { spec: PodSpec } }).template.spec;
    if (pod.serviceAccountName && !has('ServiceAccount', ns, pod.serviceAccountName)) out.push(`${manifestId(o)}: serviceAccountName ${pod.serviceAccountName}`);
    for (const v of pod.volumes ?? []) {
      if (v.configMap && !has('ConfigMap', ns, v.configMap.name)) out.push(`${manifestId(o)}: volume ${v.name}: ConfigMap ${v.configMap.name}`);
      if (v.secret && !has('Secret', ns, v.secret.secretName) && !external.includes(v.secret.secretName)) out.push(`${manifestId(o)}: volume ${v.name}: Secret ${v.secret.secretName}`);
    }
    for (const c of pod.containers) {
      for (const e of c.env ?? []) {
        const ref = e.valueFrom?.configMapKeyRef;
        if (!ref) continue;
        const cm = objects.find((x) => x.kind === 'ConfigMap' && x.metadata.namespace === ns && x.metadata.name === ref.name);
        if (!cm || !Object.hasOwn((cm.data ?? {}) as object, ref.key)) out.push(`${manifestId(o)}: env ${e.name}: ConfigMap ${ref.name} key ${ref.key}`);
      }
    }
  }
  return out;
}
