// Service findings for `weir lint`: everything the service model reports about its input
// (addresses, selectors, named ports, balancing annotations), plus what needs the endpoints
// to see: weight entries that match no endpoint, and locations no endpoint is in.

import type { Cluster } from '../model/cluster.js';
import { objectName, type Diagnostic } from '../model/diagnostics.js';
import { allocate } from './allocate.js';
import { parseBalancing, ANNOTATION } from './config.js';
import { locationOf, resolveServices } from './endpoints.js';

export function lintServices(cluster: Cluster): Diagnostic[] {
  const alloc = allocate(cluster.services);
  const resolved = resolveServices(cluster, cluster.endpointSlices ?? [], alloc);
  const out: Diagnostic[] = [...alloc.diagnostics, ...resolved.diagnostics];
  const nodes = new Map(cluster.nodes.map((n) => [n.name, n]));
  for (const svc of resolved.services) {
    const { config, diagnostics } = parseBalancing(svc.service);
    out.push(...diagnostics);
    // The endpoints as the manifests define them: every pod the selector matches, with or
    // without an address (manifests rarely carry one; resolveServices needs it for the kernel).
    const endpoints = svc.ports.flatMap((p) => p.endpoints);
    const selector = svc.service.selector;
    const members: { pod: string; labels: Readonly<Record<string, string>>; location?: string }[] =
      selector !== undefined
        ? cluster.pods
            .filter((p) => p.namespace === svc.namespace && !p.hostNetwork && Object.entries(selector).every(([k, v]) => p.labels[k] === v))
            .map((p) => {
              const location = locationOf(p.node !== undefined ? nodes.get(p.node)?.labels : undefined);
              return { pod: `${p.namespace}/${p.name}`, labels: p.labels, ...(location !== undefined ? { location } : {}) };
            })
        : endpoints.map((e) => ({ ...(e.pod !== undefined ? { pod: e.pod } : { pod: e.key }), labels: e.labels, ...(e.location !== undefined ? { location: e.location } : {}) }));
    if (members.length === 0) continue;
    const where = (annotation: string, code: string, message: string): Diagnostic => ({
      severity: 'warning',
      code,
      message,
      object: objectName('Service', svc.name, svc.namespace),
      field: `metadata.annotations.${annotation}`,
      ...(svc.service.source ? { file: svc.service.source.file, ...(svc.service.source.line !== undefined ? { line: svc.service.source.line } : {}) } : {}),
    });
    for (const w of config.weights ?? []) {
      const hit = members.some((e) =>
        w.target.kind === 'pod' ? e.pod === `${svc.namespace}/${w.target.name}` : e.labels[w.target.key] === w.target.value,
      );
      if (!hit) out.push(where(ANNOTATION.weights, 'lb-weight-matches-nothing', `entry "${w.text}" matches no endpoint of the Service`));
    }
    const locations = new Set(members.flatMap((e) => (e.location !== undefined ? [e.location] : [])));
    for (const loc of config.split?.keys() ?? []) {
      if (!locations.has(loc)) out.push(where(ANNOTATION.split, 'lb-unknown-location', `no endpoint is in location "${loc}" (known: ${[...locations].sort().join(', ') || 'none'})`));
    }
    for (const loc of config.allowedLocations ?? []) {
      if (!locations.has(loc)) out.push(where(ANNOTATION.allowed, 'lb-unknown-location', `no endpoint is in location "${loc}" (known: ${[...locations].sort().join(', ') || 'none'})`));
    }
  }
  return out;
}
