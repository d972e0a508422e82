// discovery.k8s.io/v1 EndpointSlice manifests → the model, with the API's defaulting and its
// nil meanings applied once, here (the Kubernetes source goes through this too).
//
// A slice names its Service by the `kubernetes.io/service-name` label; without it the slice
// belongs to no Service and every proxy ignores it (kube-proxy: "no kubernetes.io/service-name
// label set on endpoint slice"), so it is skipped with a warning. An invalid slice (the API
// server would reject it) is never silently dropped when its Service is known: that could turn
// "endpoints unknown" into "no endpoints" (rejected) or fewer endpoints. It is kept with no
// endpoints and marked in doubt, and every verdict through its Service is UNKNOWN.

import type { z } from 'zod';
import type { EndpointSlice, Service, SourceRef } from '../model/cluster.js';
import { objectName, type Diagnostic } from '../model/diagnostics.js';
import { isPlainObject } from './documents.js';
import { formatPath } from './issues.js';
import type { Remark } from './normalize.js';
import type { RawEndpointSlice } from './schema.js';

export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';
export const MANAGED_BY_LABEL = 'endpointslice.kubernetes.io/managed-by';
/** The value Kubernetes' EndpointSlice controller sets on the slices it manages. */
export const SLICE_CONTROLLER = 'endpointslice-controller.k8s.io';

export function normalizeEndpointSlice(raw: RawEndpointSlice, namespace: string, source: SourceRef, remarks: Remark[]): EndpointSlice | undefined {
  const labels = raw.metadata.labels ?? {};
  const service = labels[SERVICE_NAME_LABEL];
  if (!service) {
    remarks.push({
      severity: 'warning',
      code: 'endpointslice-without-service',
      message: `no ${SERVICE_NAME_LABEL} label: the slice belongs to no Service and proxies ignore it; skipped`,
      path: ['metadata', 'labels'],
    });
    return undefined;
  }
  const ports: { name?: string; port: number; protocol: 'TCP' | 'UDP' | 'SCTP' }[] = [];
  (raw.ports ?? []).forEach((p, i) => {
    if (p.port === undefined) {
      remarks.push({
        code: 'endpointslice-port-unrestricted',
        message: 'a port without a number means "all ports" to the API; kube-proxy and weir forward nothing for it',
        path: ['ports', i, 'port'],
      });
      return;
    }
    // SetDefaults_EndpointPort: name "" and protocol TCP when absent.
    ports.push({ ...(p.name ? { name: p.name } : {}), port: p.port, protocol: p.protocol ?? 'TCP' });
  });
  const managedBy = labels[MANAGED_BY_LABEL];
  return {
    namespace,
    name: raw.metadata.name,
    service,
    ...(managedBy !== undefined ? { managedBy } : {}),
    addressType: raw.addressType,
    ports,
    endpoints: (raw.endpoints ?? []).map((e) => {
      const c = e.conditions ?? {};
      const ref = e.targetRef;
      return {
        addresses: e.addresses,
        // EndpointConditions: a nil ready or serving "should be interpreted as true", a nil
        // terminating as false (kube-proxy's newEndpointSliceInfo reads them the same way).
        ready: c.ready ?? true,
        serving: c.serving ?? true,
        terminating: c.terminating ?? false,
        ...(e.nodeName !== undefined ? { nodeName: e.nodeName } : {}),
        ...(e.zone !== undefined ? { zone: e.zone } : {}),
        ...(ref?.kind === 'Pod' && ref.name ? { pod: `${ref.namespace ?? namespace}/${ref.name}` } : {}),
      };
    }),
    source,
  };
}

/**
 * An invalid slice whose Service is still known: kept without endpoints and marked, so its
 * Service's verdicts are UNKNOWN rather than decided by a slice the API server would refuse.
 */
export function salvageEndpointSlice(value: Record<string, unknown>, namespace: string, object: string, issues: readonly z.core.$ZodIssue[], source: SourceRef): EndpointSlice | undefined {
  const meta = isPlainObject(value.metadata) ? value.metadata : {};
  const labels = isPlainObject(meta.labels) ? meta.labels : {};
  const service = labels[SERVICE_NAME_LABEL];
  if (typeof meta.name !== 'string' || meta.name === '' || typeof service !== 'string' || service === '') return undefined;
  const first = issues[0];
  const field = first ? formatPath(first.path) : '';
  const addressType = value.addressType === 'IPv6' || value.addressType === 'FQDN' ? value.addressType : 'IPv4';
  const managedBy = labels[MANAGED_BY_LABEL];
  return {
    namespace,
    name: meta.name,
    service,
    ...(typeof managedBy === 'string' ? { managedBy } : {}),
    addressType,
    ports: [],
    endpoints: [],
    doubt: { reason: `${object}${field ? ` ${field}` : ''}: invalid, so the endpoints it declares are unknown` },
    source,
  };
}

