// Service findings for `weir lint`: everything the service model reports about its input
// (addresses, selectors, named ports, balancing annotations), plus what needs the endpoints
// to see: weight entries that match no endpoint, and locations no endpoint is in.

import type { Cluster } from '../model/cluster.js';
import { objectName, type Diagnostic } from '../model/diagnostics.js';
import { allocate } from './allocate.js';
import { parseBalancing, ANNOTATION } from './config.js';
import { resolveServices } from './endpoints.js';

export function lintServices(cluster: Cluster): Diagnostic[] {
  const alloc = allocate(cluster.services);
  const resolved = resolveServices(cluster, [], alloc);
  const out: Diagnostic[] = [...alloc.diagnostics, ...resolved.diagnostics];
  for (const svc of resolved.services) {
    const { config, diagnostics } = parseBalancing(svc.service);
    out.push(...diagnostics);
    const endpoints = svc.ports.flatMap((p) => p.endpoints);
    if (endpoints.length === 0) continue;
    const where = (annotation: string, code: string, message: string): Diagnostic => ({
      severity: 'warning',
      code,
      message,
      object: objectName('Service', svc.name, svc.namespace),
      field: `metadata.annotations.${annotation}`,
      ...(svc.service.source ? { file: svc.service.source.file, ...(svc.service.source.line !== undefined ? { line: svc.service.source.line } : {}) } : {}),
    });
    for (const w of config.weights ?? []) {
      const hit = endpoints.some((e) =>
        w.target.kind === 'pod' ? e.pod === `${svc.namespace}/${w.target.name}` : e.labels[w.target.key] === w.target.value,
      );
      if (!hit) out.push(where(ANNOTATION.weights, 'lb-weight-matches-nothing', `entry "${w.text}" matches no endpoint of the Service`));
    }
    const locations = new Set(endpoints.flatMap((e) => (e.location !== undefined ? [e.location] : [])));
    for (const loc of config.split?.keys() ?? []) {
      if (!locations.has(loc)) out.push(where(ANNOTATION.split, 'lb-unknown-location', `no endpoint is in location "${loc}" (known: ${[...locations].sort().join(', ') || 'none'})`));
    }
    for (const loc of config.allowedLocations ?? []) {
      if (!locations.has(loc)) out.push(where(ANNOTATION.allowed, 'lb-unknown-location', `no endpoint is in location "${loc}" (known: ${[...locations].sort().join(', ') || 'none'})`));
    }
  }
  return out;
}
