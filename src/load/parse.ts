// One manifest text → validated, normalized objects (not yet a Cluster; see build.ts).
//
// What weir reads is one table, KINDS: per kind, the API versions, whether it is namespaced,
// its zod schema and the normaliser that turns a valid object into the model. Adding a kind
// is one entry.

import type { z } from 'zod';
import type {
  AdminNetworkPolicy,
  BaselineAdminNetworkPolicy,
  ContainerPort,
  EndpointSlice,
  Namespace,
  NetworkPolicy,
  Node,
  Service,
  SourceRef,
  Workload,
} from '../model/cluster.js';
import { objectName, type Diagnostic } from '../model/diagnostics.js';
import { InvalidJson, isPlainObject, splitDocuments, type RawDocument } from './documents.js';
import { normalizeEndpointSlice, salvageEndpointSlice } from './endpointslice.js';
import { formatPath, issuesToDiagnostics } from './issues.js';
import {
  containerPorts,
  normalizeAdminNetworkPolicy,
  normalizeBaselineAdminNetworkPolicy,
  normalizeNamespace,
  normalizeNetworkPolicy,
  normalizeNode,
  normalizeService,
  virtualMachinePorts,
  type Remark,
} from './normalize.js';
import { markAdminPolicy, markNetworkPolicy, salvagePolicy, type PolicyKind, type Salvaged } from './salvage.js';
import {
  adminNetworkPolicySchema,
  baselineAdminNetworkPolicySchema,
  cronJobSchema,
  endpointSliceSchema,
  headerSchema,
  jobSchema,
  namespaceSchema,
  networkPolicySchema,
  nodeSchema,
  podSchema,
  replicatedSchema,
  serviceSchema,
  virtualMachineInstanceSchema,
  virtualMachineSchema,
  type RawObjectMeta,
  type RawPodTemplate,
} from './schema.js';
import { checkNamespaceName, checkObjectName } from './syntax.js';

export interface OwnerRef {
  /** Empty when the reference has no kind (the API server rejects that; build.ts resolves it by name). */
  readonly kind: string;
  readonly name: string;
  /** `controller: true`: the managing controller (at most one per object). */
  readonly controller: boolean;
}

/** A workload as read from one manifest, before pods are expanded. */
export interface LoadedWorkload {
  readonly kind: 'Workload';
  readonly value: Workload;
  /**
   * A running instance (a Pod, a KubeVirt VirtualMachineInstance) rather than a template: it
   * is one pod of its own, grouped into its controller when it has one.
   */
  readonly instance: boolean;
  /** Instances: `status.podIP` (a VMI's first interface address). */
  readonly podIP?: string;
  /** `spec.nodeName` of the pod (template), a VMI's `status.nodeName`. */
  readonly nodeName?: string;
  readonly owners: readonly OwnerRef[];
}

/** One validated, normalized object with its origin. */
export type ManifestObject =
  | { readonly kind: 'Namespace'; readonly value: Namespace }
  | { readonly kind: 'Node'; readonly value: Node }
  | LoadedWorkload
  | { readonly kind: 'Service'; readonly value: Service }
  | { readonly kind: 'EndpointSlice'; readonly value: EndpointSlice }
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

/** What a normaliser gets besides the validated object. */
export interface ReadContext {
  /** The object's namespace; "" for cluster-scoped kinds. */
  readonly namespace: string;
  readonly source: SourceRef;
  /** Remarks about fields (notices, or warnings where the API server would reject the object). */
  readonly remarks: Remark[];
}

interface KindEntry {
  readonly apiVersions: readonly string[];
  readonly namespaced: boolean;
  /** A policy weir cannot read must not pass unnoticed: an unsupported apiVersion is a warning. */
  readonly policy: boolean;
  /** `object` undefined: a valid object weir skips (a remark says why). */
  read(value: unknown, ctx: ReadContext): { object: ManifestObject | undefined } | { issues: readonly z.core.$ZodIssue[] };
  /**
   * Policies only: the widened, marked form of an invalid object (see salvage.ts), so that an
   * invalid policy never fails open by being dropped. Undefined when it cannot be salvaged.
   */
  salvage?(value: Record<string, unknown>, object: string, issues: readonly z.core.$ZodIssue[], ctx: ReadContext): ManifestObject | undefined;
}