function at(source: SourceRef | undefined): { file?: string; line?: number } {
  return { ...(source?.file !== undefined ? { file: source.file } : {}), ...(source?.line !== undefined ? { line: source.line } : {}) };
}

/**
 * What joining slices to Services says (the loader's cross-object check): a slice whose
 * Service is not in the input, the controller's slice of a Service with a selector (ignored),
 * another manager's slice of one (merged), a port no Service port takes, an FQDN slice, and a
 * Service without selector that no slice names.
 */
export function checkEndpointSlices(services: readonly Service[], slices: readonly EndpointSlice[]): Diagnostic[] {
  const out: Diagnostic[] = [];
  const byKey = new Map(services.map((s) => [`${s.namespace}/${s.name}`, s]));
  const named = new Set<string>();
  const controllerSlices: EndpointSlice[] = [];
  for (const sl of slices) {
    const key = `${sl.namespace}/${sl.service}`;
    named.add(key);
    const object = objectName('EndpointSlice', sl.name, sl.namespace);
    const d = (severity: 'warning' | 'notice', code: string, field: string, message: string) => out.push({ severity, code, message, ...at(sl.source), object, field });
    const svc = byKey.get(key);
    if (!svc) {
      d('warning', 'endpointslice-service-missing', `metadata.labels["${SERVICE_NAME_LABEL}"]`, `names Service ${key}, which is not in the input: its endpoints serve nothing`);
      continue;
    }
    if (svc.type === 'ExternalName') {
      d('notice', 'endpointslice-ignored', `metadata.labels["${SERVICE_NAME_LABEL}"]`, `Service ${key} is an ExternalName (a DNS alias): proxies ignore its slices`);
      continue;
    }
    if (svc.selector !== undefined) {
      if (sl.managedBy === SLICE_CONTROLLER) {
        controllerSlices.push(sl);
        continue;
      }
      d('notice', 'endpointslice-merged', `metadata.labels["${SERVICE_NAME_LABEL}"]`,
        `Service ${key} has a selector; this slice (${sl.managedBy !== undefined ? `managed by ${sl.managedBy}` : `no ${MANAGED_BY_LABEL} label`}) adds its endpoints to the selected pods, as kube-proxy merges every slice of a Service`);
    }
    if (sl.doubt) continue;
    if (sl.addressType === 'FQDN') {
      d('notice', 'endpointslice-fqdn', 'addressType', 'an FQDN slice: kube-proxy and weir forward only to IPv4 and IPv6 slices, so it gives the Service no endpoints');
      continue;
    }
    const known = svc.ports.map((p) => `${p.name ?? '(no name)'} ${p.port}/${p.protocol}`).join(', ');
    for (const p of sl.ports) {
      if (svc.ports.some((sp) => (sp.name ?? '') === (p.name ?? '') && sp.protocol === p.protocol)) continue;
      const which = p.name !== undefined ? `named "${p.name}"` : 'without a name';
      d('warning', 'endpointslice-port-unmatched', 'ports',
        `port ${p.port}/${p.protocol} ${which} matches no port of Service ${key} (a slice port serves the Service port of the same name and protocol; its ports: ${known || 'none'}): it gives the Service no endpoints`);
    }
  }
  // A dump of a real cluster holds one such slice per Service with a selector: one notice says it.
  const first = controllerSlices[0];
  if (first) {
    const names = controllerSlices.slice(0, 5).map((x) => `${x.namespace}/${x.name}`).join(', ');
    const more = controllerSlices.length > 5 ? ` and ${controllerSlices.length - 5} more` : '';
    const what = controllerSlices.length === 1 ? `the EndpointSlice controller's slice of Service ${first.namespace}/${first.service}, which has a selector` : `${controllerSlices.length} EndpointSlices of the EndpointSlice controller for Services with a selector (${names}${more})`;
    out.push({
      severity: 'notice',
      code: 'endpointslice-controller-managed',
      message: `${what}: ignored; weir derives those Services' endpoints from the pods their selectors match, as the controller rewrites its slices from them`,
      ...at(first.source),
      object: objectName('EndpointSlice', first.name, first.namespace),
      field: `metadata.labels["${MANAGED_BY_LABEL}"]`,
    });
  }
  for (const s of services) {
    const key = `${s.namespace}/${s.name}`;
    if (s.selector !== undefined || s.type === 'ExternalName' || named.has(key)) continue;
    out.push({
      severity: 'warning',
      code: 'service-without-endpointslices',
      message: `no selector and no EndpointSlice in the input names it (label ${SERVICE_NAME_LABEL}: ${s.name}): its endpoints are unknown, so verdicts through it are UNKNOWN`,
      ...at(s.source),
      object: objectName('Service', s.name, s.namespace),
      field: 'spec.selector',
    });
  }
  return out;
}
