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
import type { EndpointSlice, SourceRef } from '../model/cluster.js';
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