/**
 * A policy kind: valid objects read as any kind; an invalid one is never dropped for an invalid
 * field (that would fail open): the errors are reported, and what is certain is kept with the
 * doubtful part widened and marked.
 */
function policyEntry<S extends z.ZodType>(spec: {
  kind: PolicyKind;
  apiVersions: readonly string[];
  namespaced: boolean;
  schema: S;
  normalize: (raw: z.infer<S>, ctx: ReadContext, salvaged: Salvaged<z.infer<S>>) => ManifestObject;
}): KindEntry {
  const clean = (raw: z.infer<S>): Salvaged<z.infer<S>> => ({ raw, priority: false, rules: new Map() });
  return {
    apiVersions: spec.apiVersions,
    namespaced: spec.namespaced,
    policy: true,
    read(value, ctx) {
      const r = spec.schema.safeParse(value);
      return r.success ? { object: spec.normalize(r.data, ctx, clean(r.data)) } : { issues: r.error.issues };
    },
    salvage(value, object, issues, ctx) {
      const got = salvagePolicy(spec.kind, value, object, issues, spec.schema);
      return got && spec.normalize(got.raw, ctx, got);
    },
  };
}

function entry<S extends z.ZodType>(spec: {
  apiVersions: readonly string[];
  namespaced: boolean;
  policy?: boolean;
  schema: S;
  normalize: (raw: z.infer<S>, ctx: ReadContext) => ManifestObject | undefined;
  salvage?: KindEntry['salvage'];
}): KindEntry {
  return {
    ...(spec.salvage ? { salvage: spec.salvage } : {}),
    apiVersions: spec.apiVersions,
    namespaced: spec.namespaced,
    policy: spec.policy ?? false,
    read(value, ctx) {
      const r = spec.schema.safeParse(value);
      return r.success ? { object: spec.normalize(r.data, ctx) } : { issues: r.error.issues };
    },
  };
}

/** A controller's pods from its pod template. */
function templated(kind: string, replicas: (raw: { spec: { replicas?: number; parallelism?: number } }) => number) {
  return (raw: { metadata: RawObjectMeta; spec: { template: RawPodTemplate; replicas?: number; parallelism?: number } }, ctx: ReadContext): LoadedWorkload =>
    workload(kind, raw.metadata, raw.spec.template.metadata?.labels, containerPorts(raw.spec.template.spec, ctx.remarks, ['spec', 'template', 'spec']), raw.spec.template.spec, replicas(raw), ctx);
}

const POLICY_API = 'policy.networking.k8s.io/v1alpha1';
const KUBEVIRT_API = 'kubevirt.io/v1';

