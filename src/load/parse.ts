// One manifest text → validated, normalized objects (not yet a Cluster; see build.ts).

import type { z } from 'zod';
import type {
  AdminNetworkPolicy,
  BaselineAdminNetworkPolicy,
  Namespace,
  NetworkPolicy,
  Node,
  Service,
  SourceRef,
  Workload,
  WorkloadKind,
} from '../model/cluster.js';
import { objectName, type Diagnostic } from '../model/diagnostics.js';
import { isPlainObject, splitDocuments, type RawDocument } from './documents.js';
import { formatPath, issuesToDiagnostics } from './issues.js';
import {
  containerPorts,
  normalizeAdminNetworkPolicy,
  normalizeBaselineAdminNetworkPolicy,
  normalizeNamespace,
  normalizeNetworkPolicy,
  normalizeNode,
  normalizeService,
  type Remark,
} from './normalize.js';
import { markAdminPolicy, markNetworkPolicy, salvagePolicy, type PolicyKind, type Salvaged } from './salvage.js';
import {
  adminNetworkPolicySchema,
  baselineAdminNetworkPolicySchema,
  cronJobSchema,
  headerSchema,
  jobSchema,
  namespaceSchema,
  networkPolicySchema,
  nodeSchema,
  podSchema,
  replicatedSchema,
  serviceSchema,
  type RawPodTemplate,
} from './schema.js';

export interface OwnerRef {
  readonly kind: string;
  readonly name: string;
}

/** A workload as read from one manifest, before pods are expanded. */
export interface LoadedWorkload {
  readonly kind: 'Workload';
  readonly value: Workload;
  /** Bare Pods only: `status.podIP`. */
  readonly podIP?: string;
  /** `spec.nodeName` of the pod (template). */
  readonly nodeName?: string;
  readonly owners: readonly OwnerRef[];
}

/** One validated, normalized object with its origin. */
export type ManifestObject =
  | { readonly kind: 'Namespace'; readonly value: Namespace }
  | { readonly kind: 'Node'; readonly value: Node }
  | LoadedWorkload
  | { readonly kind: 'Service'; readonly value: Service }
  | { readonly kind: 'NetworkPolicy'; readonly value: NetworkPolicy }
  | { readonly kind: 'AdminNetworkPolicy'; readonly value: AdminNetworkPolicy }
  | { readonly kind: 'BaselineAdminNetworkPolicy'; readonly value: BaselineAdminNetworkPolicy };

export interface ParseResult {
  readonly objects: ManifestObject[];
  readonly diagnostics: Diagnostic[];
}

export interface ParseOptions {
  /** Namespace for namespaced objects without `metadata.namespace`; default "default". */
  readonly defaultNamespace?: string;
}

/** The API groups weir understands per kind. Same kind name from another group (Calico's NetworkPolicy, ...) is not ours. */
const KINDS: Readonly<Record<string, { readonly apiVersions: readonly string[]; readonly namespaced: boolean }>> = {
  Namespace: { apiVersions: ['v1'], namespaced: false },
  Node: { apiVersions: ['v1'], namespaced: false },
  Pod: { apiVersions: ['v1'], namespaced: true },
  ReplicationController: { apiVersions: ['v1'], namespaced: true },
  Service: { apiVersions: ['v1'], namespaced: true },
  Deployment: { apiVersions: ['apps/v1'], namespaced: true },
  ReplicaSet: { apiVersions: ['apps/v1'], namespaced: true },
  StatefulSet: { apiVersions: ['apps/v1'], namespaced: true },
  DaemonSet: { apiVersions: ['apps/v1'], namespaced: true },
  Job: { apiVersions: ['batch/v1'], namespaced: true },
  CronJob: { apiVersions: ['batch/v1', 'batch/v1beta1'], namespaced: true },
  NetworkPolicy: { apiVersions: ['networking.k8s.io/v1'], namespaced: true },
  AdminNetworkPolicy: { apiVersions: ['policy.networking.k8s.io/v1alpha1'], namespaced: false },
  BaselineAdminNetworkPolicy: { apiVersions: ['policy.networking.k8s.io/v1alpha1'], namespaced: false },
};

