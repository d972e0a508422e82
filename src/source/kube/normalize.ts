// API objects → the normalized model. The one place where the Kubernetes source calls the
// manifest loader (src/load): validation and defaulting are the loader's, never repeated here.
// What the loader does not know is added here: a pod's workload from its ownerReferences (the
// loader expands controllers into pods; the API has real pods) and finished pods.

import { workloadKey, type Pod, type WorkloadKind } from '../../model/cluster.js';
import { formatDiagnostic, type Diagnostic } from '../../model/diagnostics.js';
import { parseManifestObject, type ManifestObject } from '../../load/index.js';
import type { KindObjects, SourceKind } from '../types.js';
import { apiVersionOfKind, KUBE_KINDS } from './kinds.js';

export interface NormalizeOptions {
  /**
   * The node this source serves. Pods on other nodes keep what selecting and addressing them
   * needs (namespace, labels, IP, node, workload) and only their *named* container ports, which
   * named-port rules of local pods resolve against; their unnamed ports are dropped.
   */
  readonly node?: string;
}

/**
 * `object` undefined: the API object exists but is not part of the model (a finished pod).
 * `problems` with ok: the loader kept what is certain of an invalid policy (never dropped:
 * that would fail open) and said what is wrong.
 */
export type Normalized<K extends SourceKind> =
  | { readonly ok: true; readonly object: KindObjects[K] | undefined; readonly problems?: readonly string[] }
  | { readonly ok: false; readonly problems: readonly string[] };

interface RawMeta {
  name?: string;
  namespace?: string;
  labels?: Record<string, string>;
  ownerReferences?: { kind?: string; name?: string; controller?: boolean }[];
}

function metaOf(raw: Record<string, unknown>): RawMeta {
  const m = raw.metadata;
  return typeof m === 'object' && m !== null ? (m as RawMeta) : {};
}

/** Where an object came from, in diagnostics: `kubernetes:Pod shop/cart-0`. */
export function originOf(kind: SourceKind, raw: Record<string, unknown>): string {
  const m = metaOf(raw);
  return `kubernetes:${kind} ${m.namespace ? `${m.namespace}/` : ''}${m.name ?? '<no name>'}`;
}

const WORKLOAD_KINDS = new Set<string>(['Deployment', 'ReplicaSet', 'StatefulSet', 'DaemonSet', 'Job', 'CronJob', 'ReplicationController']);

/**
 * The workload of a pod, from its controller ownerReference. A ReplicaSet named
 * `<deployment>-<pod-template-hash>` (the label the Deployment controller puts on its pods)
 * stands for its Deployment, as `kubectl get pods` users think of it; a pod without a known
 * controller is its own workload.
 */
export function podWorkload(namespace: string, name: string, meta: RawMeta): string {
  const owners = meta.ownerReferences ?? [];
  const owner = owners.find((o) => o.controller === true) ?? owners[0];
  if (!owner?.kind || !owner.name || !WORKLOAD_KINDS.has(owner.kind)) return workloadKey(namespace, name, 'Pod');
  const hash = meta.labels?.['pod-template-hash'];
  if (owner.kind === 'ReplicaSet' && hash && owner.name.endsWith(`-${hash}`)) {
    return workloadKey(namespace, owner.name.slice(0, -hash.length - 1), 'Deployment');
  }
  return workloadKey(namespace, owner.name, owner.kind as WorkloadKind);
}

function errorsOf(diags: readonly Diagnostic[]): string[] {
  return diags.filter((d) => d.severity === 'error' || d.severity === 'warning').map(formatDiagnostic);
}

/** Validates and normalizes one API object of `kind` (list items lack kind/apiVersion: added here). */
export function normalizeKubeObject<K extends SourceKind>(kind: K, input: Record<string, unknown>, opts: NormalizeOptions = {}): Normalized<K> {
  const raw = { ...input, apiVersion: apiVersionOfKind(KUBE_KINDS[kind]), kind };
  if (kind === 'Pod') {
    // Pods that ran to completion hold no IP any more; their address may already belong to
    // another pod (kube-network-policies and Calico skip them too).
    const phase = (raw as { status?: { phase?: unknown } }).status?.phase;
    if (phase === 'Succeeded' || phase === 'Failed') return { ok: true, object: undefined };
  }
  const origin = originOf(kind, raw);
  // The loader's entry for one parsed object: no JSON text round trip (that cost ~4 ms a pod).
  const parsed = parseManifestObject(raw, origin);
  const problems = errorsOf(parsed.diagnostics);
  const obj: ManifestObject | undefined = parsed.objects[0];
  if (!obj) return { ok: false, problems: problems.length > 0 ? problems : [`${origin}: error: not readable as ${kind}`] };
  const reported = problems.length > 0 ? { problems } : {};
  if (obj.kind === 'Workload') {
    const v = obj.value;
    const meta = metaOf(raw);
    const local = opts.node === undefined || obj.nodeName === opts.node;
    const pod: Pod = {
      namespace: v.namespace,
      name: v.name,
      labels: v.labels,
      ports: local ? v.ports : v.ports.filter((p) => p.name !== undefined),
      hostNetwork: v.hostNetwork,
      ...(obj.podIP !== undefined ? { ip: obj.podIP } : {}),
      ...(obj.nodeName !== undefined ? { node: obj.nodeName } : {}),
      workload: podWorkload(v.namespace, v.name, meta),
      ...(v.source ? { source: v.source } : {}),
    };
    return { ok: true, object: pod as KindObjects[K], ...reported };
  }
  if (obj.kind !== kind) return { ok: false, problems: [`${origin}: error: read as ${obj.kind}, expected ${kind}`] };
  return { ok: true, object: obj.value as KindObjects[K], ...reported };
}