/** The kinds weir reads. A kind name from another API group (Calico's NetworkPolicy, ...) is not ours. */
export const KINDS: Readonly<Record<string, KindEntry>> = {
  Namespace: entry({ apiVersions: ['v1'], namespaced: false, schema: namespaceSchema, normalize: (raw, ctx) => ({ kind: 'Namespace', value: normalizeNamespace(raw, ctx.source) }) }),
  Node: entry({ apiVersions: ['v1'], namespaced: false, schema: nodeSchema, normalize: (raw, ctx) => ({ kind: 'Node', value: normalizeNode(raw, ctx.source) }) }),
  Service: entry({ apiVersions: ['v1'], namespaced: true, schema: serviceSchema, normalize: (raw, ctx) => ({ kind: 'Service', value: normalizeService(raw, ctx.namespace, ctx.source) }) }),
  EndpointSlice: entry({
    apiVersions: ['discovery.k8s.io/v1'],
    namespaced: true,
    schema: endpointSliceSchema,
    normalize: (raw, ctx) => {
      const value = normalizeEndpointSlice(raw, ctx.namespace, ctx.source, ctx.remarks);
      return value && { kind: 'EndpointSlice', value };
    },
    salvage: (value, object, issues, ctx) => {
      const slice = salvageEndpointSlice(value, ctx.namespace, object, issues, ctx.source);
      return slice && { kind: 'EndpointSlice', value: slice };
    },
  }),
  NetworkPolicy: policyEntry({
    kind: 'NetworkPolicy',
    apiVersions: ['networking.k8s.io/v1'],
    namespaced: true,
    schema: networkPolicySchema,
    normalize: (raw, ctx, s) => ({ kind: 'NetworkPolicy', value: markNetworkPolicy(normalizeNetworkPolicy(raw, ctx.namespace, ctx.source, ctx.remarks), s) }),
  }),
  AdminNetworkPolicy: policyEntry({
    kind: 'AdminNetworkPolicy',
    apiVersions: [POLICY_API],
    namespaced: false,
    schema: adminNetworkPolicySchema,
    normalize: (raw, ctx, s) => ({ kind: 'AdminNetworkPolicy', value: markAdminPolicy(normalizeAdminNetworkPolicy(raw, ctx.source, ctx.remarks), s) }),
  }),
  BaselineAdminNetworkPolicy: policyEntry({
    kind: 'BaselineAdminNetworkPolicy',
    apiVersions: [POLICY_API],
    namespaced: false,
    schema: baselineAdminNetworkPolicySchema,
    normalize: (raw, ctx, s) => ({ kind: 'BaselineAdminNetworkPolicy', value: markAdminPolicy(normalizeBaselineAdminNetworkPolicy(raw, ctx.source, ctx.remarks), s) }),
  }),
  Pod: entry({
    apiVersions: ['v1'],
    namespaced: true,
    schema: podSchema,
    normalize: (raw, ctx) => workload('Pod', raw.metadata, raw.metadata.labels, containerPorts(raw.spec, ctx.remarks, ['spec']), raw.spec, 1, ctx, raw.status?.podIP),
  }),
  ReplicationController: entry({ apiVersions: ['v1'], namespaced: true, schema: replicatedSchema, normalize: templated('ReplicationController', (r) => r.spec.replicas ?? 1) }),
  Deployment: entry({ apiVersions: ['apps/v1'], namespaced: true, schema: replicatedSchema, normalize: templated('Deployment', (r) => r.spec.replicas ?? 1) }),
  ReplicaSet: entry({ apiVersions: ['apps/v1'], namespaced: true, schema: replicatedSchema, normalize: templated('ReplicaSet', (r) => r.spec.replicas ?? 1) }),
  StatefulSet: entry({ apiVersions: ['apps/v1'], namespaced: true, schema: replicatedSchema, normalize: templated('StatefulSet', (r) => r.spec.replicas ?? 1) }),
  // One pod per node in a real cluster; weir models one representative pod.
  DaemonSet: entry({ apiVersions: ['apps/v1'], namespaced: true, schema: replicatedSchema, normalize: templated('DaemonSet', () => 1) }),
  // Job: spec.parallelism "defaults to 1" — the number of pods running at once.
  Job: entry({ apiVersions: ['batch/v1'], namespaced: true, schema: jobSchema, normalize: templated('Job', (r) => r.spec.parallelism ?? 1) }),
  CronJob: entry({
    apiVersions: ['batch/v1', 'batch/v1beta1'],
    namespaced: true,
    schema: cronJobSchema,
    normalize: (raw, ctx) => {
      const t = raw.spec.jobTemplate.spec.template;
      return workload('CronJob', raw.metadata, t.metadata?.labels, containerPorts(t.spec, ctx.remarks, ['spec', 'jobTemplate', 'spec', 'template', 'spec']), t.spec, 1, ctx);
    },
  }),
  // KubeVirt: a VirtualMachine's template labels end up on its VMI and on the virt-launcher pod
  // that runs it, which is what policies select; the VM is a workload of one.
  VirtualMachine: entry({
    apiVersions: [KUBEVIRT_API],
    namespaced: true,
    schema: virtualMachineSchema,
    normalize: (raw, ctx) => {
      const t = raw.spec.template;
      return workload('VirtualMachine', raw.metadata, t.metadata?.labels, virtualMachinePorts(t.spec), undefined, 1, ctx);
    },
  }),
  VirtualMachineInstance: entry({
    apiVersions: [KUBEVIRT_API],
    namespaced: true,
    schema: virtualMachineInstanceSchema,
    normalize: (raw, ctx) => {
      const ip = raw.status?.interfaces?.find((i) => i.ipAddress !== undefined)?.ipAddress;
      const node = raw.status?.nodeName;
      const w = workload('VirtualMachineInstance', raw.metadata, raw.metadata.labels, virtualMachinePorts(raw.spec), node !== undefined ? { nodeName: node } : undefined, 1, ctx, ip);
      return w;
    },
  }),
};