const POLICY_KINDS = new Set(['NetworkPolicy', 'AdminNetworkPolicy', 'BaselineAdminNetworkPolicy']);

function bestEffortName(value: Record<string, unknown>): string {
  const kind = typeof value.kind === 'string' && value.kind ? value.kind : '<no kind>';
  const meta = isPlainObject(value.metadata) ? value.metadata : {};
  const name = typeof meta.name === 'string' && meta.name ? meta.name : '<no name>';
  const ns = typeof meta.namespace === 'string' ? meta.namespace : undefined;
  return objectName(kind, name, ns);
}

/** Parses and validates every object in `text`. Invalid objects are dropped with an error. */
export function parseManifests(text: string, file: string, opts: ParseOptions = {}): ParseResult {
  const { docs, diagnostics } = splitDocuments(text, file);
  const objects: ManifestObject[] = [];
  for (const doc of docs) {
    const obj = parseObject(doc, opts.defaultNamespace ?? 'default', diagnostics);
    if (obj) objects.push(obj);
  }
  return { objects, diagnostics };
}

function parseObject(doc: RawDocument, defaultNamespace: string, diagnostics: Diagnostic[]): ManifestObject | undefined {
  const value = doc.value;
  if (!isPlainObject(value)) {
    diagnostics.push({
      severity: 'error',
      code: 'not-an-object',
      message: `a manifest must be an object with apiVersion, kind and metadata; got ${Array.isArray(value) ? 'a list' : typeof value}`,
      file: doc.file,
      line: doc.line,
    });
    return undefined;
  }
  const header = headerSchema.safeParse(value);
  if (!header.success) {
    diagnostics.push(...issuesToDiagnostics(header.error.issues, { doc, object: bestEffortName(value) }));
    return undefined;
  }
  const { kind, apiVersion, metadata } = header.data;
  const known = KINDS[kind];
  const source: SourceRef = { file: doc.file, line: doc.line };

  if (!known) {
    diagnostics.push({
      severity: 'notice',
      code: 'unknown-kind',
      message: `kind ${kind} (${apiVersion}) is not used by weir; skipped`,
      file: doc.file,
      line: doc.line,
      object: objectName(kind, metadata.name, metadata.namespace),
    });
    return undefined;
  }
  const namespace = known.namespaced ? (metadata.namespace ?? defaultNamespace) : undefined;
  const object = objectName(kind, metadata.name, namespace);
  if (!known.apiVersions.includes(apiVersion)) {
    // A policy weir cannot read must not pass unnoticed; other kinds are just skipped.
    diagnostics.push({
      severity: POLICY_KINDS.has(kind) ? 'warning' : 'notice',
      code: 'unsupported-api-version',
      message: `${kind} from apiVersion ${apiVersion} is not supported (expected ${known.apiVersions.join(' or ')}); skipped`,
      file: doc.file,
      line: doc.locate(['apiVersion']),
      object,
    });
    return undefined;
  }

  const check = <S extends z.ZodType>(schema: S): z.infer<S> | undefined => {
    const r = schema.safeParse(value);
    if (r.success) return r.data;
    diagnostics.push(...issuesToDiagnostics(r.error.issues, { doc, object }));
    return undefined;
  };
  // A policy is never dropped for an invalid field (that would fail open): the errors are
  // reported, and what is certain is kept with the doubtful part widened and marked.
  const checkPolicy = <S extends z.ZodType>(schema: S): Salvaged<z.infer<S>> | undefined => {
    const r = schema.safeParse(value);
    if (r.success) return { raw: r.data, priority: false, rules: new Map() };
    diagnostics.push(...issuesToDiagnostics(r.error.issues, { doc, object }));
    // The errors above say what is invalid; the analyzer says which verdicts it leaves UNKNOWN.
    const salvaged = salvagePolicy(kind as PolicyKind, value, object, r.error.issues, schema);
    return salvaged;
  };
  const remarks: Remark[] = [];
  const flushRemarks = () => {
    for (const r of remarks) {
      diagnostics.push({
        severity: 'notice',
        code: r.code,
        message: r.message,
        file: doc.file,
        line: doc.locate(r.path),
        object,
        field: formatPath(r.path),
      });
    }
  };
  const ns = namespace ?? '';

  switch (kind) {
    case 'Namespace': {
      const raw = check(namespaceSchema);
      return raw && { kind: 'Namespace', value: normalizeNamespace(raw, source) };
    }
    case 'Node': {
      const raw = check(nodeSchema);
      return raw && { kind: 'Node', value: normalizeNode(raw, source) };
    }
    case 'Service': {
      const raw = check(serviceSchema);
      return raw && { kind: 'Service', value: normalizeService(raw, ns, source) };
    }
    case 'NetworkPolicy': {
      const got = checkPolicy(networkPolicySchema);
      if (!got) return undefined;
      const value = markNetworkPolicy(normalizeNetworkPolicy(got.raw, ns, source, remarks), got);
      flushRemarks();
      return { kind: 'NetworkPolicy', value };
    }
    case 'AdminNetworkPolicy': {
      const got = checkPolicy(adminNetworkPolicySchema);
      return got && { kind: 'AdminNetworkPolicy', value: markAdminPolicy(normalizeAdminNetworkPolicy(got.raw, source), got) };
    }
    case 'BaselineAdminNetworkPolicy': {
      const got = checkPolicy(baselineAdminNetworkPolicySchema);
      return got && { kind: 'BaselineAdminNetworkPolicy', value: markAdminPolicy(normalizeBaselineAdminNetworkPolicy(got.raw, source), got) };
    }
    case 'Pod': {
      const raw = check(podSchema);
      if (!raw) return undefined;
      return workload('Pod', raw.metadata, { metadata: { labels: raw.metadata.labels }, spec: raw.spec }, 1, ns, source, raw.status?.podIP);
    }
    case 'Job': {
      const raw = check(jobSchema);
      // Job: spec.parallelism "defaults to 1" — the number of pods running at once.
      return raw && workload('Job', raw.metadata, raw.spec.template, raw.spec.parallelism ?? 1, ns, source);
    }
    case 'CronJob': {
      const raw = check(cronJobSchema);
      return raw && workload('CronJob', raw.metadata, raw.spec.jobTemplate.spec.template, 1, ns, source);
    }
    case 'DaemonSet': {
      // One pod per node in a real cluster; weir models one representative pod.
      const raw = check(replicatedSchema);
      return raw && workload('DaemonSet', raw.metadata, raw.spec.template, 1, ns, source);
    }
    default: {
      const raw = check(replicatedSchema);
      return raw && workload(kind as WorkloadKind, raw.metadata, raw.spec.template, raw.spec.replicas ?? 1, ns, source);
    }
  }
}

function workload(
  kind: WorkloadKind,
  metadata: { name: string; ownerReferences?: { kind: string; name: string }[] },
  template: RawPodTemplate,
  replicas: number,
  namespace: string,
  source: SourceRef,
  podIP?: string,
): LoadedWorkload {
  const nodeName = template.spec?.nodeName;
  return {
    kind: 'Workload',
    value: {
      namespace,
      name: metadata.name,
      kind,
      labels: { ...(template.metadata?.labels ?? {}) },
      ports: containerPorts(template.spec),
      hostNetwork: template.spec?.hostNetwork ?? false,
      replicas,
      source,
    },
    ...(podIP !== undefined ? { podIP } : {}),
    ...(nodeName !== undefined ? { nodeName } : {}),
    owners: (metadata.ownerReferences ?? []).map((o) => ({ kind: o.kind, name: o.name })),
  };
}