const INSTANCE_KINDS = new Set(['Pod', 'VirtualMachineInstance']);

function bestEffortName(value: Record<string, unknown>): string {
  const kind = typeof value.kind === 'string' && value.kind ? value.kind : '<no kind>';
  const meta = isPlainObject(value.metadata) ? value.metadata : {};
  const name = typeof meta.name === 'string' && meta.name ? meta.name : '<no name>';
  const ns = typeof meta.namespace === 'string' ? meta.namespace : undefined;
  return objectName(kind, name, ns);
}

/**
 * A Kubernetes object has apiVersion, kind and metadata. A document with at most one of them is
 * something else that happens to be YAML or JSON (a Helm Chart.yaml or values.yaml, another
 * tool's output, notes): it is skipped with a notice. With two of them, it is a manifest with a
 * missing field, which is an error.
 */
function looksLikeObject(value: unknown): value is Record<string, unknown> {
  if (!isPlainObject(value)) return false;
  return ['apiVersion', 'kind', 'metadata'].filter((k) => value[k] !== undefined).length >= 2;
}

/** Parses and validates every object in `text` (or a file's bytes). Invalid objects are dropped with an error. */
export function parseManifests(text: string | Buffer, file: string, opts: ParseOptions = {}): ParseResult {
  const { docs, diagnostics } = splitDocuments(text, file);
  const objects: ManifestObject[] = [];
  let count = 0;
  for (const doc of docs) {
    count++;
    const obj = parseObject(doc, opts.defaultNamespace ?? 'default', diagnostics);
    if (obj) objects.push(obj);
  }
  if (count === 0 && diagnostics.length === 0) {
    // An empty file, or a README written as YAML comments: say that it was read and held nothing.
    diagnostics.push({ severity: 'notice', code: 'not-a-manifest', message: 'no Kubernetes objects in this file (empty, or only comments); skipped', file });
  }
  return { objects, diagnostics };
}

/**
 * One object that is already parsed (an API server's list item or watch event): the same
 * validation and defaulting as `parseManifests`, without a text round trip. `origin` names it in
 * diagnostics (as a file would); there are no lines to point at, so every diagnostic says line 1.
 */
export function parseManifestObject(value: unknown, origin: string, opts: ParseOptions = {}): ParseResult {
  const diagnostics: Diagnostic[] = [];
  const doc: RawDocument = { value, file: origin, line: 1, locate: () => 1 };
  const obj = parseObject(doc, opts.defaultNamespace ?? 'default', diagnostics);
  return { objects: obj ? [obj] : [], diagnostics };
}

function parseObject(doc: RawDocument, defaultNamespace: string, diagnostics: Diagnostic[]): ManifestObject | undefined {
  const value = doc.value;
  if (value instanceof InvalidJson) {
    diagnostics.push({ severity: 'error', code: 'invalid-json', message: `invalid JSON: ${value.message}`, file: doc.file, line: doc.line });
    return undefined;
  }
  if (!looksLikeObject(value)) {
    const what = Array.isArray(value) ? 'a list' : isPlainObject(value) ? 'an object without apiVersion, kind and metadata' : `a ${typeof value}`;
    diagnostics.push({
      severity: 'notice',
      code: 'not-a-manifest',
      message: `not a Kubernetes object (${what}); skipped`,
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
    diagnostics.push({
      severity: known.policy ? 'warning' : 'notice',
      code: 'unsupported-api-version',
      message: `${kind} from apiVersion ${apiVersion} is not supported (expected ${known.apiVersions.join(' or ')}); skipped`,
      file: doc.file,
      line: doc.locate(['apiVersion']),
      object,
    });
    return undefined;
  }

  const remarks: Remark[] = [...nameRemarks(kind, metadata.name, known.namespaced ? metadata.namespace : undefined)];
  const r = known.read(value, { namespace: namespace ?? '', source, remarks });
  let result: ManifestObject | undefined;
  if ('issues' in r) {
    diagnostics.push(...issuesToDiagnostics(r.issues, { doc, object }));
    // The errors above say what is invalid; the analyzer says which verdicts it leaves UNKNOWN.
    result = known.salvage?.(value, object, r.issues, { namespace: namespace ?? '', source, remarks });
    if (!result) return undefined;
  } else {
    result = r.object;
  }
  for (const m of remarks) {
    diagnostics.push({
      severity: m.severity ?? 'notice',
      code: m.code,
      message: m.message,
      file: doc.file,
      line: doc.locate(m.path),
      object,
      field: formatPath(m.path),
    });
  }
  return result;
}

/**
 * Names the API server would reject but whose meaning is plain (`Web`, `my_app`): read with a
 * warning; `weir lint` reports them as errors.
 */
function nameRemarks(kind: string, name: string, namespace: string | undefined): Remark[] {
  const out: Remark[] = [];
  const nameError = kind === 'Namespace' ? checkNamespaceName(name) : checkObjectName(name);
  if (nameError) out.push({ severity: 'warning', code: 'name-not-rfc1123', message: `${nameError}; the API server rejects it, weir reads it as written`, path: ['metadata', 'name'] });
  const nsError = namespace !== undefined ? checkNamespaceName(namespace) : undefined;
  if (nsError) out.push({ severity: 'warning', code: 'name-not-rfc1123', message: `${nsError}; the API server rejects it, weir reads it as written`, path: ['metadata', 'namespace'] });
  return out;
}

function workload(
  kind: string,
  metadata: RawObjectMeta,
  labels: Readonly<Record<string, string>> | undefined,
  ports: ContainerPort[],
  spec: { nodeName?: string; hostNetwork?: boolean } | undefined,
  replicas: number,
  ctx: ReadContext,
  podIP?: string,
): LoadedWorkload {
  const nodeName = spec?.nodeName;
  const owners = (metadata.ownerReferences ?? []).map((o, i): OwnerRef => {
    if (o.kind === undefined || o.kind === '') {
      ctx.remarks.push({
        severity: 'warning',
        code: 'owner-kind-missing',
        message: `owner reference "${o.name}" has no kind; the API server rejects it, weir looks the owner up by name (np-guard calls it a Pod)`,
        path: ['metadata', 'ownerReferences', i, 'kind'],
      });
    }
    return { kind: o.kind ?? '', name: o.name, controller: o.controller === true };
  });
  return {
    kind: 'Workload',
    value: {
      namespace: ctx.namespace,
      name: metadata.name,
      kind,
      labels: { ...(labels ?? {}) },
      ports,
      hostNetwork: spec?.hostNetwork ?? false,
      replicas,
      source: ctx.source,
    },
    instance: INSTANCE_KINDS.has(kind),
    ...(podIP !== undefined ? { podIP } : {}),
    ...(nodeName !== undefined ? { nodeName } : {}),
    owners,
  };
}
